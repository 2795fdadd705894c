/* queue_dataset.c: the dataset formats people have (dataset.h: YOLO,
 * COCO, Pascal VOC, Open Images, plain CSV) in the queue (ingestfs(1)
 * DATASETS, doc/internals.md "Datasets").
 *
 * A file that may be a dataset's (.txt, .names, .yaml, .xml, .csv,
 * .json below a category) is an annotation source like a .labels file:
 * it settles, the uploader reads it, and only then is it judged.  A
 * dataset file is never sent: it shows ignored, saying what it was read
 * as; any other file goes on as a sample (or is ignored, as its name
 * says).  How a source speaks for images follows the layouts of these
 * formats:
 *   SCOPE_IMAGE  one image, by name without extension: YOLO's labels/a.txt
 *                for images/a.jpg (or a.jpg beside it), VOC's
 *                Annotations/a.xml for JPEGImages/a.jpg (or beside it);
 *   SCOPE_BELOW  images below its folder by file name: COCO JSON, CSV
 *                (a COCO file in annotations/ speaks for its parent);
 *   SCOPE_NAMES  class names for the YOLO files below its folder.
 *
 * Files arrive in any order (rsync sorts names, so images/ comes before
 * labels/), so an image that has a dataset around it (a dataset file
 * read below its label folder, or an images/ folder) waits until
 * nothing has arrived below that label folder for DATASET_QUIET_MS, and
 * for the sources that may speak for it to be read, then goes with its
 * boxes or its label.
 *
 * Everything here runs under queue.lock. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "dataset.h"
#include "layout.h"
#include "queue_annot_i.h"
#include "queue_i.h"

#define DATASET_QUIET_MS 3000
/* An image waits for its dataset's copy to end at most this long. */
#define DATASET_WAIT_MAX_MS (10 * 60 * 1000)
/* Past this many images a file's result does not say which are missing
 * (a look-up each). */
#define MISSING_LOOKUPS_MAX 20000

static const char *const image_exts[] = {"jpg", "jpeg", "png", "JPG", "JPEG", "PNG"};

/* ---- which files, and what they speak for ---- */

static size_t stem_len(const char *path)
{
	const char *base = path_base(path), *ext = layout_extension_of(base);

	return ext ? (size_t)(ext - 1 - path) : strlen(path);
}

static bool is_names_file(const char *base)
{
	const char *ext = layout_extension_of(base);

	return strcasecmp(base, "classes.txt") == 0 ||
	       (ext && (strcasecmp(ext, "names") == 0 || strcasecmp(ext, "yaml") == 0 ||
			strcasecmp(ext, "yml") == 0)) ||
	       (ext && strcasecmp(ext, "csv") == 0 && strstr(base, "class-descriptions"));
}

/* FOLDER (LEN bytes) with its last component named FROM (any case)
 * replaced by TO: the images beside a labels/ or Annotations/ folder.
 * Malloc'd. */
static char *swap_component(const char *folder, size_t len, const char *from, const char *to)
{
	size_t flen = strlen(from), end = len;
	char *out;

	while (end > 0) {
		size_t start = end;

		while (start > 0 && folder[start - 1] != '/')
			start--;
		if (end - start == flen && strncasecmp(folder + start, from, flen) == 0) {
			if (asprintf(&out, "%.*s%s%.*s", (int)start, folder, to, (int)(len - end),
				     folder + end) < 0)
				return NULL;
			return out;
		}
		end = start > 0 ? start - 1 : 0;
	}
	return strndup(folder, len);
}

enum dataset_scope dataset_scope_of(const struct queue *q, const char *path, char **dir,
				    char **scope_dir)
{
	const char *base = path_base(path), *ext = layout_extension_of(base);
	size_t flen = dir_len(path);
	char *folder = NULL;
	enum dataset_scope scope;

	*dir = *scope_dir = NULL;
	if (q->cfg.no_datasets || !layout_dataset_candidate(path))
		return SCOPE_NONE;
	if (is_names_file(base)) {
		scope = SCOPE_NAMES;
		*dir = swap_component(path, flen, "labels", "images");
	} else if (strcasecmp(ext, "txt") == 0 || strcasecmp(ext, "xml") == 0) {
		scope = SCOPE_IMAGE;
		folder = strcasecmp(ext, "txt") == 0
				 ? swap_component(path, flen, "labels", "images")
				 : swap_component(path, flen, "Annotations", "JPEGImages");
		if (folder && asprintf(dir, "%s%s%.*s", folder, folder[0] ? "/" : "",
				       (int)(stem_len(path) - (size_t)(base - path)), base) < 0)
			*dir = NULL;
		free(folder);
	} else {
		scope = SCOPE_BELOW;
		/* COCO's own layout: annotations/instances_train.json. */
		if (flen >= 11 && strncasecmp(path + flen - 11, "annotations", 11) == 0 &&
		    (flen == 11 || path[flen - 12] == '/'))
			flen = flen > 12 ? flen - 12 : 0;
		*dir = strdup(path);
		*scope_dir = strndup(path, flen);
		if (!*scope_dir) {
			free(*dir);
			*dir = NULL;
		}
	}
	return *dir ? scope : SCOPE_NONE;
}

/* Keep S counted in COUNTED (unread or imminent) as WANT says. */
static void count_unread(struct queue *q, struct annot_source *s, bool *counted, bool want,
			 bool imminent)
{
	if (*counted != want)
		*counted = dirs_count_unread(q, s->scope_dir, imminent, want ? +1 : -1) == want;
}

void dataset_source_sync(struct queue *q, struct annot_source *s, bool gone)
{
	bool below = s->scope == SCOPE_BELOW && s->scope_dir && !gone;
	bool unread = false, imminent = false, listed = below && s->ds;
	struct annot_source **pp;

	/* Unread: to be read, as far as anyone knows.  A file that failed
	 * while being written, or one not made due (brought back known),
	 * will not be until someone acts: images must not wait for it.
	 * Imminent: settled, and read in a moment. */
	if (below && !s->ds && !s->error) {
		imminent = s->due || s->loading;
		unread = imminent || s->e->state == FILE_WRITING || s->e->state == FILE_PENDING ||
			 s->e->writers > 0;
	}
	count_unread(q, s, &s->unread_counted, unread, false);
	count_unread(q, s, &s->imminent_counted, imminent, true);
	if (s->listed == listed)
		return;
	if (listed) {
		s->below_next = q->below;
		q->below = s;
	} else {
		for (pp = &q->below; *pp && *pp != s; pp = &(*pp)->below_next)
			;
		if (*pp)
			*pp = s->below_next;
	}
	s->listed = listed;
}

/* ---- the images a source names ---- */

/* The sample KEY names in FOLDER (a name, or without extension). */
static struct entry *image_named(struct queue *q, const char *folder, const char *key, bool by_stem)
{
	char path[4096];
	struct entry *e;

	if (!by_stem) {
		if ((size_t)snprintf(path, sizeof(path), "%s%s%s", folder, folder[0] ? "/" : "",
				     key) >= sizeof(path))
			return NULL;
		return entry_find_path(q, path);
	}
	for (size_t i = 0; i < sizeof(image_exts) / sizeof(image_exts[0]); i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s%s%s.%s", folder, folder[0] ? "/" : "",
				     key, image_exts[i]) >= sizeof(path))
			return NULL;
		if ((e = entry_find_path(q, path)))
			return e;
	}
	return NULL;
}

/* The I-th image S names: beside it (SCOPE_IMAGE, whose dir is the
 * image's path without extension), or in the folder it speaks for. */
static struct entry *image_of(struct queue *q, const struct annot_source *s, size_t i)
{
	const char *key = s->ds->images[i].key;
	char folder[4096];

	if (s->scope == SCOPE_BELOW)
		return image_named(q, s->scope_dir, key, s->ds->by_stem);
	snprintf(folder, sizeof(folder), "%.*s", (int)dir_len(s->dir), s->dir);
	return image_named(q, folder, key, s->ds->by_stem);
}

struct image_tally {
	size_t present, missing;
	const char *first_missing;
};

static void tally_images(struct queue *q, const struct annot_source *s, struct image_tally *t)
{
	memset(t, 0, sizeof(*t));
	if (s->ds->nimages > MISSING_LOOKUPS_MAX)
		return;
	for (size_t i = 0; i < s->ds->nimages; i++) {
		struct entry *e = image_of(q, s, i);

		if (!entry_is_sample(e)) {
			if (t->missing++ == 0)
				t->first_missing = s->ds->images[i].key;
			continue;
		}
		t->present++;
	}
}

/* Images that went up before it was read. */
static size_t count_late(struct queue *q, const struct annot_source *s)
{
	size_t late = 0;

	for (size_t i = 0; i < s->ds->nimages && i < MISSING_LOOKUPS_MAX; i++) {
		struct entry *e = image_of(q, s, i);

		if (entry_is_sample(e) && (e->state == FILE_UPLOADED || e->state == FILE_DUPLICATE))
			late++;
	}
	return late;
}

/* ---- reading ---- */

/* Read, and not one: a sample after all, or ignored as its name says.
 * One that went up before (read again after a rename or a restart)
 * keeps its state. */
static void not_a_dataset(struct queue *q, struct entry *e)
{
	bool waiting = e->state == FILE_PENDING;
	const char *why = layout_ignored(e->path);

	annot_untrack(q, e);
	if (why) {
		entry_set_state(q, e, FILE_IGNORED);
		entry_set_result(e, why);
	} else if (waiting) {
		/* maybe_sent stays: an attempt before a crash may have
		 * stored it, so a duplicate reply is our own copy. */
		entry_set_result(e, NULL);
		entry_make_pending(q, e, clock_now_ms());
	}
}

/* A VOC file names its image inside: speak for that one. */
static void follow_image_name(struct queue *q, struct annot_source *s)
{
	const char *key;
	size_t d = dir_len(s->dir);
	char *dir;

	if (s->scope != SCOPE_IMAGE || s->ds->format != DATASET_VOC || s->ds->nimages != 1)
		return;
	key = s->ds->images[0].key;
	if (asprintf(&dir, "%.*s%s%.*s", (int)d, s->dir, d ? "/" : "",
		     (int)(stem_len(key) - (size_t)(path_base(key) - key)), path_base(key)) < 0)
		return;
	if (strcmp(dir, s->dir) == 0) {
		free(dir);
		return;
	}
	source_index_remove(&q->sources, s);
	free(s->dir);
	s->dir = dir;
	source_index_add(&q->sources, s);
}

void queue_dataset_done(struct queue *q, const struct queue_load *load, struct dataset *ds, int rc,
			const char *err)
{
	int64_t now = clock_now_ms();
	struct annot_source *s;
	struct entry *e;

	pthread_mutex_lock(&q->lock);
	e = entry_find(q, load->ino);
	s = e ? e->source : NULL;
	if (s)
		s->loading = false;
	/* Rewritten, moved or gone while it was read: it is read again. */
	if (!s || s->scope == SCOPE_NONE || e->generation != load->generation || s->due) {
		dataset_free(ds);
		goto out;
	}
	/* Renamed before we heard of it (inotify comes later): the event
	 * that says where it went comes next, then it is read there. */
	if (rc == -2) {
		s->due = true;
		wake_uploader(q);
		goto out;
	}
	source_reset(q, s);
	s->generation = e->generation;
	s->read_ms = now;
	if (rc == 1) {
		dataset_free(ds);
		not_a_dataset(q, e);
		goto out;
	}
	if (rc < 0 || !ds) {
		dataset_free(ds);
		s->error = strdup(err && *err ? err : "cannot be read");
	} else {
		s->ds = ds;
		dirs_count_dataset(q, e->path, +1);
		follow_image_name(q, s);
		if (s->fresh && s->scope != SCOPE_NAMES)
			s->late = count_late(q, s);
	}
	e->maybe_sent = true; /* this content was read */
	s->fresh = false;
	dataset_refresh(q, s);
	/* Images still on their way are not "missing": say again once the
	 * copy is likely over. */
	source_mark_dirty(q, s, now + 2 * DATASET_QUIET_MS);
	wake_uploader(q);
out:
	if (e && e->source) /* S may be gone: not a dataset after all */
		dataset_source_sync(q, e->source, false);
	queue_unlock(q);
}

/* ---- its status ---- */

static void notes(struct queue *q, const struct annot_source *s, char *buf, size_t size,
		  size_t *len)
{
	const struct dataset *d = s->ds;
	struct image_tally t;

	if (s->late)
		annot_append(buf, size, len,
			     "; %zu image(s) had gone before it was read, without it (%s)", s->late,
			     ANNOT_RESEND_HINT);
	if (d->skipped)
		annot_append(buf, size, len, "; %zu left out (%s)", d->skipped, d->skip_note);
	if (d->outside)
		annot_append(buf, size, len, "; %zu box(es) reach outside the image (clamped)",
			     d->outside);
	tally_images(q, s, &t);
	/* Only where its images sit beside it: COCO's own layout keeps them
	 * in a folder the file does not name. */
	if (t.missing && (t.present || s->scope == SCOPE_IMAGE))
		annot_append(buf, size, len, "; %zu image(s) it names %s not here (e.g. '%.80s')",
			     t.missing, t.missing == 1 ? "is" : "are", t.first_missing);
}

void dataset_refresh(struct queue *q, struct annot_source *s)
{
	char buf[RESULT_MAX];
	size_t len = 0;
	const struct dataset *d = s->ds;
	const char *fmt;

	if (s->e->state == FILE_WRITING || s->due || s->loading)
		return;
	if (!d) {
		if (!s->error)
			return;
		snprintf(buf, sizeof(buf), "not used: %s; its images go as their folder says",
			 s->error);
		source_set_state(q, s->e, FILE_FAILED, buf);
		return;
	}
	fmt = dataset_format_name(d->format);
	if (s->scope == SCOPE_NAMES)
		annot_append(buf, sizeof(buf), &len, "read as %s: %zu name(s); never sent itself",
			     fmt, d->nnames);
	else if (d->format == DATASET_CSV_LABEL)
		annot_append(buf, sizeof(buf), &len,
			     "read as %s: the labels of %zu file(s); never sent itself", fmt,
			     d->nimages);
	else
		annot_append(buf, sizeof(buf), &len,
			     "read as %s: %zu image(s), %zu box(es); never sent itself", fmt,
			     d->nimages, d->nboxes);
	if (s->scope != SCOPE_NAMES)
		notes(q, s, buf, sizeof(buf), &len);
	source_set_state(q, s->e, s->late ? FILE_FAILED : FILE_IGNORED, buf);
}

void dataset_retry(struct queue *q, struct entry *e, bool resend)
{
	struct annot_source *s = e->source;
	int64_t now = clock_now_ms();

	for (size_t i = 0; resend && s->ds && s->scope != SCOPE_NAMES && i < s->ds->nimages; i++) {
		struct entry *image = image_of(q, s, i);

		if (entry_is_sample(image) && state_is_final(image->state))
			entry_retry(q, image, true, now);
	}
	source_reset(q, s);
	e->generation++;
	e->maybe_sent = false;
	journal_note(q, e, JOURNAL_QUEUED);
	annot_make_due(q, e, true);
}

/* ---- what an image's request carries ---- */

struct found {
	struct annot_source *src, *names;
	const struct dataset_image *img;
};

/* The class name of box B: its own (mapped through an Open Images class
 * list), or from the YOLO names, or its id. */
static const char *box_label(const struct dataset_box *b, const struct dataset *names, char *buf,
			     size_t size)
{
	if (b->label) {
		for (size_t i = 0; names && names->name_keys && i < names->nnames; i++) {
			if (strcmp(names->name_keys[i], b->label) == 0)
				return names->names[i];
		}
		return b->label;
	}
	if (names && !names->name_keys && b->class_id >= 0 && (size_t)b->class_id < names->nnames)
		return names->names[b->class_id];
	snprintf(buf, size, "%ld", b->class_id);
	return buf;
}

/* Fractions of the image, made pixels by the uploader (upload.c). */
static char *normalized_json(const struct dataset_image *img, const struct dataset *names)
{
	cJSON *arr = cJSON_CreateArray();
	char id[24], *text = NULL;

	for (size_t i = 0; arr && i < img->nboxes; i++) {
		const struct dataset_box *b = &img->boxes[i];
		cJSON *o = cJSON_CreateObject();

		if (!o ||
		    !cJSON_AddStringToObject(o, "label", box_label(b, names, id, sizeof(id))) ||
		    !cJSON_AddNumberToObject(o, "x", b->x) ||
		    !cJSON_AddNumberToObject(o, "y", b->y) ||
		    !cJSON_AddNumberToObject(o, "width", b->w) ||
		    !cJSON_AddNumberToObject(o, "height", b->h)) {
			cJSON_Delete(o);
			goto out;
		}
		cJSON_AddItemToArray(arr, o);
	}
	text = arr ? cJSON_PrintUnformatted(arr) : NULL;
out:
	cJSON_Delete(arr);
	return text;
}

/* Pixels, with the names applied: dataset_boxes_json takes labels as
 * the boxes give them, so names are resolved into a copy. */
static char *pixel_json(const struct dataset_image *img, const struct dataset *names)
{
	struct dataset_box *copy = calloc(img->nboxes ? img->nboxes : 1, sizeof(*copy));
	char(*ids)[24] = calloc(img->nboxes ? img->nboxes : 1, sizeof(*ids));
	char *text = NULL;

	if (copy && ids) {
		for (size_t i = 0; i < img->nboxes; i++) {
			copy[i] = img->boxes[i];
			copy[i].label =
				(char *)box_label(&img->boxes[i], names, ids[i], sizeof(ids[i]));
		}
		text = dataset_boxes_json(copy, img->nboxes, false, img->width, img->height, NULL,
					  0, NULL, NULL);
	}
	free(copy);
	free(ids);
	return text;
}

static bool in_images_folder(const char *path)
{
	size_t d = dir_len(path), start = d;

	while (start > 0 && path[start - 1] != '/')
		start--;
	return (d - start == 6 && strncasecmp(path + start, "images", 6) == 0) ||
	       (d - start == 10 && strncasecmp(path + start, "JPEGImages", 10) == 0);
}

/* "training/cats" of "training/cats/a/b.jpg": what one copy brings. */
static size_t label_root_len(const char *path)
{
	const char *slash = strchr(path, '/'), *second = slash ? strchr(slash + 1, '/') : NULL;

	if (!slash)
		return 0;
	return second ? (size_t)(second - path) : (size_t)(slash - path);
}

/* COCO and CSV files that speak for the folder of LEN bytes of E's path:
 * the ones read (q->below), and a wait while some there are not read yet.
 * A .json or .csv sample waits only for those being read this moment: a
 * folder where a logger writes sensor files always has one unread (a
 * plain CSV that labels such samples should come first, see DATASETS).
 * CANDIDATE: E is one (layout_dataset_candidate). */
static bool below_sources(struct queue *q, struct entry *e, size_t len, bool candidate,
			  bool waited_long, struct sample_plan *p, struct found *f)
{
	char why[160];

	if (dir_has_unread(q, e->path, len, candidate)) {
		if (waited_long) {
			p->annotations_missed = true;
		} else {
			snprintf(why, sizeof(why),
				 "waiting for the .json and .csv files of %.*s to be read",
				 (int)len, e->path);
			if (!e->result || strcmp(e->result, why) != 0)
				entry_set_result(e, why);
			return false;
		}
	}
	for (struct annot_source *s = q->below; s && !f->img; s = s->below_next) {
		if (strlen(s->scope_dir) != len || memcmp(s->scope_dir, e->path, len) != 0)
			continue;
		if ((f->img = dataset_find(s->ds, path_base(e->path))) ||
		    (f->img = dataset_find(s->ds, e->path + len + (len ? 1 : 0))))
			f->src = s;
	}
	return true;
}

/* Sources for E's own image (SCOPE_IMAGE) and above it.  False while it
 * must wait for one of them. */
static bool find_sources(struct queue *q, struct entry *e, bool waited_long, struct sample_plan *p,
			 struct found *f)
{
	const char *base = path_base(e->path);
	size_t len = stem_len(e->path);
	bool candidate = layout_dataset_candidate(e->path);

	for (struct annot_source *s = source_in(q, e->path, len, NULL); s;
	     s = source_in(q, e->path, len, s)) {
		if (s->scope != SCOPE_IMAGE)
			continue;
		if (!source_ready(s)) {
			if (source_wait(e, s, p, waited_long))
				return false;
			continue;
		}
		if (s->ds && !f->img && (f->img = dataset_find(s->ds, base)))
			f->src = s;
	}
	for (len = dir_len(e->path);; len = path_parent_len(e->path, len)) {
		if (!below_sources(q, e, len, candidate, waited_long, p, f))
			return false;
		for (struct annot_source *s = source_in(q, e->path, len, NULL); s;
		     s = source_in(q, e->path, len, s)) {
			if (s->scope != SCOPE_NAMES)
				continue;
			if (!source_ready(s)) {
				if (source_wait(e, s, p, waited_long))
					return false;
				continue;
			}
			if (s->ds && !f->names)
				f->names = s;
		}
		if (len == 0)
			return true;
	}
}

/* Files still arriving around a dataset: wait until they stop. */
static bool wait_for_copy(struct queue *q, struct entry *e, int64_t now, const struct found *f)
{
	size_t root = label_root_len(e->path);
	int64_t quiet_at;
	char why[160];

	if (!f->img && !in_images_folder(e->path) && !dir_has_dataset(q, e->path, root))
		return false;
	if (now - e->waiting_ms >= DATASET_WAIT_MAX_MS ||
	    !dir_busy_with_dataset(q, e->path, root, now, DATASET_QUIET_MS, &quiet_at))
		return false;
	snprintf(why, sizeof(why), "waiting for the files of its dataset to stop arriving in %.*s",
		 (int)root, e->path);
	if (!e->result || strcmp(e->result, why) != 0)
		entry_set_result(e, why);
	/* Not looked at again before then. */
	e->due_ms = quiet_at;
	wake_uploader_by(q, quiet_at);
	return true;
}

static void apply(struct queue *q, struct entry *e, struct sample_plan *p, const struct found *f)
{
	const struct dataset *names = f->names ? f->names->ds : NULL;
	const char *fmt = dataset_format_name(f->src->ds->format), *from = f->src->e->path;

	if (f->img->label) {
		p->label_mode = QUEUE_LABEL_GIVEN;
		p->label = f->img->label;
		p->label_len = strlen(f->img->label);
		if (asprintf(&p->note, "label from %s, %s", from, fmt) < 0)
			p->note = NULL;
		return;
	}
	/* An annotation file of the sample's own folder has its say first. */
	if (p->part[ANNOT_BOXES])
		return;
	p->boxes_normalized = f->src->ds->normalized;
	p->owned = p->boxes_normalized ? normalized_json(f->img, names) : pixel_json(f->img, names);
	if (!p->owned)
		return;
	p->part[ANNOT_BOXES] = p->owned;
	/* As the official uploader: boxes, and the label left to the service. */
	p->label_mode = q->cfg.no_label_infer ? QUEUE_LABEL_NONE : QUEUE_LABEL_INFER;
	if (asprintf(&p->note, "%zu box(es) from %s, %s", f->img->nboxes, from, fmt) < 0)
		p->note = NULL;
}

bool dataset_plan(struct queue *q, struct entry *e, bool waited_long, int64_t now,
		  struct sample_plan *p)
{
	struct found f = {0};

	if (q->cfg.no_datasets || p->info)
		return true;
	if (!find_sources(q, e, waited_long, p, &f) || wait_for_copy(q, e, now, &f))
		return false;
	if (f.img)
		apply(q, e, p, &f);
	return true;
}
