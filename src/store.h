/* store.h: the on-disk index of the files the queue no longer keeps in
 * memory: those whose upload is over (uploaded, duplicate, failed) and
 * ignored ones, SPOOL/state/index.db (SQLite, WAL).  It is a checkpoint
 * under the journal: what the journal says since wins (doc/internals.md
 * "State on disk").  Besides the files, it keeps the counts per folder
 * of what it holds, the lifetime totals, and whether the last stop was
 * clean.
 *
 * Threads: reads from any thread (their own connection, under their own
 * lock, never waiting for a writer: WAL); writes from one thread only
 * (the uploader's maintenance), each call one transaction, durable when
 * it returns (synchronous=FULL). */
#ifndef INGESTFS_STORE_H
#define INGESTFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

struct store_row {
	uint64_t ino;
	char *path;
	int state; /* enum file_state */
	uint64_t size;
	char *result;     /* may be NULL */
	bool maybe_sent;  /* on an annotation file: its content was read */
	int64_t final_ms; /* wall clock, ms, when its upload ended */
};

/* Lifetime totals: every upload that ended, since the spool was made. */
struct store_totals {
	uint64_t uploaded, duplicate, failed, bytes;
};

/* Open (create) STATE_PATH/index.db.  0, or -1 with ERR set. */
int store_open(const char *state_path, struct store **out, char *err, size_t errsz);
void store_close(struct store *s);

/* ---- reads, from any thread ---- */

/* 0 with ROW filled (free it with store_row_free), -ENOENT, or -EIO. */
int store_get(struct store *s, uint64_t ino, struct store_row *row);
int store_get_path(struct store *s, const char *path, struct store_row *row);
void store_row_free(struct store_row *row);

/* FN for every (folder, state) count of what the store holds. */
int store_each_count(struct store *s,
		     void (*fn)(void *arg, const char *dir, int state, uint64_t n, uint64_t bytes),
		     void *arg);
/* FN for every row below the folder DIR ("" or NULL for all), of STATE
 * only unless it is -1.  FN returns false to stop. */
int store_each_row(struct store *s, const char *dir, int state,
		   bool (*fn)(void *arg, const struct store_row *row), void *arg);
/* Up to MAX rows of files whose upload ended first (uploaded or
 * duplicate, before BEFORE_MS), oldest first, into ROWS; *N how many.
 * AFTER (or NULL: from the start) is the last row seen by a previous
 * call, to go on past rows the caller passed over. */
struct store_cursor {
	int64_t final_ms;
	uint64_t ino;
};
int store_oldest(struct store *s, const struct store_cursor *after, int64_t before_ms, size_t max,
		 struct store_row *rows, size_t *n);
int store_totals(struct store *s, struct store_totals *t);
/* Whether the last run stopped cleanly (no scan of the spool needed). */
bool store_was_clean(struct store *s);

/* ---- writes, from the one maintenance thread ---- */

/* One transaction: remove the rows of DELS, then put PUTS (replacing a
 * row of the same inode), add TOTALS to the lifetime totals, and mark
 * the run unclean.  0 or -errno. */
int store_apply(struct store *s, const uint64_t *dels, size_t ndels, const struct store_row *puts,
		size_t nputs, const struct store_totals *totals);
/* A clean stop: nothing is left to apply. */
int store_set_clean(struct store *s, bool clean);

#endif
