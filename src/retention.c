/* retention.c: see retention.h.  The queue says which files are over and
 * since when (the state index orders them); this file decides how many
 * go, checks each on disk, and removes it under the spool's names lock
 * (spool.h), so that no rename, link or open for writing of that name
 * slips in between the check and the unlink. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "beneath.h"
#include "clock.h"
#include "inoset.h"
#include "log.h"
#include "queue.h"
#include "retention.h"
#include "spool.h"
#include "store.h"

#define RUN_EVERY_MS 1000
/* Each run stops after this long: the uploader has other work. */
#define RUN_BUDGET_MS 200
/* Files checked and removed per hold of the names lock: a FUSE rename
 * waits for at most one batch. */
#define BATCH 32

struct retention {
	struct queue *q;
	int files_fd;
	struct retention_config cfg;
	void (*forget)(void *arg, const char *path);
	void *forget_arg;
	int64_t next_ms;
	/* Files that stay although due (another name links to them). */
	struct inoset skip;
	struct store_cursor cursor;      /* where the last look at the index ended */
	uint64_t removed, removed_bytes; /* since the last report */
	int64_t report_ms;
};

static atomic_bool refusing;

bool retention_refuses_writes(void)
{
	return atomic_load(&refusing);
}

struct retention *retention_new(struct queue *q, int files_fd, const struct retention_config *cfg)
{
	struct retention *r;

	if (!cfg->keep_s && !cfg->max_spool_bytes && !cfg->min_free_bytes)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r) {
		log_error("out of memory: retention is off");
		return NULL;
	}
	r->q = q;
	r->files_fd = files_fd;
	r->cfg = *cfg;
	r->cursor = (struct store_cursor){INT64_MIN, 0};
	return r;
}

void retention_free(struct retention *r)
{
	if (!r)
		return;
	inoset_free(&r->skip);
	free(r);
}

void retention_set_forget(struct retention *r, void (*forget)(void *arg, const char *path),
			  void *arg)
{
	if (r) {
		r->forget = forget;
		r->forget_arg = arg;
	}
}

/* Which limit is exceeded now, for the log; NULL when none. */
static const char *over_limit(struct retention *r)
{
	struct queue_counts c;
	struct statvfs sv;
	uint64_t bytes = 0;

	if (r->cfg.max_spool_bytes) {
		queue_count(r->q, "", &c);
		for (int s = 0; s < FILE_STATE_COUNT; s++)
			bytes += c.bytes[s];
		if (bytes > r->cfg.max_spool_bytes)
			return "max_spool";
	}
	if (r->cfg.min_free_bytes && fstatvfs(r->files_fd, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < r->cfg.min_free_bytes)
		return "min_free";
	return NULL;
}

/* What is at R->path now: 1 the file taken (remove it), 0 gone or
 * another file (forget the row), -1 keep it (linked elsewhere, or
 * unreadable). */
static int check_on_disk(struct retention *r, int dir, const char *name,
			 const struct queue_retiree *f)
{
	struct stat st;

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_ino != f->ino)
		return 0;
	if (st.st_nlink > 1) {
		inoset_add(&r->skip, f->ino);
		return -1;
	}
	return 1;
}

/* Under the names lock.  Whether the file left the spool.  KEEP_BEFORE:
 * files whose upload ended before this go by age; others only while a
 * limit is exceeded. */
static bool remove_one(struct retention *r, const struct queue_retiree *f, int64_t keep_before)
{
	const char *name;
	int dir, verdict = -1;
	bool unlinked = false;

	if ((f->final_ms >= keep_before && !over_limit(r)) || !queue_retire_check(r->q, f)) {
		queue_retire_done(r->q, f, false);
		return false;
	}
	dir = beneath_parent(r->files_fd, f->path, &name);
	if (dir >= 0) {
		verdict = check_on_disk(r, dir, name, f);
		if (verdict == 1 && unlinkat(dir, name, 0) < 0) {
			log_warn("retention: cannot remove %s: %s", f->path, strerror(errno));
			verdict = -1;
		}
		unlinked = verdict == 1;
		close(dir);
	} else if (dir == -ENOENT) {
		verdict = 0;
	}
	queue_retire_done(r->q, f, verdict >= 0);
	return unlinked;
}

static void remove_batch(struct retention *r, struct queue_retiree *list, size_t n,
			 int64_t keep_before)
{
	bool gone[BATCH] = {false};

	spool_names_own();
	for (size_t i = 0; i < n; i++)
		gone[i] = remove_one(r, &list[i], keep_before);
	spool_names_release();
	for (size_t i = 0; i < n; i++) {
		if (gone[i]) {
			r->removed++;
			r->removed_bytes += list[i].size;
			if (r->forget)
				r->forget(r->forget_arg, list[i].path);
		}
		free(list[i].path);
	}
}

static void set_refusing(struct retention *r, const char *limit)
{
	bool was = atomic_exchange(&refusing, limit != NULL);

	if (limit && !was)
		log_warn("the spool is past %s=%s and only files not yet uploaded (or failed) "
			 "are left in it: new files get ENOSPC until uploads make room",
			 limit, strcmp(limit, "max_spool") == 0 ? "its size" : "its free space");
	else if (!limit && was)
		log_info("the spool has room again: new files are accepted");
}

/* One pass over what is due.  Returns the limit still exceeded once
 * nothing more can go, or NULL. */
static const char *remove_due(struct retention *r, int64_t deadline)
{
	struct queue_retiree list[BATCH];
	bool forced = false, end;

	for (;;) {
		const char *limit = over_limit(r);
		int64_t keep_before =
			r->cfg.keep_s ? clock_wall_ms() - (int64_t)r->cfg.keep_s * 1000 : INT64_MIN;
		int64_t before = limit ? INT64_MAX : keep_before; /* oldest first */
		size_t n;

		if (!limit && !r->cfg.keep_s)
			return NULL;
		n = queue_retire_take(r->q, &r->cursor, before, &r->skip, list, BATCH, &end);
		if (n)
			remove_batch(r, list, n, keep_before);
		if (end) {
			/* Next time from the oldest again: files passed over
			 * because they were in use may go then. */
			r->cursor = (struct store_cursor){INT64_MIN, 0};
			if (!n && limit && !forced) {
				/* Files that went a moment ago are still in
				 * memory, not yet in the index that orders them. */
				queue_checkpoint(r->q, true);
				forced = true;
				continue;
			}
			if (!n)
				return limit;
		}
		if (clock_now_ms() >= deadline)
			return NULL; /* more next time; refuse nothing yet */
	}
}

static void report(struct retention *r, int64_t now)
{
	if (now < r->report_ms)
		return;
	if (r->removed)
		log_info("retention removed %llu uploaded file(s), %.1f MB, in the last 10 minutes",
			 (unsigned long long)r->removed, (double)r->removed_bytes / 1e6);
	r->removed = r->removed_bytes = 0;
	r->report_ms = now + 600000;
}

void retention_run(struct retention *r, int64_t now_ms)
{
	if (!r || now_ms < r->next_ms)
		return;
	r->next_ms = now_ms + RUN_EVERY_MS;
	set_refusing(r, remove_due(r, now_ms + RUN_BUDGET_MS));
	report(r, now_ms);
}
