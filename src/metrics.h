/* metrics.h: metrics=PATH, a Prometheus text file (exposition format
 * 0.0.4, what node_exporter's textfile collector reads) replaced
 * atomically every few seconds (ingestfs(1) METRICS).  Formatting is
 * pure; only metrics_write touches the disk. */
#ifndef INGESTFS_METRICS_H
#define INGESTFS_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "queue.h"
#include "store.h"
#include "upload.h"

struct metrics_input {
	const char *mount;            /* the label every series carries */
	struct queue_counts files;    /* in the mount, by state */
	struct store_totals lifetime; /* since the spool was made: survive restarts */
	struct upload_stats uploads;  /* since this start */
	double oldest_waiting_s;      /* 0: nothing waits */
	bool paused_key, paused_space;
	const char *version;
};

/* The whole file as text.  Malloc'd, or NULL when out of memory. */
char *metrics_format(const struct metrics_input *in);
/* Write it to PATH through PATH.tmp and rename(2): a reader never sees
 * half a file.  0 or -errno. */
int metrics_write(const char *path, const struct metrics_input *in);

#endif
