/* beneath.c: see beneath.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "beneath.h"

/* Cleared when the kernel says it has no openat2 (ENOSYS). */
static atomic_bool have_openat2 = true;

static int open_by_openat2(int dirfd, const char *rel, int flags, mode_t mode)
{
#ifdef SYS_openat2
	struct open_how how = {
		.flags = (unsigned long long)flags,
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	do
		fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return fd < 0 ? -errno : (int)fd;
#else
	return -ENOSYS;
#endif
}

/* The same guarantee by hand: every folder on the way opened O_NOFOLLOW
 * from the one before, no "..". */
static int open_by_walk(int dirfd, const char *rel, int flags, mode_t mode)
{
	char part[NAME_MAX + 1];
	int at = dirfd, fd;

	for (;;) {
		size_t n = strcspn(rel, "/");
		bool last = rel[n] == '\0';

		if (n > NAME_MAX) {
			fd = -ENAMETOOLONG;
			break;
		}
		memcpy(part, rel, n);
		part[n] = '\0';
		if (n == 2 && part[0] == '.' && part[1] == '.') {
			fd = -EXDEV;
			break;
		}
		if (n == 0)
			strcpy(part, ".");
		if (last)
			fd = openat(at, part, flags | O_NOFOLLOW, mode);
		else
			fd = openat(at, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
		if (at != dirfd)
			close(at);
		if (fd < 0 || last)
			break;
		at = fd;
		rel += n + 1;
	}
	return fd;
}

int beneath_open(int dirfd, const char *rel, int flags, mode_t mode)
{
	int fd;

	flags |= O_CLOEXEC;
	if (atomic_load(&have_openat2)) {
		fd = open_by_openat2(dirfd, rel, flags, mode);
		if (fd != -ENOSYS)
			return fd;
		atomic_store(&have_openat2, false);
	}
	return open_by_walk(dirfd, rel, flags, mode);
}

int beneath_parent(int dirfd, const char *rel, const char **name)
{
	const char *slash = strrchr(rel, '/');
	char dir[PATH_MAX];
	size_t n;

	if (!slash) {
		*name = rel[0] ? rel : ".";
		return beneath_open(dirfd, ".", O_PATH | O_DIRECTORY, 0);
	}
	n = (size_t)(slash - rel);
	if (n >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, rel, n);
	dir[n] = '\0';
	*name = slash + 1;
	return beneath_open(dirfd, dir, O_PATH | O_DIRECTORY, 0);
}

int beneath_stat(int dirfd, const char *rel, struct stat *st)
{
	const char *name;
	int dir = beneath_parent(dirfd, rel, &name), rc;

	if (dir < 0)
		return dir;
	rc = fstatat(dir, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(dir);
	return rc;
}
