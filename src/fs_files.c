/* fs_files.c: open files and their data (fs_i.h has the thread model).
 * File data goes straight between the kernel and the spool where it can
 * (passthrough.h); what the daemon does not see (passthrough writes,
 * mmap) it finds at the close by comparing what it last saw. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "beneath.h"
#include "fdbudget.h"
#include "fs_i.h"
#include "retention.h"
#include "spool.h"
#include "layout.h"
#include "openfiles.h"
#include "passthrough.h"

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

void fs_note_written(struct fs_handle *h)
{
	if (!atomic_exchange(&h->written, true))
		queue_written(ctx()->q, h->ino);
}

int fs_note_failure(struct fs_handle *h, int err)
{
	queue_write_failed(ctx()->q, h->ino, err);
	return -err;
}

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
	h->unseen_writes = h->writable && openfiles_open(h->ino, st) == 0;
	h->unseen_errors = h->writable && !direct;
	if (h->unseen_errors)
		atomic_fetch_add(&ctx()->blind_writers, 1);
	passthrough_arm((uintptr_t)h, id, direct);
}

/* Passthrough writes bypass us: new content since we last looked is a
 * write (after an earlier close of a dup'd fd, or through mmap). */
static void catch_unseen_writes(struct fs_handle *h, const struct stat *now)
{
	if (!h->unseen_writes)
		return;
	if (openfiles_changed(h->ino, now))
		fs_note_written(h);
	if (h->unseen_errors && atomic_load(&h->written) && !spool_has_room(SPOOL_FULL_BYTES))
		queue_write_failed(ctx()->q, h->ino, ENOSPC);
}

static int open_handle(const char *path, int fd, int flags, bool created, struct fuse_file_info *fi)
{
	struct fs_context *c = ctx();
	struct fs_handle *h = calloc(1, sizeof(*h));
	bool content_new = created || (flags & O_TRUNC);
	struct stat st;
	int err = !h ? ENOMEM : fstat(fd, &st) < 0 ? errno : !S_ISREG(st.st_mode) ? EINVAL : 0;

	if (err) {
		free(h);
		close(fd);
		fdbudget_give(fuse_get_context()->uid);
		return -err;
	}
	h->fd = fd;
	h->ino = (uint64_t)st.st_ino;
	h->uid = fuse_get_context()->uid;
	/* O_TRUNC changes the content even on a read-only open. */
	h->writable = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	if (h->writable) {
		queue_open_write(c->q, h->ino, rel(path));
		if (content_new)
			fs_note_written(h);
	}
	/* Nothing to learn from the close of a reader: spare it the FLUSH. */
	fi->noflush = !h->writable;
	fi->fh = (uintptr_t)h;
	choose_data_path(h, content_new, &st, fi);
	return 0;
}

static int create_file(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	uid_t uid = fuse_get_context()->uid;
	const char *name;
	int rc = fs_check_new_name(path, false), dir, fd;

	if (rc < 0)
		return rc;
	if ((rc = fdbudget_take(uid)) < 0)
		return rc;
	dir = beneath_parent(ctx()->files_fd, rel(path), &name);
	if (dir < 0) {
		fdbudget_give(uid);
		return dir;
	}
	/* The kernel asks to create only names it believes free: one that
	 * exists is one it does not know (a file unlinked while open, kept
	 * under a hidden name), which no one may open by creating it. */
	fd = openat(dir, name, fi->flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    fs_without_privileges(mode, false));
	rc = fd < 0 ? -errno : 0;
	if (fd >= 0)
		fs_give_to_caller(dir, name, fd);
	close(dir);
	if (rc < 0) {
		fdbudget_give(uid);
		return rc;
	}
	return open_handle(path, fd, fi->flags, true, fi);
}

/* Under the spool's names lock, shared, so that retention never
 * removes a file between its open for writing and the queue learning of
 * it; refused while retention says the spool is full. */
int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int rc;

	if (retention_refuses_writes())
		return -ENOSPC;
	spool_names_share();
	rc = create_file(path, mode, fi);
	spool_names_release();
	return rc;
}

static int open_file(const char *path, struct fuse_file_info *fi)
{
	uid_t uid = fuse_get_context()->uid;
	int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY), fd, rc;

	if ((rc = fdbudget_take(uid)) < 0)
		return rc;
	fd = beneath_open(ctx()->files_fd, rel(path), flags | O_NOFOLLOW, 0);
	if (fd < 0) {
		fdbudget_give(uid);
		return fd;
	}
	return open_handle(path, fd, fi->flags, false, fi);
}

int fs_open(const char *path, struct fuse_file_info *fi)
{
	bool writes = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	int rc;

	if (!writes)
		return open_file(path, fi);
	if (retention_refuses_writes() && !(fi->flags & O_TRUNC))
		return -ENOSPC;
	spool_names_share();
	rc = open_file(path, fi);
	spool_names_release();
	return rc;
}

int fs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
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

int fs_write_buf(const char *path, struct fuse_bufvec *buf, off_t off, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(fuse_buf_size(buf));
	ssize_t n;

	dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	dst.buf[0].fd = h->fd;
	dst.buf[0].pos = off;
	n = fuse_buf_copy(&dst, buf, FUSE_BUF_SPLICE_NONBLOCK);
	if (n < 0)
		return fs_note_failure(h, (int)-n);
	if (n > 0)
		fs_note_written(h);
	return (int)n;
}

int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);

	if (fallocate(h->fd, mode, off, len) < 0) {
		/* "Not supported" changes nothing; running out of space might. */
		if (errno == EOPNOTSUPP || errno == EINVAL)
			return -errno;
		return fs_note_failure(h, errno);
	}
	fs_note_written(h);
	return 0;
}

off_t fs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t r = lseek(handle_of(fi)->fd, off, whence);

	return r < 0 ? -errno : r;
}

int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	int fd = handle_of(fi)->fd;
	int rc = datasync ? fdatasync(fd) : fsync(fd);

	return rc < 0 ? -errno : 0;
}

/* FLUSH comes with every close(2) and the writer waits for it; RELEASE
 * comes later, on its own.  So the journal learns of the close here. */
int fs_flush(const char *path, struct fuse_file_info *fi)
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

int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct fs_handle *h = handle_of(fi);
	struct stat st;

	if (h->writable) {
		uint64_t size = 0;

		if (fstat(h->fd, &st) == 0) {
			catch_unseen_writes(h, &st);
			size = (uint64_t)st.st_size;
		}
		/* h->written: no FLUSH came. */
		queue_closed(ctx()->q, h->ino, size, atomic_exchange(&h->written, false));
	}
	if (h->unseen_errors)
		atomic_fetch_sub(&ctx()->blind_writers, 1);
	if (h->unseen_writes)
		openfiles_close(h->ino);
	if (h->passthrough)
		passthrough_put(h->ino);
	close(h->fd);
	fdbudget_give(h->uid);
	free(h);
	return 0;
}
