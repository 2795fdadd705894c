/* queue.h: the state of every file in the mount and the upload queue.
 *
 * Front ends (the FUSE operations in fs.c, later the inotify watcher) report
 * what happens to files; the uploader takes ready batches and reports
 * results.  Files are keyed by inode number, which survives renames and so
 * stays right when the kernel delivers a RELEASE after the rename that
 * followed the close (FUSE sends RELEASE asynchronously).
 *
 * Thread model: every function may be called from any thread.  One mutex
 * inside the queue guards all of its state; no function calls out while
 * holding it except the waker, which must not call back into the queue. */
#ifndef INGESTFS_QUEUE_H
#define INGESTFS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "annot.h"

enum file_state {
	FILE_WRITING,   /* open for writing, or closed less than settle ago */
	FILE_PENDING,   /* waiting for upload (maybe for a retry time) */
	FILE_UPLOADING, /* part of a request in flight */
	FILE_UPLOADED,
	FILE_DUPLICATE,
	FILE_FAILED,
	FILE_IGNORED,
	FILE_STATE_COUNT
};

const char *file_state_name(enum file_state state);

struct queue_config {
	unsigned settle_ms;
	unsigned batch_max;       /* files per request */
	uint64_t batch_bytes_max; /* bytes per request (a single larger file still goes) */
	unsigned backoff_min_ms;  /* first retry delay */
	unsigned backoff_max_ms;  /* cap of the exponential backoff */
	unsigned linger_ms;       /* a small batch waits this long for more while files settle */
	bool written_outside;     /* watch mode: others write the files, maybe still now */
	bool no_label_infer;      /* files right under a category go unlabeled */
	bool no_datasets;         /* dataset formats (dataset.h) are not looked for */
	/* Samples wait for an annotation file of theirs that is being written
	 * or read for at most this long past their due time, then go without
	 * it (0: the default, a minute). */
	unsigned annotation_wait_ms;
	/* Files whose upload ended this long ago leave memory for the state
	 * index at checkpoints this often (0: 5 s and 10 s).  Retention with
	 * a short keep= wants both shorter. */
	unsigned evict_after_ms, checkpoint_every_ms;
	/* Watch mode: the state index keeps only the lifetime totals; every
	 * file stays in memory. */
	bool keep_in_memory;
};

/* An annotation file whose entries a request carries. */
struct queue_source_ref {
	uint64_t ino, generation;
};

struct queue_item {
	uint64_t ino;
	uint64_t generation; /* results for an older generation are dropped */
	char *path;          /* relative to the mount root */
	char *send_name;     /* the part's file name, unique in its request */
	uint64_t size;
	/* This sample's entry in each annotation part (JSON), or NULL. */
	char *part[ANNOT_PART_KINDS];
	struct queue_source_ref from[ANNOT_PART_KINDS + 1];
	unsigned nfrom;
	bool info;               /* its labels came from an info.labels */
	bool annotations_missed; /* an annotation file stayed unreadable too long */
	/* part[ANNOT_BOXES] is in fractions of the image: the uploader reads
	 * the image's size and makes it pixels (or drops it, saying why in
	 * NOTE) before the request goes. */
	bool boxes_normalized;
	char *note; /* where its labels came from (a dataset file), or NULL */
};

enum queue_label {
	QUEUE_LABEL_INFER, /* no x-label: the service infers it from the name */
	QUEUE_LABEL_GIVEN, /* x-label */
	QUEUE_LABEL_NONE,  /* x-no-label */
	QUEUE_LABEL_PARTS, /* in an annotation part: no x-label */
};

/* Every item of a batch shares its category, label and metadata. */
struct queue_batch {
	int category; /* layout_category_name() */
	enum queue_label label_mode;
	char *label;
	char *metadata; /* a JSON object from info.labels, or NULL */
	size_t count;
	struct queue_item *items;
};

enum queue_outcome {
	QUEUE_UPLOADED,  /* text: stored sample name */
	QUEUE_DUPLICATE, /* text: server message */
	QUEUE_FAILED,    /* final; text: why */
	QUEUE_RETRY,     /* later, with backoff; text: the error */
	QUEUE_REQUEUE,   /* not attempted (paused, shutting down, file moved) */
	QUEUE_SOLO,      /* refused with others, which was at fault unknown:
			    send it again now, alone */
};

struct queue_result {
	const struct queue_item *item;
	enum queue_outcome outcome;
	const char *text;
	unsigned retry_after_ms; /* QUEUE_RETRY: server's wish, 0 for backoff;
				    QUEUE_REQUEUE: how long to wait */
	bool maybe_sent;         /* QUEUE_RETRY: the service may have stored it */
};

struct queue_counts {
	size_t n[FILE_STATE_COUNT];
	uint64_t bytes[FILE_STATE_COUNT];
};

struct queue *queue_new(const struct queue_config *cfg);
void queue_free(struct queue *q);
/* WAKE is called (with the lock held) whenever work may have become due. */
void queue_set_waker(struct queue *q, void (*wake)(void *), void *arg);

/* Front-end events.  A writer's life: queue_open_write at its open;
 * queue_written each time a handle goes from clean to written; at its
 * close(2), queue_flushed (the writer waits for it: from here on a crash
 * must not count the file as interrupted); at its release, queue_closed.
 * Coarse events take the queue's lock once for several of these steps. */
void queue_open_write(struct queue *q, uint64_t ino, const char *path);
void queue_written(struct queue *q, uint64_t ino);
/* Both at once: new content seen (inotify's first IN_MODIFY). */
void queue_writing(struct queue *q, uint64_t ino, const char *path);
/* SIZE may be QUEUE_SIZE_UNKNOWN: keep what the queue knows (a later
 * queue_renamed brings the real size). */
#define QUEUE_SIZE_UNKNOWN UINT64_MAX
void queue_flushed(struct queue *q, uint64_t ino, uint64_t size);
/* The last step of a writer: its release, after queue_flushed, or with
 * UNFLUSHED (the writer wrote and no close(2) told us) with it. */
void queue_closed(struct queue *q, uint64_t ino, uint64_t size, bool unflushed);
/* A whole writer at once: a file changed in one step (truncate(2) of a
 * path) or found complete (watch mode). */
void queue_file_complete(struct queue *q, uint64_t ino, const char *path, uint64_t size);
/* A write, truncate or fallocate failed (ENOSPC...): at its close the file
 * is failed instead of queued, since it is not what the writer meant. */
void queue_write_failed(struct queue *q, uint64_t ino, int err);
void queue_renamed(struct queue *q, const char *from, const char *to, uint64_t ino, uint64_t size,
		   bool is_dir);
void queue_removed(struct queue *q, uint64_t ino);
/* A file with several names (hard links) known by FROM is known by TO,
 * another of its names, from now on: its status stays, nothing is sent. */
void queue_relinked(struct queue *q, uint64_t ino, const char *from, const char *to);
/* A file (or, IS_DIR, a folder's files) gone from where it was, when its
 * inode is no longer known (inotify reports deletions by name). */
void queue_forget(struct queue *q, const char *path, bool is_dir);
/* Another file now at PATH (renamed over): forget the one that was there. */
void queue_forget_other(struct queue *q, const char *path, uint64_t keep_ino);
/* The inode of the file the queue knows at PATH, if any. */
bool queue_ino_of(struct queue *q, const char *path, uint64_t *ino);
/* Whether INO is known; its path into BUF when it is. */
bool queue_path_of(struct queue *q, uint64_t ino, char *buf, size_t size);
/* After lost events: mark what is still there, then forget the rest. */
void queue_rescan_begin(struct queue *q);
void queue_rescan_seen(struct queue *q, uint64_t ino);
void queue_rescan_end(struct queue *q);
/* Call FN (outside the lock) for every file whose status or result
 * changed since the last call: watch mode writes them as xattrs. */
void queue_publish_changes(struct queue *q,
			   void (*fn)(void *arg, const char *path, enum file_state state,
				      const char *result),
			   void *arg);
/* setfattr user.ingest.status "retry": re-queue a failed file, or hurry
 * one that waits for a retry; "resend" (RESEND) also sends an uploaded
 * or duplicate one again.  A failed annotation file is read again (and,
 * with RESEND, the samples it came too late for go again). */
int queue_retry(struct queue *q, uint64_t ino, bool resend);
/* The same for every file below DIR ("" for all).  Returns how many. */
size_t queue_retry_below(struct queue *q, const char *dir, bool resend);

/* Status for people.  Returns 0 or -ENOENT for an unknown inode. */
int queue_file_status(struct queue *q, uint64_t ino, enum file_state *state, char *result,
		      size_t result_size);
/* Counts for every file below DIR ("" for the whole mount). */
void queue_count(struct queue *q, const char *dir, struct queue_counts *out);
void queue_summary_text(const struct queue_counts *c, char *buf, size_t size);
/* "done=BYTES total=BYTES" for progress bars: done counts uploaded and
 * duplicate files, total leaves out ignored and failed ones. */
void queue_bytes_text(const struct queue_counts *c, char *buf, size_t size);

/* Uploader side. */
/* Move settled files to pending.  Returns ms until the next timed event
 * (a settle deadline or a retry), or -1 when there is none. */
int64_t queue_tick(struct queue *q, int64_t now_ms);
/* Take up to batch_max due files of one (category, label).  Returns the
 * number taken; 0 when nothing is due or the queue is paused. */
size_t queue_take_batch(struct queue *q, int64_t now_ms, struct queue_batch *batch);
void queue_batch_free(struct queue_batch *batch);
/* Annotation files to read before their samples go: the uploader reads
 * and parses them (annot_parse) outside the lock and hands back each
 * result, or the reason it could not be read. */
struct queue_load {
	uint64_t ino, generation;
	char *path;
	bool dataset; /* a file that may be a dataset's (dataset.h): queue_dataset_done */
};
size_t queue_take_loads(struct queue *q, struct queue_load *out, size_t max);
/* Takes FILE over (NULL with ERR when it could not be read). */
void queue_load_done(struct queue *q, const struct queue_load *load, struct annot_file *file,
		     const char *err);
/* A file that may be a dataset's was read: RC 0 with DS (taken over), 1
 * when it is not one (it is a sample, or ignored, as its name says),
 * -1 with ERR when it could not be read or is malformed, -2 when it was
 * moved or replaced meanwhile (it is read again). */
struct dataset;
void queue_dataset_done(struct queue *q, const struct queue_load *load, struct dataset *ds, int rc,
			const char *err);
/* These files are about to go out (journaled, for crash recovery). */
void queue_note_sending(struct queue *q, const struct queue_item *const items[], size_t n);
void queue_report(struct queue *q, const struct queue_result *results, size_t n, int64_t now_ms);
/* Recovery at start (see journal.h): replay every journal record, then
 * reconcile every file found in the spool, then finish, which forgets
 * files that are gone and queues the pending ones. */
struct journal;
struct journal_record;
struct queue_recovery {
	size_t files, pending, interrupted;
};
void queue_replay(struct queue *q, const struct journal_record *r);
/* WHOLE_SPOOL: every file of the spool is reconciled next (after a
 * crash); else only the files in memory (queue_resident_files), and the
 * index is trusted as it is (after a clean stop). */
void queue_reconcile_begin(struct queue *q, bool whole_spool);
struct queue_file_ref {
	uint64_t ino;
	char *path;
};
/* The files in memory (after replay), into *OUT (free each path and the
 * array).  0 or -ENOMEM. */
int queue_resident_files(struct queue *q, struct queue_file_ref **out, size_t *n);
void queue_reconcile(struct queue *q, uint64_t ino, const char *path, uint64_t size);
void queue_reconcile_finish(struct queue *q, struct queue_recovery *out);
/* From now on every change is journaled to J (NULL: none). */
void queue_set_journal(struct queue *q, struct journal *j);
/* Rewrite the journal as one record per file. */
int queue_compact_journal(struct queue *q);
size_t queue_size(struct queue *q);
/* Make the journal durable, and compact it when it has grown.  Call from
 * one thread only (the uploader): compaction replaces the file it syncs. */
void queue_maintain_journal(struct queue *q);

/* The state index (store.h) holds the files whose upload is over, out
 * of memory: from now on they leave memory at checkpoints.  Loads the
 * folder counts and lifetime totals it holds.  0 or -errno. */
struct store;
struct store_totals;
int queue_set_store(struct queue *q, struct store *s);
/* The same index, opened anew (after fork): nothing is loaded again. */
void queue_swap_store(struct queue *q, struct store *s);
/* Write to the index what is over and forget it here, then compact the
 * journal.  Does nothing until one is due, unless ALL (a stop: then every
 * file that may go, goes).  From one thread only (the uploader's
 * maintenance).  0 or -errno. */
int queue_checkpoint(struct queue *q, bool all);
/* Uploads that ended since the spool was made (store.h). */
void queue_lifetime(struct queue *q, struct store_totals *out);
/* How long (ms) the file waiting longest to go up (pending or uploading)
 * has waited; 0 when none waits. */
int64_t queue_oldest_waiting(struct queue *q, int64_t now_ms);

/* Retention: files of the index whose upload ended before BEFORE_MS
 * (wall clock), oldest first, but those in SKIP (kept for good reason),
 * at most MAX into OUT (free each path).
 * Until queue_retire_done, each is held: no retry starts on it.  Before
 * removing one, queue_retire_check says whether it is still as taken
 * (not reopened, renamed or changed meanwhile). */
struct queue_retiree {
	uint64_t ino;
	char *path;
	uint64_t size;
	int64_t final_ms; /* when its upload ended (wall clock) */
	uint64_t seq;
};
struct inoset;
struct store_cursor;
/* CURSOR (start at {INT64_MIN, 0}) goes on from where the last call
 * stopped; *END when no row is left past it (start again next time). */
size_t queue_retire_take(struct queue *q, struct store_cursor *cursor, int64_t before_ms,
			 const struct inoset *skip, struct queue_retiree *out, size_t max,
			 bool *end);
bool queue_retire_check(struct queue *q, const struct queue_retiree *r);
/* REMOVED: its file is gone from the spool; forget it. */
void queue_retire_done(struct queue *q, const struct queue_retiree *r, bool removed);

/* A refused API key stops everything until it is replaced. */
void queue_pause(struct queue *q);
void queue_resume(struct queue *q);
bool queue_is_paused(struct queue *q);

#endif
