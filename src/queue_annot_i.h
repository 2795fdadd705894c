/* queue_annot_i.h: what the queue's two rooms for annotation files
 * share: queue_annot.c (.labels and info.labels) and queue_dataset.c
 * (the dataset formats of dataset.h).  Both run under queue.lock
 * (queue_i.h). */
#ifndef INGESTFS_QUEUE_ANNOT_I_H
#define INGESTFS_QUEUE_ANNOT_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue_i.h"

#define RESULT_MAX 512

/* How a dataset file speaks for images (queue_dataset.c). */
enum dataset_scope {
	SCOPE_NONE,  /* not a dataset file (.labels, info.labels) */
	SCOPE_IMAGE, /* one image: dir is the image's path without extension */
	SCOPE_BELOW, /* images below dir, by name (COCO, CSV) */
	SCOPE_NAMES, /* class names for the YOLO files below dir */
};

struct annot_source {
	struct entry *e;
	uint64_t ino;
	char *dir;                /* the folder it speaks for; "" is the root */
	bool info;                /* info.labels: read here, never sent */
	enum dataset_scope scope; /* a dataset file, or a file that may be one */
	struct dataset *ds;       /* what was read of a dataset file */
	/* SCOPE_BELOW: indexed under its own path (a folder of 10,000 .json
	 * samples must not make one chain), with the folder it would speak
	 * for here; counted there while unread (and apart while being read),
	 * listed (q->below) once read
	 * as a dataset.  See dataset_source_sync. */
	char *scope_dir;
	bool unread_counted, imminent_counted, listed;
	struct annot_source *below_next;
	struct annot_file *file;           /* what was read; NULL until then, or on error */
	char *error;                       /* why it could not be used */
	bool due;                          /* settled: to be read */
	bool loading;                      /* handed to the uploader */
	bool fresh;                        /* new content: note samples it came too late for */
	uint64_t generation;               /* the entry's generation when it was read */
	int64_t read_ms;                   /* when it was read */
	bool restored;                     /* read again after a restart: counts start anew */
	size_t stored, duplicates, failed; /* samples that went with it */
	size_t late;                       /* samples it names that went without it */
	bool dirty;                        /* its status is to be worked out again */
	int64_t refresh_ms;                /* not before this */
	struct annot_source *dirty_next;
	struct annot_source *next; /* same bucket of the folder index */
};

/* queue_annot.c */
int source_index_add(struct source_index *ix, struct annot_source *s);
void source_index_remove(struct source_index *ix, struct annot_source *s);
/* The next source of folder DIR (LEN bytes) after AFTER (NULL: the first). */
struct annot_source *source_in(struct queue *q, const char *dir, size_t len,
			       struct annot_source *after);
void source_reset(struct queue *q, struct annot_source *s);
bool source_ready(const struct annot_source *s);
/* A source not yet read: whether E waits for it (its result says so). */
bool source_wait(struct entry *e, const struct annot_source *s, struct sample_plan *p,
		 bool waited_long);
void source_set_state(struct queue *q, struct entry *e, enum file_state state, const char *text);
void plan_add_source(struct sample_plan *p, struct annot_source *s);
/* Work out S's status again at AT (monotonic ms), or sooner. */
void source_mark_dirty(struct queue *q, struct annot_source *s, int64_t at);
bool entry_is_sample(const struct entry *e);
const char *path_base(const char *path);
/* The length of the folder above the folder of LEN bytes of PATH. */
size_t path_parent_len(const char *path, size_t len);
int annot_append(char *buf, size_t size, size_t *len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* What a result says to do about samples that went before their
 * annotation file was read. */
#define ANNOT_RESEND_HINT                                                                          \
	"to send them again with it, delete them in Studio, then "                                 \
	"setfattr -n user.ingest.status -v resend on this file"

/* queue_dataset.c */
/* Whether PATH may be a dataset file, and how it would speak: then
 * *DIR (malloc'd) is the key it is indexed under, and *SCOPE_DIR
 * (malloc'd, SCOPE_BELOW only, else NULL) the folder it speaks for. */
enum dataset_scope dataset_scope_of(const struct queue *q, const char *path, char **dir,
				    char **scope_dir);
/* Keep S's unread count and its place in q->below as its state says;
 * GONE: it is being freed. */
void dataset_source_sync(struct queue *q, struct annot_source *s, bool gone);
/* The dataset's say on sample E: false while it must wait. */
bool dataset_plan(struct queue *q, struct entry *e, bool waited_long, int64_t now,
		  struct sample_plan *p);
void dataset_refresh(struct queue *q, struct annot_source *s);
/* setfattr retry/resend on a dataset file. */
void dataset_retry(struct queue *q, struct entry *e, bool resend);

#endif
