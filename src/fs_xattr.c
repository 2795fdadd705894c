/* fs_xattr.c: extended attributes (fs_i.h has the thread model).  The
 * user.ingest.* names are the queue's view of a file or folder, answered
 * without the spool; other user.* names are stored on the spool file. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "beneath.h"
#include "fs_i.h"
#include "layout.h"
#include "store.h"
#include "vocab.h"

static int xattr_reply(const char *text, char *value, size_t size)
{
	size_t len = strlen(text);

	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(value, text, len);
	return (int)len;
}

static int file_status(const char *path, const char *name, const struct stat *st, char *text,
		       size_t textsz)
{
	struct layout_path lp;
	enum file_state state;
	char result[512];
	bool known;

	if (layout_classify(rel(path), &lp) < 0)
		return -ENODATA;
	/* A dataset's .xml or .yaml is what the queue made of it
	 * (queue_dataset.c); anything else ignored by name is just that. */
	if (lp.ignored && !layout_dataset_candidate(rel(path))) {
		snprintf(text, textsz, "%s",
			 strcmp(name, XATTR_STATUS) == 0 ? "ignored" : lp.ignored);
		return 0;
	}
	known = queue_file_status(ctx()->q, (uint64_t)st->st_ino, &state, result, sizeof(result)) ==
		0;
	if (!known && lp.ignored) {
		state = FILE_IGNORED;
		snprintf(result, sizeof(result), "%s", lp.ignored);
	} else if (!known) {
		return -ENODATA;
	}
	if (strcmp(name, XATTR_STATUS) == 0)
		snprintf(text, textsz, "%s", file_state_name(state));
	else if (result[0])
		snprintf(text, textsz, "%s", result);
	else
		return -ENODATA;
	return 0;
}

static int virtual_xattr(const char *path, const char *name, char *text, size_t textsz)
{
	struct stat st;
	struct queue_counts counts;
	int rc = fs_stat(path, &st);

	if (rc < 0)
		return rc;
	if (S_ISDIR(st.st_mode) && !path[1] && strcmp(name, XATTR_LIFETIME) == 0) {
		struct store_totals t;

		queue_lifetime(ctx()->q, &t);
		snprintf(text, textsz, LIFETIME_FORMAT, (unsigned long long)t.uploaded,
			 (unsigned long long)t.duplicate, (unsigned long long)t.failed,
			 (unsigned long long)t.bytes);
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		if (strcmp(name, XATTR_SUMMARY) != 0 && strcmp(name, XATTR_BYTES) != 0)
			return -ENODATA;
		queue_count(ctx()->q, path[1] ? rel(path) : "", &counts);
		if (strcmp(name, XATTR_SUMMARY) == 0)
			queue_summary_text(&counts, text, textsz);
		else
			queue_bytes_text(&counts, text, textsz);
		return 0;
	}
	if (!S_ISREG(st.st_mode) ||
	    (strcmp(name, XATTR_STATUS) != 0 && strcmp(name, XATTR_RESULT) != 0))
		return -ENODATA;
	return file_status(path, name, &st, text, textsz);
}

static bool is_ours(const char *name)
{
	return strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0;
}

/* ACLs and security labels are not kept: answer `ls -l`'s questions for
 * them at once instead of asking the spool 10,000 times. */
static bool is_unsupported(const char *name)
{
	return strncmp(name, "system.", 7) == 0 || strncmp(name, "security.", 9) == 0;
}

/* The entry itself, for f*xattr(): files and folders only (the kernel
 * keeps user.* attributes off links and special files anyway). */
static int open_entry(const char *path)
{
	int fd = beneath_open(ctx()->files_fd, rel(path),
			      O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY, 0);

	return fd == -ELOOP ? -ENOTSUP : fd;
}

int fs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	char text[1024];
	ssize_t n;
	int rc, fd;

	if (is_ours(name)) {
		rc = virtual_xattr(path, name, text, sizeof(text));
		return rc < 0 ? rc : xattr_reply(text, value, size);
	}
	if (is_unsupported(name))
		return -ENODATA;
	if ((fd = open_entry(path)) < 0)
		return fd == -ENOTSUP ? -ENODATA : fd;
	n = fgetxattr(fd, name, value, size);
	rc = n < 0 ? -errno : (int)n;
	close(fd);
	return rc;
}

/* The writes we take on user.ingest.status: "retry" (failed files, or
 * every failed file below a folder) and "resend" (any final file). */
static int set_status(const char *path, const char *name, const char *value, size_t size)
{
	struct stat st;
	bool resend;
	int rc;

	if (strcmp(name, XATTR_STATUS) != 0)
		return -EPERM;
	if (size == strlen(STATUS_RETRY) && memcmp(value, STATUS_RETRY, size) == 0)
		resend = false;
	else if (size == strlen(STATUS_RESEND) && memcmp(value, STATUS_RESEND, size) == 0)
		resend = true;
	else
		return -EPERM;
	if ((rc = fs_stat(path, &st)) < 0)
		return rc;
	if (S_ISDIR(st.st_mode)) {
		queue_retry_below(ctx()->q, path[1] ? rel(path) : "", resend);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	return queue_retry(ctx()->q, (uint64_t)st.st_ino, resend) < 0 ? -ENODATA : 0;
}

int fs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	int rc, fd;

	if (is_ours(name))
		return set_status(path, name, value, size);
	if (is_unsupported(name))
		return -EOPNOTSUPP;
	if ((fd = open_entry(path)) < 0)
		return fd == -ENOTSUP ? -EPERM : fd;
	rc = fsetxattr(fd, name, value, size, flags) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* Our user.ingest.* names are left out on purpose: tools that copy every
 * xattr (cp -a, rsync -X) would carry a stale status to the copy and fail
 * to write it back into a mount.  Ask for them by name. */
int fs_listxattr(const char *path, char *list, size_t size)
{
	ssize_t n;
	int fd = open_entry(path);

	if (fd < 0)
		return fd == -ENOTSUP ? 0 : fd;
	n = flistxattr(fd, list, size);
	close(fd);
	return n < 0 ? -errno : (int)n;
}

int fs_removexattr(const char *path, const char *name)
{
	int rc, fd;

	if (is_ours(name))
		return -EPERM;
	if ((fd = open_entry(path)) < 0)
		return fd == -ENOTSUP ? -ENODATA : fd;
	rc = fremovexattr(fd, name) < 0 ? -errno : 0;
	close(fd);
	return rc;
}
