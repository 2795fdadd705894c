/* journal.h: the crash-safe record of the queue, SPOOL/state/journal.
 *
 * An append-only text file, one record per line, each line closed by a
 * CRC-32 so that a torn or damaged line is recognised and skipped.  A
 * record is written with one write(2) the moment the queue changes, so it
 * survives kill -9 at once; journal_sync() makes it survive power loss and
 * is called by the uploader in groups (before requests go out, after
 * results come in), not once per file.  At start the journal is replayed,
 * checked against the files in the spool (the files are the truth), and
 * rewritten as one snapshot record per file.
 *
 * Threads: appends come under the queue's lock and only queue the
 * records in memory (a memcpy); whoever appended writes them out with
 * journal_flush after letting go of that lock, before its caller goes on,
 * so the disk is never touched under the queue's lock and a record is in
 * the kernel before the operation that made it returns.  journal_sync and
 * compaction run on one thread (the uploader's maintenance). */
#ifndef INGESTFS_JOURNAL_H
#define INGESTFS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum journal_kind {
	JOURNAL_WRITING = 'W', /* new content is being written */
	JOURNAL_QUEUED = 'Q',  /* closed (or re-queued): to be uploaded */
	JOURNAL_SENT = 'S',    /* an upload attempt started: it may reach the service */
	JOURNAL_DONE = 'T',    /* a final result: state and result text */
	JOURNAL_REMOVED = 'X', /* unlinked or replaced */
	JOURNAL_FILE = 'F',    /* snapshot of one file, written by compaction */
	JOURNAL_PATH = 'P',    /* known by another name now (renamed, relinked) */
};

struct journal_record {
	enum journal_kind kind;
	uint64_t ino;
	int state;       /* enum file_state, for DONE and FILE */
	bool maybe_sent; /* FILE only */
	uint64_t size;
	const char *path;   /* may be NULL */
	const char *result; /* may be NULL */
};

struct journal;

/* Open (create) STATE_FD/journal for appending. */
int journal_open(int state_fd, struct journal **out);
void journal_close(struct journal *j);

/* Queue one record, or several in order; 0 or -errno. */
int journal_append(struct journal *j, const struct journal_record *r);
int journal_append_many(struct journal *j, const struct journal_record *r, size_t n);
/* Write what was queued (one write(2)); -errno when it could not be
 * written (the records are dropped: the caller logs it). */
int journal_flush(struct journal *j);
/* Write what was queued and make everything durable.  Cheap when
 * nothing is new. */
int journal_sync(struct journal *j);
/* Bytes in the journal, to decide when to compact. */
uint64_t journal_size(struct journal *j);

struct journal_replay_stats {
	size_t records;  /* applied */
	size_t damaged;  /* lines skipped: bad CRC, bad fields */
	bool torn_tail;  /* the last line was cut short */
	bool bad_header; /* not a journal at all, or too_big; set aside */
	/* Too big to replay in memory: BYTES, more than MAX_BYTES (a share
	 * of physical memory) or than malloc would give. */
	bool too_big;
	uint64_t bytes, max_bytes;
};

/* Call APPLY for every good record of STATE_FD/journal, in order.  A
 * missing journal is an empty one; one that is not a journal, or too big
 * to replay in memory (a fraction of physical memory), is renamed
 * journal.bad (STATS says which).  Returns 0 or -errno on a read error. */
int journal_replay(int state_fd, void (*apply)(void *arg, const struct journal_record *r),
		   void *arg, struct journal_replay_stats *stats);

/* Compaction, so that no one waits for the disk: under the lock that
 * orders appends, the caller takes a snapshot (journal_encode) and calls
 * journal_cut; then, without it, journal_replace writes the snapshot and
 * the records appended since the cut to a new file and puts it in place
 * durably (write, fsync, rename, fsync dir).  On failure the old journal
 * stays and is whole. */
int journal_encode(const struct journal_record *r, size_t n, char **out, size_t *outlen);
void journal_cut(struct journal *j);
int journal_replace(struct journal *j, const char *snapshot, size_t len);

/* Exposed for the unit tests and the fuzzer. */
int journal_format(const struct journal_record *r, char *buf, size_t size);
int journal_parse(char *line, size_t len, struct journal_record *r);

#endif
