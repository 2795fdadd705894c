/* queue_annot.c: annotation files in the queue (doc/internals.md
 * "Annotation files").  A .labels file below a category, or an
 * info.labels anywhere, is never sent as itself: once it has settled the
 * uploader reads it (queue_take_loads, queue_load_done), and from then
 * on each request carries, for each of its samples, that sample's
 * entries.  Samples wait while an annotation file that may speak for
 * them is still being written or read, for at most cfg.annotation_wait_ms.
 *
 * Its status follows what became of the samples it describes: uploaded
 * once one went with it, pending while some wait, failed when it came
 * too late or named nothing here, duplicate when all its samples were
 * already in the project.  That is worked out again (annot_refresh) when
 * something happened to its samples, not at every step: a source of
 * 100,000 entries costs a pass over them, so it is done at most about
 * once a second for such a source (annot_refresh_dirty).
 *
 * Everything here runs under queue.lock. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "layout.h"
#include "dataset.h"
#include "queue_annot_i.h"
#include "queue_i.h"
#include "text.h"

/* ---- the index: folder -> sources ---- */

static struct annot_source **bucket(struct source_index *ix, const char *dir, size_t len)
{
	return &ix->buckets[text_hash(dir, len) & (ix->nbuckets - 1)];
}

static int index_grow(struct source_index *ix)
{
	size_t n = ix->nbuckets ? ix->nbuckets * 2 : 64;
	struct annot_source **fresh = calloc(n, sizeof(*fresh));

	if (!fresh)
		return ix->nbuckets ? 0 : -ENOMEM; /* longer chains; still right */
	for (size_t i = 0; i < ix->nbuckets; i++) {
		struct annot_source *s = ix->buckets[i], *next;

		for (; s; s = next) {
			size_t b = text_hash(s->dir, strlen(s->dir)) & (n - 1);

			next = s->next;
			s->next = fresh[b];
			fresh[b] = s;
		}
	}
	free(ix->buckets);
	ix->buckets = fresh;
	ix->nbuckets = n;
	return 0;
}

int source_index_add(struct source_index *ix, struct annot_source *s)
{
	struct annot_source **b;

	if ((ix->count >= ix->nbuckets || !ix->buckets) && index_grow(ix) < 0)
		return -ENOMEM;
	b = bucket(ix, s->dir, strlen(s->dir));
	s->next = *b;
	*b = s;
	ix->count++;
	return 0;
}

void source_index_remove(struct source_index *ix, struct annot_source *s)
{
	struct annot_source **pp;

	if (!ix->buckets)
		return;
	for (pp = bucket(ix, s->dir, strlen(s->dir)); *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			ix->count--;
			return;
		}
	}
}

/* The next source of folder DIR (LEN bytes) after AFTER (NULL: the first). */
struct annot_source *source_in(struct queue *q, const char *dir, size_t len,
			       struct annot_source *after)
{
	struct annot_source *s;

	if (!q->sources.count)
		return NULL;
	s = after ? after->next : *bucket(&q->sources, dir, len);
	for (; s; s = s->next) {
		if (strlen(s->dir) == len && memcmp(s->dir, dir, len) == 0)
			return s;
	}
	return NULL;
}

/* ---- which files are annotation files ---- */

const char *path_base(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static bool is_annotation_path(const struct queue *q, const char *path)
{
	const char *base = path_base(path);
	size_t n = strlen(base);

	return n > 7 && strcasecmp(base + n - 7, ".labels") == 0 && !ignored_reason(q, path);
}

void source_reset(struct queue *q, struct annot_source *s)
{
	if (s->ds)
		dirs_count_dataset(q, s->e->path, -1);
	dataset_free(s->ds);
	s->ds = NULL;
	s->restored = false;
	annot_free(s->file);
	s->file = NULL;
	free(s->error);
	s->error = NULL;
	s->stored = s->duplicates = s->failed = s->late = 0;
	/* Unread again: counted as such, no longer listed. */
	dataset_source_sync(q, s, false);
}

static void undirty(struct queue *q, struct annot_source *s)
{
	struct annot_source **pp;

	if (!s->dirty)
		return;
	for (pp = &q->dirty_sources; *pp && *pp != s; pp = &(*pp)->dirty_next)
		;
	if (*pp)
		*pp = s->dirty_next;
	s->dirty = false;
}

static void source_free(struct queue *q, struct annot_source *s)
{
	undirty(q, s);
	source_reset(q, s);
	dataset_source_sync(q, s, true);
	free(s->scope_dir);
	free(s->dir);
	free(s);
}

bool annot_is_known_source(const struct entry *e)
{
	return e->source && (e->source->scope == SCOPE_NONE || e->source->ds);
}

void annot_untrack(struct queue *q, struct entry *e)
{
	if (!e->source)
		return;
	source_index_remove(&q->sources, e->source);
	source_free(q, e->source);
	e->source = NULL;
}

/* The same file under another name, in the same or another folder: what
 * was read of it still holds (keys are names in its folder, or paths
 * below it), it only moves in the index, to DIR (taken over). */
static int source_moved(struct queue *q, struct annot_source *s, char *dir)
{
	if (!dir)
		return -ENOMEM;
	source_index_remove(&q->sources, s);
	free(s->dir);
	s->dir = dir;
	return source_index_add(&q->sources, s);
}

/* What E's path makes of it: a .labels file (SCOPE_NONE, true), a file
 * that may be a dataset's (its scope, true), or neither (false); *DIR
 * the key of the index, *SCOPE_DIR as dataset_scope_of says. */
static bool source_kind(struct queue *q, const struct entry *e, enum dataset_scope *scope,
			char **dir, char **scope_dir)
{
	*dir = *scope_dir = NULL;
	*scope = SCOPE_NONE;
	if (is_annotation_path(q, e->path)) {
		*dir = strndup(e->path, dir_len(e->path));
		return true;
	}
	*scope = dataset_scope_of(q, e->path, dir, scope_dir);
	return *scope != SCOPE_NONE;
}

void annot_track(struct queue *q, struct entry *e)
{
	struct annot_source *s = e->source;
	enum dataset_scope scope;
	char *dir, *scope_dir;
	bool annotation = source_kind(q, e, &scope, &dir, &scope_dir);

	if (s && annotation && s->info == annot_is_info_name(e->path) && s->scope == scope) {
		dataset_source_sync(q, s, true);
		free(s->scope_dir);
		s->scope_dir = scope_dir;
		scope_dir = NULL;
		dataset_source_sync(q, s, false);
		if (source_moved(q, s, dir) == 0)
			return;
		if (s->dir == dir)
			dir = NULL; /* taken over, freed with S */
		goto oom;
	}
	annot_untrack(q, e);
	if (!annotation)
		return;
	s = calloc(1, sizeof(*s));
	if (!s || !dir)
		goto oom;
	s->dir = dir;
	dir = NULL;
	if (source_index_add(&q->sources, s) < 0)
		goto oom;
	s->e = e;
	s->ino = e->ino;
	s->info = annot_is_info_name(e->path);
	s->scope = scope;
	s->scope_dir = scope_dir;
	scope_dir = NULL;
	e->source = s;
	dataset_source_sync(q, s, false);
	/* Known already (brought back from the trash, renamed from another
	 * kind): read it again before its samples go. */
	if (e->state != FILE_WRITING && e->state != FILE_IGNORED)
		annot_make_due(q, e, false);
	return;
oom:
	/* Without a source it would go as a sample: make it say why not. */
	free(dir);
	free(scope_dir);
	if (s && s != e->source) {
		free(s->dir);
		free(s);
	}
	annot_untrack(q, e);
	entry_set_state(q, e, FILE_FAILED);
	entry_set_result(e, "out of memory: this annotation file is not used");
}

void annot_free_all(struct queue *q)
{
	for (size_t i = 0; i < q->sources.nbuckets; i++) {
		struct annot_source *s = q->sources.buckets[i], *next;

		for (; s; s = next) {
			next = s->next;
			s->e->source = NULL;
			source_free(q, s);
		}
	}
	free(q->sources.buckets);
	memset(&q->sources, 0, sizeof(q->sources));
	q->dirty_sources = NULL;
}

void annot_content_changed(struct queue *q, struct entry *e)
{
	if (!e->source)
		return;
	e->source->due = false;
	e->source->fresh = true;
	source_reset(q, e->source);
}

void annot_make_due(struct queue *q, struct entry *e, bool fresh)
{
	struct annot_source *s = e->source;

	s->due = true;
	if (fresh) {
		s->fresh = true;
		entry_set_state(q, e, FILE_PENDING);
		entry_set_result(e, "waiting to be read");
	}
	dataset_source_sync(q, s, false);
	wake_uploader(q);
}

void annot_state_changed(struct queue *q, struct entry *e)
{
	dataset_source_sync(q, e->source, false);
}

/* ---- reading ---- */

size_t queue_take_loads(struct queue *q, struct queue_load *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < q->sources.nbuckets && n < max; i++) {
		for (struct annot_source *s = q->sources.buckets[i]; s && n < max; s = s->next) {
			if (!s->due || s->loading || s->e->writers > 0 ||
			    s->e->state == FILE_WRITING)
				continue;
			out[n].path = strdup(s->e->path);
			if (!out[n].path)
				break;
			out[n].ino = s->ino;
			out[n].generation = s->e->generation;
			out[n].dataset = s->scope != SCOPE_NONE;
			s->due = false;
			s->loading = true;
			n++;
		}
	}
	queue_unlock(q);
	return n;
}

/* The entry that a source's KEY names (a file name, or for info.labels a
 * path below its folder), if the queue knows it. */
static struct entry *named_entry(struct queue *q, const struct annot_source *s, const char *key)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s%s%s", s->dir, s->dir[0] ? "/" : "", key) >=
	    sizeof(path))
		return NULL;
	return entry_find_path(q, path);
}

bool entry_is_sample(const struct entry *e)
{
	return e && !e->source && e->state != FILE_IGNORED;
}

/* Samples it names that had gone without it before it was read.  Those
 * still on their way are counted when their verdict comes
 * (annot_sample_done), since their request may yet fail. */
static void count_late(struct queue *q, struct annot_source *s)
{
	for (size_t i = 0; i < annot_count(s->file); i++) {
		struct entry *e = named_entry(q, s, annot_key(s->file, i));

		if (entry_is_sample(e) && (e->state == FILE_UPLOADED || e->state == FILE_DUPLICATE))
			s->late++;
	}
}

void queue_load_done(struct queue *q, const struct queue_load *load, struct annot_file *file,
		     const char *err)
{
	struct entry *e;
	struct annot_source *s;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, load->ino);
	s = e ? e->source : NULL;
	if (s)
		s->loading = false;
	/* Rewritten, moved or gone while it was read: it is read again. */
	if (!s || e->generation != load->generation || s->due) {
		annot_free(file);
		goto out;
	}
	source_reset(q, s);
	s->file = file;
	s->error = file ? NULL : strdup(err ? err : "cannot be read");
	s->generation = e->generation;
	s->read_ms = clock_now_ms();
	if (s->fresh) {
		if (file)
			count_late(q, s);
		/* Read: after a restart its samples are not "late". */
		e->maybe_sent = true;
		annot_refresh(q, s);
		if (!state_is_final(e->state))
			journal_note(q, e, JOURNAL_DONE);
	} else {
		s->restored = true;
		if (!file || !state_is_final(e->state))
			annot_refresh(q, s);
	}
	s->fresh = false;
	/* Its samples may go now. */
	wake_uploader(q);
out:
	queue_unlock(q);
}

/* ---- what a sample's request carries ---- */

bool source_ready(const struct annot_source *s)
{
	return !s->due && !s->loading && s->e->state != FILE_WRITING && s->e->writers == 0;
}

struct queue_source_ref annot_ref(const struct annot_source *s)
{
	return (struct queue_source_ref){s->ino, s->generation};
}

void plan_add_source(struct sample_plan *p, struct annot_source *s)
{
	for (unsigned i = 0; i < p->nfrom; i++) {
		if (p->from[i] == s)
			return;
	}
	if (p->nfrom < sizeof(p->from) / sizeof(p->from[0]))
		p->from[p->nfrom++] = s;
}

/* A source not yet read: wait for it, or after long enough go without.
 * Whoever looks at a waiting sample sees why it waits. */
bool source_wait(struct entry *e, const struct annot_source *s, struct sample_plan *p,
		 bool waited_long)
{
	char why[256];

	if (waited_long) {
		p->annotations_missed = true;
		return false;
	}
	snprintf(why, sizeof(why), "waiting for %s to be %s", path_base(s->e->path),
		 s->e->state == FILE_WRITING || s->e->writers ? "written" : "read");
	if (!e->result || strcmp(e->result, why) != 0)
		entry_set_result(e, why);
	return true;
}

/* bounding_boxes.labels and the like in the sample's own folder, keyed
 * by its file name, as the official uploader looks them up. */
static bool plan_typed(struct queue *q, struct entry *e, bool waited_long, struct sample_plan *p)
{
	size_t dlen = dir_len(e->path);
	const char *base = path_base(e->path);

	for (struct annot_source *s = source_in(q, e->path, dlen, NULL); s;
	     s = source_in(q, e->path, dlen, s)) {
		const char *v;
		enum annot_kind k;

		if (s->info || s->scope != SCOPE_NONE)
			continue;
		if (!source_ready(s)) {
			if (source_wait(e, s, p, waited_long))
				return false;
			continue;
		}
		if (!s->file)
			continue;
		k = annot_kind_of(s->file);
		v = k < ANNOT_PART_KINDS && !p->part[k] ? annot_value(s->file, base) : NULL;
		if (v) {
			p->part[k] = v;
			plan_add_source(p, s);
		}
	}
	return true;
}

static void apply_info(struct queue *q, struct sample_plan *p, const struct annot_sample *smp,
		       struct annot_source *s)
{
	if (smp->category >= 0)
		p->category = smp->category;
	switch (smp->label_mode) {
	case ANNOT_LABEL_GIVEN:
		p->label_mode = QUEUE_LABEL_GIVEN;
		p->label = smp->label;
		p->label_len = strlen(smp->label);
		break;
	case ANNOT_LABEL_NONE: p->label_mode = QUEUE_LABEL_NONE; break;
	case ANNOT_LABEL_PARTS: p->label_mode = QUEUE_LABEL_PARTS; break;
	case ANNOT_LABEL_FOLDER: break;
	}
	p->metadata = smp->metadata;
	p->send_name = smp->name;
	/* The folder's own annotation file wins, as with the official uploader. */
	for (int k = 0; k < ANNOT_PART_KINDS; k++) {
		if (!p->part[k])
			p->part[k] = smp->part[k];
	}
	p->info = true;
	plan_add_source(p, s);
}

size_t path_parent_len(const char *path, size_t len)
{
	while (len > 0 && path[len - 1] != '/')
		len--;
	return len > 0 ? len - 1 : 0;
}

/* info.labels in the sample's folder or above; the nearest that
 * describes it speaks for it. */
static bool plan_info(struct queue *q, struct entry *e, bool waited_long, struct sample_plan *p)
{
	size_t len = dir_len(e->path);

	for (;;) {
		for (struct annot_source *s = source_in(q, e->path, len, NULL); s;
		     s = source_in(q, e->path, len, s)) {
			const struct annot_sample *smp;

			if (!s->info)
				continue;
			if (!source_ready(s)) {
				if (source_wait(e, s, p, waited_long))
					return false;
				continue;
			}
			smp = s->file ? annot_sample_at(s->file, e->path + len + (len ? 1 : 0))
				      : NULL;
			if (smp) {
				apply_info(q, p, smp, s);
				return true;
			}
		}
		if (len == 0)
			return true;
		len = path_parent_len(e->path, len);
	}
}

static void plan_from_layout(const struct queue *q, const struct layout_path *lp,
			     struct sample_plan *p)
{
	p->category = lp->category;
	if (lp->label) {
		p->label_mode = QUEUE_LABEL_GIVEN;
		p->label = lp->label;
		p->label_len = lp->label_len;
	} else {
		p->label_mode = q->cfg.no_label_infer ? QUEUE_LABEL_NONE : QUEUE_LABEL_INFER;
	}
}

bool annot_plan(struct queue *q, struct entry *e, int64_t now, struct sample_plan *p)
{
	struct layout_path lp;
	bool waited_long = now - e->due_ms >= (int64_t)q->cfg.annotation_wait_ms;

	memset(p, 0, sizeof(*p));
	if (e->source || layout_classify(e->path, &lp) < 0 || lp.kind != LAYOUT_ENTRY ||
	    lp.category < 0)
		return false;
	plan_from_layout(q, &lp, p);
	if (!q->sources.count)
		return true;
	return plan_typed(q, e, waited_long, p) && plan_info(q, e, waited_long, p) &&
	       dataset_plan(q, e, waited_long, now, p);
}

/* ---- its status ---- */

struct coverage {
	size_t present, waiting;
	const char *missing; /* a key that names no file here */
	size_t nmissing;
};

static void cover(struct queue *q, const struct annot_source *s, struct coverage *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; s->file && i < annot_count(s->file); i++) {
		struct entry *e = named_entry(q, s, annot_key(s->file, i));

		if (!entry_is_sample(e)) {
			if (c->nmissing++ == 0)
				c->missing = annot_key(s->file, i);
			continue;
		}
		c->present++;
		if (!state_is_final(e->state))
			c->waiting++;
	}
}

int annot_append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= size)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len = *len + (size_t)n < size ? *len + (size_t)n : size;
	return 0;
}

/* The notes that go after the headline: what it could not do. */
static void notes(const struct annot_source *s, const struct coverage *c, char *buf, size_t size,
		  size_t *len)
{
	if (s->late && (s->stored || s->duplicates || c->waiting))
		annot_append(buf, size, len,
			     "; %zu sample(s) had gone before it was read, without it (%s)",
			     s->late, ANNOT_RESEND_HINT);
	if (c->nmissing && c->present)
		annot_append(buf, size, len, "; %zu entr%s name%s no file here (e.g. '%.80s')",
			     c->nmissing, c->nmissing == 1 ? "y" : "ies",
			     c->nmissing == 1 ? "s" : "", c->missing);
	if (annot_skipped(s->file))
		annot_append(buf, size, len, "; %zu entr%s left out (%s)", annot_skipped(s->file),
			     annot_skipped(s->file) == 1 ? "y" : "ies", annot_skip_note(s->file));
	if (annot_refused(s->file))
		annot_append(buf, size, len,
			     "; %zu path(s) leave its folder and were refused (e.g. '%s')",
			     annot_refused(s->file), annot_refuse_note(s->file));
	if (annot_attachments(s->file))
		annot_append(buf, size, len,
			     "; %zu entr%s name attachments, which ingestfs does not send",
			     annot_attachments(s->file),
			     annot_attachments(s->file) == 1 ? "y" : "ies");
}

/* How long a file that names nothing here yet waits for its samples (a
 * copy in name order brings the annotations first), then fails. */
static bool still_expecting(const struct queue *q, const struct annot_source *s, int64_t now)
{
	return now - s->read_ms < (int64_t)q->cfg.annotation_wait_ms;
}

static enum file_state headline(const struct queue *q, const struct annot_source *s,
				const struct coverage *c, int64_t now, char *buf, size_t size,
				size_t *len)
{
	const char *what = s->info ? "read here, never sent: the labels of" : "sent with";

	if (s->stored) {
		annot_append(buf, size, len, "%s %zu sample(s)", what, s->stored);
		return FILE_UPLOADED;
	}
	/* Its samples went before we stopped; how is not known any more. */
	if (s->restored && c->present && !c->waiting) {
		annot_append(buf, size, len, "%s its %zu sample(s)", what, c->present);
		return FILE_UPLOADED;
	}
	if (c->waiting) {
		annot_append(buf, size, len, "waiting for its %zu sample(s) to go", c->waiting);
		return FILE_PENDING;
	}
	if (s->late) {
		annot_append(buf, size, len,
			     "came after its %zu sample(s) had gone, so they went "
			     "without it; %s",
			     s->late, ANNOT_RESEND_HINT);
		return FILE_FAILED;
	}
	if (s->duplicates) {
		annot_append(buf, size, len,
			     "every sample it describes was already in the project (%zu)",
			     s->duplicates);
		return FILE_DUPLICATE;
	}
	if (s->failed) {
		annot_append(buf, size, len, "its %zu sample(s) failed (see their results)",
			     s->failed);
		return FILE_FAILED;
	}
	if (!annot_count(s->file)) {
		annot_append(buf, size, len, "it has no usable entries");
		return FILE_FAILED;
	}
	annot_append(buf, size, len, "none of the %zu files it names is here%s (e.g. '%.80s')",
		     annot_count(s->file), still_expecting(q, s, now) ? " yet" : "",
		     c->missing ? c->missing : "");
	return still_expecting(q, s, now) ? FILE_PENDING : FILE_FAILED;
}

void source_set_state(struct queue *q, struct entry *e, enum file_state state, const char *text)
{
	bool changed = e->state != state || !e->result || strcmp(e->result, text) != 0;

	entry_set_state(q, e, state);
	entry_set_result(e, text);
	if (changed && state_is_final(state))
		journal_note(q, e, JOURNAL_DONE);
}

void source_mark_dirty(struct queue *q, struct annot_source *s, int64_t at)
{
	if (!s->dirty) {
		s->dirty = true;
		s->dirty_next = q->dirty_sources;
		q->dirty_sources = s;
		s->refresh_ms = at;
	} else if (at < s->refresh_ms) {
		s->refresh_ms = at;
	}
}

void annot_refresh(struct queue *q, struct annot_source *s)
{
	int64_t now = clock_now_ms();
	char buf[RESULT_MAX];
	size_t len = 0;
	struct coverage c;
	enum file_state state;

	if (s->scope != SCOPE_NONE) {
		dataset_refresh(q, s);
		return;
	}
	if (s->e->state == FILE_WRITING || s->e->state == FILE_IGNORED || s->due || s->loading)
		return;
	if (!s->file) {
		if (!s->error)
			return;
		snprintf(buf, sizeof(buf), "not used: %s; its samples go as their folder says",
			 s->error);
		source_set_state(q, s->e, FILE_FAILED, buf);
		return;
	}
	cover(q, s, &c);
	state = headline(q, s, &c, now, buf, sizeof(buf), &len);
	notes(s, &c, buf, sizeof(buf), &len);
	source_set_state(q, s->e, state, buf);
	/* Named nothing here yet: look again when the wait is over. */
	if (state == FILE_PENDING && !c.present)
		source_mark_dirty(q, s, s->read_ms + q->cfg.annotation_wait_ms);
}

void annot_refresh_dirty(struct queue *q, int64_t now)
{
	struct annot_source **pp = &q->dirty_sources, *s;

	while ((s = *pp)) {
		if (s->refresh_ms > now) {
			pp = &s->dirty_next;
			continue;
		}
		*pp = s->dirty_next;
		s->dirty = false;
		annot_refresh(q, s);
	}
}

/* Something happened to the sample E: its sources work out their status
 * again, a big one after a pause (a pass over its entries each time). */
static void touch(struct queue *q, struct annot_source *s)
{
	int64_t now = clock_now_ms();

	source_mark_dirty(q, s, now + (s->file ? (int64_t)(annot_count(s->file) / 100) : 0));
}

/* Call FN for every read source that names the sample E, by the key it
 * uses for it: typed files in its folder, info.labels above it. */
static void each_source_naming(struct queue *q, const struct entry *e,
			       void (*fn)(struct queue *q, struct annot_source *s, void *arg),
			       void *arg)
{
	size_t len = dir_len(e->path);

	if (!q->sources.count)
		return;
	for (struct annot_source *s = source_in(q, e->path, len, NULL); s;
	     s = source_in(q, e->path, len, s)) {
		if (!s->info && s->file && annot_value(s->file, path_base(e->path)))
			fn(q, s, arg);
	}
	for (;;) {
		for (struct annot_source *s = source_in(q, e->path, len, NULL); s;
		     s = source_in(q, e->path, len, s)) {
			if (s->info && s->file &&
			    annot_sample_at(s->file, e->path + len + (len ? 1 : 0)))
				fn(q, s, arg);
		}
		if (len == 0)
			return;
		len = path_parent_len(e->path, len);
	}
}

static void touch_one(struct queue *q, struct annot_source *s, void *arg)
{
	touch(q, s);
}

void annot_touch(struct queue *q, const struct entry *e)
{
	if (!e->source && q->sources.count)
		each_source_naming(q, e, touch_one, NULL);
}

struct sample_verdict {
	const struct queue_item *item;
	enum file_state state;
};

/* A source that went with the sample counts its fate; one that did not,
 * though it names it, came too late for it. */
static void judge_one(struct queue *q, struct annot_source *s, void *arg)
{
	const struct sample_verdict *v = arg;
	bool carried = false;

	for (unsigned i = 0; i < v->item->nfrom; i++)
		carried = carried || (v->item->from[i].ino == s->ino &&
				      v->item->from[i].generation == s->generation);
	if (!carried)
		s->late++;
	else if (v->state == FILE_UPLOADED)
		s->stored++;
	else if (v->state == FILE_DUPLICATE)
		s->duplicates++;
	else
		s->failed++;
	touch(q, s);
}

void annot_sample_done(struct queue *q, struct entry *e, const struct queue_item *it)
{
	struct sample_verdict v = {it, e->state};

	if (!e->source && q->sources.count)
		each_source_naming(q, e, judge_one, &v);
}

void annot_retry(struct queue *q, struct entry *e, bool resend)
{
	struct annot_source *s = e->source;
	int64_t now = clock_now_ms();

	if (s->scope != SCOPE_NONE) {
		dataset_retry(q, e, resend);
		return;
	}
	for (size_t i = 0; resend && s->file && i < annot_count(s->file); i++) {
		struct entry *sample = named_entry(q, s, annot_key(s->file, i));

		if (entry_is_sample(sample) && state_is_final(sample->state))
			entry_retry(q, sample, true, now);
	}
	source_reset(q, s);
	e->generation++;
	e->maybe_sent = false;
	journal_note(q, e, JOURNAL_QUEUED);
	annot_make_due(q, e, true);
}
