/* layout.h: the rules that turn a path inside the mount into what is
 * uploaded: category, label, or the reason it is ignored.  Pure functions
 * with no I/O, so they can be unit-tested and fuzzed.
 *
 * Paths are relative to the mount root, without a leading '/':
 * "training/car/IMG_1.jpg".  The root itself is "" or ".". */
#ifndef INGESTFS_LAYOUT_H
#define INGESTFS_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The service refuses larger files; we fail them locally instead. */
#define LAYOUT_MAX_FILE_SIZE ((uint64_t)100 * 1024 * 1024)

enum layout_kind {
	LAYOUT_ROOT,     /* the mount root */
	LAYOUT_TOPLEVEL, /* a name directly under the root: a category or junk */
	LAYOUT_ENTRY,    /* anything below a category */
};

struct layout_path {
	enum layout_kind kind;
	int category;      /* index into the category table, -1 if none */
	const char *label; /* points into the path; NULL if no label */
	size_t label_len;
	const char *name;    /* last component */
	unsigned depth;      /* components below the category (file = 1 at top) */
	const char *ignored; /* why it is never uploaded, or NULL */
	bool trash;          /* in (or is) .Trash or .Trash-UID at the root */
};

/* Categories exposed as folders at the root, in table order: indexes
 * 0..layout_category_count()-1.  The service knows more (validation,
 * post-processing, split), which only an info.labels entry can name:
 * layout_service_category_find() finds those too, and
 * layout_category_name() names every one. */
size_t layout_category_count(void);
const char *layout_category_name(int index);
int layout_category_find(const char *name, size_t len);
int layout_service_category_find(const char *name);

/* A Studio export's description: the one file the root takes. */
#define LAYOUT_INFO_NAME "info.labels"

/* Split a path.  Returns 0, or -EINVAL for a path that is not relative. */
int layout_classify(const char *path, struct layout_path *out);

/* Why the file at PATH is never uploaded, or NULL. */
const char *layout_ignored(const char *path);

/* Why a regular file of this base name is never uploaded, or NULL. */
const char *layout_ignored_name(const char *name);
/* Whether PATH may be a dataset's annotation file (dataset.h), going by
 * its name: .txt, .names, .yaml, .yml, .xml, .csv or .json, below a
 * category, not hidden or temporary.  What it is, its content says. */
bool layout_dataset_candidate(const char *path);
/* What follows the last dot of the file name NAME, or NULL (none, or a
 * name like ".hidden"). */
const char *layout_extension_of(const char *name);

/* mkdir/rename checks for a directory at PATH: 0, -EPERM (the root is
 * fixed but for the trash folders of file managers) or -EINVAL (a label
 * name that could not be sent as a header). */
int layout_check_dir(const char *path);
/* create/rename checks for a file at PATH: 0 or -EPERM. */
int layout_check_file(const char *path);

bool layout_has_control_chars(const char *s, size_t len);

/* libfuse's name for a file unlinked while open (".fuse_hidden" and 16
 * hex digits): kept until its last close, never shown, never uploaded. */
bool layout_is_fuse_hidden(const char *name);

/* Whether PATH is below the folder DIR (DLEN bytes; 0: the root, below
 * which everything is), or with SELF also DIR itself. */
bool layout_below(const char *path, const char *dir, size_t dlen, bool self);

/* Percent-encode like JavaScript's encodeURIComponent.  Returns a malloc'd
 * string or NULL when out of memory. */
char *layout_url_encode(const char *s, size_t len);

/* MIME type sent for a part; the service goes by the extension anyway. */
const char *layout_content_type(const char *name);

#endif
