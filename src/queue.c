/* queue.c: per-file state machine, settle timers, batching and the retry
 * schedule (doc/internals.md "The queue"; the user's view is ingestfs(1)
 * "WHEN A FILE IS UPLOADED" and "RETRIES").  Annotation files are in
 * queue_annot.c; what the two share is in queue_i.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
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

#define JOURNAL_COMPACT_MIN (8u << 20)
#define JOURNAL_BYTES_PER_FILE 1024u

static const char *const state_names[FILE_STATE_COUNT] = {
	"writing", "pending", "uploading", "uploaded", "duplicate", "failed", "ignored",
};

const char *file_state_name(enum file_state state)
{
	return (unsigned)state < FILE_STATE_COUNT ? state_names[state] : "unknown";
}

/* ---- hash table by inode ---- */

static size_t bucket_of(const struct queue *q, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (q->nbuckets - 1);
}

struct entry *entry_find(struct queue *q, uint64_t ino)
{
	for (struct entry *e = q->buckets[bucket_of(q, ino)]; e; e = e->hash_next) {
		if (e->ino == ino)
			return e;
	}
	return NULL;
}

static void path_index_grow(struct queue *q);

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

/* ---- index by path ---- */

static uint64_t path_hash_of(const char *p)
{
	uint64_t h = 1469598103934665603ull;

	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h;
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

	e->path_hash = path_hash_of(e->path);
	b = e->path_hash & (q->npath_buckets - 1);
	e->path_next = q->path_buckets[b];
	q->path_buckets[b] = e;
	e->path_indexed = true;
}

struct entry *entry_find_path(struct queue *q, const char *path)
{
	uint64_t h = path_hash_of(path);

	for (struct entry *e = q->path_buckets[h & (q->npath_buckets - 1)]; e; e = e->path_next) {
		if (e->path_hash == h && strcmp(e->path, path) == 0)
			return e;
	}
	return NULL;
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

static void table_remove(struct queue *q, struct entry *e)
{
	path_index_remove(q, e);
	struct entry **pp = &q->buckets[bucket_of(q, e->ino)];

	while (*pp && *pp != e)
		pp = &(*pp)->hash_next;
	if (*pp)
		*pp = e->hash_next;
	q->nentries--;
}

/* ---- lists ---- */

static struct entry_list_head *list_head(struct queue *q, enum entry_list which)
{
	return which == LIST_SETTLING ? &q->settling : &q->pending;
}

static void list_unlink(struct queue *q, struct entry *e)
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

static void list_append(struct queue *q, struct entry *e, enum entry_list which)
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

/* ---- entries ---- */

/* Wake the uploader only if it would otherwise look after DUE_MS: a file
 * closed during a burst settles after the ones before it, so it rarely
 * needs a wake (a thread switch each) of its own. */
static void wake_uploader_by(struct queue *q, int64_t due_ms)
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

static void entry_free(struct entry *e);

/* Forget an entry entirely. */
static void entry_destroy(struct queue *q, struct entry *e)
{
	annot_touch(q, e);
	list_unlink(q, e);
	table_remove(q, e);
	annot_untrack(q, e);
	entry_free(e);
}

static void entry_free(struct entry *e)
{
	free(e->parked_path);
	free(e->path);
	free(e->result);
	free(e);
}

/* ---- persistence: one record per change that matters after a crash ---- */

static struct journal_record entry_record(const struct entry *e, enum journal_kind kind)
{
	return (struct journal_record){.kind = kind,
				       .ino = e->ino,
				       .state = (int)e->state,
				       .maybe_sent = e->maybe_sent,
				       .size = e->size,
				       .path = e->path,
				       .result = e->result};
}

static void journal_note_many(struct queue *q, const struct journal_record *r, size_t n)
{
	int rc;

	if (!q->journal || n == 0)
		return;
	rc = journal_append_many(q->journal, r, n);
	/* The state in memory is still right; only a crash now would lose it. */
	if (rc < 0 && !q->journal_failing)
		log_error("cannot write the queue journal: %s; a crash now may re-send files",
			  strerror(-rc));
	q->journal_failing = rc < 0;
}

void journal_note(struct queue *q, const struct entry *e, enum journal_kind kind)
{
	struct journal_record r = entry_record(e, kind);

	journal_note_many(q, &r, 1);
}

const char *ignored_reason(const char *path)
{
	return layout_ignored(path);
}

/* Call whenever an entry's path is set. */
static void entry_path_changed(struct queue *q, struct entry *e)
{
	path_index_remove(q, e);
	path_index_add(q, e);
	annot_track(q, e);
}

size_t dir_len(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? (size_t)(slash - path) : 0;
}

static struct entry *entry_create(struct queue *q, uint64_t ino, const char *path)
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
	e->state = ignored_reason(path) ? FILE_IGNORED : FILE_WRITING;
	if (q->nentries >= q->nbuckets)
		table_grow(q);
	e->hash_next = q->buckets[bucket_of(q, ino)];
	q->buckets[bucket_of(q, ino)] = e;
	q->nentries++;
	entry_path_changed(q, e);
	return e;
}

static struct entry *entry_get(struct queue *q, uint64_t ino, const char *path)
{
	struct entry *e = entry_find(q, ino);

	return e ? e : entry_create(q, ino, path);
}

static void entry_make_pending(struct queue *q, struct entry *e, int64_t due_ms)
{
	char msg[96];

	e->queue_now = false;
	if (e->source) {
		/* Never sent itself: read before its samples go (maybe_sent on an
		 * annotation file: this content was read already). */
		list_unlink(q, e);
		annot_make_due(q, e, !e->maybe_sent);
		return;
	}
	if (e->size > LAYOUT_MAX_FILE_SIZE) {
		list_unlink(q, e);
		e->state = FILE_FAILED;
		snprintf(msg, sizeof(msg), "file is larger than the service's limit of %llu bytes",
			 (unsigned long long)LAYOUT_MAX_FILE_SIZE);
		entry_set_result(e, msg);
		return;
	}
	e->state = FILE_PENDING;
	e->due_ms = due_ms;
	list_append(q, e, LIST_PENDING);
	annot_touch(q, e);
	wake_uploader(q);
}

/* New content, or a new destination: forget everything about earlier
 * attempts, and make results of requests in flight stale. */
static void entry_reset_attempts(struct entry *e)
{
	free(e->parked_path);
	e->parked_path = NULL;
	e->generation++;
	e->attempts = 0;
	e->maybe_sent = false;
	e->solo = false;
	entry_set_result(e, NULL);
}

/* ---- public: setup ---- */

struct queue *queue_new(const struct queue_config *cfg)
{
	struct queue *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->cfg = *cfg;
	if (!q->cfg.annotation_wait_ms)
		q->cfg.annotation_wait_ms = 60000;
	q->planned_ms = INT64_MAX;
	if (q->cfg.batch_max == 0)
		q->cfg.batch_max = 1;
	q->nbuckets = q->npath_buckets = 1024;
	q->buckets = calloc(q->nbuckets, sizeof(*q->buckets));
	q->path_buckets = calloc(q->npath_buckets, sizeof(*q->path_buckets));
	if (!q->buckets || !q->path_buckets) {
		free(q->buckets);
		free(q->path_buckets);
		free(q);
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	q->rand_state = (unsigned)time(NULL);
	return q;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	annot_free_all(q);
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct entry *e = q->buckets[i], *next;

		for (; e; e = next) {
			next = e->hash_next;
			entry_free(e);
		}
	}
	free(q->buckets);
	free(q->path_buckets);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

void queue_set_waker(struct queue *q, void (*wake)(void *), void *arg)
{
	pthread_mutex_lock(&q->lock);
	q->wake = wake;
	q->wake_arg = arg;
	pthread_mutex_unlock(&q->lock);
}

/* ---- public: front-end events ---- */

void queue_open_write(struct queue *q, uint64_t ino, const char *path)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_get(q, ino, path);
	if (e) {
		e->writers++;
		/* A reopen for writing postpones a file that has not gone yet. */
		if (e->state == FILE_PENDING || e->state == FILE_WRITING) {
			list_unlink(q, e);
			e->state = FILE_WRITING;
		}
	}
	pthread_mutex_unlock(&q->lock);
}

void queue_written(struct queue *q, uint64_t ino)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e) {
		e->dirty_handles++;
		entry_reset_attempts(e);
		if (e->state != FILE_WRITING)
			e->write_error = 0;
		if (e->state != FILE_IGNORED) {
			list_unlink(q, e);
			e->state = FILE_WRITING;
			e->close_journaled = false;
			journal_note(q, e, JOURNAL_WRITING);
			annot_content_changed(q, e);
		}
	}
	pthread_mutex_unlock(&q->lock);
}

void queue_write_failed(struct queue *q, uint64_t ino, int err)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e)
		e->write_error = err;
	pthread_mutex_unlock(&q->lock);
}

void queue_flushed(struct queue *q, uint64_t ino, uint64_t size)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e && e->dirty_handles > 0)
		e->dirty_handles--;
	/* Another handle that wrote is still open: the content is not final. */
	if (e && e->dirty_handles == 0 && e->state == FILE_WRITING && !e->write_error) {
		if (size != QUEUE_SIZE_UNKNOWN)
			e->size = size;
		journal_note(q, e, JOURNAL_QUEUED);
		e->close_journaled = true;
	}
	pthread_mutex_unlock(&q->lock);
}

void queue_close_write(struct queue *q, uint64_t ino, uint64_t size)
{
	struct entry *e;
	char msg[160];
	int64_t now = clock_now_ms();

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (!e)
		goto out;
	if (size != QUEUE_SIZE_UNKNOWN)
		e->size = size;
	if (e->writers > 0)
		e->writers--;
	if (e->writers > 0 || e->state != FILE_WRITING)
		goto out;
	if (e->write_error) {
		/* What is on disk is not what the writer meant to write. */
		e->state = FILE_FAILED;
		snprintf(msg, sizeof(msg),
			 "a write failed (%s): not uploaded; write it again or setfattr retry",
			 strerror(e->write_error));
		e->write_error = 0;
		entry_set_result(e, msg);
		journal_note(q, e, JOURNAL_DONE);
		goto out;
	}
	if (!e->close_journaled)
		journal_note(q, e, JOURNAL_QUEUED);
	if (e->queue_now || q->cfg.settle_ms == 0) {
		entry_make_pending(q, e, now);
	} else {
		e->due_ms = now + q->cfg.settle_ms;
		list_append(q, e, LIST_SETTLING);
		wake_uploader_by(q, e->due_ms);
	}
out:
	pthread_mutex_unlock(&q->lock);
}

static bool label_equal(const struct layout_path *a, const struct layout_path *b)
{
	return a->category == b->category && a->label_len == b->label_len &&
	       (a->label_len == 0 || memcmp(a->label, b->label, a->label_len) == 0);
}

static bool same_destination(const char *a, const char *b)
{
	struct layout_path la, lb;

	return layout_classify(a, &la) == 0 && layout_classify(b, &lb) == 0 &&
	       label_equal(&la, &lb);
}

/* An uploaded file put in the trash or a hidden folder remembers where it
 * was, so that bringing it back unchanged does not send it again. */
static void entry_park(struct entry *e, char *old_path)
{
	free(e->parked_path);
	e->parked_path = old_path;
	e->parked_state = e->state;
}

static bool entry_unpark(struct queue *q, struct entry *e)
{
	bool back = e->parked_path && same_destination(e->parked_path, e->path);

	if (back) {
		e->state = e->parked_state;
		journal_note(q, e, JOURNAL_DONE);
	}
	free(e->parked_path);
	e->parked_path = NULL;
	return back;
}

static void entry_hide(struct queue *q, struct entry *e, char *old_path)
{
	if (e->state == FILE_UPLOADED || e->state == FILE_DUPLICATE) {
		entry_park(e, old_path);
		old_path = NULL;
	}
	free(old_path);
	list_unlink(q, e);
	e->generation++;
	e->state = FILE_IGNORED;
}

/* The rules of ingestfs(1) LAYOUT and WHEN A FILE IS UPLOADED for a file
 * that now lives at NEW_PATH. */
static void entry_moved(struct queue *q, struct entry *e, char *new_path)
{
	bool dest_changed = !same_destination(e->path, new_path);
	bool was_source = e->source != NULL;
	char *old_path = e->path;
	int64_t now = clock_now_ms();

	annot_touch(q, e); /* the annotation files that named it by its old name */
	e->path = new_path;
	entry_path_changed(q, e);
	if (was_source != (e->source != NULL) && !ignored_reason(new_path) &&
	    e->state != FILE_IGNORED) {
		/* A sample became an annotation file, or the other way: new to
		 * the queue in that role. */
		if (e->state != FILE_WRITING) {
			entry_reset_attempts(e);
			journal_note(q, e, JOURNAL_QUEUED);
			entry_make_pending(q, e, now);
		}
		goto out;
	}
	if (ignored_reason(new_path)) {
		if (e->state != FILE_IGNORED) {
			entry_hide(q, e, old_path);
			old_path = NULL;
		}
	} else if (e->state == FILE_IGNORED) {
		if (entry_unpark(q, e)) {
			/* Back from the trash: what it says is read again. */
			if (e->source)
				annot_make_due(q, e, false);
			goto out;
		}
		/* rsync, gio and safe-save editors: the rename is the signal. */
		entry_reset_attempts(e);
		e->state = FILE_WRITING;
		if (e->writers > 0) {
			e->queue_now = true;
			journal_note(q, e, JOURNAL_WRITING);
		} else {
			journal_note(q, e, JOURNAL_QUEUED);
			entry_make_pending(q, e, now);
		}
	} else if (dest_changed && e->state == FILE_UPLOADING) {
		/* Send again with the new label; the request in flight may still
		 * land, so a duplicate reply then is our own copy. */
		e->generation++;
		e->maybe_sent = true;
		entry_set_result(e, NULL);
		journal_note(q, e, JOURNAL_QUEUED);
		entry_make_pending(q, e, now);
	} else if (dest_changed && e->state != FILE_WRITING && e->state != FILE_PENDING) {
		entry_reset_attempts(e);
		journal_note(q, e, JOURNAL_QUEUED);
		entry_make_pending(q, e, now);
	}
out:
	free(old_path);
}

static char *join_moved_path(const char *to, const char *rest)
{
	size_t a = strlen(to), b = strlen(rest);
	char *p = malloc(a + b + 1);

	if (p) {
		memcpy(p, to, a);
		memcpy(p + a, rest, b + 1);
	}
	return p;
}

static void dir_moved(struct queue *q, const char *from, const char *to)
{
	size_t flen = strlen(from);

	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next) {
			char *np;

			if (strncmp(e->path, from, flen) != 0 || e->path[flen] != '/')
				continue;
			np = join_moved_path(to, e->path + flen);
			if (np)
				entry_moved(q, e, np);
		}
	}
}

void queue_renamed(struct queue *q, const char *from, const char *to, uint64_t ino, uint64_t size,
		   bool is_dir)
{
	struct entry *e;
	char *np;

	pthread_mutex_lock(&q->lock);
	if (is_dir) {
		dir_moved(q, from, to);
		goto out;
	}
	e = entry_find(q, ino);
	if (!e) {
		/* Unknown until now (made outside the mount): judge it as it is. */
		e = entry_create(q, ino, to);
		if (e)
			e->size = size;
		if (e && e->state == FILE_WRITING) {
			journal_note(q, e, JOURNAL_QUEUED);
			entry_make_pending(q, e, clock_now_ms());
		}
		goto out;
	}
	/* Another name of the file (a hard link) moved, not the one we know
	 * it by: the file stays where it is. */
	if (from[0] && strcmp(e->path, from) != 0)
		goto out;
	np = strdup(to);
	if (size != QUEUE_SIZE_UNKNOWN)
		e->size = size; /* fresh from the rename: a close may not have known it */
	if (np)
		entry_moved(q, e, np);
out:
	pthread_mutex_unlock(&q->lock);
}

void queue_removed(struct queue *q, uint64_t ino)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e) {
		journal_note(q, e, JOURNAL_REMOVED);
		entry_destroy(q, e);
	}
	pthread_mutex_unlock(&q->lock);
}

static bool path_is_below(const char *path, const char *dir, size_t dlen);

void queue_forget(struct queue *q, const char *path, bool is_dir)
{
	size_t n = strlen(path);
	struct entry *one;

	pthread_mutex_lock(&q->lock);
	if (!is_dir) {
		one = entry_find_path(q, path);
		if (one) {
			journal_note(q, one, JOURNAL_REMOVED);
			entry_destroy(q, one);
		}
		goto out;
	}
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct entry *e = q->buckets[i], *next;

		for (; e; e = next) {
			next = e->hash_next;
			if (path_is_below(e->path, path, n)) {
				journal_note(q, e, JOURNAL_REMOVED);
				entry_destroy(q, e);
			}
		}
	}
out:
	pthread_mutex_unlock(&q->lock);
}

void queue_forget_other(struct queue *q, const char *path, uint64_t keep_ino)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find_path(q, path);
	if (e && e->ino != keep_ino) {
		journal_note(q, e, JOURNAL_REMOVED);
		entry_destroy(q, e);
	}
	pthread_mutex_unlock(&q->lock);
}

bool queue_ino_of(struct queue *q, const char *path, uint64_t *ino)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find_path(q, path);
	if (e)
		*ino = e->ino;
	pthread_mutex_unlock(&q->lock);
	return e != NULL;
}

bool queue_path_of(struct queue *q, uint64_t ino, char *buf, size_t size)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e)
		snprintf(buf, size, "%s", e->path);
	pthread_mutex_unlock(&q->lock);
	return e != NULL;
}

void queue_rescan_begin(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next)
			e->seen = false;
	}
	pthread_mutex_unlock(&q->lock);
}

void queue_rescan_seen(struct queue *q, uint64_t ino)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e)
		e->seen = true;
	pthread_mutex_unlock(&q->lock);
}

void queue_rescan_end(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct entry *e = q->buckets[i], *next;

		for (; e; e = next) {
			next = e->hash_next;
			if (!e->seen) {
				journal_note(q, e, JOURNAL_REMOVED);
				entry_destroy(q, e);
			} else {
				e->seen = false;
			}
		}
	}
	pthread_mutex_unlock(&q->lock);
}

static uint32_t status_signature(const struct entry *e)
{
	uint32_t h = 2166136261u ^ (uint32_t)e->state;

	for (const char *p = e->result ? e->result : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h | 1; /* never 0: 0 means "never published" */
}

struct published {
	char *path, *result;
	enum file_state state;
};

void queue_publish_changes(struct queue *q,
			   void (*fn)(void *arg, const char *path, enum file_state state,
				      const char *result),
			   void *arg)
{
	struct published *list = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next) {
			uint32_t sig = status_signature(e);

			if (sig == e->published)
				continue;
			if (n == cap) {
				struct published *bigger =
					realloc(list, (cap = cap ? cap * 2 : 64) * sizeof(*list));

				if (!bigger)
					goto unlock;
				list = bigger;
			}
			list[n] = (struct published){
				strdup(e->path), e->result ? strdup(e->result) : NULL, e->state};
			e->published = sig;
			n++;
		}
	}
unlock:
	pthread_mutex_unlock(&q->lock);
	for (size_t i = 0; i < n; i++) {
		if (list[i].path)
			fn(arg, list[i].path, list[i].state, list[i].result);
		free(list[i].path);
		free(list[i].result);
	}
	free(list);
}

/* Send E again: a failed file, or with RESEND any final one; hurry one
 * that waits for its next attempt.  Whether anything was done. */
bool entry_retry(struct queue *q, struct entry *e, bool resend, int64_t now)
{
	bool again = e->state == FILE_FAILED ||
		     (resend && (e->state == FILE_UPLOADED || e->state == FILE_DUPLICATE));
	bool keep_sent;

	if (e->source) {
		if (again)
			annot_retry(q, e, resend);
		return again;
	}
	if (e->state == FILE_PENDING) {
		e->due_ms = now;
		wake_uploader(q);
		return true;
	}
	if (!again)
		return false;
	/* The same content, failed after it may have been stored: a
	 * duplicate reply to this attempt is still our own copy. */
	keep_sent = e->state == FILE_FAILED && e->maybe_sent;
	entry_reset_attempts(e);
	e->maybe_sent = keep_sent;
	journal_note(q, e, JOURNAL_QUEUED);
	entry_make_pending(q, e, now);
	return true;
}

int queue_retry(struct queue *q, uint64_t ino, bool resend)
{
	struct entry *e;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (!e)
		rc = -ENOENT;
	else
		entry_retry(q, e, resend, clock_now_ms());
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static bool path_is_below(const char *path, const char *dir, size_t dlen);

size_t queue_retry_below(struct queue *q, const char *dir, bool resend)
{
	size_t dlen = strcmp(dir, ".") == 0 ? 0 : strlen(dir), n = 0;
	int64_t now = clock_now_ms();

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next) {
			if (path_is_below(e->path, dir, dlen) && entry_retry(q, e, resend, now))
				n++;
		}
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

/* ---- public: status ---- */

int queue_file_status(struct queue *q, uint64_t ino, enum file_state *state, char *result,
		      size_t result_size)
{
	struct entry *e;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (!e) {
		rc = -ENOENT;
	} else {
		*state = e->state;
		if (result && result_size)
			snprintf(result, result_size, "%s", e->result ? e->result : "");
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static bool path_is_below(const char *path, const char *dir, size_t dlen)
{
	return dlen == 0 || (strncmp(path, dir, dlen) == 0 && path[dlen] == '/');
}

void queue_count(struct queue *q, const char *dir, struct queue_counts *out)
{
	size_t dlen = strcmp(dir, ".") == 0 ? 0 : strlen(dir);

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next) {
			if (!path_is_below(e->path, dir, dlen))
				continue;
			out->n[e->state]++;
			out->bytes[e->state] += e->size;
		}
	}
	pthread_mutex_unlock(&q->lock);
}

void queue_summary_text(const struct queue_counts *c, char *buf, size_t size)
{
	snprintf(buf, size,
		 "uploaded=%zu duplicate=%zu pending=%zu uploading=%zu failed=%zu ignored=%zu",
		 c->n[FILE_UPLOADED], c->n[FILE_DUPLICATE], c->n[FILE_PENDING] + c->n[FILE_WRITING],
		 c->n[FILE_UPLOADING], c->n[FILE_FAILED], c->n[FILE_IGNORED]);
}

void queue_bytes_text(const struct queue_counts *c, char *buf, size_t size)
{
	uint64_t done = c->bytes[FILE_UPLOADED] + c->bytes[FILE_DUPLICATE];
	uint64_t total =
		done + c->bytes[FILE_WRITING] + c->bytes[FILE_PENDING] + c->bytes[FILE_UPLOADING];

	snprintf(buf, size, "done=%llu total=%llu", (unsigned long long)done,
		 (unsigned long long)total);
}

/* ---- public: uploader side ---- */

/* How long a due file may wait for others to fill its request: only
 * while more files are settling, so a lone file is never held back. */
static int64_t linger_ms(const struct queue *q)
{
	return q->settling.head ? q->cfg.linger_ms : 0;
}

/* Hold back a small batch for a moment while more of its kind are coming. */
static bool should_linger(struct queue *q, int64_t now)
{
	struct layout_path first, lp;
	struct entry *e;
	unsigned n = 0;

	for (e = q->pending.head; e && e->due_ms > now; e = e->next)
		;
	if (!e || e->due_ms + linger_ms(q) <= now || layout_classify(e->path, &first) < 0)
		return false;
	for (; e && n < q->cfg.batch_max; e = e->next) {
		if (e->due_ms <= now && layout_classify(e->path, &lp) == 0 &&
		    label_equal(&first, &lp))
			n++;
	}
	return n < q->cfg.batch_max;
}

int64_t queue_tick(struct queue *q, int64_t now)
{
	int64_t next = -1;
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	/* The uploader is looking now: files made due here need no wake. */
	q->wake_pending = true;
	annot_refresh_dirty(q, now);
	while ((e = q->settling.head) && e->due_ms <= now) {
		list_unlink(q, e);
		entry_make_pending(q, e, now);
	}
	if (e)
		next = e->due_ms - now;
	if (!q->paused) {
		for (e = q->pending.head; e; e = e->next) {
			int64_t at = e->due_ms > now ? e->due_ms : e->due_ms + linger_ms(q);

			if (at > now && (next < 0 || at - now < next))
				next = at - now;
		}
	}
	q->planned_ms = next >= 0 ? now + next : INT64_MAX;
	q->wake_pending = false;
	pthread_mutex_unlock(&q->lock);
	return next;
}

/* The part's file name: the sample's own, or the one an info.labels
 * entry gives it, with the file's extension.  Malloc'd. */
static char *send_name_of(const struct entry *e, const struct sample_plan *p)
{
	const char *base = e->path + dir_len(e->path) + (dir_len(e->path) ? 1 : 0);
	const char *dot = strrchr(base, '.');
	char *name;

	if (!p->send_name)
		return strdup(base);
	if (asprintf(&name, "%s%s", p->send_name, dot && dot != base ? dot : "") < 0)
		return NULL;
	return name;
}

/* Parts are found by their file names (the reply's entries, annotation
 * keys): two samples of one request never share one. */
static bool batch_has_name(const struct queue_batch *b, const char *name)
{
	for (size_t i = 0; i < b->count; i++) {
		if (strcmp(b->items[i].send_name, name) == 0)
			return true;
	}
	return false;
}

static int batch_add(struct queue_batch *b, struct entry *e, const struct sample_plan *p,
		     char *send_name)
{
	struct queue_item *it = &b->items[b->count];

	memset(it, 0, sizeof(*it));
	it->send_name = send_name;
	it->path = strdup(e->path);
	for (int k = 0; k < ANNOT_PART_KINDS; k++) {
		if (p->part[k] && !(it->part[k] = strdup(p->part[k])))
			goto fail;
	}
	if (!it->path)
		goto fail;
	it->ino = e->ino;
	it->generation = e->generation;
	it->size = e->size;
	it->info = p->info;
	it->annotations_missed = p->annotations_missed;
	for (unsigned i = 0; i < p->nfrom; i++)
		it->from[it->nfrom++] = annot_ref(p->from[i]);
	b->count++;
	return 0;
fail:
	free(it->path);
	for (int k = 0; k < ANNOT_PART_KINDS; k++)
		free(it->part[k]);
	memset(it, 0, sizeof(*it));
	return -ENOMEM;
}

static int batch_start(struct queue *q, struct queue_batch *b, const struct sample_plan *p)
{
	memset(b, 0, sizeof(*b));
	b->items = calloc(q->cfg.batch_max, sizeof(*b->items));
	b->category = p->category;
	b->label_mode = p->label_mode;
	if (p->label_mode == QUEUE_LABEL_GIVEN)
		b->label = strndup(p->label, p->label_len);
	if (p->metadata)
		b->metadata = strdup(p->metadata);
	if (!b->items || (p->label_mode == QUEUE_LABEL_GIVEN && !b->label) ||
	    (p->metadata && !b->metadata)) {
		queue_batch_free(b);
		return -ENOMEM;
	}
	return 0;
}

/* Whether one request can carry both: one category, label and metadata. */
static bool same_request(const struct sample_plan *a, const struct sample_plan *b)
{
	if (a->category != b->category || a->label_mode != b->label_mode)
		return false;
	if (a->label_mode == QUEUE_LABEL_GIVEN &&
	    (a->label_len != b->label_len || memcmp(a->label, b->label, a->label_len) != 0))
		return false;
	return (!a->metadata && !b->metadata) ||
	       (a->metadata && b->metadata && strcmp(a->metadata, b->metadata) == 0);
}

/* Once a request may reach the service, a duplicate reply after a crash
 * is our own copy: remember that the attempt started. */
void queue_note_sending(struct queue *q, const struct queue_item *const items[], size_t n)
{
	struct journal_record *r = calloc(n ? n : 1, sizeof(*r));

	if (!r)
		return;
	for (size_t i = 0; i < n; i++)
		r[i] = (struct journal_record){
			.kind = JOURNAL_SENT, .ino = items[i]->ino, .path = items[i]->path};
	pthread_mutex_lock(&q->lock);
	journal_note_many(q, r, n);
	pthread_mutex_unlock(&q->lock);
	free(r);
}

/* Whether E joins batch B (started with FIRST); SEND_NAME is taken. */
static bool batch_takes(struct queue *q, struct queue_batch *b, const struct sample_plan *first,
			struct entry *e, const struct sample_plan *p, uint64_t bytes,
			char *send_name)
{
	if (!send_name)
		return false;
	if (b->count > 0 &&
	    (e->solo || !same_request(first, p) || bytes + e->size > q->cfg.batch_bytes_max ||
	     batch_has_name(b, send_name))) {
		free(send_name);
		return false;
	}
	if (batch_add(b, e, p, send_name) < 0) {
		free(send_name);
		return false;
	}
	return true;
}

size_t queue_take_batch(struct queue *q, int64_t now, struct queue_batch *b)
{
	struct sample_plan first = {0}, plan;
	uint64_t bytes = 0;
	struct entry *e, *next;
	bool started = false;

	memset(b, 0, sizeof(*b));
	pthread_mutex_lock(&q->lock);
	if (q->paused || should_linger(q, now))
		goto out;
	for (e = q->pending.head; e && b->count < q->cfg.batch_max; e = next) {
		next = e->next;
		if (e->due_ms > now || !annot_plan(q, e, now, &plan))
			continue;
		if (!started) {
			if (batch_start(q, b, &plan) < 0)
				break;
			first = plan;
			started = true;
		}
		if (!batch_takes(q, b, &first, e, &plan, bytes, send_name_of(e, &plan)))
			continue;
		bytes += e->size;
		list_unlink(q, e);
		e->state = FILE_UPLOADING;
		/* Sent alone to learn its own verdict. */
		if (e->solo)
			break;
	}
out:
	pthread_mutex_unlock(&q->lock);
	if (started && b->count == 0)
		queue_batch_free(b);
	return b->count;
}

void queue_batch_free(struct queue_batch *b)
{
	for (size_t i = 0; b->items && i < b->count; i++) {
		free(b->items[i].path);
		free(b->items[i].send_name);
		for (int k = 0; k < ANNOT_PART_KINDS; k++)
			free(b->items[i].part[k]);
	}
	free(b->items);
	free(b->label);
	free(b->metadata);
	memset(b, 0, sizeof(*b));
}

static unsigned backoff_ms(struct queue *q, unsigned attempts, double jitter)
{
	double d = q->cfg.backoff_min_ms;

	for (unsigned i = 1; i < attempts && d < q->cfg.backoff_max_ms; i++)
		d *= 2;
	if (d > q->cfg.backoff_max_ms)
		d = q->cfg.backoff_max_ms;
	/* Jitter down to half, so a crowd of clients does not return at once. */
	return (unsigned)(d * (0.5 + 0.5 * jitter));
}

static void entry_schedule_retry(struct queue *q, struct entry *e, const struct queue_result *r,
				 int64_t now, double jitter)
{
	unsigned delay;
	char when[32], text[512];
	time_t at;
	struct tm tm;

	e->attempts++;
	e->maybe_sent = e->maybe_sent || r->maybe_sent;
	delay = r->retry_after_ms ? r->retry_after_ms : backoff_ms(q, e->attempts, jitter);
	if (delay > q->cfg.backoff_max_ms)
		delay = q->cfg.backoff_max_ms;
	at = (time_t)(clock_wall_s() + (delay + 999) / 1000);
	localtime_r(&at, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	snprintf(text, sizeof(text), "%s; attempt %u failed, next attempt at %s", r->text,
		 e->attempts, when);
	entry_set_result(e, text);
	entry_make_pending(q, e, now + delay);
}

/* What the user reads on a stored sample: the stored name, and where its
 * labels came from when not from its folder. */
static void set_stored_result(struct entry *e, const struct queue_item *it, const char *text)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s%s%s", text, it->info ? " (labels from info.labels)" : "",
		 it->annotations_missed
			 ? "; sent without its folder's annotations, whose file stayed open"
			 : "");
	entry_set_result(e, buf);
}

static void entry_apply_result(struct queue *q, struct entry *e, const struct queue_result *r,
			       int64_t now, double jitter)
{
	switch (r->outcome) {
	case QUEUE_UPLOADED:
		e->state = FILE_UPLOADED;
		set_stored_result(e, r->item, r->text);
		break;
	case QUEUE_DUPLICATE:
		/* Our own lost attempt may be the copy the service holds. */
		e->state = e->maybe_sent ? FILE_UPLOADED : FILE_DUPLICATE;
		set_stored_result(e, r->item,
				  e->maybe_sent
					  ? "stored by an earlier attempt whose reply was lost"
					  : r->text);
		break;
	case QUEUE_FAILED:
		e->state = FILE_FAILED;
		e->maybe_sent = e->maybe_sent || r->maybe_sent;
		entry_set_result(e, r->text);
		break;
	case QUEUE_RETRY: entry_schedule_retry(q, e, r, now, jitter); break;
	case QUEUE_REQUEUE: entry_make_pending(q, e, now + r->retry_after_ms); break;
	case QUEUE_SOLO:
		e->solo = true;
		entry_set_result(e, r->text);
		entry_make_pending(q, e, now);
		break;
	}
}

bool state_is_final(enum file_state s)
{
	return s == FILE_UPLOADED || s == FILE_DUPLICATE || s == FILE_FAILED;
}

void queue_report(struct queue *q, const struct queue_result *results, size_t n, int64_t now)
{
	struct journal_record *done = calloc(n ? n : 1, sizeof(*done));
	size_t ndone = 0;
	double jitter;

	pthread_mutex_lock(&q->lock);
	/* One draw per request: files that failed together retry together. */
	jitter = (double)rand_r(&q->rand_state) / RAND_MAX;
	for (size_t i = 0; i < n; i++) {
		const struct queue_result *r = &results[i];
		struct entry *e = entry_find(q, r->item->ino);

		/* Removed, rewritten or moved meanwhile: this result is stale. */
		if (!e || e->state != FILE_UPLOADING || e->generation != r->item->generation)
			continue;
		entry_apply_result(q, e, r, now, jitter);
		if (r->outcome != QUEUE_SOLO)
			e->solo = false;
		if (state_is_final(e->state))
			annot_sample_done(q, e, r->item);
		if (done && state_is_final(e->state))
			done[ndone++] = entry_record(e, JOURNAL_DONE);
	}
	journal_note_many(q, done, ndone);
	annot_refresh_dirty(q, now);
	pthread_mutex_unlock(&q->lock);
	free(done);
}

/* ---- recovery: journal replay, then the spool, which is the truth ---- */

void queue_set_journal(struct queue *q, struct journal *j)
{
	pthread_mutex_lock(&q->lock);
	q->journal = j;
	pthread_mutex_unlock(&q->lock);
}

static bool state_valid(int s)
{
	return s >= 0 && s < FILE_STATE_COUNT;
}

static void replay_into(struct entry *e, const struct journal_record *r)
{
	switch (r->kind) {
	case JOURNAL_WRITING:
		e->state = FILE_WRITING;
		e->maybe_sent = false;
		break;
	case JOURNAL_QUEUED:
		e->state = FILE_PENDING;
		e->size = r->size;
		e->maybe_sent = false;
		break;
	case JOURNAL_SENT: e->maybe_sent = true; break;
	case JOURNAL_DONE:
	case JOURNAL_FILE:
		if (!state_valid(r->state))
			return;
		e->state = (enum file_state)r->state;
		e->size = r->size;
		e->maybe_sent = e->maybe_sent || r->maybe_sent;
		entry_set_result(e, r->result);
		break;
	case JOURNAL_REMOVED: break;
	}
}

void queue_replay(struct queue *q, const struct journal_record *r)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, r->ino);
	if (r->kind == JOURNAL_REMOVED) {
		if (e)
			entry_destroy(q, e);
		goto out;
	}
	if (!e)
		e = entry_create(q, r->ino, r->path ? r->path : "");
	if (e)
		replay_into(e, r);
out:
	pthread_mutex_unlock(&q->lock);
}

/* What a file found in the spool is, given what the journal said. */
static void reconcile_entry(const struct queue *q, struct entry *e, const char *path, uint64_t size,
			    bool known)
{
	if (ignored_reason(path)) {
		e->state = FILE_IGNORED;
	} else if (q->cfg.written_outside && (!known || e->state == FILE_WRITING)) {
		/* Watch mode: new, or written while we were away, maybe still
		 * being written: let it settle; a write postpones it. */
		e->state = FILE_WRITING;
		e->maybe_sent = e->maybe_sent && known;
	} else if (!known) {
		/* No history: send it; a duplicate reply may be our own copy. */
		e->state = FILE_PENDING;
		e->maybe_sent = true;
	} else if (e->state == FILE_WRITING) {
		e->state = FILE_FAILED;
		entry_set_result(e, "interrupted while writing");
	} else if (e->state == FILE_PENDING || e->state == FILE_UPLOADING) {
		e->state = FILE_PENDING;
		if (e->size != size) {
			e->state = FILE_FAILED;
			entry_set_result(
				e, "size differs from when it was closed: damaged by a crash?");
		}
	} else if (e->state == FILE_IGNORED || e->size != size) {
		e->state = FILE_PENDING;
		e->maybe_sent = true;
		entry_set_result(e, NULL);
	}
	/* On an annotation file maybe_sent means "this content was read". */
	if (e->source && (!known || e->size != size))
		e->maybe_sent = false;
	e->size = size;
}

void queue_reconcile(struct queue *q, uint64_t ino, const char *path, uint64_t size)
{
	struct entry *e;
	char *copy = strdup(path);
	bool known;

	if (!copy)
		return;
	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	known = e != NULL;
	if (!e)
		e = entry_create(q, ino, path);
	if (e) {
		free(e->path);
		e->path = copy;
		copy = NULL;
		entry_path_changed(q, e);
		reconcile_entry(q, e, path, size, known);
		e->seen = true;
	}
	pthread_mutex_unlock(&q->lock);
	free(copy);
}

void queue_reconcile_finish(struct queue *q, struct queue_recovery *out)
{
	int64_t now = clock_now_ms();

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct entry *e = q->buckets[i], *next;

		for (; e; e = next) {
			next = e->hash_next;
			if (!e->seen) {
				/* In the journal, gone from the spool. */
				entry_destroy(q, e);
				continue;
			}
			e->seen = false;
			if (e->state == FILE_PENDING) {
				entry_make_pending(q, e, now);
				out->pending++;
			} else if (e->state == FILE_WRITING) {
				e->due_ms = now + q->cfg.settle_ms;
				list_append(q, e, LIST_SETTLING);
				out->pending++;
			} else if (e->state == FILE_FAILED && e->result &&
				   strcmp(e->result, "interrupted while writing") == 0) {
				out->interrupted++;
			} else if (e->source) {
				/* Its samples to come still need what it says. */
				annot_make_due(q, e, false);
			}
			out->files++;
		}
	}
	pthread_mutex_unlock(&q->lock);
}

/* What a file would be after a crash right now. */
static struct journal_record snapshot_record(const struct entry *e)
{
	struct journal_record r = entry_record(e, JOURNAL_FILE);

	if (e->state == FILE_UPLOADING) {
		r.state = FILE_PENDING;
		r.maybe_sent = true;
	} else if (e->state == FILE_WRITING && e->writers == 0) {
		r.state = FILE_PENDING; /* closed, settling */
	}
	return r;
}

static int snapshot_into(void *arg, struct journal *fresh)
{
	struct queue *q = arg;
	struct journal_record batch[256];
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < q->nbuckets && rc == 0; i++) {
		for (struct entry *e = q->buckets[i]; e && rc == 0; e = e->hash_next) {
			batch[n++] = snapshot_record(e);
			if (n == sizeof(batch) / sizeof(batch[0])) {
				rc = journal_append_many(fresh, batch, n);
				n = 0;
			}
		}
	}
	if (rc == 0 && n > 0)
		rc = journal_append_many(fresh, batch, n);
	return rc;
}

int queue_compact_journal(struct queue *q)
{
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	if (q->journal)
		rc = journal_rewrite(q->journal, snapshot_into, q);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void queue_maintain_journal(struct queue *q)
{
	struct journal *j;
	int rc;

	pthread_mutex_lock(&q->lock);
	j = q->journal;
	pthread_mutex_unlock(&q->lock);
	if (!j)
		return;
	rc = journal_sync(j);
	if (rc < 0)
		log_error("cannot sync the queue journal: %s", strerror(-rc));
	/* Keep replay time in proportion to the number of files. */
	if (journal_size(j) > JOURNAL_COMPACT_MIN &&
	    journal_size(j) > (uint64_t)queue_size(q) * JOURNAL_BYTES_PER_FILE) {
		rc = queue_compact_journal(q);
		if (rc < 0)
			log_error("cannot compact the queue journal: %s", strerror(-rc));
	}
}

size_t queue_size(struct queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->nentries;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void queue_pause(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->paused = true;
	pthread_mutex_unlock(&q->lock);
}

void queue_resume(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->paused = false;
	wake_uploader(q);
	pthread_mutex_unlock(&q->lock);
}

bool queue_is_paused(struct queue *q)
{
	bool paused;

	pthread_mutex_lock(&q->lock);
	paused = q->paused;
	pthread_mutex_unlock(&q->lock);
	return paused;
}
