/* options.h: every user setting, from defaults, the config file and the
 * command line (in that order, later wins).  The names are the ones in
 * ingestfs(1) and ingestfs.conf(5): options.c has the one table of
 * them, and tests/options_docs.t checks the pages against it. */
#ifndef INGESTFS_OPTIONS_H
#define INGESTFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define DEFAULT_URL "https://ingestion.edgeimpulse.com"

struct options {
	bool foreground, debug, show_help, show_version;
	char *mountpoint;
	char *source; /* "ingestfs" in fstab; ignored */
	char *url;
	char *api_key_file;
	char *api_key; /* only from the config file; never from argv */
	char *spool;
	char *state_dir; /* watch mode: where the queue state lives */
	char *cafile;
	unsigned settle_ms;
	unsigned concurrency;
	unsigned batch;
	unsigned backoff_ms;
	unsigned backoff_max_ms;
	unsigned timeout_s;         /* a transfer without progress this long is abandoned */
	unsigned reply_timeout_s;   /* how long the service may take to answer a sent request */
	unsigned annotation_wait_s; /* samples wait this long for an annotation file of theirs */
	char *owner;                /* USER[:GROUP] of the mount root and categories, or NULL */
	char *metrics;              /* a Prometheus text file to keep up to date, or NULL */
	/* Retention (0: none): uploaded files go this long after, or oldest
	 * first past this spool size or below this much free disk. */
	uint64_t keep_s, max_spool_bytes, min_free_bytes;
	bool allow_duplicates, add_date_id, no_label_infer, no_datasets, insecure;
	bool no_passthrough; /* file data through the daemon even where the kernel could pass it */
	enum log_level log_level;
	char *metadata;  /* x-metadata: a JSON object, or NULL */
	char *fuse_opts; /* options we do not know, handed to FUSE */
};

void options_init(struct options *o);
void options_free(struct options *o);

/* Apply one KEY or KEY=VALUE setting.  FROM_CONFIG allows keys that must
 * never be on a command line (api_key).  Returns 0, 1 when the key is not
 * ours (a FUSE option), or -1 with a message in ERR. */
int options_set(struct options *o, const char *key, const char *value, bool from_config, char *err,
		size_t errsz);

/* Parse "-f -d -o a,b=c MOUNTPOINT" (after the program name).  Returns 0,
 * or -1 with a message in ERR. */
int options_parse_args(struct options *o, int argc, char **argv, char *err, size_t errsz);

/* Where the config file is: $INGESTFS_CONFIG, $XDG_CONFIG_HOME/ingestfs/config,
 * ~/.config/ingestfs/config, or /etc/ingestfs/config for root.  Malloc'd. */
char *options_config_path(void);

/* Read KEY = VALUE lines.  A missing file is fine; a bad line is an error
 * naming the file and line.  Returns 0 or -1 with ERR set. */
int options_load_config(struct options *o, const char *path, char *err, size_t errsz);

void options_usage(FILE *out);

#endif
