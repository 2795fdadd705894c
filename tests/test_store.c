/* Unit tests of store.c (the state index), inoset.c, and the queue over
 * them: eviction at checkpoints, revival, counts and lifetime totals that
 * survive a reopen. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "inoset.h"
#include "queue.h"
#include "store.h"
#include "tap.h"

static char dir[] = "/tmp/ingestfs-test-store-XXXXXX";

static void test_inoset(void)
{
	struct inoset s = {0};
	size_t n = 0;
	int bad = 0;

	for (uint64_t i = 1; i <= 5000; i++)
		inoset_add(&s, i * 7919);
	is_int(s.n, 5000, "5000 members");
	for (uint64_t i = 1; i <= 5000; i += 2)
		inoset_remove(&s, i * 7919);
	for (uint64_t i = 1; i <= 5000; i++)
		bad += inoset_has(&s, i * 7919) != (i % 2 == 0);
	is_int(bad, 0, "removing half leaves exactly the other half");
	inoset_add(&s, 2 * 7919);
	is_int(s.n, 2500, "adding a member again changes nothing");
	ok(!inoset_has(&s, 0) && inoset_add(&s, 0) == 0 && s.n == 2500, "0 is never a member");
	{
		uint64_t *all = calloc(s.n, sizeof(*all));

		inoset_list(&s, all);
		for (size_t i = 0; i < s.n; i++)
			n += all[i] % (2 * 7919) == 0;
		free(all);
	}
	is_int(n, 2500, "the list has every member");
	inoset_free(&s);
}

static struct store_row row(uint64_t ino, const char *path, int state, uint64_t size)
{
	return (struct store_row){.ino = ino,
				  .path = (char *)path,
				  .state = state,
				  .size = size,
				  .result = "stored-name",
				  .final_ms = (int64_t)ino * 1000};
}

static uint64_t counted_n, counted_bytes;

static void count_root(void *arg, const char *d, int state, uint64_t n, uint64_t bytes)
{
	if (strcmp(d, arg) == 0 && state == FILE_UPLOADED) {
		counted_n += n;
		counted_bytes += bytes;
	}
}

static void test_store(void)
{
	struct store *s;
	struct store_row puts[3] = {row(1, "training/a/1.jpg", FILE_UPLOADED, 10),
				    row(2, "training/a/2.jpg", FILE_UPLOADED, 20),
				    row(3, "training/b/3.jpg", FILE_DUPLICATE, 30)};
	struct store_totals t = {.uploaded = 2, .duplicate = 1, .bytes = 30}, back;
	struct store_row got, oldest[4];
	uint64_t del = 2;
	size_t n;
	char err[256];

	is_int(store_open(dir, &s, err, sizeof(err)), 0, "the index opens: %s", err);
	ok(!store_was_clean(s), "a new index was never stopped cleanly");
	is_int(store_apply(s, NULL, 0, puts, 3, &t), 0, "three rows in one transaction");
	is_int(store_get(s, 2, &got), 0, "a row by inode");
	is_str(got.path, "training/a/2.jpg", "with its path");
	is_str(got.result, "stored-name", "and result");
	store_row_free(&got);
	is_int(store_get_path(s, "training/b/3.jpg", &got), 0, "a row by path");
	is_int(got.ino, 3, "the right one");
	store_row_free(&got);
	is_int(store_get(s, 9, &got), -ENOENT, "an unknown inode is -ENOENT");
	counted_n = counted_bytes = 0;
	store_each_count(s, count_root, "training");
	ok(counted_n == 2 && counted_bytes == 30, "counts per folder include subfolders");
	is_int(store_apply(s, &del, 1, NULL, 0, NULL), 0, "a row deleted");
	counted_n = counted_bytes = 0;
	store_each_count(s, count_root, "training/a");
	ok(counted_n == 1 && counted_bytes == 10, "and the counts follow");
	is_int(store_oldest(s, NULL, 5000, 4, oldest, &n), 0, "the oldest uploads");
	ok(n == 2 && oldest[0].ino == 1 && oldest[1].ino == 3,
	   "oldest first, uploaded or duplicate");
	for (size_t i = 0; i < n; i++)
		store_row_free(&oldest[i]);
	is_int(store_set_clean(s, true), 0, "marked clean");
	store_close(s);
	is_int(store_open(dir, &s, err, sizeof(err)), 0, "and opens again");
	ok(store_was_clean(s), "clean");
	store_totals(s, &back);
	ok(back.uploaded == 2 && back.duplicate == 1 && back.bytes == 30, "lifetime totals kept");
	store_close(s);
}

/* The queue over an index: what is over leaves memory at a checkpoint
 * and comes back when something happens to it. */
static void test_queue_eviction(void)
{
	struct queue *q = queue_new(&(struct queue_config){.settle_ms = 0, .batch_max = 10});
	struct queue_counts c;
	struct queue_batch b = {0};
	struct queue_result r;
	struct store *s;
	struct store_totals life;
	enum file_state st;
	char err[256], res[64], path[64];

	store_open(dir, &s, err, sizeof(err));
	queue_set_store(q, s);
	queue_file_complete(q, 100, "training/cam/x.jpg", 5);
	queue_tick(q, clock_now_ms());
	is_int(queue_take_batch(q, clock_now_ms(), &b), 1, "a file goes");
	if (b.count != 1)
		return;
	r = (struct queue_result){.item = &b.items[0], .outcome = QUEUE_UPLOADED, .text = "x.1"};
	queue_report(q, &r, 1, clock_now_ms());
	queue_batch_free(&b);
	is_int(queue_size(q), 1, "it is in memory");
	is_int(queue_checkpoint(q, true), 0, "a checkpoint");
	is_int(queue_size(q), 0, "takes it out of memory");
	is_int(queue_file_status(q, 100, &st, res, sizeof(res)), 0, "its status is still known");
	ok(st == FILE_UPLOADED && strcmp(res, "x.1") == 0, "from the index");
	is_int(queue_size(q), 0, "without bringing it back");
	queue_count(q, "training/cam", &c);
	is_int(c.n[FILE_UPLOADED], 1, "the folder counts it");
	queue_renamed(q, "training/cam/x.jpg", "training/cam/y.jpg", 100, 5, false);
	is_int(queue_size(q), 1, "a rename brings it back");
	ok(queue_path_of(q, 100, path, sizeof(path)) && strcmp(path, "training/cam/y.jpg") == 0,
	   "under its new name");
	queue_count(q, "training/cam", &c);
	is_int(c.n[FILE_UPLOADED], 1, "counted once");
	queue_removed(q, 100);
	queue_count(q, "training/cam", &c);
	is_int(c.n[FILE_UPLOADED], 0, "removed: counted no more");
	ok(queue_file_status(q, 100, &st, res, sizeof(res)) == -ENOENT, "and unknown at once");
	queue_checkpoint(q, true);
	queue_lifetime(q, &life);
	is_int(life.uploaded, 3, "lifetime totals: two from before and this one");
	queue_free(q);
	store_close(s);
	store_open(dir, &s, err, sizeof(err));
	q = queue_new(&(struct queue_config){.settle_ms = 0, .batch_max = 10});
	queue_set_store(q, s);
	queue_count(q, "training", &c);
	is_int(c.n[FILE_UPLOADED] + c.n[FILE_DUPLICATE], 2, "counts come back from the index");
	ok(queue_file_status(q, 100, &st, res, sizeof(res)) == -ENOENT,
	   "the removed file's row is gone");
	queue_free(q);
	store_close(s);
}

int main(void)
{
	char cmd[128];

	if (!mkdtemp(dir))
		return 1;
	test_inoset();
	test_store();
	test_queue_eviction();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# could not remove %s\n", dir);
	return done_testing();
}
