/* store.c: see store.h.  Two connections to one database: the writer,
 * used by the maintenance thread alone, and the reader, shared under a
 * mutex by every other thread.  In WAL mode a reader never waits for the
 * writer, so a getxattr never waits behind a checkpoint's fsync. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

#define DB_NAME "index.db"
#define BUSY_MS 5000

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"CREATE TABLE IF NOT EXISTS files(ino INTEGER PRIMARY KEY, path TEXT NOT NULL,"
	" state INTEGER NOT NULL, size INTEGER NOT NULL, result TEXT,"
	" maybe_sent INTEGER NOT NULL, final_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS files_path ON files(path);"
	"CREATE INDEX IF NOT EXISTS files_final ON files(final_ms) WHERE state IN (3, 4);"
	"CREATE TABLE IF NOT EXISTS counts(dir TEXT NOT NULL, state INTEGER NOT NULL,"
	" n INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY(dir, state)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
	" WITHOUT ROWID;";

/* Durable at each commit; the WAL file cut back after it grew for a big
 * checkpoint (it keeps its largest size otherwise); a small page cache
 * per connection: the index is read a row at a time. */
static const char tuning[] = "PRAGMA synchronous=FULL;"
			     "PRAGMA journal_size_limit=8388608;"
			     "PRAGMA cache_size=-4096;";

#define ROW_COLUMNS "ino, path, state, size, result, maybe_sent, final_ms"

enum writer_stmt {
	W_GET,
	W_DEL,
	W_PUT,
	W_COUNT,
	W_COUNT_TIDY,
	W_META_ADD,
	W_META_SET,
	W_COUNT_STMTS
};

static const char *const writer_sql[W_COUNT_STMTS] = {
	[W_GET] = "SELECT path, state, size FROM files WHERE ino = ?1",
	[W_DEL] = "DELETE FROM files WHERE ino = ?1",
	[W_PUT] = "INSERT OR REPLACE INTO files(" ROW_COLUMNS ") VALUES(?1,?2,?3,?4,?5,?6,?7)",
	[W_COUNT] = "INSERT INTO counts(dir, state, n, bytes) VALUES(?1, ?2, ?3, ?4)"
		    " ON CONFLICT(dir, state) DO UPDATE SET n = n + excluded.n,"
		    " bytes = bytes + excluded.bytes",
	[W_COUNT_TIDY] = "DELETE FROM counts WHERE n = 0",
	[W_META_ADD] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
		       " ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
	[W_META_SET] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)",
};

enum reader_stmt { R_GET, R_GET_PATH, R_OLDEST, R_META, R_COUNT_STMTS };

static const char *const reader_sql[R_COUNT_STMTS] = {
	[R_GET] = "SELECT " ROW_COLUMNS " FROM files WHERE ino = ?1",
	[R_GET_PATH] = "SELECT " ROW_COLUMNS " FROM files WHERE path = ?1",
	[R_OLDEST] = "SELECT " ROW_COLUMNS " FROM files WHERE state IN (3, 4) AND final_ms < ?1"
		     " AND (final_ms, ino) > (?3, ?4) ORDER BY final_ms, ino LIMIT ?2",
	[R_META] = "SELECT value FROM meta WHERE key = ?1",
};

struct store {
	sqlite3 *writer;
	sqlite3_stmt *w[W_COUNT_STMTS];
	pthread_mutex_t read_lock; /* guards the reader and its statements */
	sqlite3 *reader;
	sqlite3_stmt *r[R_COUNT_STMTS];
	char *path;
};

/* ---- opening ---- */

static int open_db(const char *path, sqlite3 **db, char *err, size_t errsz)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
		    SQLITE_OPEN_NOFOLLOW;

	if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errsz, "cannot open %s: %s", path,
			 *db ? sqlite3_errmsg(*db) : "out of memory");
		return -1;
	}
	sqlite3_busy_timeout(*db, BUSY_MS);
	sqlite3_extended_result_codes(*db, 1);
	return 0;
}

static int prepare_all(sqlite3 *db, const char *const sql[], sqlite3_stmt *out[], size_t n,
		       char *err, size_t errsz)
{
	for (size_t i = 0; i < n; i++) {
		if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &out[i], NULL) !=
		    SQLITE_OK) {
			snprintf(err, errsz, "cannot prepare the state index: %s",
				 sqlite3_errmsg(db));
			return -1;
		}
	}
	return 0;
}

int store_open(const char *state_path, struct store **out, char *err, size_t errsz)
{
	struct store *s = calloc(1, sizeof(*s));
	char *msg = NULL;
	int fd;

	*out = NULL;
	if (!s || asprintf(&s->path, "%s/%s", state_path, DB_NAME) < 0) {
		free(s);
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	pthread_mutex_init(&s->read_lock, NULL);
	/* SQLite would make it 0644 (the daemon runs with umask 0); its WAL
	 * and shared-memory files copy this mode. */
	fd = open(s->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	if (open_db(s->path, &s->writer, err, errsz) < 0)
		goto fail;
	if (sqlite3_exec(s->writer, schema, NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_exec(s->writer, tuning, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errsz, "cannot set up the state index %s: %s", s->path,
			 msg ? msg : "?");
		sqlite3_free(msg);
		goto fail;
	}
	if (open_db(s->path, &s->reader, err, errsz) < 0 ||
	    sqlite3_exec(s->reader, "PRAGMA cache_size=-4096", NULL, NULL, NULL) != SQLITE_OK ||
	    prepare_all(s->writer, writer_sql, s->w, W_COUNT_STMTS, err, errsz) < 0 ||
	    prepare_all(s->reader, reader_sql, s->r, R_COUNT_STMTS, err, errsz) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return -1;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < W_COUNT_STMTS; i++)
		sqlite3_finalize(s->w[i]);
	for (int i = 0; i < R_COUNT_STMTS; i++)
		sqlite3_finalize(s->r[i]);
	sqlite3_close(s->reader);
	sqlite3_close(s->writer);
	pthread_mutex_destroy(&s->read_lock);
	free(s->path);
	free(s);
}

/* ---- rows ---- */

static char *column_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t ? strdup((const char *)t) : NULL;
}

static int row_from(sqlite3_stmt *st, struct store_row *row)
{
	memset(row, 0, sizeof(*row));
	row->ino = (uint64_t)sqlite3_column_int64(st, 0);
	row->path = column_text(st, 1);
	row->state = sqlite3_column_int(st, 2);
	row->size = (uint64_t)sqlite3_column_int64(st, 3);
	row->result = column_text(st, 4);
	row->maybe_sent = sqlite3_column_int(st, 5) != 0;
	row->final_ms = sqlite3_column_int64(st, 6);
	if (!row->path) {
		store_row_free(row);
		return -ENOMEM;
	}
	return 0;
}

void store_row_free(struct store_row *row)
{
	free(row->path);
	free(row->result);
	memset(row, 0, sizeof(*row));
}

/* One row from a reader statement bound by the caller, under read_lock. */
static int read_one(sqlite3_stmt *st, struct store_row *row)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = row_from(st, row);
	else
		rc = rc == SQLITE_DONE ? -ENOENT : -EIO;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int store_get(struct store *s, uint64_t ino, struct store_row *row)
{
	int rc;

	pthread_mutex_lock(&s->read_lock);
	sqlite3_bind_int64(s->r[R_GET], 1, (sqlite3_int64)ino);
	rc = read_one(s->r[R_GET], row);
	pthread_mutex_unlock(&s->read_lock);
	return rc;
}

int store_get_path(struct store *s, const char *path, struct store_row *row)
{
	int rc;

	pthread_mutex_lock(&s->read_lock);
	sqlite3_bind_text(s->r[R_GET_PATH], 1, path, -1, SQLITE_STATIC);
	rc = read_one(s->r[R_GET_PATH], row);
	pthread_mutex_unlock(&s->read_lock);
	return rc;
}

int store_each_count(struct store *s,
		     void (*fn)(void *arg, const char *dir, int state, uint64_t n, uint64_t bytes),
		     void *arg)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&s->read_lock);
	rc = sqlite3_prepare_v2(s->reader, "SELECT dir, state, n, bytes FROM counts", -1, &st,
				NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *dir = sqlite3_column_text(st, 0);

		fn(arg, dir ? (const char *)dir : "", sqlite3_column_int(st, 1),
		   (uint64_t)sqlite3_column_int64(st, 2), (uint64_t)sqlite3_column_int64(st, 3));
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->read_lock);
	return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : -EIO;
}

int store_each_row(struct store *s, const char *dir, int state,
		   bool (*fn)(void *arg, const struct store_row *row), void *arg)
{
	/* '/' + 1 is '0': the paths below DIR sort between DIR/ and DIR0,
	 * a range of the index on paths. */
	static const char below[] = "SELECT " ROW_COLUMNS " FROM files"
				    " WHERE path >= ?1 || '/' AND path < ?1 || '0'"
				    " AND (?2 < 0 OR state = ?2)";
	static const char all[] = "SELECT " ROW_COLUMNS " FROM files WHERE ?2 < 0 OR state = ?2";
	bool some = dir && *dir;
	sqlite3_stmt *st = NULL;
	struct store_row row;
	int rc;

	pthread_mutex_lock(&s->read_lock);
	rc = sqlite3_prepare_v2(s->reader, some ? below : all, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		if (some)
			sqlite3_bind_text(st, 1, dir, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, state);
	}
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		bool more = row_from(st, &row) == 0 && fn(arg, &row);

		store_row_free(&row);
		rc = more ? SQLITE_OK : SQLITE_DONE;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->read_lock);
	return rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : -EIO;
}

int store_oldest(struct store *s, const struct store_cursor *after, int64_t before_ms, size_t max,
		 struct store_row *rows, size_t *n)
{
	sqlite3_stmt *st = s->r[R_OLDEST];
	int rc;

	*n = 0;
	pthread_mutex_lock(&s->read_lock);
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
	sqlite3_bind_int64(st, 3, after ? after->final_ms : INT64_MIN);
	sqlite3_bind_int64(st, 4, after ? (sqlite3_int64)after->ino : 0);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
		if (row_from(st, &rows[*n]) == 0)
			(*n)++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	pthread_mutex_unlock(&s->read_lock);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
}

static int64_t meta_get(struct store *s, const char *key)
{
	sqlite3_stmt *st = s->r[R_META];
	int64_t v = 0;

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return v;
}

int store_totals(struct store *s, struct store_totals *t)
{
	pthread_mutex_lock(&s->read_lock);
	t->uploaded = (uint64_t)meta_get(s, "uploaded");
	t->duplicate = (uint64_t)meta_get(s, "duplicate");
	t->failed = (uint64_t)meta_get(s, "failed");
	t->bytes = (uint64_t)meta_get(s, "bytes");
	pthread_mutex_unlock(&s->read_lock);
	return 0;
}

bool store_was_clean(struct store *s)
{
	bool clean;

	pthread_mutex_lock(&s->read_lock);
	clean = meta_get(s, "clean") != 0;
	pthread_mutex_unlock(&s->read_lock);
	return clean;
}

/* ---- writes ---- */

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* ---- counts: summed in memory over a transaction, then one UPSERT per
 * (folder, state), so a checkpoint of thousands of files in a few folders
 * costs a few statements, not three per file ---- */

struct delta {
	char *dir;
	int state;
	int64_t n, bytes;
	struct delta *next;
};

#define DELTA_BUCKETS 256

struct deltas {
	struct delta *b[DELTA_BUCKETS];
	bool failed; /* out of memory */
};

static unsigned delta_hash(const char *dir, size_t len, int state)
{
	unsigned h = 2166136261u ^ (unsigned)state;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)dir[i]) * 16777619u;
	return h % DELTA_BUCKETS;
}

static void delta_add(struct deltas *d, const char *dir, size_t len, int state, int64_t n,
		      int64_t bytes)
{
	unsigned h = delta_hash(dir, len, state);
	struct delta *x;

	for (x = d->b[h]; x; x = x->next) {
		if (x->state == state && strlen(x->dir) == len && memcmp(x->dir, dir, len) == 0)
			break;
	}
	if (!x) {
		x = calloc(1, sizeof(*x));
		if (!x || !(x->dir = strndup(dir, len))) {
			free(x);
			d->failed = true;
			return;
		}
		x->state = state;
		x->next = d->b[h];
		d->b[h] = x;
	}
	x->n += n;
	x->bytes += bytes;
}

/* What a file counts for, in every folder above it: SIGN +1 or -1. */
static void count(struct deltas *d, const char *path, int state, uint64_t size, int sign)
{
	size_t len = strlen(path);

	do {
		while (len > 0 && path[len - 1] != '/')
			len--;
		len = len > 0 ? len - 1 : 0;
		delta_add(d, path, len, state, sign, sign * (int64_t)size);
	} while (len > 0);
}

static int deltas_write(struct store *s, struct deltas *d)
{
	int rc = d->failed ? -ENOMEM : 0;

	for (int i = 0; i < DELTA_BUCKETS; i++) {
		struct delta *x = d->b[i], *next;

		for (; x; x = next) {
			next = x->next;
			if (rc == 0 && (x->n || x->bytes)) {
				sqlite3_bind_text(s->w[W_COUNT], 1, x->dir, -1, SQLITE_STATIC);
				sqlite3_bind_int(s->w[W_COUNT], 2, x->state);
				sqlite3_bind_int64(s->w[W_COUNT], 3, x->n);
				sqlite3_bind_int64(s->w[W_COUNT], 4, x->bytes);
				rc = step_done(s->w[W_COUNT]);
			}
			free(x->dir);
			free(x);
		}
		d->b[i] = NULL;
	}
	return rc;
}

/* Take the row of INO out of the counts, if there is one. */
static int uncount(struct store *s, struct deltas *d, uint64_t ino)
{
	sqlite3_stmt *st = s->w[W_GET];
	int rc;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *path = sqlite3_column_text(st, 0);

		if (path)
			count(d, (const char *)path, sqlite3_column_int(st, 1),
			      (uint64_t)sqlite3_column_int64(st, 2), -1);
		rc = path ? 0 : -ENOMEM;
	} else {
		rc = rc == SQLITE_DONE ? 0 : -EIO;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int put(struct store *s, struct deltas *d, const struct store_row *r)
{
	sqlite3_stmt *st = s->w[W_PUT];
	int rc = uncount(s, d, r->ino);

	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)r->ino);
	sqlite3_bind_text(st, 2, r->path, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, r->state);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)r->size);
	if (r->result)
		sqlite3_bind_text(st, 5, r->result, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, r->maybe_sent);
	sqlite3_bind_int64(st, 7, r->final_ms);
	rc = step_done(st);
	if (rc == 0)
		count(d, r->path, r->state, r->size, +1);
	return rc;
}

static int del(struct store *s, struct deltas *d, uint64_t ino)
{
	int rc = uncount(s, d, ino);

	if (rc == 0) {
		sqlite3_bind_int64(s->w[W_DEL], 1, (sqlite3_int64)ino);
		rc = step_done(s->w[W_DEL]);
	}
	return rc;
}

static int meta(struct store *s, int which, const char *key, int64_t value)
{
	sqlite3_bind_text(s->w[which], 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->w[which], 2, value);
	return step_done(s->w[which]);
}

static int add_totals(struct store *s, const struct store_totals *t)
{
	int rc = 0;

	if (!t)
		return 0;
	if (t->uploaded)
		rc = meta(s, W_META_ADD, "uploaded", (int64_t)t->uploaded);
	if (rc == 0 && t->duplicate)
		rc = meta(s, W_META_ADD, "duplicate", (int64_t)t->duplicate);
	if (rc == 0 && t->failed)
		rc = meta(s, W_META_ADD, "failed", (int64_t)t->failed);
	if (rc == 0 && t->bytes)
		rc = meta(s, W_META_ADD, "bytes", (int64_t)t->bytes);
	return rc;
}

int store_apply(struct store *s, const uint64_t *dels, size_t ndels, const struct store_row *puts,
		size_t nputs, const struct store_totals *totals)
{
	struct deltas d = {0};
	int rc = sqlite3_exec(s->writer, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0
											   : -EIO;

	for (size_t i = 0; rc == 0 && i < ndels; i++)
		rc = del(s, &d, dels[i]);
	for (size_t i = 0; rc == 0 && i < nputs; i++)
		rc = put(s, &d, &puts[i]);
	/* Written (or, after a failure, freed) either way. */
	if (deltas_write(s, &d) < 0 && rc == 0)
		rc = -EIO;
	if (rc == 0)
		rc = add_totals(s, totals);
	if (rc == 0)
		rc = meta(s, W_META_SET, "clean", 0);
	if (rc == 0)
		rc = step_done(s->w[W_COUNT_TIDY]);
	if (rc == 0 && sqlite3_exec(s->writer, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = -EIO;
	if (rc < 0)
		sqlite3_exec(s->writer, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int store_set_clean(struct store *s, bool clean)
{
	return meta(s, W_META_SET, "clean", clean) == 0 ? 0 : -EIO;
}
