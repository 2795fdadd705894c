/* fs.h: the FUSE operations.  A passthrough to the spool's files
 * directory that enforces the layout and reports file events to the queue. */
#ifndef INGESTFS_FS_H
#define INGESTFS_FS_H

#define FUSE_USE_VERSION 312
#include <fuse.h>

#include <stdatomic.h>

#include "queue.h"

struct fs_context {
	int files_fd;           /* SPOOL/files */
	const char *files_path; /* its absolute path, for the xattr calls */
	struct queue *q;
	atomic_uint blind_writers; /* open files whose write errors we cannot see */
};

extern const struct fuse_operations fs_operations;

#endif
