/* queue_events.c: what the front ends (fs*.c for the mount, watch.c)
 * report: files opened, written and closed, renamed and removed, retried
 * (ingestfs(1) "WHEN A FILE IS UPLOADED", "LAYOUT"). */
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

/* ---- a file's content: each step with the lock held, so that the
 * coarse events below take it once and own the order of their steps ---- */

static struct entry *opened_for_writing(struct queue *q, uint64_t ino, const char *path)
{
	struct entry *e = entry_get(q, ino, path);

	if (e) {
		e->writers++;
		/* A reopen for writing postpones a file that has not gone yet. */
		if (e->state == FILE_PENDING || e->state == FILE_WRITING) {
			list_unlink(q, e);
			entry_set_state(q, e, FILE_WRITING);
		}
	}
	return e;
}

static void written(struct queue *q, struct entry *e)
{
	dirs_touch(q, e->path, clock_now_ms());
	e->dirty_handles++;
	entry_reset_attempts(e);
	if (e->state != FILE_WRITING)
		e->write_error = 0;
	if (e->state != FILE_IGNORED) {
		list_unlink(q, e);
		entry_set_state(q, e, FILE_WRITING);
		e->close_journaled = false;
		journal_note(q, e, JOURNAL_WRITING);
		annot_content_changed(q, e);
	}
}

static void flushed(struct queue *q, struct entry *e, uint64_t size)
{
	if (e->dirty_handles > 0)
		e->dirty_handles--;
	/* Another handle that wrote is still open: the content is not final. */
	if (e->dirty_handles == 0 && e->state == FILE_WRITING && !e->write_error) {
		if (size != QUEUE_SIZE_UNKNOWN)
			entry_set_size(q, e, size);
		journal_note(q, e, JOURNAL_QUEUED);
		e->close_journaled = true;
	}
}

static void closed(struct queue *q, struct entry *e, uint64_t size)
{
	char msg[160];
	int64_t now = clock_now_ms();

	if (size != QUEUE_SIZE_UNKNOWN)
		entry_set_size(q, e, size);
	if (e->writers > 0)
		e->writers--;
	if (e->writers > 0 || e->state != FILE_WRITING)
		return;
	if (e->write_error) {
		/* What is on disk is not what the writer meant to write. */
		entry_set_state(q, e, FILE_FAILED);
		snprintf(msg, sizeof(msg),
			 "a write failed (%s): not uploaded; write it again or setfattr retry",
			 strerror(e->write_error));
		e->write_error = 0;
		entry_set_result(e, msg);
		journal_note(q, e, JOURNAL_DONE);
		return;
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
}

void queue_open_write(struct queue *q, uint64_t ino, const char *path)
{
	pthread_mutex_lock(&q->lock);
	opened_for_writing(q, ino, path);
	queue_unlock(q);
}

void queue_written(struct queue *q, uint64_t ino)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e)
		written(q, e);
	queue_unlock(q);
}

void queue_writing(struct queue *q, uint64_t ino, const char *path)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = opened_for_writing(q, ino, path);
	if (e)
		written(q, e);
	queue_unlock(q);
}

void queue_write_failed(struct queue *q, uint64_t ino, int err)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e)
		e->write_error = err;
	queue_unlock(q);
}

void queue_flushed(struct queue *q, uint64_t ino, uint64_t size)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e)
		flushed(q, e, size);
	queue_unlock(q);
}

void queue_closed(struct queue *q, uint64_t ino, uint64_t size, bool unflushed)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e) {
		if (unflushed)
			flushed(q, e, size);
		closed(q, e, size);
	}
	queue_unlock(q);
}

void queue_file_complete(struct queue *q, uint64_t ino, const char *path, uint64_t size)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = opened_for_writing(q, ino, path);
	if (e) {
		written(q, e);
		flushed(q, e, size);
		closed(q, e, size);
	}
	queue_unlock(q);
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
		entry_set_state(q, e, e->parked_state);
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
	entry_set_state(q, e, FILE_IGNORED);
}

/* The rules of ingestfs(1) LAYOUT and WHEN A FILE IS UPLOADED for a file
 * that now lives at NEW_PATH. */
static void entry_moved(struct queue *q, struct entry *e, char *new_path)
{
	bool dest_changed = !same_destination(e->path, new_path);
	bool was_source = annot_is_known_source(e);
	char *old_path = e->path;
	int64_t now = clock_now_ms();

	annot_touch(q, e); /* the annotation files that named it by its old name */
	entry_set_path(q, e, new_path);
	/* Without a look at the spool at start, the journal must know. */
	journal_note(q, e, JOURNAL_PATH);
	if (was_source != annot_is_known_source(e) && !ignored_reason(q, new_path) &&
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
	if (ignored_reason(q, new_path)) {
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
		entry_set_state(q, e, FILE_WRITING);
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

/* The entries below DIR, as an array: what is done to each may bring
 * others back from the index, which may grow the table being walked. */
static struct entry **entries_below(struct queue *q, const char *dir, int state, size_t *n)
{
	size_t dlen = strlen(dir);
	struct entry **list;

	entries_load_below(q, dir, state);
	*n = 0;
	list = calloc(q->nentries ? q->nentries : 1, sizeof(*list));
	for (size_t i = 0; list && i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next) {
			if (layout_below(e->path, dir, dlen, false))
				list[(*n)++] = e;
		}
	}
	if (!list)
		log_error("out of memory: a change to every file below %s was left undone", dir);
	return list;
}

static void dir_moved(struct queue *q, const char *from, const char *to)
{
	size_t flen = strlen(from), n;
	struct entry **list = entries_below(q, from, -1, &n);

	for (size_t i = 0; i < n; i++) {
		char *np = join_moved_path(to, list[i]->path + flen);

		if (np)
			entry_moved(q, list[i], np);
	}
	free(list);
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
			entry_set_size(q, e, size);
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
		entry_set_size(q, e,
			       size); /* fresh from the rename: a close may not have known it */
	if (np)
		entry_moved(q, e, np);
out:
	queue_unlock(q);
}

void queue_relinked(struct queue *q, uint64_t ino, const char *from, const char *to)
{
	struct entry *e;
	char *np = strdup(to);

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e && np && strcmp(e->path, from) == 0) {
		free(entry_set_path(q, e, np));
		np = NULL;
		journal_note(q, e, JOURNAL_PATH);
	}
	queue_unlock(q);
	free(np);
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
	queue_unlock(q);
}

void queue_forget(struct queue *q, const char *path, bool is_dir)
{
	struct entry *one, **list;
	size_t n;

	pthread_mutex_lock(&q->lock);
	if (!is_dir) {
		one = entry_find_path(q, path);
		if (one) {
			journal_note(q, one, JOURNAL_REMOVED);
			entry_destroy(q, one);
		}
		goto out;
	}
	list = entries_below(q, path, -1, &n);
	for (size_t i = 0; i < n; i++) {
		journal_note(q, list[i], JOURNAL_REMOVED);
		entry_destroy(q, list[i]);
	}
	free(list);
out:
	queue_unlock(q);
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
	queue_unlock(q);
}

bool queue_ino_of(struct queue *q, const char *path, uint64_t *ino)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find_path(q, path);
	if (e)
		*ino = e->ino;
	queue_unlock(q);
	return e != NULL;
}

bool queue_path_of(struct queue *q, uint64_t ino, char *buf, size_t size)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e)
		snprintf(buf, size, "%s", e->path);
	queue_unlock(q);
	return e != NULL;
}

void queue_rescan_begin(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next)
			e->seen = false;
	}
	queue_unlock(q);
}

void queue_rescan_seen(struct queue *q, uint64_t ino)
{
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, ino);
	if (e)
		e->seen = true;
	queue_unlock(q);
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
	queue_unlock(q);
}

/* Send E again: a failed file, or with RESEND any final one; hurry one
 * that waits for its next attempt.  Whether anything was done. */
bool entry_retry(struct queue *q, struct entry *e, bool resend, int64_t now)
{
	bool again = e->state == FILE_FAILED ||
		     (resend && (e->state == FILE_UPLOADED || e->state == FILE_DUPLICATE));
	bool keep_sent;

	/* Retention is removing it: nothing to send any more. */
	if (e->retiring)
		return false;
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
	queue_unlock(q);
	return rc;
}

size_t queue_retry_below(struct queue *q, const char *dir, bool resend)
{
	size_t n, done = 0;
	int64_t now = clock_now_ms();
	struct entry **list;

	pthread_mutex_lock(&q->lock);
	/* A retry concerns failed files only: the index's others stay out. */
	list = entries_below(q, strcmp(dir, ".") == 0 ? "" : dir, resend ? -1 : FILE_FAILED, &n);
	for (size_t i = 0; i < n; i++) {
		if (entry_retry(q, list[i], resend, now))
			done++;
	}
	free(list);
	queue_unlock(q);
	return done;
}
