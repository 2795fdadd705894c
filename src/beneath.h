/* beneath.h: resolving a path inside one of our folders (the spool, a
 * watched folder) without ever leaving it.
 *
 * The daemon may run as root while users make symbolic links through
 * the mount, and a folder can be swapped for a link between two calls.
 * So no path below our folders is ever resolved through a symbolic link
 * or a "..": openat2() with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or on
 * kernels without it (before 5.6, some emulators) a walk of O_NOFOLLOW
 * opens, one component at a time.  Every *at() call in fs.c, upload.c
 * and the annotation reader goes through here. */
#ifndef INGESTFS_BENEATH_H
#define INGESTFS_BENEATH_H

#include <sys/stat.h>
#include <sys/types.h>

/* open(2) of REL below DIRFD: an fd, or -errno (-ELOOP for a link on the
 * way or at the end; with O_PATH|O_NOFOLLOW the link itself opens). */
int beneath_open(int dirfd, const char *rel, int flags, mode_t mode);

/* The folder holding REL, opened O_PATH|O_DIRECTORY as above, for the
 * *at() calls that act on a name (mkdirat, unlinkat, renameat2...).
 * *NAME points to REL's last component ("." for the root itself).
 * An fd, or -errno. */
int beneath_parent(int dirfd, const char *rel, const char **name);

/* fstatat of REL below DIRFD, of a link itself (AT_SYMLINK_NOFOLLOW).
 * 0 or -errno. */
int beneath_stat(int dirfd, const char *rel, struct stat *st);

#endif
