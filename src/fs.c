/* fs.c: the FUSE operations over the spool (the thread model is in
 * fs_i.h): the table, attributes, and ownership of what is made.  Open
 * files are in fs_files.c, folders and names in fs_names.c, extended
 * attributes in fs_xattr.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "beneath.h"
#include "fs_i.h"
#include "layout.h"
#include "spool.h"
#include "openfiles.h"

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	/* An open file that is unlinked or renamed over keeps a name (a
	 * .fuse_hidden* name that readdir never shows and the queue ignores)
	 * until its last close, so fstat, fchmod, futimens and fchown on it
	 * keep working: the kernel asks for those by name. */
	cfg->hard_remove = 0;
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

/* ---- helpers ---- */

int fs_stat(const char *path, struct stat *st)
{
	return beneath_stat(ctx()->files_fd, rel(path), st);
}

int fs_check_new_name(const char *path, bool dir)
{
	const char *slash = strrchr(path, '/');
	int rc = dir ? layout_check_dir(rel(path)) : layout_check_file(rel(path));

	/* Names only libfuse may make (layout_is_fuse_hidden): a user who
	 * could would hide files from readdir, or have them swept at the
	 * next start. */
	if (rc == 0 && layout_is_fuse_hidden(slash ? slash + 1 : path))
		rc = -EPERM;
	return rc;
}

/* No setuid or setgid files, which makes the kernel's "kill privileges
 * on write" trivially done (passthrough.c accepts FUSE_HANDLE_KILLPRIV_V2
 * on that ground). */
mode_t fs_without_privileges(mode_t mode, bool dir)
{
	return mode & ~(dir ? S_ISUID : (mode_t)(S_ISUID | S_ISGID));
}

/* With allow_other a camera's user and a desktop user share the mount:
 * what they make is theirs, as on a local disk, or default_permissions
 * would refuse them their own files.  A daemon that is not root cannot
 * give files away; they stay its user's (ingestfs(1) SECURITY). */
void fs_give_to_caller(int parent, const char *name, int fd)
{
	const struct fuse_context *fc = fuse_get_context();
	struct stat dir;
	gid_t gid = fc->gid;
	int rc;

	if (fc->uid == geteuid() && fc->gid == getegid())
		return;
	if (fstat(parent, &dir) == 0 && (dir.st_mode & S_ISGID))
		gid = (gid_t)-1; /* the folder's group, which the file system gave it */
	if (fd >= 0)
		rc = fchown(fd, fc->uid, gid);
	else
		rc = fchownat(parent, name, fc->uid, gid, AT_SYMLINK_NOFOLLOW);
	(void)rc; /* EPERM when we are not root: documented, nothing to do */
}

/* ---- attributes ---- */

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (fi)
		return fstat(handle_of(fi)->fd, st) < 0 ? -errno : 0;
	return fs_stat(path, st);
}

static int chmod_by_name(const char *path, mode_t mode)
{
	const char *name;
	struct stat st;
	int dir = beneath_parent(ctx()->files_fd, rel(path), &name), rc;

	if (dir < 0)
		return dir;
	rc = fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno
	     : S_ISLNK(st.st_mode)                            ? -EOPNOTSUPP
	     : fchmodat(dir, name, fs_without_privileges(mode, S_ISDIR(st.st_mode)), 0) < 0 ? -errno
											    : 0;
	close(dir);
	return rc;
}

/* chmod has no "do not follow": through an O_PATH descriptor of the entry
 * itself, which is never a link. */
static int chmod_entry(const char *path, mode_t mode)
{
	char proc[64];
	struct stat st;
	int fd = beneath_open(ctx()->files_fd, rel(path), O_PATH | O_NOFOLLOW, 0), rc;

	if (fd < 0)
		return fd;
	rc = fstat(fd, &st) < 0 ? -errno : 0;
	if (rc == 0 && S_ISLNK(st.st_mode))
		rc = -EOPNOTSUPP;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (rc == 0 && chmod(proc, fs_without_privileges(mode, S_ISDIR(st.st_mode))) < 0)
		rc = -errno;
	close(fd);
	/* No /proc (a bare container): by name, a link having been ruled out
	 * a moment ago. */
	if (rc == -ENOENT && access("/proc/self/fd", F_OK) < 0)
		rc = chmod_by_name(path, mode);
	return rc;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (fi)
		return fchmod(handle_of(fi)->fd, fs_without_privileges(mode, false)) < 0 ? -errno
											 : 0;
	return chmod_entry(path, mode);
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	const char *name;
	int dir, rc;

	if (fi)
		return fchown(handle_of(fi)->fd, uid, gid) < 0 ? -errno : 0;
	dir = beneath_parent(ctx()->files_fd, rel(path), &name);
	if (dir < 0)
		return dir;
	rc = fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(dir);
	return rc;
}

/* New times are not new content: files open with passthrough learn them
 * (openfiles.h), so touch or cp -p never send a file again. */
static int set_times(int dir, const char *name, int fd, const struct timespec tv[2])
{
	struct stat before, after;
	bool known = (fd >= 0 ? fstat(fd, &before)
			      : fstatat(dir, name, &before, AT_SYMLINK_NOFOLLOW)) == 0;
	int rc = fd >= 0 ? futimens(fd, tv) : utimensat(dir, name, tv, AT_SYMLINK_NOFOLLOW);

	if (rc < 0)
		return -errno;
	if (known && S_ISREG(before.st_mode) &&
	    (fd >= 0 ? fstat(fd, &after) : fstatat(dir, name, &after, AT_SYMLINK_NOFOLLOW)) == 0)
		openfiles_set_times((uint64_t)before.st_ino, &before, &after);
	return 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	const char *name;
	int dir, rc;

	if (fi)
		return set_times(-1, NULL, handle_of(fi)->fd, tv);
	dir = beneath_parent(ctx()->files_fd, rel(path), &name);
	if (dir < 0)
		return dir;
	rc = set_times(dir, name, -1, tv);
	close(dir);
	return rc;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	return fstatvfs(ctx()->files_fd, sv) < 0 ? -errno : 0;
}

/* truncate(2) on a path: a change of content like a write. */
static int truncate_names(const char *path, off_t size)
{
	struct fs_context *c = ctx();
	struct stat st;
	int rc = 0, fd = beneath_open(c->files_fd, rel(path), O_WRONLY | O_NOFOLLOW, 0);

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	/* To the size it has: the content is the same. Not even touched on
	 * disk, so that a writer holding it open sees no change at close. */
	if (st.st_size == size)
		goto out;
	if (ftruncate(fd, size) < 0) {
		rc = -errno;
		goto out;
	}
	queue_file_complete(c->q, (uint64_t)st.st_ino, rel(path), (uint64_t)size);
out:
	close(fd);
	return rc;
}

/* Like an open for writing: not while retention removes names. */
static int truncate_path(const char *path, off_t size)
{
	int rc;

	spool_names_share();
	rc = truncate_names(path, size);
	spool_names_release();
	return rc;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fs_handle *h;
	struct stat st;

	if (!fi)
		return truncate_path(path, size);
	h = handle_of(fi);
	if (fstat(h->fd, &st) == 0 && st.st_size == size)
		return 0; /* to the size it has: no change of content */
	if (ftruncate(h->fd, size) < 0)
		return fs_note_failure(h, errno);
	fs_note_written(h);
	return 0;
}

const struct fuse_operations fs_operations = {
	.init = fs_init,
	.getattr = fs_getattr,
	/* No .access: with default_permissions (always, mount.c) the kernel
	 * checks access itself and never asks. */
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
	.symlink = fs_symlink,
	.link = fs_link,
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
