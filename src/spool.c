/* spool.c: creating, opening and scanning the spool directory. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layout.h"
#include "spool.h"

static int mkdir_p(const char *path, mode_t mode)
{
	char *copy = strdup(path);
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (char *p = copy + 1; *p && rc == 0; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			rc = -errno;
		*p = '/';
	}
	if (rc == 0 && mkdir(copy, mode) < 0 && errno != EEXIST)
		rc = -errno;
	free(copy);
	return rc;
}

static int open_subdir(int parent, const char *name, mode_t mode)
{
	if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
		return -errno;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int create_categories(int files_fd)
{
	for (size_t i = 0; i < layout_category_count(); i++) {
		const char *name = layout_category_name((int)i);
		bool fresh = faccessat(files_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0;
		int fd = open_subdir(files_fd, name, 0755);

		if (fd < 0)
			return fd;
		/* Whatever our umask, writers (a camera's user) must get in. */
		if (fresh)
			fchmod(fd, 0755);
		close(fd);
	}
	return 0;
}

/* One daemon per spool: two would each rewrite the journal (the first then
 * appends to a deleted file) and upload the same files.  The lock lives as
 * long as the process, daemonized or killed. */
static int lock_state(struct spool *s, const char *where, char *err, size_t errsz)
{
	s->lock_fd = openat(s->state_fd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		snprintf(err, errsz, "cannot lock %s: %s", where, strerror(errno));
		return -1;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		snprintf(err, errsz,
			 "%s is in use by another ingestfs (a mount or a watch): "
			 "one spool serves one at a time",
			 where);
	else
		snprintf(err, errsz, "cannot lock %s: %s", where, strerror(errno));
	return -1;
}

void spool_init(struct spool *s)
{
	memset(s, 0, sizeof(*s));
	s->files_fd = s->state_fd = s->lock_fd = -1;
}

int spool_open(struct spool *s, const char *dir, char *err, size_t errsz)
{
	int dirfd = -1, rc;

	spool_init(s);
	rc = mkdir_p(dir, 0700);
	if (rc == 0) {
		dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = dirfd < 0 ? -errno : 0;
	}
	if (rc == 0)
		rc = s->files_fd = open_subdir(dirfd, "files", 0755); /* the mount root */
	if (rc >= 0)
		rc = s->state_fd = open_subdir(dirfd, "state", 0700);
	if (rc >= 0)
		rc = create_categories(s->files_fd);
	if (dirfd >= 0)
		close(dirfd);
	s->dir = strdup(dir);
	if (rc >= 0 && s->dir && asprintf(&s->files_path, "%s/files", dir) < 0)
		s->files_path = NULL;
	if (rc >= 0 && s->dir && asprintf(&s->state_path, "%s/state", dir) < 0)
		s->state_path = NULL;
	if (rc >= 0 && (!s->dir || !s->files_path || !s->state_path))
		rc = -ENOMEM;
	if (rc < 0) {
		snprintf(err, errsz, "cannot create the spool directory %s: %s", dir,
			 strerror(-rc));
		spool_close(s);
		return -1;
	}
	if (lock_state(s, dir, err, errsz) < 0) {
		spool_close(s);
		return -1;
	}
	return 0;
}

void spool_close(struct spool *s)
{
	if (s->files_fd >= 0)
		close(s->files_fd);
	if (s->state_fd >= 0)
		close(s->state_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->dir);
	free(s->files_path);
	free(s->state_path);
	spool_init(s);
}

int spool_open_split(struct spool *s, const char *files_dir, const char *state_dir, char *err,
		     size_t errsz)
{
	char real[PATH_MAX];
	int rc;

	spool_init(s);
	if (!realpath(files_dir, real)) {
		snprintf(err, errsz, "cannot watch %s: %s", files_dir, strerror(errno));
		return -1;
	}
	s->files_fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = s->files_fd < 0 ? -errno : create_categories(s->files_fd);
	if (rc < 0) {
		snprintf(err, errsz, "cannot use %s: %s", real, strerror(-rc));
		goto fail;
	}
	rc = mkdir_p(state_dir, 0700);
	if (rc == 0) {
		s->state_fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = s->state_fd < 0 ? -errno : 0;
	}
	if (rc < 0) {
		snprintf(err, errsz, "cannot create the state directory %s: %s", state_dir,
			 strerror(-rc));
		goto fail;
	}
	if (lock_state(s, state_dir, err, errsz) < 0)
		goto fail;
	s->files_path = strdup(real);
	s->state_path = strdup(state_dir);
	s->dir = strdup(state_dir);
	if (s->files_path && s->state_path && s->dir)
		return 0;
	snprintf(err, errsz, "out of memory");
fail:
	spool_close(s);
	return -1;
}

/* "/home/ana/ei mount" -> "home-ana-ei%20mount": one flat, readable name. */
static char *escape_mountpoint(const char *mp)
{
	size_t n = strlen(mp);
	char *out = malloc(n * 3 + 2), *o = out;

	if (!out)
		return NULL;
	while (*mp == '/')
		mp++;
	for (; *mp; mp++) {
		unsigned char c = (unsigned char)*mp;

		if (c == '/')
			*o++ = '-';
		else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '_')
			*o++ = (char)c;
		else
			o += sprintf(o, "%%%02X", c);
	}
	if (o == out)
		*o++ = '-';
	*o = '\0';
	return out;
}

static char *state_home_path(const char *prefix, const char *path)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char *name = escape_mountpoint(path), *dir = NULL;
	int r = -1;

	if (!name)
		return NULL;
	if (xdg && *xdg)
		r = asprintf(&dir, "%s/ingestfs/%s%s", xdg, prefix, name);
	else if (geteuid() == 0)
		r = asprintf(&dir, "/var/lib/ingestfs/%s%s", prefix, name);
	else if (home && *home)
		r = asprintf(&dir, "%s/.local/state/ingestfs/%s%s", home, prefix, name);
	free(name);
	return r < 0 ? NULL : dir;
}

char *spool_default_dir(const char *mountpoint)
{
	return state_home_path("", mountpoint);
}

char *spool_default_state_dir(const char *watched)
{
	return state_home_path("watch-", watched);
}

static long scan_dir(struct queue *q, int dirfd, const char *rel, unsigned depth)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *de;
	long found = 0;

	if (!d) {
		close(dirfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *path;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (asprintf(&path, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0)
			break;
		if (S_ISREG(st.st_mode)) {
			queue_reconcile(q, (uint64_t)st.st_ino, path, (uint64_t)st.st_size);
			found++;
		} else if (S_ISDIR(st.st_mode) && depth < 256) {
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			long n = sub >= 0 ? scan_dir(q, sub, path, depth + 1) : 0;

			if (n > 0)
				found += n;
		}
		free(path);
	}
	closedir(d);
	return found;
}

long spool_scan(struct spool *s, struct queue *q)
{
	int fd = openat(s->files_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return scan_dir(q, fd, "", 0);
}
