/* upload.h: the one thread that talks HTTP.  It owns one curl multi handle
 * with up to `concurrency` requests in flight, takes batches from the
 * queue, streams file bodies from the spool and reports results back. */
#ifndef INGESTFS_UPLOAD_H
#define INGESTFS_UPLOAD_H

#include <stdint.h>

#include "options.h"
#include "queue.h"

struct uploader;

/* FILES_FD is the spool's files directory; KEY is taken over (freed by
 * the uploader).  curl_global_init must have been called. */
struct uploader *uploader_new(struct queue *q, int files_fd, const struct options *o, char *key);
int uploader_start(struct uploader *u);
/* Stop the thread; requests in flight are abandoned and their files stay
 * pending.  Safe to call once, after uploader_start. */
void uploader_stop(struct uploader *u);
void uploader_free(struct uploader *u);
/* FN(ARG, NOW) runs on the upload thread about once a second, between
 * transfers, for upkeep that must not wait in a FUSE operation
 * (checkpoints of the state index, retention).  Before uploader_start. */
void uploader_set_maintenance(struct uploader *u, void (*fn)(void *arg, int64_t now_ms), void *arg);
/* What the metrics tell (metrics.h): requests by HTTP status (0: no
 * reply), file attempts to be retried, when a request last stored
 * something (wall clock, s; 0: never). */
#define UPLOAD_STATS_CODES 32
struct upload_stats {
	long codes[UPLOAD_STATS_CODES];
	uint64_t requests[UPLOAD_STATS_CODES];
	size_t ncodes;
	uint64_t retries;
	int64_t last_success_s;
};
void uploader_stats(struct uploader *u, struct upload_stats *out);
/* Re-read the key and resume (SIGHUP).  Async-signal-safe. */
void uploader_request_key_reload(struct uploader *u);

#endif
