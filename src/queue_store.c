/* queue_store.c: the queue's side of the state index (store.h).
 *
 * A file whose upload is over leaves memory for the index at the next
 * checkpoint, and comes back (entry_find, entry_find_path) the moment
 * something happens to it.  The index is a checkpoint under the journal,
 * which stays the redo log: a checkpoint writes rows, then compacts the
 * journal to the files still in memory, so replay at start brings back
 * only what changed since (doc/internals.md "State on disk"). */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "queue.h"
#include "queue_i.h"
#include "store.h"

/* A file stays in memory cfg.evict_after_ms after its upload ended: a
 * status read, a rename or a retry right after costs no index read.
 * Checkpoints come every cfg.checkpoint_every_ms, or sooner when this
 * many files whose upload is over are in memory. */
#define CHECKPOINT_ENOUGH 4096
/* Rows per transaction: a checkpoint keeps the uploader from its other
 * work for this many rows at most. */
#define CHECKPOINT_MAX 20000
/* Freed memory is handed back to the system after this many evictions. */
#define TRIM_AFTER 10000

static void count_dir(void *arg, const char *dir, int state, uint64_t n, uint64_t bytes)
{
	if ((unsigned)state < FILE_STATE_COUNT)
		counts_add_dir(arg, dir, (enum file_state)state, n, bytes);
}

int queue_set_store(struct queue *q, struct store *s)
{
	int rc;

	pthread_mutex_lock(&q->lock);
	q->store = s;
	rc = store_each_count(s, count_dir, q);
	if (rc == 0)
		rc = store_totals(s, &q->lifetime);
	q->checkpoint_ms = clock_now_ms();
	queue_unlock(q);
	return rc;
}

void queue_swap_store(struct queue *q, struct store *s)
{
	pthread_mutex_lock(&q->lock);
	q->store = s;
	queue_unlock(q);
}

void entry_bury(struct queue *q, struct entry *e)
{
	/* Out of memory, the row stays: at worst a file that is gone shows
	 * in a count until the next start's scan. */
	if (e->stored && inoset_add(&q->tombstones, e->ino) < 0)
		log_error("out of memory: the state index keeps a removed file");
	e->stored = false;
}

void lifetime_count(struct queue *q, const struct entry *e)
{
	switch (e->state) {
	case FILE_UPLOADED:
		q->unstored.uploaded++;
		q->unstored.bytes += e->size;
		break;
	case FILE_DUPLICATE: q->unstored.duplicate++; break;
	case FILE_FAILED: q->unstored.failed++; break;
	default: break;
	}
}

void queue_lifetime(struct queue *q, struct store_totals *out)
{
	pthread_mutex_lock(&q->lock);
	out->uploaded = q->lifetime.uploaded + q->unstored.uploaded;
	out->duplicate = q->lifetime.duplicate + q->unstored.duplicate;
	out->failed = q->lifetime.failed + q->unstored.failed;
	out->bytes = q->lifetime.bytes + q->unstored.bytes;
	queue_unlock(q);
}

static bool revive_row(void *arg, const struct store_row *row)
{
	struct queue *q = arg;

	entry_revive(q, row);
	return true;
}

void entries_load_below(struct queue *q, const char *dir, int state)
{
	if (q->store && store_each_row(q->store, dir, state, revive_row, q) < 0)
		log_error("cannot read the state index: files below %s may be left out",
			  dir[0] ? dir : "the mount");
}

/* ---- checkpoints ---- */

static bool evictable(const struct queue *q, const struct entry *e, int64_t now_wall, bool all)
{
	if (q->cfg.keep_in_memory || e->writers || e->dirty_handles || e->list != LIST_NONE ||
	    e->source || e->parked_path || e->retiring)
		return false;
	if (!entry_is_over(e))
		return false;
	return all || now_wall - e->final_ms >= q->cfg.evict_after_ms;
}

struct checkpoint {
	struct store_row *rows;
	uint64_t *seqs;
	size_t n;
	uint64_t *dels;
	size_t ndels;
	struct store_totals totals;
};

static void checkpoint_free(struct checkpoint *c)
{
	for (size_t i = 0; i < c->n; i++)
		store_row_free(&c->rows[i]);
	free(c->rows);
	free(c->seqs);
	free(c->dels);
}

static int take_row(struct checkpoint *c, const struct entry *e)
{
	struct store_row *r = &c->rows[c->n];

	*r = (struct store_row){.ino = e->ino,
				.path = strdup(e->path),
				.state = (int)e->state,
				.size = e->size,
				.result = e->result ? strdup(e->result) : NULL,
				.maybe_sent = e->maybe_sent,
				.final_ms = e->final_ms};
	if (!r->path || (e->result && !r->result)) {
		store_row_free(r);
		return -ENOMEM;
	}
	c->seqs[c->n++] = e->changed_seq;
	return 0;
}

/* Under the lock: what the checkpoint writes. */
static int checkpoint_take(struct queue *q, bool all, struct checkpoint *c)
{
	int64_t now = clock_wall_ms();
	/* Only files whose upload is over can leave memory. */
	size_t max = q->nentries_over < CHECKPOINT_MAX ? q->nentries_over : CHECKPOINT_MAX;
	size_t over = 0;

	memset(c, 0, sizeof(*c));
	c->rows = calloc(max ? max : 1, sizeof(*c->rows));
	c->seqs = calloc(max ? max : 1, sizeof(*c->seqs));
	c->dels = calloc(q->tombstones.n ? q->tombstones.n : 1, sizeof(*c->dels));
	if (!c->rows || !c->seqs || !c->dels)
		return -ENOMEM;
	inoset_list(&q->tombstones, c->dels);
	c->ndels = q->tombstones.n;
	c->totals = q->unstored;
	for (size_t i = 0; i < q->nbuckets && c->n < max && over < q->nentries_over; i++) {
		for (struct entry *e = q->buckets[i]; e && c->n < max; e = e->hash_next) {
			over += entry_is_over(e);
			if (evictable(q, e, now, all) && take_row(c, e) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Under the lock, once the index holds it: out of memory what did not
 * change meanwhile; the deleted rows are no longer tombstones. */
static size_t checkpoint_settle(struct queue *q, const struct checkpoint *c, bool all)
{
	int64_t now = clock_wall_ms();
	size_t evicted = 0;

	q->lifetime.uploaded += c->totals.uploaded;
	q->lifetime.duplicate += c->totals.duplicate;
	q->lifetime.failed += c->totals.failed;
	q->lifetime.bytes += c->totals.bytes;
	q->unstored.uploaded -= c->totals.uploaded;
	q->unstored.duplicate -= c->totals.duplicate;
	q->unstored.failed -= c->totals.failed;
	q->unstored.bytes -= c->totals.bytes;
	for (size_t i = 0; i < c->ndels; i++)
		inoset_remove(&q->tombstones, c->dels[i]);
	for (size_t i = 0; i < c->n; i++) {
		struct entry *e = entry_find_resident(q, c->rows[i].ino);

		if (!e)
			continue;
		e->stored = true;
		if (e->changed_seq == c->seqs[i] && evictable(q, e, now, all)) {
			entry_evict(q, e);
			evicted++;
		}
	}
	return evicted;
}

static bool checkpoint_due(struct queue *q, int64_t now, bool all)
{
	bool due, work;

	pthread_mutex_lock(&q->lock);
	/* Nothing over, nothing removed, nothing counted: a round would walk
	 * every entry under the lock for nothing (a camera offline for a
	 * week has a million pending). */
	work = q->nentries_over || q->tombstones.n || q->unstored.uploaded ||
	       q->unstored.duplicate || q->unstored.failed;
	due = q->store && (all || (work && (now - q->checkpoint_ms >= q->cfg.checkpoint_every_ms ||
					    q->nentries_over >= CHECKPOINT_ENOUGH ||
					    q->tombstones.n >= CHECKPOINT_ENOUGH)));
	queue_unlock(q);
	return due;
}

static void store_trouble(struct queue *q, int rc)
{
	pthread_mutex_lock(&q->lock);
	if (rc < 0 && !q->store_failing)
		log_error("cannot write the state index: %s; files stay in memory meanwhile",
			  strerror(-rc));
	else if (rc == 0 && q->store_failing)
		log_info("the state index is written again");
	q->store_failing = rc < 0;
	queue_unlock(q);
}

/* One round: at most CHECKPOINT_MAX rows.  Returns how many left memory,
 * or -errno. */
static ssize_t checkpoint_round(struct queue *q, bool all)
{
	struct checkpoint c;
	size_t evicted = 0;
	int rc;

	pthread_mutex_lock(&q->lock);
	rc = checkpoint_take(q, all, &c);
	q->checkpoint_ms = clock_now_ms();
	queue_unlock(q);
	if (rc == 0 &&
	    (c.n || c.ndels || c.totals.uploaded || c.totals.duplicate || c.totals.failed))
		rc = store_apply(q->store, c.dels, c.ndels, c.rows, c.n, &c.totals);
	else if (rc == 0)
		goto out; /* nothing to write */
	store_trouble(q, rc);
	if (rc == 0) {
		pthread_mutex_lock(&q->lock);
		evicted = checkpoint_settle(q, &c, all);
		queue_unlock(q);
		/* What the index holds now leaves the journal: replay must not
		 * bring back, or count again, what it says (see the top). */
		rc = queue_compact_journal(q);
	}
out:
	checkpoint_free(&c);
	return rc < 0 ? rc : (ssize_t)evicted;
}

int queue_checkpoint(struct queue *q, bool all)
{
	ssize_t n;
	size_t total = 0;

	if (!checkpoint_due(q, clock_now_ms(), all))
		return 0;
	do {
		n = checkpoint_round(q, all);
		if (n > 0)
			total += (size_t)n;
	} while (all && n >= CHECKPOINT_MAX / 2);
	if (total >= TRIM_AFTER)
		malloc_trim(0);
	return n < 0 ? (int)n : 0;
}

/* ---- retention ---- */

/* Rows read per query, and queries per call: rows passed over (in use,
 * or removed and not yet deleted from the index) cost a look each. */
#define RETIRE_PAGE 128
#define RETIRE_PAGES 8

/* Under the lock: E as the next retiree, or false. */
static bool retire_one(struct queue *q, const struct store_row *row, const struct inoset *skip,
		       struct queue_retiree *out)
{
	struct entry *e;

	if (inoset_has(skip, row->ino) || !(e = entry_revive(q, row)))
		return false;
	*out = (struct queue_retiree){.ino = e->ino,
				      .path = strdup(e->path),
				      .size = e->size,
				      .final_ms = e->final_ms,
				      .seq = e->changed_seq};
	if (!out->path) {
		entry_evict(q, e);
		return false;
	}
	e->retiring = true;
	return true;
}

size_t queue_retire_take(struct queue *q, struct store_cursor *cursor, int64_t before_ms,
			 const struct inoset *skip, struct queue_retiree *out, size_t max,
			 bool *end)
{
	struct store_row rows[RETIRE_PAGE];
	size_t taken = 0, n = RETIRE_PAGE;

	*end = false;
	pthread_mutex_lock(&q->lock);
	for (int page = 0; page < RETIRE_PAGES && taken < max && n == RETIRE_PAGE; page++) {
		if (!q->store ||
		    store_oldest(q->store, cursor, before_ms, RETIRE_PAGE, rows, &n) < 0)
			n = 0;
		for (size_t i = 0; i < n; i++) {
			if (taken < max) {
				*cursor = (struct store_cursor){rows[i].final_ms, rows[i].ino};
				taken += retire_one(q, &rows[i], skip, &out[taken]);
			}
			store_row_free(&rows[i]);
		}
	}
	*end = n < RETIRE_PAGE && taken < max;
	queue_unlock(q);
	return taken;
}

bool queue_retire_check(struct queue *q, const struct queue_retiree *r)
{
	struct entry *e;
	bool ok;

	pthread_mutex_lock(&q->lock);
	e = entry_find_resident(q, r->ino);
	ok = e && e->retiring && e->changed_seq == r->seq && e->writers == 0;
	queue_unlock(q);
	return ok;
}

void queue_retire_done(struct queue *q, const struct queue_retiree *r, bool removed)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find_resident(q, r->ino);
	if (e && e->retiring) {
		e->retiring = false;
		if (removed) {
			journal_note(q, e, JOURNAL_REMOVED);
			entry_destroy(q, e);
		}
	}
	queue_unlock(q);
}
