/* Unit tests of queue.c: the per-file state machine, on a fake clock. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "layout.h"
#include "queue.h"
#include "tap.h"

static int64_t fake_now = 1000000;
static int64_t fake_clock(void)
{
	return fake_now;
}

static struct queue *new_queue(unsigned settle)
{
	struct queue_config cfg = {.settle_ms = settle,
				   .batch_max = 3,
				   .batch_bytes_max = 1000,
				   .backoff_min_ms = 1000,
				   .backoff_max_ms = 300000,
				   /* .json files here are samples, not maybe COCO
				    * files to be read first (tests/mount_datasets.t) */
				   .no_datasets = true};

	return queue_new(&cfg);
}

static enum file_state state(struct queue *q, uint64_t ino)
{
	enum file_state s = FILE_STATE_COUNT;

	queue_file_status(q, ino, &s, NULL, 0);
	return s;
}

static void write_file(struct queue *q, uint64_t ino, const char *path, uint64_t size)
{
	queue_file_complete(q, ino, path, size);
}

static void report_all(struct queue *q, struct queue_batch *b, enum queue_outcome o, bool maybe)
{
	struct queue_result r[8];

	for (size_t i = 0; i < b->count; i++)
		r[i] = (struct queue_result){
			.item = &b->items[i], .outcome = o, .text = "t", .maybe_sent = maybe};
	queue_report(q, r, b->count, fake_now);
}

static void test_settle_and_batch(void)
{
	struct queue *q = new_queue(500);
	struct queue_batch b;

	write_file(q, 1, "training/car/a.jpg", 10);
	write_file(q, 2, "training/car/b.jpg", 10);
	write_file(q, 3, "training/bus/c.jpg", 10);
	is_int(state(q, 1), FILE_WRITING, "closed file waits for settle");
	is_int(queue_tick(q, fake_now), 500, "tick says when settle ends");
	is_int(queue_take_batch(q, fake_now, &b), 0, "nothing to send before settle");
	fake_now += 500;
	queue_tick(q, fake_now);
	is_int(state(q, 1), FILE_PENDING, "settled file is pending");
	is_int(queue_take_batch(q, fake_now, &b), 2, "one batch per label");
	is_str(b.label, "car", "batch label");
	is_int(state(q, 1), FILE_UPLOADING, "taken file is uploading");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	is_int(state(q, 2), FILE_UPLOADED, "reported file is uploaded");
	is_int(queue_take_batch(q, fake_now, &b), 1, "the other label goes alone");
	is_str(b.label, "bus", "second batch label");
	queue_batch_free(&b);
	queue_free(q);
}

static void test_reopen_postpones(void)
{
	struct queue *q = new_queue(500);
	struct queue_batch b;

	write_file(q, 1, "training/a.json", 10);
	fake_now += 400;
	queue_open_write(q, 1, "training/a.json");
	fake_now += 400;
	queue_tick(q, fake_now);
	is_int(state(q, 1), FILE_WRITING, "a reopen for writing postpones");
	queue_written(q, 1);
	queue_closed(q, 1, 20, true);
	fake_now += 500;
	queue_tick(q, fake_now);
	is_int(queue_take_batch(q, fake_now, &b), 1, "sent after the last close settles");
	ok(b.label == NULL, "no label directly under a category");
	is_int(b.items[0].size, 20, "final size");
	queue_batch_free(&b);
	queue_free(q);
}

static void test_retry_and_duplicates(void)
{
	struct queue *q = new_queue(0);
	struct queue_batch b;
	char result[256];
	enum file_state s;

	write_file(q, 1, "training/a.json", 10);
	queue_take_batch(q, fake_now, &b);
	report_all(q, &b, QUEUE_RETRY, true);
	queue_batch_free(&b);
	is_int(state(q, 1), FILE_PENDING, "retry goes back to pending");
	queue_file_status(q, 1, &s, result, sizeof(result));
	ok(strstr(result, "next attempt at") != NULL, "result says when: %s", result);
	is_int(queue_take_batch(q, fake_now, &b), 0, "not before the backoff");
	fake_now += 1000;
	is_int(queue_take_batch(q, fake_now, &b), 1, "after the backoff");
	report_all(q, &b, QUEUE_DUPLICATE, false);
	queue_batch_free(&b);
	is_int(state(q, 1), FILE_UPLOADED, "duplicate after a maybe-sent attempt is ours");

	write_file(q, 2, "training/b.json", 10);
	queue_take_batch(q, fake_now, &b);
	report_all(q, &b, QUEUE_DUPLICATE, false);
	queue_batch_free(&b);
	is_int(state(q, 2), FILE_DUPLICATE, "plain duplicate");

	write_file(q, 3, "training/c.json", 10);
	queue_take_batch(q, fake_now, &b);
	report_all(q, &b, QUEUE_FAILED, false);
	queue_batch_free(&b);
	is_int(state(q, 3), FILE_FAILED, "failed is final");
	is_int(queue_retry(q, 3, false), 0, "retry of a failed file");
	is_int(state(q, 3), FILE_PENDING, "retried file is pending");
	queue_free(q);
}

static void test_stale_results(void)
{
	struct queue *q = new_queue(0);
	struct queue_batch b;

	write_file(q, 1, "training/a.json", 10);
	queue_take_batch(q, fake_now, &b);
	queue_open_write(q, 1, "training/a.json");
	queue_written(q, 1);
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	is_int(state(q, 1), FILE_WRITING, "a result for old content is dropped");
	queue_closed(q, 1, 11, true);
	is_int(queue_take_batch(q, fake_now, &b), 1, "new content is sent again");
	queue_batch_free(&b);

	write_file(q, 2, "training/b.json", 10);
	queue_take_batch(q, fake_now, &b);
	queue_removed(q, 2);
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	is_int(state(q, 2), FILE_STATE_COUNT, "a removed file stays gone");
	queue_free(q);
}

static void test_renames(void)
{
	struct queue *q = new_queue(500);
	struct queue_batch b;
	struct queue_counts c;

	write_file(q, 1, "training/car/.a.jpg.XYZ", 10);
	is_int(state(q, 1), FILE_IGNORED, "rsync temp file is ignored");
	queue_renamed(q, "training/car/.a.jpg.XYZ", "training/car/a.jpg", 1, 10, false);
	is_int(state(q, 1), FILE_PENDING, "renamed into place: pending at once");
	queue_take_batch(q, fake_now, &b);
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	queue_renamed(q, "training/car/a.jpg", "training/bus/a.jpg", 1, 10, false);
	is_int(state(q, 1), FILE_PENDING, "an uploaded file moved to another label goes again");
	queue_renamed(q, "training/bus", "training/van", 0, 10, true);
	is_int(queue_take_batch(q, fake_now, &b), 1, "label folder renamed");
	is_str(b.label, "van", "new label used");
	is_str(b.items[0].path, "training/van/a.jpg", "new path used");
	queue_batch_free(&b);
	queue_renamed(q, "training/van/a.jpg", "training/van/a.jpg.part", 1, 10, false);
	is_int(state(q, 1), FILE_IGNORED, "renamed to a temp name: ignored");
	queue_count(q, "training", &c);
	is_int(c.n[FILE_IGNORED], 1, "summary counts ignored");
	queue_count(q, "testing", &c);
	is_int(c.n[FILE_IGNORED], 0, "summary is per subtree");
	queue_free(q);
}

static void test_moves_keep_history(void)
{
	struct queue *q = new_queue(0);
	struct queue_batch b;
	struct queue_result r;

	write_file(q, 1, "training/car/a.jpg", 10);
	queue_take_batch(q, fake_now, &b);
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	queue_renamed(q, "training/car", "training/.car", 0, 0, true);
	is_int(state(q, 1), FILE_IGNORED, "moved into a hidden folder: ignored");
	queue_renamed(q, "training/.car", "training/car", 0, 0, true);
	is_int(state(q, 1), FILE_UPLOADED, "moved back unchanged: uploaded again, not re-sent");
	queue_renamed(q, "training/car/a.jpg", "training/.Trash-0/a.jpg", 1, 10, false);
	queue_renamed(q, "training/.Trash-0/a.jpg", "training/bus/a.jpg", 1, 10, false);
	is_int(state(q, 1), FILE_PENDING, "restored to another label: sent there");
	queue_take_batch(q, fake_now, &b);
	is_str(b.label, "bus", "with its new label");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);

	write_file(q, 2, "training/car/b.jpg", 10);
	queue_take_batch(q, fake_now, &b);
	queue_renamed(q, "training/car/b.jpg", "training/van/b.jpg", 2, 10, false);
	is_int(state(q, 2), FILE_PENDING, "moved while uploading: queued again");
	r = (struct queue_result){
		.item = &b.items[0], .outcome = QUEUE_RETRY, .text = "x", .maybe_sent = true};
	queue_report(q, &r, 1, fake_now);
	queue_batch_free(&b);
	is_int(state(q, 2), FILE_PENDING, "the old request's result is dropped");
	queue_take_batch(q, fake_now + 100000, &b);
	is_str(b.label, "van", "sent with the new label");
	report_all(q, &b, QUEUE_DUPLICATE, false);
	queue_batch_free(&b);
	is_int(state(q, 2), FILE_UPLOADED, "a duplicate then is the copy the old request stored");

	write_file(q, 3, "training/c.json", 10);
	queue_take_batch(q, fake_now, &b);
	r = (struct queue_result){.item = &b.items[0],
				  .outcome = QUEUE_RETRY,
				  .text = "429",
				  .retry_after_ms = 3600000};
	queue_report(q, &r, 1, fake_now);
	queue_batch_free(&b);
	is_int(queue_take_batch(q, fake_now + 300000, &b), 1,
	       "Retry-After is capped at backoff_max");
	queue_batch_free(&b);
	queue_free(q);
}

/* The uploader's side of reading annotation files, with TEXT as content. */
static size_t load_all(struct queue *q, const char *text)
{
	struct queue_load l[4];
	size_t n = queue_take_loads(q, l, 4);

	for (size_t i = 0; i < n; i++) {
		struct annot_file *f = NULL;
		char err[256] = "";

		annot_parse(l[i].path, text, strlen(text), &f, err, sizeof(err));
		queue_load_done(q, &l[i], f, err);
		free(l[i].path);
	}
	return n;
}

static const char *result_of(struct queue *q, uint64_t ino)
{
	static char buf[512];
	enum file_state s;

	buf[0] = '\0';
	queue_file_status(q, ino, &s, buf, sizeof(buf));
	return buf;
}

#define BOX "[{\"label\":\"car\",\"x\":1,\"y\":2,\"width\":3,\"height\":4}]"
#define BOXES_OF(files)                                                                            \
	"{\"version\":1,\"type\":\"bounding-box-labels\",\"boundingBoxes\":{" files "}}"

static void test_annotations(void)
{
	struct queue *q = new_queue(0);
	struct queue_batch b;

	queue_open_write(q, 1, "training/car/bounding_boxes.labels");
	queue_written(q, 1);
	write_file(q, 2, "training/car/a.jpg", 10);
	is_int(queue_take_batch(q, fake_now, &b), 0, "samples wait while their .labels is written");
	queue_flushed(q, 1, 5);
	queue_closed(q, 1, 5, false);
	is_int(state(q, 1), FILE_PENDING, "a closed .labels waits to be read");
	is_int(queue_take_batch(q, fake_now, &b), 0, "its samples wait for that too");
	is_int(load_all(q, BOXES_OF("\"a.jpg\":" BOX ",\"b.jpg\":" BOX ",\"z.jpg\":" BOX)), 1,
	       "the uploader is asked to read it");
	is_int(queue_take_batch(q, fake_now, &b), 1, "then the sample goes, not the .labels");
	is_str(b.items[0].path, "training/car/a.jpg", "the sample");
	is_str(b.items[0].part[ANNOT_BOXES], BOX, "with its own boxes");
	is_int(b.items[0].nfrom, 1, "naming the file they came from");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	is_int(state(q, 1), FILE_UPLOADED, "a .labels is uploaded once a request carried it");
	ok(strstr(result_of(q, 1), "sent with 1 sample") &&
		   strstr(result_of(q, 1), "2 entries name no file here"),
	   "its result says with what, and what it names that is not here: %s", result_of(q, 1));
	write_file(q, 3, "training/car/b.jpg", 10);
	write_file(q, 4, "training/car/sub/c.jpg", 10);
	is_int(queue_take_batch(q, fake_now, &b), 2, "a later sample goes with it too");
	ok(b.items[0].part[ANNOT_BOXES] && !b.items[1].part[ANNOT_BOXES],
	   "only the sample of its own folder gets boxes");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	ok(strstr(result_of(q, 1), "sent with 2 sample") != NULL, "counted: %s", result_of(q, 1));
	queue_free(q);
}

static void test_annotations_late_and_bad(void)
{
	struct queue *q = new_queue(0);
	struct queue_batch b;

	write_file(q, 2, "training/car/a.jpg", 10);
	queue_take_batch(q, fake_now, &b);
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	write_file(q, 1, "training/car/bounding_boxes.labels", 5);
	load_all(q, BOXES_OF("\"a.jpg\":" BOX));
	is_int(state(q, 1), FILE_FAILED, "a .labels after all its samples went: failed");
	ok(strstr(result_of(q, 1), "came after") && strstr(result_of(q, 1), "resend"),
	   "saying so, and how to send them again: %s", result_of(q, 1));
	is_int(queue_retry(q, 1, true), 0, "resend on the .labels");
	is_int(state(q, 2), FILE_PENDING, "sends its samples again");
	load_all(q, BOXES_OF("\"a.jpg\":" BOX));
	is_int(queue_take_batch(q, fake_now, &b), 1, "and they go");
	ok(b.items[0].part[ANNOT_BOXES] != NULL, "this time with it");
	report_all(q, &b, QUEUE_DUPLICATE, false);
	queue_batch_free(&b);
	is_int(state(q, 1), FILE_DUPLICATE, "all already in the project: the .labels says so");

	write_file(q, 5, "training/bus/bounding_boxes.labels", 5);
	write_file(q, 6, "training/bus/x.jpg", 10);
	load_all(q, "{\"version\":1,\n\"type\": oops}");
	is_int(state(q, 5), FILE_FAILED, "a malformed .labels fails");
	ok(strstr(result_of(q, 5), "line 2") != NULL, "saying where: %s", result_of(q, 5));
	is_int(queue_take_batch(q, fake_now, &b), 1, "its samples go as the folder says");
	ok(!b.items[0].part[ANNOT_BOXES] && b.label && strcmp(b.label, "bus") == 0,
	   "without boxes, with the folder's label");
	queue_batch_free(&b);

	/* One held open: its folder's samples wait, then go without. */
	queue_open_write(q, 7, "training/van/bounding_boxes.labels");
	queue_written(q, 7);
	write_file(q, 8, "training/van/v.jpg", 10);
	is_int(queue_take_batch(q, fake_now, &b), 0, "a .labels held open holds its samples");
	is_int(queue_take_batch(q, fake_now + 60000, &b), 1, "for a bounded time");
	ok(b.items[0].annotations_missed, "then they go, saying so");
	queue_batch_free(&b);
	queue_free(q);
}

static void test_info_labels(void)
{
	struct queue *q = new_queue(0);
	struct queue_batch b;
	const char *info =
		"{\"version\":1,\"files\":["
		"{\"path\":\"training/a.wav\",\"category\":\"training\",\"label\":{\"type\":"
		"\"label\",\"label\":\"noise\"},\"metadata\":{\"site\":\"lab\"}},"
		"{\"path\":\"training/b.wav\",\"category\":\"testing\",\"label\":{\"type\":"
		"\"unlabeled\"}},"
		"{\"path\":\"./training/"
		"m.wav\",\"name\":\"renamed\",\"label\":{\"type\":\"multi-label\","
		"\"labels\":[{\"label\":\"x\",\"startIndex\":0,\"endIndex\":9}]}},"
		"{\"path\":\"../etc/passwd\",\"label\":{\"type\":\"label\",\"label\":\"p\"}}]}";

	write_file(q, 1, "info.labels", 100);
	write_file(q, 2, "training/a.wav", 10);
	write_file(q, 3, "training/b.wav", 10);
	write_file(q, 4, "training/m.wav", 10);
	write_file(q, 5, "training/plain.wav", 10);
	is_int(queue_take_batch(q, fake_now, &b), 0, "samples wait for the info.labels above them");
	load_all(q, info);
	is_int(queue_take_batch(q, fake_now, &b), 1, "each label and metadata its own request");
	is_str(b.label, "noise", "the label from info.labels");
	is_str(b.metadata, "{\"site\":\"lab\"}", "its metadata");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	ok(strstr(result_of(q, 2), "info.labels") != NULL,
	   "the sample says where its label came from");
	queue_take_batch(q, fake_now, &b);
	is_int(b.category, 1, "category from info.labels");
	is_int(b.label_mode, QUEUE_LABEL_NONE, "unlabeled");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	queue_take_batch(q, fake_now, &b);
	is_int(b.label_mode, QUEUE_LABEL_PARTS, "multi-label: no x-label");
	is_str(b.items[0].send_name, "renamed.wav", "sent under the entry's name");
	ok(b.items[0].part[ANNOT_STRUCTURED] != NULL, "with its label ranges");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	queue_take_batch(q, fake_now, &b);
	is_int(b.label_mode, QUEUE_LABEL_INFER, "a file it does not describe: as the folder says");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	is_int(state(q, 1), FILE_UPLOADED, "info.labels: done");
	ok(strstr(result_of(q, 1), "never sent") && strstr(result_of(q, 1), "leave its folder"),
	   "it says it was read here, and what it refused: %s", result_of(q, 1));
	queue_free(q);
}

static void test_solo_and_names(void)
{
	struct queue *q = new_queue(0);
	struct queue_batch b;

	write_file(q, 1, "training/car/a.jpg", 10);
	write_file(q, 2, "training/car/b.jpg", 10);
	is_int(queue_take_batch(q, fake_now, &b), 2, "two in one request");
	report_all(q, &b, QUEUE_SOLO, false);
	queue_batch_free(&b);
	is_int(queue_take_batch(q, fake_now, &b), 1, "refused together: each goes alone");
	report_all(q, &b, QUEUE_DUPLICATE, false);
	queue_batch_free(&b);
	is_int(queue_take_batch(q, fake_now, &b), 1, "the other one too");
	report_all(q, &b, QUEUE_UPLOADED, false);
	queue_batch_free(&b);
	ok(state(q, 1) != state(q, 2), "and each gets its own verdict");

	write_file(q, 3, "training/car/x/0001.jpg", 10);
	write_file(q, 4, "training/car/y/0001.jpg", 10);
	is_int(queue_take_batch(q, fake_now, &b), 1,
	       "two samples of one name never share a request");
	queue_batch_free(&b);
	queue_free(q);
}

static void test_limits_and_pause(void)
{
	struct queue *q = new_queue(0);
	struct queue_batch b;

	write_file(q, 1, "training/big.mp4", LAYOUT_MAX_FILE_SIZE + 1);
	is_int(state(q, 1), FILE_FAILED, "over 100 MB fails locally");
	write_file(q, 2, "training/exact.mp4", LAYOUT_MAX_FILE_SIZE);
	is_int(state(q, 2), FILE_PENDING, "exactly 100 MB is fine");
	queue_pause(q);
	is_int(queue_take_batch(q, fake_now, &b), 0, "paused queue sends nothing");
	queue_resume(q);
	is_int(queue_take_batch(q, fake_now, &b), 1, "resumed queue sends");
	queue_batch_free(&b);
	for (uint64_t i = 10; i < 15; i++) {
		char name[32];

		snprintf(name, sizeof(name), "training/x%llu.json", (unsigned long long)i);
		write_file(q, i, name, 400);
	}
	is_int(queue_take_batch(q, fake_now, &b), 2, "byte cap limits a batch");
	queue_batch_free(&b);
	for (uint64_t i = 100; i < 5000; i++)
		write_file(q, i, "testing/y.json", 1);
	is_int(state(q, 4999), FILE_PENDING, "many files: table grows");
	queue_free(q);
}

static unsigned wakes;
static void count_wake(void *arg)
{
	wakes++;
}

/* A burst of closes costs the uploader one wake, not one per file; work
 * due before its planned look still wakes it. */
static void test_wakes_coalesce(void)
{
	struct queue *q = new_queue(500);
	char path[64];

	queue_set_waker(q, count_wake, NULL);
	wakes = 0;
	for (uint64_t i = 1; i <= 10; i++) {
		snprintf(path, sizeof(path), "training/car/%llu.jpg", (unsigned long long)i);
		write_file(q, i, path, 10);
	}
	is_int(wakes, 1, "ten closes while the uploader has not looked: one wake");
	is_int(queue_tick(q, fake_now), 500, "it plans to look when the first settles");
	write_file(q, 11, "training/car/11.jpg", 10);
	is_int(wakes, 1, "a file settling later than that: no wake");
	queue_free(q);

	q = new_queue(0);
	queue_set_waker(q, count_wake, NULL);
	wakes = 0;
	queue_tick(q, fake_now);
	write_file(q, 1, "training/car/a.jpg", 10);
	is_int(wakes, 1, "settle=0: a closed file is due now and wakes it");
	write_file(q, 2, "training/car/b.jpg", 10);
	is_int(wakes, 1, "once until it looks");
	queue_tick(q, fake_now);
	write_file(q, 3, "training/car/c.jpg", 10);
	is_int(wakes, 2, "and again after it looked");
	queue_free(q);
}

int main(void)
{
	clock_override(fake_clock);
	test_settle_and_batch();
	test_reopen_postpones();
	test_retry_and_duplicates();
	test_stale_results();
	test_renames();
	test_moves_keep_history();
	test_annotations();
	test_annotations_late_and_bad();
	test_info_labels();
	test_solo_and_names();
	test_limits_and_pause();
	test_wakes_coalesce();
	return done_testing();
}
