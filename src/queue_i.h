/* queue_i.h: the queue's private parts, shared by the files that make up
 * the queue (queue*.c), as libfuse shares lib/fuse_i.h.
 * Nothing outside the queue includes this.
 *
 * Locking (doc/internals.md "Threads and locks"): one mutex, queue.lock,
 * guards every field of struct queue and of every entry and annotation
 * source.  Every function declared here expects it held.  No write,
 * fsync or rename happens under it: journal records are queued in memory
 * (journal.h takes its own lock after this one, for a memcpy) and written
 * by queue_unlock; the state index (store.h) is read under it (a row, or
 * a folder's rows before a change to all of them), and written by the
 * uploader's
 * checkpoints without it.  The only call-out is the waker, which must not
 * call back into the queue.  Order: the spool's names lock (spool.h),
 * then queue.lock, then journal.lock or the index's read lock; never the
 * other way.
 */
#ifndef INGESTFS_QUEUE_I_H
#define INGESTFS_QUEUE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "annot.h"
#include "inoset.h"
#include "journal.h"
#include "queue.h"
#include "store.h"

enum entry_list { LIST_NONE, LIST_SETTLING, LIST_PENDING };

struct annot_source;

struct entry {
	uint64_t ino;
	char *path;
	enum file_state state;
	unsigned writers;
	uint64_t generation;
	uint64_t size;
	int64_t due_ms; /* settle deadline or earliest next attempt */
	unsigned attempts;
	bool queue_now;              /* renamed into place: skip settle once closed */
	bool maybe_sent;             /* an attempt for this content may have been stored */
	bool seen;                   /* recovery: found in the spool */
	bool solo;                   /* goes alone in its next request */
	int write_error;             /* errno of a failed write in this writing session */
	bool close_journaled;        /* the QUEUED record of this content is written */
	unsigned dirty_handles;      /* open handles written since their last close */
	struct annot_source *source; /* an annotation file: never sent itself */
	char *parked_path;           /* where it was uploaded from, while hidden */
	uint32_t published;          /* signature of the status last published */
	enum file_state parked_state;
	char *result;
	/* The state index (store.h): a row of this inode exists there (to
	 * be deleted with the entry); when (wall clock, ms) its upload
	 * ended; the journal sequence of its last change, to see whether it
	 * changed while a checkpoint was being written. */
	bool stored;
	bool retiring; /* retention is removing its file: no retry now */
	int64_t final_ms;
	int64_t waiting_ms; /* since when it waits to go up (monotonic) */
	uint64_t changed_seq;
	struct entry *hash_next;
	uint64_t path_hash;      /* the index by path, for front ends that */
	struct entry *path_next; /* only know names (inotify) */
	bool path_indexed;
	struct entry *prev, *next;
	enum entry_list list;
};

struct entry_list_head {
	struct entry *head, *tail;
};

struct source_index {
	struct annot_source **buckets; /* by folder */
	size_t nbuckets, count;
};

struct queue {
	pthread_mutex_t lock; /* guards everything below; see the top */
	struct queue_config cfg;
	struct entry **buckets;
	size_t nbuckets, nentries;
	size_t nentries_over; /* of them, whose upload is over: what a checkpoint takes */
	struct entry **path_buckets;
	size_t npath_buckets;
	struct entry_list_head settling; /* ordered by due_ms: settle is constant */
	struct entry_list_head pending;
	bool paused;
	struct journal *journal; /* NULL: nothing is persisted (unit tests) */
	struct store *store;     /* NULL: every file stays in memory (watch mode) */
	uint64_t seq;            /* counts journal notes: entry.changed_seq */
	/* Rows of the index to delete at the next checkpoint (or being
	 * deleted by it): never brought back. */
	struct inoset tombstones;
	int64_t checkpoint_ms; /* when the last checkpoint ran (monotonic) */
	/* Recovery: the whole spool is being scanned (after a crash), and
	 * the index's files it found as the index says. */
	bool scan_whole;
	struct inoset scan_seen;
	bool store_failing; /* said so in the log */
	/* Lifetime totals: the index's as of the last checkpoint, and the
	 * outcomes since, which the next checkpoint adds to it. */
	struct store_totals lifetime, unstored;
	bool replaying;              /* journal replay: a state set is no new outcome */
	atomic_bool journal_failed;  /* an append failed (out of memory) */
	atomic_bool journal_failing; /* said so in the log */
	struct dir_counts **dirs;    /* counts per folder and its subtree */
	size_t ndirs_buckets, ndirs;
	struct source_index sources;        /* annotation files, by folder */
	struct annot_source *dirty_sources; /* whose status is to be worked out again */
	struct annot_source *below;         /* datasets read that speak for a folder */
	void (*wake)(void *);
	void *wake_arg;
	/* The uploader looks again by planned_ms without being woken
	 * (queue_tick), and one wake is enough until it looks. */
	int64_t planned_ms;
	bool wake_pending;
	unsigned rand_state;
};

/* queue_table.c: the table and an entry's life. */
/* The entry of INO, brought back from the state index when it is only
 * there (so that what happens to it now is kept); NULL if unknown. */
struct entry *entry_find(struct queue *q, uint64_t ino);
/* Only what is in memory. */
struct entry *entry_find_resident(struct queue *q, uint64_t ino);
struct entry *entry_create(struct queue *q, uint64_t ino, const char *path);
struct entry *entry_get(struct queue *q, uint64_t ino, const char *path);
/* Forget an entry entirely (its journal record is the caller's). */
void entry_destroy(struct queue *q, struct entry *e);
void entry_free(struct entry *e);
/* The doors through which an entry's state, size and path change (the
 * folder counts follow): nothing else assigns them.  entry_set_path takes
 * PATH over and returns the old one, for the caller to free. */
void entry_set_state(struct queue *q, struct entry *e, enum file_state state);
void entry_set_size(struct queue *q, struct entry *e, uint64_t size);
char *entry_set_path(struct queue *q, struct entry *e, char *path);
/* New content, or a new destination: forget everything about earlier
 * attempts, and make results of requests in flight stale. */
void entry_reset_attempts(struct entry *e);
void list_unlink(struct queue *q, struct entry *e);
void list_append(struct queue *q, struct entry *e, enum entry_list which);
struct journal_record entry_record(const struct entry *e, enum journal_kind kind);
void journal_note_many(struct queue *q, const struct journal_record *r, size_t n);
/* Every public function ends with this instead of unlocking itself. */
void queue_unlock(struct queue *q);
/* Wake the uploader if it would otherwise look after DUE_MS. */
void wake_uploader_by(struct queue *q, int64_t due_ms);
struct layout_path;
bool label_equal(const struct layout_path *a, const struct layout_path *b);
/* Whether files at A and B go to the same (category, label). */
bool same_destination(const char *a, const char *b);
struct entry *entry_find_path(struct queue *q, const char *path);
/* queue_store.c: entries that only the state index holds. */
struct store_row;
/* An entry in memory again from its row (already counted); NULL for a
 * stale row: its file is in memory, or gone (a tombstone). */
struct entry *entry_revive(struct queue *q, const struct store_row *row);
/* Out of memory (its row holds what it says; it stays counted). */
void entry_evict(struct queue *q, struct entry *e);
/* Every file below DIR ("" for all) in memory, before a change to all
 * (of STATE only, unless -1). */
void entries_load_below(struct queue *q, const char *dir, int state);
/* The index row of E is to go at the next checkpoint. */
void entry_bury(struct queue *q, struct entry *e);
/* E reached its final outcome now: count it in the lifetime totals. */
void lifetime_count(struct queue *q, const struct entry *e);
void entry_set_result(struct entry *e, const char *text);
void journal_note(struct queue *q, struct entry *e, enum journal_kind kind);
void wake_uploader(struct queue *q);
/* Why PATH is never uploaded, or NULL (a dataset file is not ignored
 * before it is read). */
const char *ignored_reason(const struct queue *q, const char *path);
bool state_is_final(enum file_state s);
/* Its upload is over (or it is never sent): a checkpoint may take it. */
bool entry_is_over(const struct entry *e);
/* setfattr retry/resend on one file; whether anything was done. */
bool entry_retry(struct queue *q, struct entry *e, bool resend, int64_t now);
/* Length of PATH's folder part ("" for a name at the root). */
size_t dir_len(const char *path);

/* queue_status.c: counts per folder, kept as entries change, so that a
 * folder's summary costs a look-up, not a pass over every file. */
void counts_add(struct queue *q, const struct entry *e, int sign);
/* A file was made or written at PATH: the folders above are active. */
void dirs_touch(struct queue *q, const char *path, int64_t now);
/* A dataset file at PATH was read (SIGN +1) or forgotten (-1). */
void dirs_count_dataset(struct queue *q, const char *path, int sign);
bool dir_has_dataset(struct queue *q, const char *dir, size_t len);
/* Files in DIR that may speak for the images below it, not yet read;
 * IMMINENT: those of them being read now.  False: out of memory. */
bool dirs_count_unread(struct queue *q, const char *dir, bool imminent, int sign);
bool dir_has_unread(struct queue *q, const char *dir, size_t len, bool imminent);
/* Whether files arrived below DIR less than QUIET_MS ago; *QUIET_AT when
 * it will have been quiet long enough. */
bool dir_busy_with_dataset(struct queue *q, const char *dir, size_t len, int64_t now,
			   int64_t quiet_ms, int64_t *quiet_at);
/* N files of STATE, BYTES long, in DIR and below (from the index). */
void counts_add_dir(struct queue *q, const char *dir, enum file_state state, uint64_t n,
		    uint64_t bytes);
void counts_free(struct queue *q);

/* queue_schedule.c */
/* E is to go at DUE_MS (an annotation file: to be read). */
void entry_make_pending(struct queue *q, struct entry *e, int64_t due_ms);

/* queue_annot.c: annotation files (doc/internals.md "Annotation files"). */

/* Whether E is an annotation file as such: a .labels file, or a file
 * read as a dataset's (a file that only may be one is not, yet). */
bool annot_is_known_source(const struct entry *e);
/* Track or untrack E as an annotation file after its path was set. */
void annot_track(struct queue *q, struct entry *e);
void annot_untrack(struct queue *q, struct entry *e);
/* New content is being written: what was read of it is stale. */
void annot_content_changed(struct queue *q, struct entry *e);
/* E settled (or was recovered): read it before its samples go. */
void annot_make_due(struct queue *q, struct entry *e, bool fresh);
/* E, an annotation file, changed state (entry_set_state). */
void annot_state_changed(struct queue *q, struct entry *e);

/* What a sample's request carries, and which annotation files say so. */
struct sample_plan {
	int category;
	enum queue_label label_mode;
	const char *label; /* not NUL-terminated: LABEL_LEN bytes */
	size_t label_len;
	const char *metadata;  /* JSON, or NULL */
	const char *send_name; /* name without extension, or NULL: the file's own */
	const char *part[ANNOT_PART_KINDS];
	struct annot_source *from[ANNOT_PART_KINDS + 1];
	unsigned nfrom;
	bool info;               /* info.labels had its say */
	bool annotations_missed; /* an annotation file never became readable in time */
	/* A dataset file's say (queue_dataset.c): the boxes part, when it
	 * was made for this sample (malloc'd, in OWNED, freed after the
	 * plan is used), in fractions of the image when BOXES_NORMALIZED;
	 * and where the labels came from, for the sample's result. */
	char *owned;
	bool boxes_normalized;
	char *note;
};

/* Plan E's request.  Returns false while E must wait for an annotation
 * file that is still being written or read (at most cfg.annotation_wait_ms
 * past NOW - E's due time). */
bool annot_plan(struct queue *q, struct entry *e, int64_t now, struct sample_plan *plan);
/* How a request names the annotation file S it carries entries of. */
struct queue_source_ref annot_ref(const struct annot_source *s);
/* The sample E reached a final state (IT the request it went in): its
 * sources count it, as carried or as come too late for. */
void annot_sample_done(struct queue *q, struct entry *e, const struct queue_item *it);
/* The sample E appeared, went or changed: its sources look again. */
void annot_touch(struct queue *q, const struct entry *e);
/* Work out again the status of the sources that need it (and may). */
void annot_refresh_dirty(struct queue *q, int64_t now);
/* The status and result of an annotation file, from what is known. */
void annot_refresh(struct queue *q, struct annot_source *s);
/* Read an annotation file again (setfattr retry); with RESEND also send
 * again the samples it names that went already. */
void annot_retry(struct queue *q, struct entry *e, bool resend);
void annot_free_all(struct queue *q);

#endif
