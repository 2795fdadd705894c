/* Unit tests of journal.c and of the queue's recovery from it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "queue.h"
#include "tap.h"

static void test_format_roundtrip(void)
{
	struct journal_record r = {.kind = JOURNAL_DONE,
				   .ino = 42,
				   .state = FILE_FAILED,
				   .maybe_sent = true,
				   .size = 1234,
				   .path = "training/two words/%odd\n\x01.json",
				   .result = "HTTP 400: bad = thing"},
			      back;
	char line[30000];
	int n = journal_format(&r, line, sizeof(line));

	ok(n > 0 && line[n - 1] == '\n', "a record formats to one line");
	ok(memchr(line, '\n', (size_t)n - 1) == NULL, "no newline inside the line");
	is_int(journal_parse(line, (size_t)n - 1, &back), 0, "and parses back");
	is_int(back.kind, JOURNAL_DONE, "kind");
	is_int(back.ino, 42, "ino");
	is_int(back.state, FILE_FAILED, "state");
	ok(back.maybe_sent, "maybe_sent");
	is_int(back.size, 1234, "size");
	is_str(back.path, "training/two words/%odd\n\x01.json", "path with odd bytes");
	is_str(back.result, "HTTP 400: bad = thing", "result");

	n = journal_format(&r, line, sizeof(line));
	line[3] ^= 1;
	is_int(journal_parse(line, (size_t)n - 1, &back), -EBADMSG, "a flipped bit is caught");
	strcpy(line, "Q 1 2 3");
	is_int(journal_parse(line, strlen(line), &back), -EINVAL, "a short line is refused");
}

struct replay_log {
	int count;
	uint64_t last_ino;
};

static void count_record(void *arg, const struct journal_record *r)
{
	struct replay_log *log = arg;

	log->count++;
	log->last_ino = r->ino;
}

static void test_file(void)
{
	char dir[] = "/tmp/ingestfs-journal-test-XXXXXX";
	struct journal *j;
	struct journal_replay_stats st;
	struct replay_log log = {0};
	int dfd, fd;

	ok(mkdtemp(dir) != NULL, "temp dir");
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	is_int(journal_replay(dfd, count_record, &log, &st), 0, "no journal is an empty one");
	is_int(journal_open(dfd, &j), 0, "open");
	for (uint64_t i = 1; i <= 5; i++) {
		struct journal_record r = {
			.kind = JOURNAL_QUEUED, .ino = i, .size = i, .path = "training/a.json"};
		journal_append(j, &r);
	}
	is_int(journal_sync(j), 0, "sync");
	journal_close(j);
	is_int(journal_replay(dfd, count_record, &log, &st), 0, "replay");
	is_int(log.count, 5, "all records come back");
	is_int(log.last_ino, 5, "in order");

	/* Tear the last line and add junk. */
	fd = openat(dfd, "journal", O_RDWR);
	is_int(ftruncate(fd, lseek(fd, 0, SEEK_END) - 5), 0, "tear the last record");
	close(fd);
	log.count = 0;
	journal_replay(dfd, count_record, &log, &st);
	is_int(log.count, 4, "a torn last record is dropped");
	ok(st.torn_tail, "and reported");

	fd = openat(dfd, "journal", O_WRONLY | O_TRUNC);
	is_int(write(fd, "garbage", 7), 7, "write junk over the journal");
	close(fd);
	log.count = 0;
	journal_replay(dfd, count_record, &log, &st);
	ok(st.bad_header && log.count == 0, "a file that is not a journal is set aside");
	ok(faccessat(dfd, "journal.bad", F_OK, 0) == 0, "as journal.bad");
	unlinkat(dfd, "journal.bad", 0);

	/* A real journal past what memory would hold (sparse: no disk
	 * used).  3 GiB is also past a 32-bit off_t. */
	is_int(journal_open(dfd, &j), 0, "a new journal");
	journal_close(j);
	fd = openat(dfd, "journal", O_WRONLY);
	is_int(ftruncate(fd, (off_t)3 << 30), 0, "grown to 3 GiB");
	close(fd);
	log.count = 0;
	is_int(journal_replay(dfd, count_record, &log, &st), 0, "a journal too big is no error");
	ok(st.too_big && st.bad_header && log.count == 0, "it is set aside, not read");
	ok(st.bytes == (uint64_t)3 << 30, "its size is told");
	ok(st.max_bytes >= (32u << 20) && st.max_bytes <= (1u << 30),
	   "the limit is between 32 MiB and 1 GiB (%" PRIu64 " MiB here)", st.max_bytes >> 20);
	ok(faccessat(dfd, "journal.bad", F_OK, 0) == 0 && faccessat(dfd, "journal", F_OK, 0) < 0,
	   "as journal.bad");
	unlinkat(dfd, "journal.bad", 0);
	unlinkat(dfd, "journal", 0);
	close(dfd);
	rmdir(dir);
}

static struct queue *new_queue(void)
{
	struct queue_config cfg = {.settle_ms = 0,
				   .batch_max = 10,
				   .batch_bytes_max = 1 << 20,
				   .backoff_min_ms = 1000,
				   .backoff_max_ms = 300000};

	return queue_new(&cfg);
}

static void replay(struct queue *q, enum journal_kind kind, uint64_t ino, int state, uint64_t size)
{
	struct journal_record r = {.kind = kind,
				   .ino = ino,
				   .state = state,
				   .size = size,
				   .path = "training/x.json",
				   .result = "r"};

	queue_replay(q, &r);
}

static enum file_state state_of(struct queue *q, uint64_t ino, char *result, size_t n)
{
	enum file_state s = FILE_STATE_COUNT;

	queue_file_status(q, ino, &s, result, n);
	return s;
}

static void test_recovery(void)
{
	struct queue *q = new_queue();
	struct queue_recovery rec;
	char result[128];

	replay(q, JOURNAL_WRITING, 1, 0, 0); /* open at the crash */
	replay(q, JOURNAL_WRITING, 2, 0, 0);
	replay(q, JOURNAL_QUEUED, 2, 0, 10); /* closed: resume */
	replay(q, JOURNAL_QUEUED, 3, 0, 10);
	replay(q, JOURNAL_DONE, 3, FILE_UPLOADED, 10); /* done: keep */
	replay(q, JOURNAL_QUEUED, 4, 0, 10);
	replay(q, JOURNAL_REMOVED, 4, 0, 0);           /* removed */
	replay(q, JOURNAL_QUEUED, 5, 0, 10);           /* gone from the spool */
	replay(q, JOURNAL_DONE, 6, FILE_UPLOADED, 10); /* changed since */
	replay(q, JOURNAL_QUEUED, 7, 0, 10);           /* torn by power loss */
	queue_reconcile(q, 1, "training/a/1.json", 3);
	queue_reconcile(q, 2, "training/a/2.json", 10);
	queue_reconcile(q, 3, "training/a/3.json", 10);
	queue_reconcile(q, 4, "training/a/4.json", 10); /* same ino, new file */
	queue_reconcile(q, 6, "training/a/6.json", 11);
	queue_reconcile(q, 7, "training/a/7.json", 4);
	queue_reconcile(q, 8, "training/a/.8.json.tmp", 4); /* unknown, ignored */
	queue_reconcile_finish(q, &rec);
	is_int(state_of(q, 1, result, sizeof(result)), FILE_FAILED, "open at the crash: failed");
	is_str(result, "interrupted while writing", "with the reason");
	is_int(state_of(q, 2, NULL, 0), FILE_PENDING, "closed at the crash: pending");
	is_int(state_of(q, 3, NULL, 0), FILE_UPLOADED, "uploaded stays uploaded");
	is_int(state_of(q, 4, NULL, 0), FILE_PENDING, "an unknown file is sent");
	is_int(state_of(q, 5, NULL, 0), FILE_STATE_COUNT,
	       "a file gone from the spool is forgotten");
	is_int(state_of(q, 6, NULL, 0), FILE_PENDING, "a changed file is sent again");
	is_int(state_of(q, 7, NULL, 0), FILE_FAILED,
	       "a file whose size changed while closed fails");
	is_int(state_of(q, 8, NULL, 0), FILE_IGNORED, "ignored by name");
	is_int(rec.files, 7, "recovery counts files");
	is_int(rec.pending, 3, "and pending ones");
	is_int(rec.interrupted, 1, "and interrupted ones");
	queue_free(q);
}

int main(void)
{
	test_format_roundtrip();
	test_file();
	test_recovery();
	return done_testing();
}
