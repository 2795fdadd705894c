/* journal.c: append-only state log with per-line CRCs (see journal.h).
 *
 * Line format, fields separated by one space:
 *   KIND INO STATE SENT SIZE =PATH =RESULT CRC
 * PATH and RESULT are percent-escaped (space, control bytes, DEL and '%'),
 * after a '=' so that an empty string is still a field.  CRC is the CRC-32
 * of everything before " CRC", in hex. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

#define JOURNAL_NAME "journal"
#define JOURNAL_NEW "journal.new"
#define JOURNAL_BAD "journal.bad"
#define JOURNAL_HEADER "ingestfs-journal 1\n"
#define LINE_MAX_BYTES (20 * 1024)
#define FIELD_PATH_MAX 4096
#define FIELD_RESULT_MAX 1024
#define PREALLOCATE_STEP (1024 * 1024)
/* How much journal replay may read into memory.  Replay holds the whole
 * file and builds the queue from it, together a few times its size, and
 * a board may have 1 GB in all, shared with the camera software writing
 * to the mount: an eighth of physical memory (128 MiB on 1 GB), at least
 * 32 MiB, at most 1 GiB.  A healthy journal is far smaller: compaction
 * keeps it under 8 MiB or 1 KiB per file in memory (queue_recovery.c), so
 * 128 MiB is some 100,000 files waiting to go up.  A bigger one is set
 * aside like one that is not a journal, and the spool decides. */
#define REPLAY_MIN_BYTES ((uint64_t)32 << 20)
#define REPLAY_MAX_BYTES ((uint64_t)1 << 30)
#define REPLAY_UNKNOWN_BYTES ((uint64_t)256 << 20)

/* A growable run of formatted records. */
struct text {
	char *buf;
	size_t len, cap;
};

struct journal {
	/* Guards everything below.  Taken after the queue's lock, never
	 * before it; held for a memcpy or a write(2), never for an fsync but
	 * a compaction's last few records. */
	pthread_mutex_t lock;
	int dir_fd;
	int fd;
	uint64_t size;
	uint64_t reserved;
	struct text pending; /* appended, not yet written */
	bool cutting;        /* a compaction is under way: */
	struct text tail;    /* what was written since its snapshot */
	size_t cut_skip;     /* pending bytes from before the cut, not for the tail */
	uint64_t writes;     /* bumped at every write, to know what a sync covered */
	uint64_t synced;     /* the writes an fdatasync covered */
	bool no_sync;        /* benchmarks only: measure what durability costs */
};

static int text_add(struct text *t, const char *data, size_t len)
{
	if (t->len + len > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		char *bigger;

		while (cap < t->len + len)
			cap *= 2;
		bigger = realloc(t->buf, cap);
		if (!bigger)
			return -ENOMEM;
		t->buf = bigger;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, data, len);
	t->len += len;
	return 0;
}

static void text_free(struct text *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

/* ---- CRC-32 (IEEE), small and table-driven ---- */

static uint32_t crc32_of(const char *data, size_t len)
{
	static uint32_t table[256];
	static atomic_bool ready;
	uint32_t crc = 0xFFFFFFFFu;

	if (!atomic_load(&ready)) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int k = 0; k < 8; k++)
				c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		atomic_store(&ready, true);
	}
	for (size_t i = 0; i < len; i++)
		crc = table[(crc ^ (unsigned char)data[i]) & 0xFF] ^ (crc >> 8);
	return crc ^ 0xFFFFFFFFu;
}

/* ---- formatting and parsing ---- */

static int escape_field(const char *s, size_t max, char *out, size_t outsz)
{
	size_t o = 0, n = s ? strlen(s) : 0;

	if (n > max)
		return -ENAMETOOLONG;
	if (outsz < 2)
		return -ENOSPC;
	out[o++] = '=';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (o + 4 >= outsz)
			return -ENOSPC;
		if (c <= ' ' || c == 0x7f || c == '%')
			o += (size_t)snprintf(out + o, outsz - o, "%%%02X", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

int journal_format(const struct journal_record *r, char *buf, size_t size)
{
	char path[FIELD_PATH_MAX * 3 + 2], result[FIELD_RESULT_MAX * 3 + 2];
	int n;

	if (escape_field(r->path, FIELD_PATH_MAX, path, sizeof(path)) < 0 ||
	    escape_field(r->result, FIELD_RESULT_MAX, result, sizeof(result)) < 0)
		return -ENAMETOOLONG;
	n = snprintf(buf, size, "%c %" PRIu64 " %d %d %" PRIu64 " %s %s", (char)r->kind, r->ino,
		     r->state, r->maybe_sent ? 1 : 0, r->size, path, result);
	if (n < 0 || (size_t)n + 10 >= size)
		return -ENOSPC;
	n += snprintf(buf + n, size - (size_t)n, " %08" PRIx32 "\n", crc32_of(buf, (size_t)n));
	return n;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undo escape_field in place; returns the string or NULL if malformed. */
static char *unescape_field(char *f, size_t max)
{
	char *o, *s;
	size_t n = 0;

	if (!f || f[0] != '=')
		return NULL;
	for (s = o = f + 1; *s; n++) {
		if (n >= max)
			return NULL;
		if (*s == '%') {
			int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);

			if (lo < 0)
				return NULL;
			*o++ = (char)(hi * 16 + lo);
			s += 3;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return f + 1;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static bool kind_valid(char k)
{
	return k == JOURNAL_WRITING || k == JOURNAL_QUEUED || k == JOURNAL_SENT ||
	       k == JOURNAL_DONE || k == JOURNAL_REMOVED || k == JOURNAL_FILE || k == JOURNAL_PATH;
}

int journal_parse(char *line, size_t len, struct journal_record *r)
{
	char *fields[8], *save = NULL, *crc_at;
	uint64_t state, sent, crc;
	int n = 0;

	if (len == 0 || len >= LINE_MAX_BYTES || memchr(line, '\0', len))
		return -EINVAL;
	line[len] = '\0';
	crc_at = strrchr(line, ' ');
	if (!crc_at || strlen(crc_at + 1) != 8)
		return -EINVAL;
	crc = strtoull(crc_at + 1, NULL, 16);
	if (crc != crc32_of(line, (size_t)(crc_at - line)))
		return -EBADMSG;
	for (char *t = strtok_r(line, " ", &save); t && n < 8; t = strtok_r(NULL, " ", &save))
		fields[n++] = t;
	if (n != 8 || strlen(fields[0]) != 1 || !kind_valid(fields[0][0]))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->kind = (enum journal_kind)fields[0][0];
	if (parse_u64(fields[1], &r->ino) < 0 || parse_u64(fields[2], &state) < 0 ||
	    parse_u64(fields[3], &sent) < 0 || parse_u64(fields[4], &r->size) < 0 || state > 64 ||
	    sent > 1)
		return -EINVAL;
	r->state = (int)state;
	r->maybe_sent = sent == 1;
	r->path = unescape_field(fields[5], FIELD_PATH_MAX);
	r->result = unescape_field(fields[6], FIELD_RESULT_MAX);
	return r->path && r->result ? 0 : -EINVAL;
}

/* ---- the file ---- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reserve space ahead, so a spool disk filled by file data still takes
 * the few records that say what happened to those files. */
static void reserve_ahead(struct journal *j, uint64_t need)
{
	if (j->size + need <= j->reserved)
		return;
	j->reserved = j->size + need + PREALLOCATE_STEP;
	if (fallocate(j->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)j->reserved) < 0)
		j->reserved = 0; /* not supported here; try again next time */
}

static int open_file(int dir_fd, const char *name, int extra, struct journal *j)
{
	struct stat st;

	j->fd = openat(dir_fd, name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | extra,
		       0600);
	if (j->fd < 0 || fstat(j->fd, &st) < 0)
		return -errno;
	j->size = (uint64_t)st.st_size;
	j->reserved = 0;
	if (j->size == 0) {
		int rc = write_all(j->fd, JOURNAL_HEADER, strlen(JOURNAL_HEADER));

		if (rc < 0)
			return rc;
		j->size = strlen(JOURNAL_HEADER);
	}
	reserve_ahead(j, 0);
	return 0;
}

int journal_open(int state_fd, struct journal **out)
{
	struct journal *j = calloc(1, sizeof(*j));
	int rc;

	if (!j)
		return -ENOMEM;
	j->dir_fd = state_fd;
	j->no_sync = getenv("INGESTFS_UNSAFE_NO_SYNC") != NULL;
	pthread_mutex_init(&j->lock, NULL);
	rc = open_file(state_fd, JOURNAL_NAME, 0, j);
	if (rc < 0) {
		if (j->fd >= 0)
			close(j->fd);
		pthread_mutex_destroy(&j->lock);
		free(j);
		return rc;
	}
	*out = j;
	return 0;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	journal_sync(j);
	close(j->fd);
	text_free(&j->pending);
	text_free(&j->tail);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

int journal_encode(const struct journal_record *r, size_t n, char **out, size_t *outlen)
{
	struct text t = {0};
	char line[LINE_MAX_BYTES];
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		int k = journal_format(&r[i], line, sizeof(line));

		rc = k < 0 ? k : text_add(&t, line, (size_t)k);
	}
	if (rc < 0) {
		text_free(&t);
		return rc;
	}
	*out = t.buf;
	*outlen = t.len;
	return 0;
}

/* Formatted straight into what is pending: this runs under the queue
 * lock for every change of state. */
int journal_append_many(struct journal *j, const struct journal_record *r, size_t n)
{
	char line[LINE_MAX_BYTES];
	size_t start;
	int rc = 0;

	pthread_mutex_lock(&j->lock);
	start = j->pending.len;
	for (size_t i = 0; i < n && rc == 0; i++) {
		int k = journal_format(&r[i], line, sizeof(line));

		rc = k < 0 ? k : text_add(&j->pending, line, (size_t)k);
	}
	if (rc < 0)
		j->pending.len = start; /* all of them or none */
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int journal_append(struct journal *j, const struct journal_record *r)
{
	return journal_append_many(j, r, 1);
}

/* Under j->lock. */
static int write_pending(struct journal *j)
{
	size_t skip = j->cut_skip;
	int rc;

	j->cut_skip = 0;
	if (j->pending.len == 0)
		return 0;
	reserve_ahead(j, j->pending.len);
	rc = write_all(j->fd, j->pending.buf, j->pending.len);
	if (rc == 0) {
		j->size += j->pending.len;
		j->writes++;
		if (j->cutting && j->pending.len > skip &&
		    text_add(&j->tail, j->pending.buf + skip, j->pending.len - skip) < 0)
			rc = -ENOMEM;
	}
	/* Failed or not, these are gone: the state in memory stays right;
	 * only a crash now could lose them, which the caller reports. */
	j->pending.len = 0;
	return rc;
}

int journal_flush(struct journal *j)
{
	int rc;

	pthread_mutex_lock(&j->lock);
	rc = write_pending(j);
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int journal_sync(struct journal *j)
{
	uint64_t writes;
	int rc, fd;

	pthread_mutex_lock(&j->lock);
	rc = write_pending(j);
	writes = j->writes;
	fd = j->fd;
	pthread_mutex_unlock(&j->lock);
	if (rc < 0 || writes == j->synced || j->no_sync)
		return rc;
	/* Only this thread syncs or replaces the file: FD stays valid. */
	if (fdatasync(fd) < 0)
		return -errno;
	j->synced = writes;
	return 0;
}

uint64_t journal_size(struct journal *j)
{
	uint64_t size;

	pthread_mutex_lock(&j->lock);
	size = j->size + j->pending.len;
	pthread_mutex_unlock(&j->lock);
	return size;
}

/* ---- replay ---- */

static uint64_t replay_max_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	/* In 64 bits: a long is 32 on armhf, and 4 GiB of memory would
	 * overflow it. */
	uint64_t max =
		pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 8 : REPLAY_UNKNOWN_BYTES;

	if (max < REPLAY_MIN_BYTES)
		return REPLAY_MIN_BYTES;
	return max > REPLAY_MAX_BYTES ? REPLAY_MAX_BYTES : max;
}

/* -EFBIG: more than STATS->max_bytes, or more than malloc would give. */
static int read_journal(int state_fd, char **buf, size_t *len, struct journal_replay_stats *stats)
{
	struct stat st;
	size_t got = 0;
	int fd = openat(state_fd, JOURNAL_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	stats->bytes = (uint64_t)st.st_size;
	stats->max_bytes = replay_max_bytes();
	if (stats->bytes > stats->max_bytes) {
		close(fd);
		return -EFBIG;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		close(fd);
		return -EFBIG;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, *buf + got, (size_t)st.st_size - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return 0;
}

int journal_replay(int state_fd, void (*apply)(void *arg, const struct journal_record *r),
		   void *arg, struct journal_replay_stats *stats)
{
	size_t len, hlen = strlen(JOURNAL_HEADER);
	char *buf, *p, *end;
	int rc;

	memset(stats, 0, sizeof(*stats));
	rc = read_journal(state_fd, &buf, &len, stats);
	/* Failing would stop every start on this spool: rebuild instead. */
	stats->too_big = rc == -EFBIG;
	if (rc == -EFBIG || rc == -EINVAL)
		goto set_aside;
	if (rc < 0 || len == 0) {
		free(buf);
		return rc;
	}
	if (len < hlen || memcmp(buf, JOURNAL_HEADER, hlen) != 0)
		goto set_aside;
	end = buf + len;
	for (p = buf + hlen; p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		struct journal_record r;

		if (!nl) {
			stats->torn_tail = true;
			break;
		}
		if (journal_parse(p, (size_t)(nl - p), &r) == 0) {
			apply(arg, &r);
			stats->records++;
		} else {
			stats->damaged++;
		}
		p = nl + 1;
	}
	free(buf);
	return 0;
set_aside:
	/* Not ours to read, or not in this memory: keep it for a human,
	 * start from the spool.  If it cannot be moved aside, it must not be
	 * overwritten either. */
	free(buf);
	stats->bad_header = true;
	if (renameat(state_fd, JOURNAL_NAME, state_fd, JOURNAL_BAD) < 0)
		return -errno;
	return 0;
}

/* ---- compaction ---- */

/* Runs under the queue lock, so it writes nothing: what is pending now
 * is in the snapshot, and goes to the old file only (which stays whole
 * until it is replaced), not to the tail. */
void journal_cut(struct journal *j)
{
	pthread_mutex_lock(&j->lock);
	j->tail.len = 0;
	j->cutting = true;
	j->cut_skip = j->pending.len;
	pthread_mutex_unlock(&j->lock);
}

static void cut_abandoned(struct journal *j, int fd)
{
	pthread_mutex_lock(&j->lock);
	j->cutting = false;
	j->tail.len = 0;
	pthread_mutex_unlock(&j->lock);
	if (fd >= 0)
		close(fd);
	unlinkat(j->dir_fd, JOURNAL_NEW, 0);
}

int journal_replace(struct journal *j, const char *snapshot, size_t len)
{
	struct journal fresh = {.dir_fd = j->dir_fd, .fd = -1};
	int rc = open_file(j->dir_fd, JOURNAL_NEW, O_TRUNC, &fresh);

	/* The snapshot, written and synced while everyone else goes on. */
	if (rc == 0)
		rc = write_all(fresh.fd, snapshot, len);
	if (rc == 0 && !j->no_sync && fdatasync(fresh.fd) < 0)
		rc = -errno;
	if (rc < 0) {
		cut_abandoned(j, fresh.fd);
		return rc;
	}
	fresh.size += len;
	/* Then, with appenders held for a moment, the records since the cut. */
	pthread_mutex_lock(&j->lock);
	rc = write_pending(j);
	if (rc == 0 && j->tail.len)
		rc = write_all(fresh.fd, j->tail.buf, j->tail.len);
	if (rc == 0 && !j->no_sync && fdatasync(fresh.fd) < 0)
		rc = -errno;
	if (rc == 0 && renameat(j->dir_fd, JOURNAL_NEW, j->dir_fd, JOURNAL_NAME) < 0)
		rc = -errno;
	if (rc == 0) {
		close(j->fd);
		j->fd = fresh.fd;
		j->size = fresh.size + j->tail.len;
		j->reserved = 0;
		j->writes++;
		j->synced = j->writes;
		j->cutting = false;
		j->tail.len = 0;
	}
	pthread_mutex_unlock(&j->lock);
	if (rc < 0) {
		cut_abandoned(j, fresh.fd);
		return rc;
	}
	reserve_ahead(j, 0);
	return fsync(j->dir_fd) < 0 ? -errno : 0;
}
