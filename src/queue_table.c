/* queue_table.c: the queue's table of entries (by inode and by path), its
 * lists, and an entry's life: creation, changes of path, the journal
 * records it writes, destruction (doc/internals.md "Architecture"). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "journal.h"
#include "layout.h"
#include "log.h"
#include "queue.h"
#include "queue_i.h"
#include "store.h"
#include "text.h"
#include "vocab.h"

static void path_index_grow(struct queue *q);

static const char *const state_names[FILE_STATE_COUNT] = STATE_NAMES;

const char *file_state_name(enum file_state state)
{
	return (unsigned)state < FILE_STATE_COUNT ? state_names[state] : "unknown";
}

static size_t bucket_of(const struct queue *q, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (q->nbuckets - 1);
}

struct entry *entry_find_resident(struct queue *q, uint64_t ino)
{
	for (struct entry *e = q->buckets[bucket_of(q, ino)]; e; e = e->hash_next) {
		if (e->ino == ino)
			return e;
	}
	return NULL;
}

struct entry *entry_find(struct queue *q, uint64_t ino)
{
	struct entry *e = entry_find_resident(q, ino);
	struct store_row row;

	/* A row waiting to be deleted is a file that is gone (its inode
	 * number may already be another file's). */
	if (e || !q->store || inoset_has(&q->tombstones, ino) || store_get(q->store, ino, &row) < 0)
		return e;
	e = entry_revive(q, &row);
	store_row_free(&row);
	return e;
}

static void table_grow(struct queue *q)
{
	size_t old_n = q->nbuckets;
	struct entry **old = q->buckets;
	struct entry **fresh = calloc(old_n * 2, sizeof(*fresh));

	if (!fresh)
		return; /* keep the longer chains; still correct */
	q->buckets = fresh;
	q->nbuckets = old_n * 2;
	for (size_t i = 0; i < old_n; i++) {
		struct entry *e = old[i], *next;

		for (; e; e = next) {
			size_t b = bucket_of(q, e->ino);

			next = e->hash_next;
			e->hash_next = q->buckets[b];
			q->buckets[b] = e;
		}
	}
	free(old);
	path_index_grow(q);
}

static void path_index_remove(struct queue *q, struct entry *e)
{
	struct entry **pp;

	if (!e->path_indexed)
		return;
	pp = &q->path_buckets[e->path_hash & (q->npath_buckets - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->path_next;
	if (*pp)
		*pp = e->path_next;
	e->path_indexed = false;
}

static void path_index_add(struct queue *q, struct entry *e)
{
	size_t b;

	e->path_hash = text_hash(e->path, strlen(e->path));
	b = e->path_hash & (q->npath_buckets - 1);
	e->path_next = q->path_buckets[b];
	q->path_buckets[b] = e;
	e->path_indexed = true;
}

static struct entry *find_path_resident(struct queue *q, const char *path)
{
	uint64_t h = text_hash(path, strlen(path));

	for (struct entry *e = q->path_buckets[h & (q->npath_buckets - 1)]; e; e = e->path_next) {
		if (e->path_hash == h && strcmp(e->path, path) == 0)
			return e;
	}
	return NULL;
}

struct entry *entry_find_path(struct queue *q, const char *path)
{
	struct entry *e = find_path_resident(q, path);
	struct store_row row;

	if (e || !q->store || store_get_path(q->store, path, &row) < 0)
		return e;
	e = entry_revive(q, &row);
	store_row_free(&row);
	return e;
}

static void path_index_grow(struct queue *q)
{
	struct entry **fresh = calloc(q->nbuckets, sizeof(*fresh));

	if (!fresh)
		return; /* longer chains; still correct */
	free(q->path_buckets);
	q->path_buckets = fresh;
	q->npath_buckets = q->nbuckets;
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next) {
			if (e->path_indexed)
				path_index_add(q, e);
		}
	}
}

bool entry_is_over(const struct entry *e)
{
	return state_is_final(e->state) || e->state == FILE_IGNORED;
}

static void table_remove(struct queue *q, struct entry *e)
{
	path_index_remove(q, e);
	struct entry **pp = &q->buckets[bucket_of(q, e->ino)];

	while (*pp && *pp != e)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = e->hash_next;
	q->nentries--;
	q->nentries_over -= entry_is_over(e);
}

static struct entry_list_head *list_head(struct queue *q, enum entry_list which)
{
	return which == LIST_SETTLING ? &q->settling : &q->pending;
}

void list_unlink(struct queue *q, struct entry *e)
{
	struct entry_list_head *h;

	if (e->list == LIST_NONE)
		return;
	h = list_head(q, e->list);
	if (e->prev)
		e->prev->next = e->next;
	else
		h->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		h->tail = e->prev;
	e->prev = e->next = NULL;
	e->list = LIST_NONE;
}

void list_append(struct queue *q, struct entry *e, enum entry_list which)
{
	struct entry_list_head *h = list_head(q, which);

	list_unlink(q, e);
	e->list = which;
	e->prev = h->tail;
	e->next = NULL;
	if (h->tail)
		h->tail->next = e;
	else
		h->head = e;
	h->tail = e;
}

/* Wake the uploader only if it would otherwise look after DUE_MS: a file
 * closed during a burst settles after the ones before it, so it rarely
 * needs a wake (a thread switch each) of its own. */
void wake_uploader_by(struct queue *q, int64_t due_ms)
{
	if (q->wake_pending || due_ms >= q->planned_ms)
		return;
	q->wake_pending = true;
	if (q->wake)
		q->wake(q->wake_arg);
}

void wake_uploader(struct queue *q)
{
	wake_uploader_by(q, INT64_MIN);
}

void entry_set_result(struct entry *e, const char *text)
{
	free(e->result);
	e->result = text && text[0] ? strdup(text) : NULL;
}

void entry_free(struct entry *e)
{
	free(e->parked_path);
	free(e->path);
	free(e->result);
	free(e);
}

/* Forget an entry entirely. */
void entry_destroy(struct queue *q, struct entry *e)
{
	annot_touch(q, e);
	entry_bury(q, e);
	counts_add(q, e, -1);
	list_unlink(q, e);
	table_remove(q, e);
	annot_untrack(q, e);
	entry_free(e);
}

struct journal_record entry_record(const struct entry *e, enum journal_kind kind)
{
	return (struct journal_record){.kind = kind,
				       .ino = e->ino,
				       .state = (int)e->state,
				       .maybe_sent = e->maybe_sent,
				       .size = e->size,
				       .path = e->path,
				       .result = e->result};
}

void journal_note_many(struct queue *q, const struct journal_record *r, size_t n)
{
	if (q->journal && n > 0 && journal_append_many(q->journal, r, n) < 0)
		atomic_store(&q->journal_failed, true);
}

/* Let go of the queue and write what it journaled meanwhile: the disk is
 * never touched under the lock, and a record is in the kernel before the
 * operation that made it returns. */
void queue_unlock(struct queue *q)
{
	struct journal *j = q->journal;
	bool failed;

	pthread_mutex_unlock(&q->lock);
	if (!j)
		return;
	failed = journal_flush(j) < 0 || atomic_exchange(&q->journal_failed, false);
	/* The state in memory is still right; only a crash now would lose it. */
	if (failed && !atomic_exchange(&q->journal_failing, true))
		log_error("cannot write the queue journal: %s; a crash now may re-send files",
			  strerror(errno ? errno : EIO));
	else if (!failed)
		atomic_store(&q->journal_failing, false);
}

void journal_note(struct queue *q, struct entry *e, enum journal_kind kind)
{
	struct journal_record r = entry_record(e, kind);

	e->changed_seq = ++q->seq;
	journal_note_many(q, &r, 1);
}

const char *ignored_reason(const struct queue *q, const char *path)
{
	const char *why = layout_ignored(path);

	/* A dataset's .xml or .yaml is read before it is judged. */
	if (why && !q->cfg.no_datasets && layout_dataset_candidate(path))
		return NULL;
	return why;
}

/* ---- the doors through which an entry changes: the folder counts follow ---- */

void entry_set_state(struct queue *q, struct entry *e, enum file_state state)
{
	if (e->state == state)
		return;
	counts_add(q, e, -1);
	q->nentries_over -= entry_is_over(e);
	/* A retry goes back to pending: it waits since it first did. */
	if (state == FILE_PENDING && e->state != FILE_UPLOADING)
		e->waiting_ms = clock_now_ms();
	e->state = state;
	e->changed_seq = ++q->seq;
	counts_add(q, e, +1);
	q->nentries_over += entry_is_over(e);
	if (e->source)
		annot_state_changed(q, e);
	if (entry_is_over(e)) {
		e->final_ms = clock_wall_ms();
		/* A replayed state is no new outcome (queue_recovery.c). */
		if (!q->replaying)
			lifetime_count(q, e);
	}
}

void entry_set_size(struct queue *q, struct entry *e, uint64_t size)
{
	if (e->size == size)
		return;
	counts_add(q, e, -1);
	e->size = size;
	e->changed_seq = ++q->seq;
	counts_add(q, e, +1);
}

char *entry_set_path(struct queue *q, struct entry *e, char *path)
{
	char *old = e->path;

	counts_add(q, e, -1);
	path_index_remove(q, e);
	e->path = path;
	e->changed_seq = ++q->seq;
	path_index_add(q, e);
	counts_add(q, e, +1);
	annot_track(q, e);
	return old;
}

size_t dir_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? (size_t)(slash - path) : 0;
}

static struct entry *entry_new(uint64_t ino, const char *path)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->path = strdup(path);
	if (!e->path) {
		free(e);
		return NULL;
	}
	e->ino = ino;
	return e;
}

static void table_insert(struct queue *q, struct entry *e)
{
	if (q->nentries >= q->nbuckets)
		table_grow(q);
	e->hash_next = q->buckets[bucket_of(q, e->ino)];
	q->buckets[bucket_of(q, e->ino)] = e;
	q->nentries++;
	q->nentries_over += entry_is_over(e);
	path_index_add(q, e);
}

struct entry *entry_create(struct queue *q, uint64_t ino, const char *path)
{
	struct entry *e = entry_new(ino, path);

	if (!e)
		return NULL;
	e->state = ignored_reason(q, path) ? FILE_IGNORED : FILE_WRITING;
	if (e->state == FILE_IGNORED)
		e->final_ms = clock_wall_ms();
	table_insert(q, e);
	counts_add(q, e, +1);
	annot_track(q, e);
	return e;
}

/* The folder counts include every row of the index: a revived entry is
 * counted already, and an evicted one stays counted.  A row whose file
 * is in memory (moved since) or gone (a tombstone: its inode number may
 * already be another file's) is stale: NULL. */
struct entry *entry_revive(struct queue *q, const struct store_row *row)
{
	struct entry *e;

	if (entry_find_resident(q, row->ino) || inoset_has(&q->tombstones, row->ino) ||
	    !(e = entry_new(row->ino, row->path)))
		return NULL;
	e->state =
		(unsigned)row->state < FILE_STATE_COUNT ? (enum file_state)row->state : FILE_FAILED;
	e->size = row->size;
	e->maybe_sent = row->maybe_sent;
	e->final_ms = row->final_ms;
	e->stored = true;
	entry_set_result(e, row->result);
	table_insert(q, e);
	return e;
}

/* Out of memory, into the index (which holds what it says). */
void entry_evict(struct queue *q, struct entry *e)
{
	table_remove(q, e);
	entry_free(e);
}

struct entry *entry_get(struct queue *q, uint64_t ino, const char *path)
{
	struct entry *e = entry_find(q, ino);

	return e ? e : entry_create(q, ino, path);
}

/* New content, or a new destination: forget everything about earlier
 * attempts, and make results of requests in flight stale. */
void entry_reset_attempts(struct entry *e)
{
	free(e->parked_path);
	e->parked_path = NULL;
	e->generation++;
	e->attempts = 0;
	e->maybe_sent = false;
	e->solo = false;
	entry_set_result(e, NULL);
}

bool state_is_final(enum file_state s)
{
	return s == FILE_UPLOADED || s == FILE_DUPLICATE || s == FILE_FAILED;
}

bool label_equal(const struct layout_path *a, const struct layout_path *b)
{
	return a->category == b->category && a->label_len == b->label_len &&
	       (a->label_len == 0 || memcmp(a->label, b->label, a->label_len) == 0);
}

bool same_destination(const char *a, const char *b)
{
	struct layout_path la, lb;

	return layout_classify(a, &la) == 0 && layout_classify(b, &lb) == 0 &&
	       label_equal(&la, &lb);
}
