/* annot.h: annotation files (.labels) as the official uploader uses them
 * (doc/internals.md "Annotation files").  Pure: parsing, checking and
 * building request parts; no I/O, no global state; fuzzed.
 *
 * bounding_boxes.labels, structured_labels.labels and label_map.labels
 * map a sample's file name to its annotations; each request carries a
 * part of each kind holding only the entries of its own samples.
 * info.labels (a Studio export's description) is read here and never
 * sent: each of its entries gives one sample its category, label,
 * metadata and annotations. */
#ifndef INGESTFS_ANNOT_H
#define INGESTFS_ANNOT_H

#include <stdbool.h>
#include <stddef.h>

/* The kinds sent as parts come first, in the order they are sent. */
enum annot_kind {
	ANNOT_BOXES,
	ANNOT_STRUCTURED,
	ANNOT_LABEL_MAP,
	ANNOT_INFO,
};
#define ANNOT_PART_KINDS 3

/* Reading a file costs memory: larger ones fail with a clear result. */
#define ANNOT_FILE_MAX ((size_t)256 * 1024 * 1024)
#define ANNOT_INFO_NAME "info.labels"

enum annot_label {
	ANNOT_LABEL_FOLDER, /* no say: the folder's label applies */
	ANNOT_LABEL_GIVEN,  /* x-label */
	ANNOT_LABEL_NONE,   /* x-no-label: unlabeled */
	ANNOT_LABEL_PARTS,  /* multi-label or key-value: in a part, no x-label */
};

/* One entry of info.labels. */
struct annot_sample {
	char *path;   /* normalised, relative to the info.labels folder */
	char *name;   /* sample name to send (plus the file's extension); NULL: its own */
	int category; /* layout_category_name() index; -1: the folder's */
	enum annot_label label_mode;
	char *label;                  /* ANNOT_LABEL_GIVEN */
	char *metadata;               /* a JSON object, or NULL */
	char *part[ANNOT_PART_KINDS]; /* this sample's value in each part, JSON, or NULL */
	bool attachments;             /* named attachments, which are not sent */
};

struct annot_file;

/* Part file names and types, as the official uploader sends them. */
const char *annot_part_filename(enum annot_kind kind);

/* Parse the content TEXT of the annotation file called NAME.  0, or -1
 * with ERR saying what is wrong and where (line and column, or field). */
int annot_parse(const char *name, const char *text, size_t len, struct annot_file **out, char *err,
		size_t errsz);
void annot_free(struct annot_file *f);

enum annot_kind annot_kind_of(const struct annot_file *f);
/* Entries kept; for each, its key (a file name, or for info.labels a path). */
size_t annot_count(const struct annot_file *f);
const char *annot_key(const struct annot_file *f, size_t i);
/* A typed file's value for the sample file NAME (JSON), or NULL. */
const char *annot_value(const struct annot_file *f, const char *name);
/* info.labels: the entry describing the file at PATH (relative to the
 * info.labels folder), or NULL. */
const struct annot_sample *annot_sample_at(const struct annot_file *f, const char *path);

/* Entries left out, and why (the first one), for the file's result. */
size_t annot_skipped(const struct annot_file *f);
const char *annot_skip_note(const struct annot_file *f);
/* info.labels: entries that name attachments, which are not sent. */
size_t annot_attachments(const struct annot_file *f);
/* info.labels: entries refused because their path leaves the folder. */
size_t annot_refused(const struct annot_file *f);
const char *annot_refuse_note(const struct annot_file *f);

/* The part of KIND for one request: {"version":1,"type":...,MAP:{KEY:VALUE...}}.
 * VALUES are JSON texts.  Malloc'd, or NULL when out of memory. */
char *annot_build_part(enum annot_kind kind, size_t n, const char *const keys[],
		       const char *const values[]);

/* Whether the file at PATH is an info.labels (by its name). */
bool annot_is_info_name(const char *path);

#endif
