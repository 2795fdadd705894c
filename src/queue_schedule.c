/* queue_schedule.c: when files go: settle, linger, batches, the results
 * of requests and the retry schedule (ingestfs(1) "RETRIES"). */
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

void entry_make_pending(struct queue *q, struct entry *e, int64_t due_ms)
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
		entry_set_state(q, e, FILE_FAILED);
		snprintf(msg, sizeof(msg), "file is larger than the service's limit of %llu bytes",
			 (unsigned long long)LAYOUT_MAX_FILE_SIZE);
		entry_set_result(e, msg);
		return;
	}
	entry_set_state(q, e, FILE_PENDING);
	e->due_ms = due_ms;
	list_append(q, e, LIST_PENDING);
	annot_touch(q, e);
	wake_uploader(q);
}

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
	queue_unlock(q);
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
	it->boxes_normalized = p->boxes_normalized;
	if (p->note && !(it->note = strdup(p->note)))
		goto fail;
	for (unsigned i = 0; i < p->nfrom; i++)
		it->from[it->nfrom++] = annot_ref(p->from[i]);
	b->count++;
	return 0;
fail:
	free(it->path);
	free(it->note);
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
	queue_unlock(q);
	free(r);
}

static void plan_free(struct sample_plan *p)
{
	free(p->owned);
	free(p->note);
	p->owned = p->note = NULL;
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
		if (e->due_ms > now)
			continue;
		if (!annot_plan(q, e, now, &plan)) {
			plan_free(&plan);
			continue;
		}
		if (!started) {
			if (batch_start(q, b, &plan) < 0) {
				plan_free(&plan);
				break;
			}
			first = plan;
			first.owned = first.note = NULL; /* PLAN's, freed below */
			started = true;
		}
		if (!batch_takes(q, b, &first, e, &plan, bytes, send_name_of(e, &plan))) {
			plan_free(&plan);
			continue;
		}
		plan_free(&plan);
		bytes += e->size;
		list_unlink(q, e);
		entry_set_state(q, e, FILE_UPLOADING);
		/* Sent alone to learn its own verdict. */
		if (e->solo)
			break;
	}
out:
	queue_unlock(q);
	if (started && b->count == 0)
		queue_batch_free(b);
	return b->count;
}

void queue_batch_free(struct queue_batch *b)
{
	for (size_t i = 0; b->items && i < b->count; i++) {
		free(b->items[i].path);
		free(b->items[i].send_name);
		free(b->items[i].note);
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

	snprintf(buf, sizeof(buf), "%s%s%s%s%s%s", text,
		 it->info ? " (labels from info.labels)" : "", it->note ? " (" : "",
		 it->note ? it->note : "", it->note ? ")" : "",
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
		entry_set_state(q, e, FILE_UPLOADED);
		set_stored_result(e, r->item, r->text);
		break;
	case QUEUE_DUPLICATE:
		/* Our own lost attempt may be the copy the service holds. */
		entry_set_state(q, e, e->maybe_sent ? FILE_UPLOADED : FILE_DUPLICATE);
		set_stored_result(e, r->item,
				  e->maybe_sent
					  ? "stored by an earlier attempt whose reply was lost"
					  : r->text);
		break;
	case QUEUE_FAILED:
		entry_set_state(q, e, FILE_FAILED);
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
	queue_unlock(q);
	free(done);
}

void queue_pause(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->paused = true;
	queue_unlock(q);
}

void queue_resume(struct queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->paused = false;
	wake_uploader(q);
	queue_unlock(q);
}

bool queue_is_paused(struct queue *q)
{
	bool paused;

	pthread_mutex_lock(&q->lock);
	paused = q->paused;
	queue_unlock(q);
	return paused;
}
