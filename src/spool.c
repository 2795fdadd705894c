/* spool.c: creating, opening and scanning the spool directory. */
#include "config.h"

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <errno.h>
#include <pthread.h>
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

/* A folder of the mount that every user must be able to enter: MODE
 * whatever the umask when we make it, and at least r-x for all after (a
 * spool made under an older umask=077 unit had them 0700). */
static int make_dir(int parent, const char *name, mode_t mode)
{
	bool fresh = faccessat(parent, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0;
	int fd = open_subdir(parent, name, mode), rc = 0;
	struct stat st;

	if (fd < 0)
		return fd;
	if (fresh && fchmod(fd, mode) < 0)
		rc = -errno;
	else if (!fresh && fstat(fd, &st) == 0 && (st.st_mode & 055) != 055 &&
		 fchmod(fd, (st.st_mode & 07777) | 055) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Whatever our umask, writers (a camera's user) must get in. */
static int create_categories(int files_fd)
{
	for (size_t i = 0; i < layout_category_count(); i++) {
		int rc = make_dir(files_fd, layout_category_name((int)i), 0755);

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A shared trash folder (freedesktop.org: .Trash, sticky), so that a file
 * manager's "Move to Trash" works for users who may not make folders at
 * the root of a mount root started. */
static int create_trash(int files_fd)
{
	return make_dir(files_fd, ".Trash", 01777);
}

/* Every folder above DIR must be root's or ours, and writable by no one
 * else unless sticky (/tmp): or another user could swap DIR for a link. */
static int check_ancestors(const char *dir, char *err, size_t errsz)
{
	char real[PATH_MAX], *slash;
	struct stat st;

	if (!realpath(dir, real))
		return 0; /* the open will say why */
	while ((slash = strrchr(real, '/'))) {
		*(slash == real ? slash + 1 : slash) = '\0';
		if (stat(real, &st) < 0)
			return 0;
		if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
		    ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))) {
			snprintf(err, errsz,
				 "%s is below %s, which %s: refusing it, since others could "
				 "swap it for a link",
				 dir, real,
				 (st.st_uid != 0 && st.st_uid != geteuid())
					 ? "another user owns"
					 : "others may write to");
			return -1;
		}
		if (slash == real)
			return 0;
	}
	return 0;
}

/* A spool or state folder others can write to would let them plant links
 * where a daemon, maybe root, writes its state: refuse it. */
static int check_private(int fd, const char *where, char *err, size_t errsz)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errsz, "cannot use %s: %s", where, strerror(errno));
		return -1;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022)) {
		snprintf(err, errsz,
			 "%s is %s: refusing it, since others could plant links in it "
			 "(chown it to this user and chmod go-w)",
			 where,
			 st.st_uid != geteuid() ? "owned by another user" : "writable by others");
		return -1;
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
	if (rc == 0 &&
	    (check_private(dirfd, dir, err, errsz) < 0 || check_ancestors(dir, err, errsz) < 0)) {
		close(dirfd);
		spool_close(s);
		return -1;
	}
	if (rc == 0)
		rc = make_dir(dirfd, "files", 0755); /* the mount root */
	if (rc == 0)
		rc = s->files_fd = open_subdir(dirfd, "files", 0755);
	if (rc >= 0)
		rc = s->state_fd = open_subdir(dirfd, "state", 0700);
	if (rc >= 0 && check_private(s->state_fd, "its state folder", err, errsz) < 0) {
		close(dirfd);
		spool_close(s);
		return -1;
	}
	if (rc >= 0)
		rc = create_categories(s->files_fd);
	if (rc >= 0)
		rc = create_trash(s->files_fd);
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
	if (check_private(s->state_fd, state_dir, err, errsz) < 0 ||
	    check_ancestors(state_dir, err, errsz) < 0)
		goto fail;
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

/* "camera", "1001", "camera:video", "1001:44". */
static int parse_owner(const char *owner, uid_t *uid, gid_t *gid, bool *group_given)
{
	char user[256], *colon, *end;
	const struct passwd *pw;
	const struct group *gr;
	unsigned long n;

	snprintf(user, sizeof(user), "%s", owner);
	colon = strchr(user, ':');
	if (colon)
		*colon++ = '\0';
	*group_given = colon && *colon;
	pw = getpwnam(user);
	n = strtoul(user, &end, 10);
	if (!pw && (*end || end == user))
		return -ENOENT;
	*uid = pw ? pw->pw_uid : (uid_t)n;
	*gid = pw ? pw->pw_gid : (gid_t)n;
	if (!*group_given)
		return 0;
	gr = getgrnam(colon);
	n = strtoul(colon, &end, 10);
	if (!gr && (*end || end == colon))
		return -ENOENT;
	*gid = gr ? gr->gr_gid : (gid_t)n;
	return 0;
}

int spool_set_owner(struct spool *s, const char *owner, char *err, size_t errsz)
{
	bool group;
	uid_t uid;
	gid_t gid;

	if (parse_owner(owner, &uid, &gid, &group) < 0) {
		snprintf(err, errsz, "option 'owner': no such user or group in '%s'", owner);
		return -1;
	}
	for (int i = -1; i < (int)layout_category_count(); i++) {
		const char *name = i < 0 ? "." : layout_category_name(i);

		if (fchownat(s->files_fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
		    fchmodat(s->files_fd, name, group ? 0775 : 0755, 0) < 0) {
			snprintf(err, errsz, "option 'owner': cannot give %s%s to %s: %s%s",
				 s->files_path, i < 0 ? "" : "/...", owner, strerror(errno),
				 errno == EPERM ? " (it needs ingestfs to run as root)" : "");
			return -1;
		}
	}
	return 0;
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

static long scan_dir(struct queue *q, int dirfd, const char *rel, unsigned depth, bool sweep_hidden)
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
		if (S_ISREG(st.st_mode) && sweep_hidden && layout_is_fuse_hidden(de->d_name)) {
			/* Unlinked by its user while open, then we stopped. */
			unlinkat(dirfd, de->d_name, 0);
		} else if (S_ISREG(st.st_mode)) {
			queue_reconcile(q, (uint64_t)st.st_ino, path, (uint64_t)st.st_size);
			found++;
		} else if (S_ISDIR(st.st_mode) && depth < 256) {
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			long n = sub >= 0 ? scan_dir(q, sub, path, depth + 1, sweep_hidden) : 0;

			if (n > 0)
				found += n;
		}
		free(path);
	}
	closedir(d);
	return found;
}

long spool_scan(struct spool *s, struct queue *q, bool sweep_hidden)
{
	int fd = openat(s->files_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return scan_dir(q, fd, "", 0, sweep_hidden);
}

long spool_check_known(struct spool *s, struct queue *q)
{
	struct queue_file_ref *list;
	size_t n;
	long found = 0;

	if (queue_resident_files(q, &list, &n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		if (fstatat(s->files_fd, list[i].path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && (uint64_t)st.st_ino == list[i].ino) {
			queue_reconcile(q, list[i].ino, list[i].path, (uint64_t)st.st_size);
			found++;
		}
		free(list[i].path);
	}
	free(list);
	return found;
}

/* ---- the spool's names: the mount's operations and retention ---- */

static pthread_rwlock_t names_lock = PTHREAD_RWLOCK_INITIALIZER;

void spool_names_share(void)
{
	pthread_rwlock_rdlock(&names_lock);
}

void spool_names_own(void)
{
	pthread_rwlock_wrlock(&names_lock);
}

void spool_names_release(void)
{
	pthread_rwlock_unlock(&names_lock);
}
