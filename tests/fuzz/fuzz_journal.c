/* Fuzz journal replay: any bytes as SPOOL/state/journal, replayed into a
 * queue and reconciled. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "journal.h"
#include "queue.h"

static void apply(void *arg, const struct journal_record *r)
{
	queue_replay(arg, r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[64];
	static int dfd = -1;
	struct queue_config cfg = {.settle_ms = 0,
				   .batch_max = 10,
				   .batch_bytes_max = 1 << 20,
				   .backoff_min_ms = 1,
				   .backoff_max_ms = 10};
	struct journal_replay_stats st;
	struct queue_recovery rec;
	struct queue *q;
	int fd;

	if (dfd < 0) {
		snprintf(dir, sizeof(dir), "/tmp/ingestfs-fuzz-journal-XXXXXX");
		if (!mkdtemp(dir))
			return 0;
		dfd = open(dir, O_RDONLY | O_DIRECTORY);
	}
	fd = openat(dfd, "journal", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return 0;
	if (write(fd, "ingestfs-journal 1\n", 19) != 19 || write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	close(fd);
	q = queue_new(&cfg);
	journal_replay(dfd, apply, q, &st);
	queue_reconcile(q, 1, "training/a/x.json", 3);
	queue_reconcile(q, 2, "training/.hidden", 0);
	queue_reconcile_finish(q, &rec);
	queue_free(q);
	unlinkat(dfd, "journal.bad", 0);
	return 0;
}
