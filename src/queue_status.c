/* queue_status.c: what the queue tells people: a file's status and
 * result, a folder's counts (ingestfs(1) "STATUS"). */
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
#include "store.h"
#include "text.h"
#include "vocab.h"

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
	queue_unlock(q);
	for (size_t i = 0; i < n; i++) {
		if (list[i].path)
			fn(arg, list[i].path, list[i].state, list[i].result);
		free(list[i].path);
		free(list[i].result);
	}
	free(list);
}

int queue_file_status(struct queue *q, uint64_t ino, enum file_state *state, char *result,
		      size_t result_size)
{
	struct entry *e;
	int rc = 0;

	struct store_row row;

	pthread_mutex_lock(&q->lock);
	/* A look does not bring a file back into memory. */
	e = entry_find_resident(q, ino);
	if (e) {
		*state = e->state;
		if (result && result_size)
			snprintf(result, result_size, "%s", e->result ? e->result : "");
	} else if (q->store && !inoset_has(&q->tombstones, ino) &&
		   store_get(q->store, ino, &row) == 0) {
		*state = (unsigned)row.state < FILE_STATE_COUNT ? (enum file_state)row.state
								: FILE_FAILED;
		if (result && result_size)
			snprintf(result, result_size, "%s", row.result ? row.result : "");
		store_row_free(&row);
	} else {
		rc = -ENOENT;
	}
	queue_unlock(q);
	return rc;
}

/* ---- counts per folder ---- */

struct dir_counts {
	char *dir; /* "" is the root */
	uint64_t hash;
	struct queue_counts c;
	int64_t active_ms; /* when a file below was last made or written */
	size_t datasets;   /* dataset files read below (queue_dataset.c) */
	size_t unread;     /* files that may speak for this folder, not read yet */
	size_t imminent;   /* of them, those being read now */
	struct dir_counts *next;
};

static struct dir_counts *dir_find(struct queue *q, const char *dir, size_t len, uint64_t h)
{
	if (!q->ndirs_buckets)
		return NULL;
	for (struct dir_counts *d = q->dirs[h & (q->ndirs_buckets - 1)]; d; d = d->next) {
		if (d->hash == h && strlen(d->dir) == len && memcmp(d->dir, dir, len) == 0)
			return d;
	}
	return NULL;
}

static void dirs_grow(struct queue *q)
{
	size_t n = q->ndirs_buckets ? q->ndirs_buckets * 2 : 256;
	struct dir_counts **fresh = calloc(n, sizeof(*fresh));

	if (!fresh)
		return; /* longer chains */
	for (size_t i = 0; i < q->ndirs_buckets; i++) {
		struct dir_counts *d = q->dirs[i], *next;

		for (; d; d = next) {
			next = d->next;
			d->next = fresh[d->hash & (n - 1)];
			fresh[d->hash & (n - 1)] = d;
		}
	}
	free(q->dirs);
	q->dirs = fresh;
	q->ndirs_buckets = n;
}

static struct dir_counts *dir_get(struct queue *q, const char *dir, size_t len)
{
	uint64_t h = text_hash(dir, len);
	struct dir_counts *d = dir_find(q, dir, len, h);

	if (d)
		return d;
	if (q->ndirs >= q->ndirs_buckets)
		dirs_grow(q);
	if (!q->ndirs_buckets || !(d = calloc(1, sizeof(*d))) || !(d->dir = strndup(dir, len))) {
		free(d);
		return NULL; /* out of memory: that folder's summary is short */
	}
	d->hash = h;
	d->next = q->dirs[h & (q->ndirs_buckets - 1)];
	q->dirs[h & (q->ndirs_buckets - 1)] = d;
	q->ndirs++;
	return d;
}

int64_t queue_oldest_waiting(struct queue *q, int64_t now_ms)
{
	int64_t oldest = now_ms;

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->nbuckets; i++) {
		for (struct entry *e = q->buckets[i]; e; e = e->hash_next) {
			if ((e->state == FILE_PENDING || e->state == FILE_UPLOADING) &&
			    e->waiting_ms < oldest)
				oldest = e->waiting_ms;
		}
	}
	queue_unlock(q);
	return now_ms - oldest;
}

void counts_add_dir(struct queue *q, const char *dir, enum file_state state, uint64_t n,
		    uint64_t bytes)
{
	struct dir_counts *d = dir_get(q, dir, strlen(dir));

	if (d) {
		d->c.n[state] += (size_t)n;
		d->c.bytes[state] += bytes;
	}
}

/* Every folder above PATH (the folders of PATH's own path), from the
 * nearest: FN with each. */
static void each_folder_above(struct queue *q, const char *path,
			      void (*fn)(struct dir_counts *d, void *arg), void *arg)
{
	size_t len = strlen(path);

	do {
		struct dir_counts *d;

		while (len > 0 && path[len - 1] != '/')
			len--;
		len = len > 0 ? len - 1 : 0;
		d = dir_get(q, path, len);
		if (d)
			fn(d, arg);
	} while (len > 0);
}

struct count_change {
	const struct entry *e;
	int sign;
};

static void add_entry(struct dir_counts *d, void *arg)
{
	const struct count_change *c = arg;

	d->c.n[c->e->state] += (size_t)(ssize_t)c->sign;
	d->c.bytes[c->e->state] += (uint64_t)(int64_t)c->sign * c->e->size;
}

/* E counts (SIGN +1) or stops counting (-1) in every folder above it. */
void counts_add(struct queue *q, const struct entry *e, int sign)
{
	struct count_change c = {e, sign};

	each_folder_above(q, e->path, add_entry, &c);
}

static void set_active(struct dir_counts *d, void *arg)
{
	d->active_ms = *(const int64_t *)arg;
}

void dirs_touch(struct queue *q, const char *path, int64_t now)
{
	each_folder_above(q, path, set_active, &now);
}

static void add_dataset(struct dir_counts *d, void *arg)
{
	d->datasets += (size_t)(ssize_t) * (const int *)arg;
}

void dirs_count_dataset(struct queue *q, const char *path, int sign)
{
	each_folder_above(q, path, add_dataset, &sign);
}

bool dir_busy_with_dataset(struct queue *q, const char *dir, size_t len, int64_t now,
			   int64_t quiet_ms, int64_t *quiet_at)
{
	struct dir_counts *d = dir_find(q, dir, len, text_hash(dir, len));

	if (!d)
		return false;
	*quiet_at = d->active_ms + quiet_ms;
	return now < *quiet_at;
}

bool dirs_count_unread(struct queue *q, const char *dir, bool imminent, int sign)
{
	struct dir_counts *d = dir_get(q, dir, strlen(dir));

	if (!d)
		return false; /* out of memory: not counted, so no wait for it */
	*(imminent ? &d->imminent : &d->unread) += (size_t)(ssize_t)sign;
	return true;
}

bool dir_has_unread(struct queue *q, const char *dir, size_t len, bool imminent)
{
	struct dir_counts *d = dir_find(q, dir, len, text_hash(dir, len));

	return d && (imminent ? d->imminent : d->unread) > 0;
}

bool dir_has_dataset(struct queue *q, const char *dir, size_t len)
{
	struct dir_counts *d = dir_find(q, dir, len, text_hash(dir, len));

	return d && d->datasets > 0;
}

void counts_free(struct queue *q)
{
	for (size_t i = 0; i < q->ndirs_buckets; i++) {
		struct dir_counts *d = q->dirs[i], *next;

		for (; d; d = next) {
			next = d->next;
			free(d->dir);
			free(d);
		}
	}
	free(q->dirs);
	q->dirs = NULL;
	q->ndirs_buckets = q->ndirs = 0;
}

void queue_count(struct queue *q, const char *dir, struct queue_counts *out)
{
	size_t len = strcmp(dir, ".") == 0 ? 0 : strlen(dir);
	struct dir_counts *d;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&q->lock);
	d = dir_find(q, dir, len, text_hash(dir, len));
	if (d)
		*out = d->c;
	queue_unlock(q);
}

void queue_summary_text(const struct queue_counts *c, char *buf, size_t size)
{
	snprintf(buf, size, SUMMARY_FORMAT, c->n[FILE_UPLOADED], c->n[FILE_DUPLICATE],
		 c->n[FILE_PENDING] + c->n[FILE_WRITING], c->n[FILE_UPLOADING], c->n[FILE_FAILED],
		 c->n[FILE_IGNORED]);
}

void queue_bytes_text(const struct queue_counts *c, char *buf, size_t size)
{
	uint64_t done = c->bytes[FILE_UPLOADED] + c->bytes[FILE_DUPLICATE];
	uint64_t total =
		done + c->bytes[FILE_WRITING] + c->bytes[FILE_PENDING] + c->bytes[FILE_UPLOADING];

	snprintf(buf, size, BYTES_FORMAT, (unsigned long long)done, (unsigned long long)total);
}
