/* queue.c: making and freeing the queue.  The queue is queue_table.c,
 * queue_events.c, queue_schedule.c, queue_status.c, queue_recovery.c and
 * queue_annot.c; what they share is in queue_i.h. */
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

struct queue *queue_new(const struct queue_config *cfg)
{
	struct queue *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->cfg = *cfg;
	if (!q->cfg.annotation_wait_ms)
		q->cfg.annotation_wait_ms = 60000;
	if (!q->cfg.evict_after_ms)
		q->cfg.evict_after_ms = 5000;
	if (!q->cfg.checkpoint_every_ms)
		q->cfg.checkpoint_every_ms = 10000;
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
	counts_free(q);
	for (size_t i = 0; i < q->nbuckets; i++) {
		struct entry *e = q->buckets[i], *next;

		for (; e; e = next) {
			next = e->hash_next;
			entry_free(e);
		}
	}
	free(q->buckets);
	free(q->path_buckets);
	inoset_free(&q->tombstones);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

void queue_set_waker(struct queue *q, void (*wake)(void *), void *arg)
{
	pthread_mutex_lock(&q->lock);
	q->wake = wake;
	q->wake_arg = arg;
	queue_unlock(q);
}

size_t queue_size(struct queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->nentries;
	queue_unlock(q);
	return n;
}
