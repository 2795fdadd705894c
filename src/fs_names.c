/* fs_names.c: folders and names: mkdir, rmdir, readdir, unlink, rename,
 * hard and symbolic links (fs_i.h has the thread model).  The layout
 * decides what may be made where (layout.h); the queue learns of every
 * name a regular file gains or loses. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "fdbudget.h"
#include "fs_i.h"
#include "layout.h"
#include "spool.h"

/* A folder is read with getdents64 and each entry named by its own d_off,
 * the file system's 64-bit cookie for "after this entry".  telldir and
 * seekdir carry it in a long, which cuts it on 32-bit systems (ext4 hands
 * 64-bit hash cookies to a process the kernel sees as 64-bit, as under
 * qemu-user), and a cut cookie repeats or loses entries when the kernel
 * asks again from the middle of a reply it could not use whole. */
#define DIR_BUF_BYTES 32768

struct fs_dir {
	int fd;
	uid_t uid;
	off_t offset;    /* of the entry at buf + pos */
	size_t pos, len; /* the unread part of the last getdents64 */
	_Alignas(struct dirent64) char buf[DIR_BUF_BYTES];
};

/* ---- folders ---- */

int fs_mkdir(const char *path, mode_t mode)
{
	const char *name;
	int rc = fs_check_new_name(path, true), dir;

	if (rc < 0)
		return rc;
	dir = beneath_parent(ctx()->files_fd, rel(path), &name);
	if (dir < 0)
		return dir;
	rc = mkdirat(dir, name, fs_without_privileges(mode, true)) < 0 ? -errno : 0;
	if (rc == 0)
		fs_give_to_caller(dir, name, -1);
	close(dir);
	return rc;
}

int fs_rmdir(const char *path)
{
	struct layout_path lp;
	const char *name;
	int dir, rc;

	if (layout_classify(rel(path), &lp) < 0 || (lp.kind != LAYOUT_ENTRY && !lp.trash))
		return -EPERM;
	dir = beneath_parent(ctx()->files_fd, rel(path), &name);
	if (dir < 0)
		return dir;
	rc = unlinkat(dir, name, AT_REMOVEDIR) < 0 ? -errno : 0;
	close(dir);
	return rc;
}

int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct fs_dir *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return -ENOMEM;
	d->uid = fuse_get_context()->uid;
	if ((rc = fdbudget_take(d->uid)) < 0) {
		free(d);
		return rc;
	}
	d->fd = beneath_open(ctx()->files_fd, rel(path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (d->fd < 0) {
		rc = d->fd;
		fdbudget_give(d->uid);
		free(d);
		return rc;
	}
	fi->fh = (uintptr_t)d;
	return 0;
}

int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
	       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	if (offset != d->offset) {
		if (lseek(d->fd, offset, SEEK_SET) < 0)
			return -errno;
		d->pos = d->len = 0;
		d->offset = offset;
	}
	for (;;) {
		enum fuse_fill_dir_flags fill = 0;
		struct dirent64 *de;
		struct stat st;

		if (d->pos >= d->len) {
			ssize_t n = getdents64(d->fd, d->buf, sizeof(d->buf));

			if (n < 0)
				return -errno;
			if (n == 0)
				break;
			d->pos = 0;
			d->len = (size_t)n;
		}
		de = (struct dirent64 *)(d->buf + d->pos);
		if (layout_is_fuse_hidden(de->d_name))
			goto skip;
		memset(&st, 0, sizeof(st));
		st.st_ino = de->d_ino;
		st.st_mode = (mode_t)DTTOIF(de->d_type);
		/* Attributes now save `ls -l` a LOOKUP round trip per entry. */
		if ((flags & FUSE_READDIR_PLUS) &&
		    fstatat(d->fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			fill = FUSE_FILL_DIR_PLUS;
		if (filler(buf, de->d_name, &st, de->d_off, fill))
			break;
	skip:
		d->pos += de->d_reclen;
		d->offset = de->d_off;
	}
	return 0;
}

int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;

	close(d->fd);
	fdbudget_give(d->uid);
	free(d);
	return 0;
}

/* ---- a file known by several names (hard links) ---- */

/* Looking for another name of a file: the best found so far (a name that
 * is uploaded wins over an ignored one), and how much is left to look at,
 * so that a huge spool costs a bounded walk. */
struct name_search {
	uint64_t ino;
	const char *not1, *not2;
	char best[PATH_MAX];
	bool found, found_ignored;
	unsigned budget;
};

static void consider(struct name_search *ns, const char *path)
{
	bool ignored = layout_ignored(path) != NULL;

	if (strcmp(path, ns->not1) == 0 || (ns->not2 && strcmp(path, ns->not2) == 0))
		return;
	if (ns->found && (ignored || !ns->found_ignored))
		return;
	snprintf(ns->best, sizeof(ns->best), "%s", path);
	ns->found = true;
	ns->found_ignored = ignored;
}

static void search_below(int dir, const char *rel_dir, struct name_search *ns, unsigned depth)
{
	DIR *d = fdopendir(dir);
	struct dirent *de;

	if (!d) {
		close(dir);
		return;
	}
	while (ns->budget && !(ns->found && !ns->found_ignored) && (de = readdir(d))) {
		char path[PATH_MAX];

		ns->budget--;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    (size_t)snprintf(path, sizeof(path), "%s%s%s", rel_dir, *rel_dir ? "/" : "",
				     de->d_name) >= sizeof(path))
			continue;
		if (de->d_type == DT_REG && de->d_ino == ns->ino) {
			consider(ns, path);
		} else if (de->d_type == DT_DIR && depth > 0) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0)
				search_below(sub, path, ns, depth - 1);
		}
	}
	closedir(d);
}

/* Another name of ST's file than NOT1 and NOT2: its folder first, then
 * the whole mount (a bounded look). */
static bool other_name(const char *rel_path, const struct stat *st, const char *not2,
		       struct name_search *ns)
{
	const char *slash = strrchr(rel_path, '/');
	char dir[PATH_MAX];
	int fd;

	*ns = (struct name_search){
		.ino = (uint64_t)st->st_ino, .not1 = rel_path, .not2 = not2, .budget = 200000};
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - rel_path) : 0, rel_path);
	fd = beneath_open(ctx()->files_fd, dir[0] ? dir : ".", O_RDONLY | O_DIRECTORY, 0);
	if (fd >= 0)
		search_below(fd, dir, ns, 0);
	if (!ns->found || ns->found_ignored) {
		fd = beneath_open(ctx()->files_fd, ".", O_RDONLY | O_DIRECTORY, 0);
		if (fd >= 0)
			search_below(fd, "", ns, 64);
	}
	return ns->found;
}

static bool known_by(uint64_t ino, const char *rel_path)
{
	char known[PATH_MAX];

	return queue_path_of(ctx()->q, ino, known, sizeof(known)) && strcmp(known, rel_path) == 0;
}

/* The name REL of a file with other names is going (unlinked, or renamed
 * to a name that is not uploaded, NOT2): a queue that knew the file by it
 * knows it by another one from now on, as it is, since its content did
 * not change; with no other name left, it is gone. */
static void name_gone(const char *rel_path, const struct stat *st, const char *not2)
{
	struct name_search ns;

	if (st->st_nlink <= 1 && !not2) {
		queue_removed(ctx()->q, (uint64_t)st->st_ino); /* no other name to look for */
		return;
	}
	if (!known_by((uint64_t)st->st_ino, rel_path))
		return;
	if (other_name(rel_path, st, not2, &ns))
		queue_relinked(ctx()->q, (uint64_t)st->st_ino, rel_path, ns.best);
	else if (!not2)
		queue_removed(ctx()->q, (uint64_t)st->st_ino);
	else
		queue_renamed(ctx()->q, rel_path, not2, (uint64_t)st->st_ino, (uint64_t)st->st_size,
			      false);
}

/* ---- names ---- */

static int unlink_names(const char *path)
{
	struct stat st;
	const char *name;
	int dir, rc;
	bool known;

	if (layout_check_file(rel(path)) < 0)
		return -EPERM;
	dir = beneath_parent(ctx()->files_fd, rel(path), &name);
	if (dir < 0)
		return dir;
	known = fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
	rc = unlinkat(dir, name, 0) < 0 ? -errno : 0;
	close(dir);
	if (rc < 0 || !known)
		return rc;
	name_gone(rel(path), &st, NULL);
	return 0;
}

/* Under the spool's names lock, shared: retention checks and removes a
 * name only while no operation like this one runs (spool.h). */
int fs_unlink(const char *path)
{
	int rc;

	spool_names_share();
	rc = unlink_names(path);
	spool_names_release();
	return rc;
}

static int check_rename(const char *from, const char *to, bool is_dir)
{
	int rc = layout_check_file(from);

	if (rc < 0)
		return rc;
	return is_dir ? layout_check_dir(to) : layout_check_file(to);
}

/* What the queue must learn after FROM became TO (SRC), over DST. */
static void renamed(const char *from, const char *to, const struct stat *src,
		    const struct stat *dst, bool replaced)
{
	struct queue *q = ctx()->q;

	if (replaced && S_ISREG(dst->st_mode) && dst->st_ino != src->st_ino)
		name_gone(to, dst, NULL);
	/* One name of a file with several put in the trash (or any name that
	 * is not uploaded): the file stays known by another. */
	if (S_ISREG(src->st_mode) && src->st_nlink > 1 && layout_ignored(to) &&
	    known_by((uint64_t)src->st_ino, from)) {
		name_gone(from, src, to);
		return;
	}
	/* A link or anything else is not the queue's; a second name of a
	 * file moving is not the file moving (queue_renamed checks). */
	if (S_ISREG(src->st_mode) || S_ISDIR(src->st_mode))
		queue_renamed(q, from, to, (uint64_t)src->st_ino, (uint64_t)src->st_size,
			      S_ISDIR(src->st_mode));
}

static int rename_names(const char *from, const char *to, unsigned int flags)
{
	struct stat src, dst;
	const char *nfrom, *nto;
	int dfrom, dto = -1, rc;
	bool replaced;

	/* Swapping two files would need two queue moves at once; no writer
	 * we know of needs it. */
	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	dfrom = beneath_parent(ctx()->files_fd, rel(from), &nfrom);
	if (dfrom < 0)
		return dfrom;
	dto = beneath_parent(ctx()->files_fd, rel(to), &nto);
	rc = dto < 0 ? dto : fstatat(dfrom, nfrom, &src, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	if (rc == 0)
		rc = check_rename(rel(from), rel(to), S_ISDIR(src.st_mode));
	if (rc < 0)
		goto out;
	replaced = fstatat(dto, nto, &dst, AT_SYMLINK_NOFOLLOW) == 0;
	if (renameat2(dfrom, nfrom, dto, nto, flags) < 0) {
		rc = -errno;
		goto out;
	}
	renamed(rel(from), rel(to), &src, &dst, replaced);
out:
	close(dfrom);
	if (dto >= 0)
		close(dto);
	return rc;
}

int fs_rename(const char *from, const char *to, unsigned int flags)
{
	int rc;

	spool_names_share();
	rc = rename_names(from, to, flags);
	spool_names_release();
	return rc;
}

/* A second name: the file keeps the one the queue knows it by, so it is
 * never sent twice; only a file the queue ignores under its first name
 * (a temporary) goes under the new one. */
static int link_names(const char *from, const char *to)
{
	struct stat st;
	const char *nfrom, *nto;
	char known[PATH_MAX];
	int dfrom, dto = -1, rc = fs_check_new_name(to, false);

	if (rc < 0)
		return rc;
	dfrom = beneath_parent(ctx()->files_fd, rel(from), &nfrom);
	if (dfrom < 0)
		return dfrom;
	dto = beneath_parent(ctx()->files_fd, rel(to), &nto);
	rc = dto < 0 ? dto : linkat(dfrom, nfrom, dto, nto, 0) < 0 ? -errno : 0;
	if (rc == 0 && fstatat(dto, nto, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	    queue_path_of(ctx()->q, (uint64_t)st.st_ino, known, sizeof(known)) &&
	    layout_ignored(known) && !layout_ignored(rel(to)))
		queue_renamed(ctx()->q, known, rel(to), (uint64_t)st.st_ino, (uint64_t)st.st_size,
			      false);
	close(dfrom);
	if (dto >= 0)
		close(dto);
	return rc;
}

int fs_link(const char *from, const char *to)
{
	int rc;

	spool_names_share();
	rc = link_names(from, to);
	spool_names_release();
	return rc;
}

/* Kept as it is, never followed by the daemon, never uploaded. */
int fs_symlink(const char *target, const char *path)
{
	const char *name;
	int rc = fs_check_new_name(path, false), dir;

	if (rc < 0)
		return rc;
	dir = beneath_parent(ctx()->files_fd, rel(path), &name);
	if (dir < 0)
		return dir;
	rc = symlinkat(target, dir, name) < 0 ? -errno : 0;
	if (rc == 0)
		fs_give_to_caller(dir, name, -1);
	close(dir);
	return rc;
}

int fs_readlink(const char *path, char *buf, size_t size)
{
	const char *name;
	int dir = beneath_parent(ctx()->files_fd, rel(path), &name);
	ssize_t n;

	if (dir < 0)
		return dir;
	n = size ? readlinkat(dir, name, buf, size - 1) : -1;
	if (n >= 0)
		buf[n] = '\0';
	close(dir);
	return n < 0 ? -errno : 0;
}

/* Fifos, sockets and device nodes are no samples, and a device node
 * would be a way around the permissions of the spool's disk. */
int fs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	return -EPERM;
}
