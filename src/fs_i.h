/* fs_i.h: what the files of the FUSE front end share (fs.c: attributes
 * and the operations table; fs_files.c: open files and their data;
 * fs_names.c: folders and names; fs_xattr.c: extended attributes and the
 * status).  Nothing outside them includes this.
 *
 * Thread model: fuse_loop_mt calls the operations from several threads
 * at once.  Each works on the spool through *at() calls below a folder
 * resolved by beneath.h (never through a link), or on the fd of its own
 * open handle, and reports to the queue, which has its own lock.  What
 * they share besides: the count of passthrough writers (atomic),
 * openfiles.c's table and passthrough.c's backing table (each with its
 * own lock), fdbudget.c (its own lock).  Every operation returns 0 (or a
 * count) or -errno.  No HTTP here. */
#ifndef INGESTFS_FS_I_H
#define INGESTFS_FS_I_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs.h"

struct fs_handle {
	int fd;
	uint64_t ino;
	uid_t uid; /* who opened it: fdbudget_give at release */
	bool writable;
	bool passthrough;    /* holds a backing id (passthrough_put at release) */
	bool unseen_writes;  /* mmap, maybe write(2), reach the spool without us */
	bool unseen_errors;  /* write(2) errors reach only the writer */
	atomic_bool written; /* the queue has been told about new content */
};

static inline struct fs_context *ctx(void)
{
	return fuse_get_context()->private_data;
}

/* FUSE paths start with '/'; the spool wants them relative. */
static inline const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

static inline struct fs_handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

/* fs.c */
/* fstatat of PATH (a FUSE path) in the spool, never through a link. */
int fs_stat(const char *path, struct stat *st);
/* Whether a user may make a file (or DIR, a folder) at PATH: the layout's
 * rules, and none of libfuse's hidden names.  0 or -errno. */
int fs_check_new_name(const char *path, bool dir);
/* Samples are data: no setuid or setgid files (a setgid folder is fine). */
mode_t fs_without_privileges(mode_t mode, bool dir);
/* Hand an entry just made to the caller: its uid, and its gid unless the
 * folder PARENT is setgid.  FD is the entry's, or -1 with NAME in PARENT. */
void fs_give_to_caller(int parent, const char *name, int fd);

/* fs_files.c */
void fs_note_written(struct fs_handle *h);
/* A write, truncate or fallocate failed with ERR: the queue fails the
 * file at its close.  Returns -ERR for the writer. */
int fs_note_failure(struct fs_handle *h, int err);

/* The operations, by file. */
int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_open(const char *path, struct fuse_file_info *fi);
int fs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
		struct fuse_file_info *fi);
int fs_write_buf(const char *path, struct fuse_bufvec *buf, off_t off, struct fuse_file_info *fi);
int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi);
off_t fs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi);
int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi);
int fs_flush(const char *path, struct fuse_file_info *fi);
int fs_release(const char *path, struct fuse_file_info *fi);

int fs_mkdir(const char *path, mode_t mode);
int fs_rmdir(const char *path);
int fs_opendir(const char *path, struct fuse_file_info *fi);
int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
	       struct fuse_file_info *fi, enum fuse_readdir_flags flags);
int fs_releasedir(const char *path, struct fuse_file_info *fi);
int fs_unlink(const char *path);
int fs_rename(const char *from, const char *to, unsigned int flags);
int fs_link(const char *from, const char *to);
int fs_symlink(const char *target, const char *path);
int fs_readlink(const char *path, char *buf, size_t size);
int fs_mknod(const char *path, mode_t mode, dev_t rdev);

int fs_getxattr(const char *path, const char *name, char *value, size_t size);
int fs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags);
int fs_listxattr(const char *path, char *list, size_t size);
int fs_removexattr(const char *path, const char *name);

#endif
