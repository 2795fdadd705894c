/* retention.h: files leave the spool (and the mount) once their upload
 * is over, by age (keep=) or oldest first while the spool is over a size
 * (max_spool=) or its disk short of free space (min_free=), like a sync
 * client's cache (ingestfs(1) "RETENTION").  Only uploaded and duplicate
 * files ever go.  When only files not yet uploaded (or failed) are left
 * and a limit is still exceeded, new files get ENOSPC until uploads make
 * room: nothing written is lost.
 *
 * Threads: retention_run from the uploader's maintenance only;
 * retention_refuses_writes from any thread. */
#ifndef INGESTFS_RETENTION_H
#define INGESTFS_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

struct queue;

struct retention_config {
	uint64_t keep_s;          /* 0: by age never */
	uint64_t max_spool_bytes; /* 0: no limit */
	uint64_t min_free_bytes;  /* 0: none */
};

struct retention;

/* NULL when nothing is configured (or out of memory: said in the log). */
struct retention *retention_new(struct queue *q, int files_fd, const struct retention_config *cfg);
void retention_free(struct retention *r);
/* FORGET(ARG, PATH) is told each path removed, so the kernel forgets it
 * (the mount: fuse_invalidate_path). */
void retention_set_forget(struct retention *r, void (*forget)(void *arg, const char *path),
			  void *arg);
/* Remove what is due, for at most a fraction of a second. */
void retention_run(struct retention *r, int64_t now_ms);
/* Whether new files are refused (ENOSPC) now. */
bool retention_refuses_writes(void);

#endif
