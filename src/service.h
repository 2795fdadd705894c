/* service.h: what the mount and the watcher share: options, the API key,
 * the spool with its journal-backed queue, and the upload thread.  The two
 * front ends differ only in how they learn what happens to files. */
#ifndef INGESTFS_SERVICE_H
#define INGESTFS_SERVICE_H

#include <stdbool.h>

#include "journal.h"
#include "options.h"
#include "queue.h"
#include "retention.h"
#include "spool.h"
#include "store.h"
#include "upload.h"

struct service {
	struct options opt;
	struct spool spool;
	struct queue *queue;
	struct journal *journal;
	struct uploader *uploader;
	struct store *store;         /* mount mode: the state index; NULL in watch mode */
	struct retention *retention; /* NULL: no keep=, max_spool=, min_free= */
	int64_t next_metrics_ms;     /* metrics=: when to write them next */
	bool metrics_failing;        /* said so in the log */
	char *key;
	bool curl_ready;
	bool written_outside; /* watch mode */
};

/* One clear line on stderr; returns 1, the exit status of a refusal. */
int service_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Defaults, config file, then ARGV (after the program or subcommand name).
 * Returns 0, or 1 after saying why; *EXIT_NOW after --help/--version. */
int service_parse(struct service *s, int argc, char **argv, const char *what, bool *exit_now);

/* Make PATH absolute (daemonizing moves to "/").  0 or 1. */
int service_make_absolute(char **path);

/* The key, the spool (FILES_DIR/STATE_DIR, or SPOOL_DIR/files and
 * SPOOL_DIR/state when FILES_DIR is NULL), queue recovery, the uploader
 * (not yet started).  0 or 1 after saying why. */
int service_open(struct service *s, const char *spool_dir, const char *files_dir,
		 const char *state_dir);

/* After daemonizing: start uploading; SIGHUP re-reads the key. */
int service_start(struct service *s);
/* After fork (fuse_daemonize): SQLite's locks do not survive it, so the
 * state index is opened anew in the process that goes on.  0 or 1. */
int service_after_fork(struct service *s);
void service_stop(struct service *s, const char *what);
void service_close(struct service *s);

#endif
