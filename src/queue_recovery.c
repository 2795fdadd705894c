/* queue_recovery.c: after a stop or a crash: the journal replayed, the
 * spool reconciled with it; and the journal kept short (compaction). */
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

void queue_set_journal(struct queue *q, struct journal *j)
{
	pthread_mutex_lock(&q->lock);
	q->journal = j;
	queue_unlock(q);
}

static bool state_valid(int s)
{
	return s >= 0 && s < FILE_STATE_COUNT;
}

static void replay_into(struct queue *q, struct entry *e, const struct journal_record *r)
{
	switch (r->kind) {
	case JOURNAL_WRITING:
		entry_set_state(q, e, FILE_WRITING);
		e->maybe_sent = false;
		break;
	case JOURNAL_QUEUED:
		entry_set_state(q, e, FILE_PENDING);
		entry_set_size(q, e, r->size);
		e->maybe_sent = false;
		break;
	case JOURNAL_SENT: e->maybe_sent = true; break;
	case JOURNAL_DONE:
	case JOURNAL_FILE:
		if (!state_valid(r->state))
			return;
		/* A result that came since the last checkpoint is not in the
		 * index's lifetime totals yet; a snapshot record is no news. */
		if (r->kind == JOURNAL_DONE && e->state != (enum file_state)r->state) {
			entry_set_state(q, e, (enum file_state)r->state);
			lifetime_count(q, e);
		}
		entry_set_state(q, e, (enum file_state)r->state);
		entry_set_size(q, e, r->size);
		e->maybe_sent = e->maybe_sent || r->maybe_sent;
		entry_set_result(e, r->result);
		break;
	case JOURNAL_REMOVED:
	case JOURNAL_PATH: break;
	}
}

/* Every record but a removal names the file as it was then. */
static void replay_path(struct queue *q, struct entry *e, const struct journal_record *r)
{
	char *path;

	if (!r->path || !r->path[0] || strcmp(r->path, e->path) == 0 || !(path = strdup(r->path)))
		return;
	free(entry_set_path(q, e, path));
}

void queue_replay(struct queue *q, const struct journal_record *r)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	q->replaying = true;
	e = entry_find(q, r->ino);
	if (r->kind == JOURNAL_REMOVED) {
		if (e)
			entry_destroy(q, e);
		goto out;
	}
	if (!e)
		e = entry_create(q, r->ino, r->path ? r->path : "");
	if (e) {
		replay_path(q, e, r);
		replay_into(q, e, r);
	}
out:
	q->replaying = false;
	queue_unlock(q);
}

/* What a file found in the spool is, given what the journal said. */
static void reconcile_entry(struct queue *q, struct entry *e, const char *path, uint64_t size,
			    bool known)
{
	if (ignored_reason(q, path)) {
		entry_set_state(q, e, FILE_IGNORED);
	} else if (q->cfg.written_outside && (!known || e->state == FILE_WRITING)) {
		/* Watch mode: new, or written while we were away, maybe still
		 * being written: let it settle; a write postpones it. */
		entry_set_state(q, e, FILE_WRITING);
		e->maybe_sent = e->maybe_sent && known;
	} else if (!known) {
		/* No history: send it; a duplicate reply may be our own copy. */
		entry_set_state(q, e, FILE_PENDING);
		e->maybe_sent = true;
	} else if (e->state == FILE_WRITING) {
		entry_set_state(q, e, FILE_FAILED);
		entry_set_result(e, "interrupted while writing");
	} else if (e->state == FILE_PENDING || e->state == FILE_UPLOADING) {
		entry_set_state(q, e, e->size != size ? FILE_FAILED : FILE_PENDING);
		if (e->size != size)
			entry_set_result(
				e, "size differs from when it was closed: damaged by a crash?");
	} else if (e->state == FILE_IGNORED || e->size != size) {
		entry_set_state(q, e, FILE_PENDING);
		e->maybe_sent = true;
		entry_set_result(e, NULL);
	}
	/* On an annotation file maybe_sent means "this content was read". */
	if (annot_is_known_source(e) && (!known || e->size != size))
		e->maybe_sent = false;
	entry_set_size(q, e, size);
}

void queue_reconcile_begin(struct queue *q, bool whole_spool)
{
	pthread_mutex_lock(&q->lock);
	q->scan_whole = whole_spool;
	queue_unlock(q);
}

int queue_resident_files(struct queue *q, struct queue_file_ref **out, size_t *n)
{
	struct queue_file_ref *list;
	int rc = 0;

	*n = 0;
	pthread_mutex_lock(&q->lock);
	list = calloc(q->nentries ? q->nentries : 1, sizeof(*list));
	for (size_t i = 0; list && i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next) {
			list[*n] = (struct queue_file_ref){e->ino, strdup(e->path)};
			if (list[*n].path)
				(*n)++;
		}
	}
	queue_unlock(q);
	if (!list)
		rc = -ENOMEM;
	*out = list;
	return rc;
}

/* A file of the index found where and as the index says: it stays out
 * of memory (a scan after a crash must not bring back a million files). */
static bool as_indexed(struct queue *q, uint64_t ino, const char *path, uint64_t size,
		       struct store_row *row)
{
	bool same = strcmp(row->path, path) == 0 && row->size == size &&
		    (bool)ignored_reason(q, path) == (row->state == FILE_IGNORED);

	if (same && inoset_add(&q->scan_seen, ino) == 0)
		return true;
	entry_revive(q, row);
	return false;
}

void queue_reconcile(struct queue *q, uint64_t ino, const char *path, uint64_t size)
{
	struct entry *e;
	struct store_row row;
	char *copy = strdup(path);
	bool known;

	if (!copy)
		return;
	pthread_mutex_lock(&q->lock);
	e = entry_find_resident(q, ino);
	if (!e && q->store && !inoset_has(&q->tombstones, ino) &&
	    store_get(q->store, ino, &row) == 0) {
		bool skip = as_indexed(q, ino, path, size, &row);

		store_row_free(&row);
		if (skip)
			goto out;
		e = entry_find_resident(q, ino);
	}
	known = e != NULL;
	if (!e)
		e = entry_create(q, ino, path);
	if (e) {
		/* Mostly where the journal or the index had it already. */
		if (strcmp(e->path, path) != 0) {
			free(entry_set_path(q, e, copy));
			copy = NULL;
		}
		reconcile_entry(q, e, path, size, known);
		e->seen = true;
	}
out:
	queue_unlock(q);
	free(copy);
}

/* After a whole scan: rows of files the scan did not find are gone. */
static bool forget_unseen_row(void *arg, const struct store_row *row)
{
	struct queue *q = arg;
	struct entry *e;

	if (!inoset_has(&q->scan_seen, row->ino) && (e = entry_revive(q, row)))
		entry_destroy(q, e);
	return true;
}

static void forget_unseen_rows(struct queue *q)
{
	if (q->store && q->scan_whole &&
	    store_each_row(q->store, NULL, -1, forget_unseen_row, q) < 0)
		log_error("cannot read the state index: files removed while ingestfs was "
			  "down may still be counted");
	inoset_free(&q->scan_seen);
	q->scan_whole = false;
}

void queue_reconcile_finish(struct queue *q, struct queue_recovery *out)
{
	int64_t now = clock_now_ms();

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&q->lock);
	forget_unseen_rows(q);
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
	queue_unlock(q);
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

/* Every entry as a snapshot record, and every index row still to be
 * deleted as a removal, encoded, under the lock. */
static int snapshot(struct queue *q, char **text, size_t *len)
{
	size_t all = q->nentries + q->tombstones.n, n = 0;
	struct journal_record *r = calloc(all ? all : 1, sizeof(*r));
	uint64_t *dead = calloc(q->tombstones.n ? q->tombstones.n : 1, sizeof(*dead));
	int rc;

	if (!r || !dead) {
		free(r);
		free(dead);
		return -ENOMEM;
	}
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next)
			r[n++] = snapshot_record(e);
	}
	inoset_list(&q->tombstones, dead);
	for (size_t i = 0; i < q->tombstones.n; i++)
		r[n++] = (struct journal_record){.kind = JOURNAL_REMOVED, .ino = dead[i]};
	free(dead);
	rc = journal_encode(r, n, text, len);
	free(r);
	return rc;
}

/* The snapshot is taken under the lock, written without it: no one waits
 * for the disk (journal.h). */
int queue_compact_journal(struct queue *q)
{
	char *text = NULL;
	size_t len = 0;
	int rc = 0;

	pthread_mutex_lock(&q->lock);
	if (q->journal) {
		rc = snapshot(q, &text, &len);
		if (rc == 0)
			journal_cut(q->journal);
	}
	queue_unlock(q);
	if (rc == 0 && q->journal)
		rc = journal_replace(q->journal, text ? text : "", len);
	free(text);
	return rc;
}

void queue_maintain_journal(struct queue *q)
{
	struct journal *j;
	int rc;

	pthread_mutex_lock(&q->lock);
	j = q->journal;
	queue_unlock(q);
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
