/* fs.c: FUSE high-level operations over the spool.
 *
 * Thread model: fuse_loop_mt calls these from several threads at once.
 * Each call works on the spool through *at() calls relative to files_fd,
 * or on the fd of its own open handle, and reports to the queue, which has
 * its own lock.  What they share besides: the count of passthrough writers
 * (atomic), a handle's last look at its file (seen_lock, for closes of
 * dup'd fds that race), and passthrough.c's backing table (its own lock).
 * An open arms passthrough.c for the reply its thread sends next.  Every
 * operation returns 0 (or a count) or -errno.  No HTTP here. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs.h"
#include "layout.h"
#include "log.h"
#include "passthrough.h"

#define XATTR_PREFIX "user.ingest."
#define XATTR_STATUS XATTR_PREFIX "status"
#define XATTR_RESULT XATTR_PREFIX "result"
#define XATTR_SUMMARY XATTR_PREFIX "summary"
#define XATTR_BYTES XATTR_PREFIX "bytes"

/* With passthrough only the writer sees a write fail (ENOSPC), and the
 * file would go up cut short.  So a new file gets passthrough writes only
 * while the spool has this much free, plus room for the largest sample
 * for every passthrough writer already open; otherwise its writes go
 * through the daemon, which sees the error and fails the file. */
#define SPOOL_LOW_BYTES (1ull << 30)
#define BLIND_WRITER_BYTES (128ull << 20)
/* And a passthrough writer closed with less than this left may have hit
 * ENOSPC (another program filled the disk): it fails rather than go up. */
#define SPOOL_FULL_BYTES (64ull << 20)

struct fs_handle {
	int fd;
	uint64_t ino;
	bool writable;
	bool passthrough;          /* holds a backing id (passthrough_put at release) */
	bool unseen_writes;        /* mmap, maybe write(2), reach the spool without us */
	bool unseen_errors;        /* write(2) errors reach only the writer */
	atomic_bool written;       /* the queue has been told about new content */
	pthread_mutex_t seen_lock; /* guards seen: closes of dup'd fds may race */
	struct stat seen;          /* the file when we last checked, for unseen_writes */
};

struct fs_dir {
	DIR *dp;
	struct dirent *entry;
	off_t offset;
};

static struct fs_context *ctx(void)
{
	return fuse_get_context()->private_data;
}

/* FUSE paths start with '/'; the spool wants them relative. */
static const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

static struct fs_handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

static void note_written(struct fs_handle *h)
{
	if (!atomic_exchange(&h->written, true))
		queue_written(ctx()->q, h->ino);
}

/* Returns -ERR for the operation to hand back to the writer. */
static int note_failure(struct fs_handle *h, int err)
{
	queue_write_failed(ctx()->q, h->ino, err);
	return -err;
}

/* ---- attributes ---- */

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	/* Unlinked-but-open files must not reappear as .fuse_hidden* in the
	 * spool; we work on handles, so paths are not needed for them. */
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	/* Only this mount changes the spool, so the kernel may cache names,
	 * attributes and missing names: fewer round trips per create. */
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 1.0;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Large writes, moved by splice where the kernel can. */
	conn->max_write = 1024 * 1024;
	conn->want |= conn->capable &
		      (FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ);
	return ctx();
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	int rc = fi ? fstat(handle_of(fi)->fd, st)
		    : fstatat(ctx()->files_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);

	return rc < 0 ? -errno : 0;
}

/* Samples are data: no setuid or setgid files, which makes the kernel's
 * "kill privileges on write" trivially done (passthrough.c accepts
 * FUSE_HANDLE_KILLPRIV_V2 on that ground).  A setgid folder is harmless. */
static mode_t without_privileges(mode_t mode, bool dir)
{
	return mode & ~(dir ? S_ISUID : (mode_t)(S_ISUID | S_ISGID));
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct stat st;
	int rc;

	if (fi) {
		rc = fchmod(handle_of(fi)->fd, without_privileges(mode, false));
	} else {
		rc = fstatat(ctx()->files_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW);
		if (rc == 0)
			rc = fchmodat(ctx()->files_fd, rel(path),
				      without_privileges(mode, S_ISDIR(st.st_mode)), 0);
	}
	return rc < 0 ? -errno : 0;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	int rc = fi ? fchown(handle_of(fi)->fd, uid, gid)
		    : fchownat(ctx()->files_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);

	return rc < 0 ? -errno : 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	int rc = fi ? futimens(handle_of(fi)->fd, tv)
		    : utimensat(ctx()->files_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);

	return rc < 0 ? -errno : 0;
}

static int fs_access(const char *path, int mask)
{
	return faccessat(ctx()->files_fd, rel(path), mask, 0) < 0 ? -errno : 0;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	return fstatvfs(ctx()->files_fd, sv) < 0 ? -errno : 0;
}

/* truncate(2) on a path: a change of content like a write. */
static int truncate_path(const char *path, off_t size)
{
	struct fs_context *c = ctx();
	struct stat st;
	int rc = 0, fd = openat(c->files_fd, rel(path), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || ftruncate(fd, size) < 0) {
		rc = -errno;
		goto out;
	}
	queue_open_write(c->q, (uint64_t)st.st_ino, rel(path));
	queue_written(c->q, (uint64_t)st.st_ino);
	queue_flushed(c->q, (uint64_t)st.st_ino, (uint64_t)size);
	queue_close_write(c->q, (uint64_t)st.st_ino, (uint64_t)size);
out:
	close(fd);
	return rc;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fs_handle *h;

	if (!fi)
		return truncate_path(path, size);
	h = handle_of(fi);
	if (ftruncate(h->fd, size) < 0)
		return note_failure(h, errno);
	note_written(h);
	return 0;
}

/* ---- directories ---- */

static int fs_mkdir(const char *path, mode_t mode)
{
	int rc = layout_check_dir(rel(path));

	if (rc < 0)
		return rc;
	return mkdirat(ctx()->files_fd, rel(path), without_privileges(mode, true)) < 0 ? -errno : 0;
}

static int fs_rmdir(const char *path)
{
	struct layout_path lp;

	if (layout_classify(rel(path), &lp) < 0 || lp.kind != LAYOUT_ENTRY)
		return -EPERM;
	return unlinkat(ctx()->files_fd, rel(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct fs_dir *d = calloc(1, sizeof(*d));
	int fd;

	if (!d)
		return -ENOMEM;
	fd = openat(ctx()->files_fd, rel(path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	d->dp = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d->dp) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		return -err;
	}
	fi->fh = (uintptr_t)d;
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		enum fuse_fill_dir_flags fill = 0;
		struct stat st;
		off_t next;

		if (!d->entry) {
			d->entry = readdir(d->dp);
			if (!d->entry)
				break;
		}
		memset(&st, 0, sizeof(st));
		st.st_ino = d->entry->d_ino;
		st.st_mode = (mode_t)DTTOIF(d->entry->d_type);
		/* Attributes now save `ls -l` a LOOKUP round trip per entry. */
		if ((flags & FUSE_READDIR_PLUS) &&
		    fstatat(dirfd(d->dp), d->entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			fill = FUSE_FILL_DIR_PLUS;
		next = telldir(d->dp);
		if (filler(buf, d->entry->d_name, &st, next, fill))
			break;
		d->entry = NULL;
		d->offset = next;
	}
	return 0;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	closedir(d->dp);
	free(d);
	return 0;
}

/* ---- names ---- */

static int fs_unlink(const char *path)
{
	struct fs_context *c = ctx();
	struct stat st;
	bool known = fstatat(c->files_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) == 0;

	if (layout_check_file(rel(path)) < 0)
		return -EPERM;
	if (unlinkat(c->files_fd, rel(path), 0) < 0)
		return -errno;
	if (known)
		queue_removed(c->q, (uint64_t)st.st_ino);
	return 0;
}

static int check_rename(const char *from, const char *to, bool is_dir)
{
	int rc = layout_check_file(from);

	if (rc < 0)
		return rc;
	return is_dir ? layout_check_dir(to) : layout_check_file(to);
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct fs_context *c = ctx();
	struct stat src, dst;
	bool replaces;
	int rc;

	/* Swapping two files would need two queue moves at once; no writer
	 * we know of needs it. */
	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	if (fstatat(c->files_fd, rel(from), &src, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	rc = check_rename(rel(from), rel(to), S_ISDIR(src.st_mode));
	if (rc < 0)
		return rc;
	replaces = fstatat(c->files_fd, rel(to), &dst, AT_SYMLINK_NOFOLLOW) == 0 &&
		   S_ISREG(dst.st_mode) && dst.st_ino != src.st_ino;
	if (renameat2(c->files_fd, rel(from), c->files_fd, rel(to), flags) < 0)
		return -errno;
	if (replaces)
		queue_removed(c->q, (uint64_t)dst.st_ino);
	queue_renamed(c->q, rel(from), rel(to), (uint64_t)src.st_ino, (uint64_t)src.st_size,
		      S_ISDIR(src.st_mode));
	return 0;
}

static int fs_refuse_link(const char *from, const char *to)
{
	return -EPERM;
}

static int fs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	return -EPERM;
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	return -EINVAL;
}

/* ---- files ---- */

static bool spool_has_room(uint64_t bytes)
{
	struct statvfs sv;

	if (fstatvfs(ctx()->files_fd, &sv) < 0)
		return false;
	return (uint64_t)sv.f_bfree * sv.f_frsize >= bytes;
}

static bool room_for_blind_writer(void)
{
	unsigned open = atomic_load(&ctx()->blind_writers);

	return spool_has_room(SPOOL_LOW_BYTES + (uint64_t)(open + 1) * BLIND_WRITER_BYTES);
}

/* Hand the file's data to the kernel when we can (passthrough.h).  write(2)
 * to a file that keeps its old content still comes through the daemon
 * (FOPEN_DIRECT_IO): the first one is journaled before it lands, so a
 * crash in the middle shows "interrupted" instead of the old status. */
static void choose_data_path(struct fs_handle *h, bool content_new, const struct stat *st,
			     struct fuse_file_info *fi)
{
	bool ready = passthrough_ready(), direct;
	int id;

	/* An inode open with passthrough keeps it even once it is turned
	 * off: the kernel fails an open that mixes the two (EIO). */
	id = passthrough_get(h->ino, h->fd, ready);
	if (id < 0) {
		/* A passing failure: keep this inode out of the page cache, or
		 * the kernel refuses its next passthrough open. */
		if (ready && passthrough_ready())
			fi->direct_io = 1;
		return;
	}
	direct = h->writable && (!content_new || !room_for_blind_writer());
	h->passthrough = true;
	h->unseen_writes = h->writable;
	h->unseen_errors = h->writable && !direct;
	if (h->unseen_errors)
		atomic_fetch_add(&ctx()->blind_writers, 1);
	h->seen = *st;
	passthrough_arm((uintptr_t)h, id, direct);
}

/* Passthrough writes bypass us: new content since we last looked is a
 * write (after an earlier close of a dup'd fd, or through mmap).  mtime,
 * not ctime, which chmod and setxattr move too. */
static void catch_unseen_writes(struct fs_handle *h, const struct stat *now)
{
	bool changed;

	if (!h->unseen_writes)
		return;
	pthread_mutex_lock(&h->seen_lock);
	changed = now->st_size != h->seen.st_size ||
		  now->st_mtim.tv_sec != h->seen.st_mtim.tv_sec ||
		  now->st_mtim.tv_nsec != h->seen.st_mtim.tv_nsec;
	h->seen = *now;
	pthread_mutex_unlock(&h->seen_lock);
	if (changed)
		note_written(h);
	if (h->unseen_errors && atomic_load(&h->written) && !spool_has_room(SPOOL_FULL_BYTES))
		queue_write_failed(ctx()->q, h->ino, ENOSPC);
}

static int open_handle(const char *path, int fd, int flags, bool created, struct fuse_file_info *fi)
{
	struct fs_context *c = ctx();
	struct fs_handle *h = calloc(1, sizeof(*h));
	bool content_new = created || (flags & O_TRUNC);
	struct stat st;

	if (!h || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int err = h ? (errno ? errno : EINVAL) : ENOMEM;

		free(h);
		close(fd);
		return -err;
	}
	h->fd = fd;
	h->ino = (uint64_t)st.st_ino;
	h->writable = (flags & O_ACCMODE) != O_RDONLY;
	pthread_mutex_init(&h->seen_lock, NULL);
	if (h->writable) {
		queue_open_write(c->q, h->ino, rel(path));
		if (content_new)
			note_written(h);
	}
	/* Nothing to learn from the close of a reader: spare it the FLUSH. */
	fi->noflush = !h->writable;
	fi->fh = (uintptr_t)h;
	choose_data_path(h, content_new, &st, fi);
	return 0;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int rc = layout_check_file(rel(path)), fd;

	if (rc < 0)
		return rc;
	fd = openat(ctx()->files_fd, rel(path), fi->flags | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    without_privileges(mode, false));
	if (fd < 0)
		return -errno;
	return open_handle(path, fd, fi->flags, true, fi);
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY);
	int fd = openat(ctx()->files_fd, rel(path), flags | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return open_handle(path, fd, fi->flags, false, fi);
}

static int fs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fuse_bufvec *src = malloc(sizeof(*src));

	if (!src)
		return -ENOMEM;
	*src = FUSE_BUFVEC_INIT(size);
	src->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	src->buf[0].fd = handle_of(fi)->fd;
	src->buf[0].pos = off;
	*bufp = src;
	return 0;
}

static int fs_write_buf(const char *path, struct fuse_bufvec *buf, off_t off,
			struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(buf));
	ssize_t n;

	dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	dst.buf[0].fd = h->fd;
	dst.buf[0].pos = off;
	n = fuse_buf_copy(&dst, buf, FUSE_BUF_SPLICE_NONBLOCK);
	if (n < 0)
		return note_failure(h, (int)-n);
	if (n > 0)
		note_written(h);
	return (int)n;
}

static int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);

	if (fallocate(h->fd, mode, off, len) < 0) {
		/* "Not supported" changes nothing; running out of space might. */
		if (errno == EOPNOTSUPP || errno == EINVAL)
			return -errno;
		return note_failure(h, errno);
	}
	note_written(h);
	return 0;
}

static off_t fs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t r = lseek(handle_of(fi)->fd, off, whence);

	return r < 0 ? -errno : r;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	int fd = handle_of(fi)->fd;
	int rc = datasync ? fdatasync(fd) : fsync(fd);

	return rc < 0 ? -errno : 0;
}

/* FLUSH comes with every close(2) and the writer waits for it; RELEASE
 * comes later, on its own.  So the journal learns of the close here. */
static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct stat st;

	if (!h->writable || fstat(h->fd, &st) < 0)
		return 0;
	catch_unseen_writes(h, &st);
	if (atomic_exchange(&h->written, false))
		queue_flushed(ctx()->q, h->ino, (uint64_t)st.st_size);
	return 0;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct stat st;

	if (h->writable) {
		uint64_t size = 0;

		if (fstat(h->fd, &st) == 0) {
			catch_unseen_writes(h, &st);
			size = (uint64_t)st.st_size;
		}
		if (atomic_exchange(&h->written, false)) /* no FLUSH came */
			queue_flushed(ctx()->q, h->ino, size);
		queue_close_write(ctx()->q, h->ino, size);
	}
	if (h->unseen_errors)
		atomic_fetch_sub(&ctx()->blind_writers, 1);
	if (h->passthrough)
		passthrough_put(h->ino);
	pthread_mutex_destroy(&h->seen_lock);
	close(h->fd);
	free(h);
	return 0;
}

/* ---- extended attributes ---- */

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

static char *absolute(const char *path)
{
	char *p;

	return asprintf(&p, "%s%s", ctx()->files_path, path) < 0 ? NULL : p;
}

static int file_status(const char *path, const char *name, char *text, size_t textsz)
{
	struct fs_context *c = ctx();
	struct layout_path lp;
	enum file_state state;
	struct stat st;
	char result[512];

	if (layout_classify(rel(path), &lp) < 0)
		return -ENODATA;
	if (lp.ignored) {
		snprintf(text, textsz, "%s",
			 strcmp(name, XATTR_STATUS) == 0 ? "ignored" : lp.ignored);
		return 0;
	}
	if (fstatat(c->files_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (queue_file_status(c->q, (uint64_t)st.st_ino, &state, result, sizeof(result)) < 0)
		return -ENODATA;
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

	if (fstatat(ctx()->files_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
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
	if (strcmp(name, XATTR_STATUS) != 0 && strcmp(name, XATTR_RESULT) != 0)
		return -ENODATA;
	return file_status(path, name, text, textsz);
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

static int fs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	char text[1024], *abs;
	ssize_t n;
	int rc;

	if (is_ours(name)) {
		rc = virtual_xattr(path, name, text, sizeof(text));
		return rc < 0 ? rc : xattr_reply(text, value, size);
	}
	if (is_unsupported(name))
		return -ENODATA;
	abs = absolute(path);
	if (!abs)
		return -ENOMEM;
	n = lgetxattr(abs, name, value, size);
	rc = n < 0 ? -errno : (int)n;
	free(abs);
	return rc;
}

/* The writes we take on user.ingest.status: "retry" (failed files, or
 * every failed file below a folder) and "resend" (any final file). */
static int set_status(const char *path, const char *name, const char *value, size_t size)
{
	struct stat st;
	bool resend;

	if (strcmp(name, XATTR_STATUS) != 0)
		return -EPERM;
	if (size == 5 && memcmp(value, "retry", 5) == 0)
		resend = false;
	else if (size == 6 && memcmp(value, "resend", 6) == 0)
		resend = true;
	else
		return -EPERM;
	if (fstatat(ctx()->files_fd, rel(path), &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode)) {
		queue_retry_below(ctx()->q, path[1] ? rel(path) : "", resend);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	return queue_retry(ctx()->q, (uint64_t)st.st_ino, resend) < 0 ? -ENODATA : 0;
}

static int fs_setxattr(const char *path, const char *name, const char *value, size_t size,
		       int flags)
{
	char *abs;
	int rc;

	if (is_ours(name))
		return set_status(path, name, value, size);
	if (is_unsupported(name))
		return -EOPNOTSUPP;
	abs = absolute(path);
	if (!abs)
		return -ENOMEM;
	rc = lsetxattr(abs, name, value, size, flags) < 0 ? -errno : 0;
	free(abs);
	return rc;
}

/* Our user.ingest.* names are left out on purpose: tools that copy every
 * xattr (cp -a, rsync -X) would carry a stale status to the copy and fail
 * to write it back into a mount.  Ask for them by name. */
static int fs_listxattr(const char *path, char *list, size_t size)
{
	char *abs = absolute(path);
	ssize_t n;

	if (!abs)
		return -ENOMEM;
	n = llistxattr(abs, list, size);
	free(abs);
	return n < 0 ? -errno : (int)n;
}

static int fs_removexattr(const char *path, const char *name)
{
	char *abs;
	int rc;

	if (is_ours(name))
		return -EPERM;
	abs = absolute(path);
	if (!abs)
		return -ENOMEM;
	rc = lremovexattr(abs, name) < 0 ? -errno : 0;
	free(abs);
	return rc;
}

const struct fuse_operations fs_operations = {
	.init = fs_init,
	.getattr = fs_getattr,
	.access = fs_access,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.utimens = fs_utimens,
	.truncate = fs_truncate,
	.statfs = fs_statfs,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.symlink = fs_refuse_link,
	.link = fs_refuse_link,
	.mknod = fs_mknod,
	.readlink = fs_readlink,
	.create = fs_create,
	.open = fs_open,
	.read_buf = fs_read_buf,
	.write_buf = fs_write_buf,
	.fallocate = fs_fallocate,
	.lseek = fs_lseek,
	.fsync = fs_fsync,
	.flush = fs_flush,
	.release = fs_release,
	.getxattr = fs_getxattr,
	.setxattr = fs_setxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
};
