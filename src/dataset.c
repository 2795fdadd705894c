/* dataset.c: the dataset formats people have, read into one shape (see
 * dataset.h).  Every reader works on a pointer and a length: the text is
 * not NUL-terminated and may hold NUL bytes, which no key or name keeps.
 * Numbers are read with strtod() in the C locale, as cJSON reads them. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "dataset.h"
#include "text.h"

/* A normalised value a rounding error past 0..1 is not outside. */
#define EPSILON 1e-6
#define CSV_FIELDS_MAX 1024
#define XML_DEPTH_MAX 64
#define JSON_DEPTH_MAX 512
/* COCO ids are integers; beyond 2^53 a double no longer tells them apart. */
#define ID_LIMIT 9007199254740992.0

struct slot {
	const char *key; /* owned elsewhere: an image's key, a label */
	size_t value;
};

struct dataset_index {
	struct slot *slot;
	size_t size, count; /* size: 0 or a power of two */
};

struct build {
	struct dataset *d;
	struct dataset_index labels; /* label -> d->labels[] */
	char *err;                   /* NULL: detection, nothing to say */
	size_t errsz;
};

static int fail(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void skip(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct build *b, const char *fmt, ...)
{
	va_list ap;

	if (b->err && b->errsz) {
		va_start(ap, fmt);
		vsnprintf(b->err, b->errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int oom(struct build *b)
{
	return fail(b, "out of memory");
}

static void skip(struct build *b, const char *fmt, ...)
{
	va_list ap;

	if (b->d->skipped++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->d->skip_note, sizeof(b->d->skip_note), fmt, ap);
	va_end(ap);
}

/* Names and values from the file go into results and logs. */
static const char *shown(char *dst, size_t size, const char *s, size_t n)
{
	text_escape(dst, size, s, n);
	return dst;
}

/* ---- the key index and interned labels ---- */

/* The slot holding S (N bytes), or the empty one where it would go. */
static struct slot *map_slot(const struct dataset_index *m, const char *s, size_t n)
{
	size_t i = text_hash(s, n) & (m->size - 1);

	while (m->slot[i].key && !(strncmp(m->slot[i].key, s, n) == 0 && m->slot[i].key[n] == '\0'))
		i = (i + 1) & (m->size - 1);
	return &m->slot[i];
}

static ssize_t map_get(const struct dataset_index *m, const char *s, size_t n)
{
	const struct slot *sl = m && m->size ? map_slot(m, s, n) : NULL;

	return sl && sl->key ? (ssize_t)sl->value : -1;
}

/* Half full at most, so that probes stay short. */
static int map_put(struct dataset_index *m, const char *key, size_t value)
{
	if ((m->count + 1) * 2 > m->size) {
		struct dataset_index big = {.size = m->size ? m->size * 2 : 64, .count = m->count};

		big.slot = calloc(big.size, sizeof(*big.slot));
		if (!big.slot)
			return -ENOMEM;
		for (size_t i = 0; i < m->size; i++) {
			if (m->slot[i].key)
				*map_slot(&big, m->slot[i].key, strlen(m->slot[i].key)) =
					m->slot[i];
		}
		free(m->slot);
		*m = big;
	}
	*map_slot(m, key, strlen(key)) = (struct slot){key, value};
	m->count++;
	return 0;
}

/* An array that grows only through here has room until its count is a
 * power of two, so the count alone gives its capacity.  ARR itself when
 * there is room, NULL when out of memory (ARR kept). */
static void *grown(void *arr, size_t n, size_t size)
{
	if (n & (n - 1))
		return arr;
	return reallocarray(arr, n ? n * 2 : 1, size);
}

/* The image KEY's index, the image added when new; -1 with ERR. */
static ssize_t image_at(struct build *b, const char *key)
{
	struct dataset *d = b->d;
	ssize_t i = map_get(d->index, key, strlen(key));
	struct dataset_image *img;

	if (i >= 0)
		return i;
	if (!key[0])
		return fail(b, "an empty file name");
	if (d->nimages >= DATASET_IMAGES_MAX)
		return fail(b, "more than %zu images", DATASET_IMAGES_MAX);
	img = grown(d->images, d->nimages, sizeof(*img));
	if (!img)
		return oom(b);
	d->images = img;
	img = &d->images[d->nimages];
	*img = (struct dataset_image){.key = strdup(key)};
	if (!img->key || map_put(d->index, img->key, d->nimages) < 0) {
		free(img->key);
		return oom(b);
	}
	return (ssize_t)d->nimages++;
}

/* LABEL's shared copy in d->labels[]: its index, or -1 with ERR. */
static ssize_t intern(struct build *b, const char *label)
{
	struct dataset *d = b->d;
	ssize_t i = map_get(&b->labels, label, strlen(label));
	char **labels, *copy;

	if (i >= 0)
		return i;
	labels = grown(d->labels, d->nlabels, sizeof(*labels));
	if (!labels)
		return oom(b);
	d->labels = labels;
	copy = strdup(label);
	if (!copy || map_put(&b->labels, copy, d->nlabels) < 0) {
		free(copy);
		return oom(b);
	}
	d->labels[d->nlabels] = copy;
	return (ssize_t)d->nlabels++;
}

static int add_box(struct build *b, struct dataset_image *img, const struct dataset_box *box)
{
	struct dataset_box *boxes;

	if (b->d->nboxes >= DATASET_BOXES_MAX)
		return fail(b, "more than %zu boxes", DATASET_BOXES_MAX);
	boxes = grown(img->boxes, img->nboxes, sizeof(*boxes));
	if (!boxes)
		return oom(b);
	img->boxes = boxes;
	boxes[img->nboxes++] = *box;
	b->d->nboxes++;
	return 0;
}

/* NAME (malloc'd, taken) as the next class name, with its LabelName
 * code KEY (taken) for the Open Images class descriptions. */
static int add_name(struct build *b, char *name, char *key)
{
	struct dataset *d = b->d;
	char **names = NULL, **keys = NULL;

	if (d->nnames >= DATASET_NAMES_MAX) {
		fail(b, "more than %zu class names", DATASET_NAMES_MAX);
		goto fail;
	}
	names = grown(d->names, d->nnames, sizeof(*names));
	if (names)
		d->names = names;
	if (key) {
		keys = grown(d->name_keys, d->nnames, sizeof(*keys));
		if (keys)
			d->name_keys = keys;
	}
	if (!names || (key && !keys)) {
		oom(b);
		goto fail;
	}
	if (key)
		d->name_keys[d->nnames] = key;
	d->names[d->nnames++] = name;
	return 0;
fail:
	free(name);
	free(key);
	return -1;
}

/* Why the box cannot be kept, or NULL. */
static const char *box_problem(const struct dataset_box *box)
{
	if (!isfinite(box->x) || !isfinite(box->y) || !isfinite(box->w) || !isfinite(box->h))
		return "a number out of range";
	if (box->w < 0 || box->h < 0)
		return "negative width or height";
	return NULL;
}

static bool outside_unit(const struct dataset_box *box)
{
	return box->x < -EPSILON || box->y < -EPSILON || box->x + box->w > 1 + EPSILON ||
	       box->y + box->h > 1 + EPSILON;
}

/* W and H: the stated size, 0 when not stated. */
static bool outside_pixels(const struct dataset_box *box, unsigned w, unsigned h)
{
	return box->x < 0 || box->y < 0 || (w && box->x + box->w > w) || (h && box->y + box->h > h);
}

/* ---- text ---- */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static void trim(const char **s, size_t *n)
{
	while (*n && is_blank(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && is_blank((*s)[*n - 1]))
		(*n)--;
}

static bool only_blanks(const char *s, size_t n)
{
	trim(&s, &n);
	return n == 0;
}

static bool same(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* A malloc'd copy, or NULL (out of memory, or a NUL byte in it). */
static char *copy_of(const char *s, size_t n)
{
	return memchr(s, '\0', n) ? NULL : strndup(s, n);
}

static void skip_bom(const char **text, size_t *len)
{
	if (*len >= 3 && memcmp(*text, "\xEF\xBB\xBF", 3) == 0) {
		*text += 3;
		*len -= 3;
	}
}

struct lines {
	const char *p, *end;
	unsigned no; /* of the line returned last */
};

/* The next line, without its LF (a CR before it is left to trim()). */
static bool next_line(struct lines *l, const char **s, size_t *n)
{
	const char *nl;

	if (l->p >= l->end)
		return false;
	nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
	*s = l->p;
	*n = (size_t)((nl ? nl : l->end) - l->p);
	l->p = nl ? nl + 1 : l->end;
	l->no++;
	return true;
}

/* The next blank-separated token of *P..END. */
static bool next_token(const char **p, const char *end, const char **tok, size_t *n)
{
	while (*p < end && is_blank(**p))
		(*p)++;
	*tok = *p;
	while (*p < end && !is_blank(**p))
		(*p)++;
	*n = (size_t)(*p - *tok);
	return *n > 0;
}

/* A finite number filling S (N bytes) but for blanks around it. */
static bool parse_number(const char *s, size_t n, double *out)
{
	char buf[64], *end;

	trim(&s, &n);
	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtod(buf, &end);
	return end == buf + n && isfinite(*out);
}

/* A class number: digits only, below 10^9. */
static bool parse_class(const char *s, size_t n, long *out)
{
	long v = 0;

	trim(&s, &n);
	if (n == 0 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* ---- file names ---- */

static const char *base_of(const char *name)
{
	const char *slash = strrchr(name, '/');

	return slash ? slash + 1 : name;
}

/* After the last '.' of the base name, unless that starts it (".txt"
 * is a hidden file with no extension); "" when none. */
static const char *ext_of(const char *name)
{
	const char *base = base_of(name), *dot = strrchr(base, '.');

	return dot && dot != base ? dot + 1 : "";
}

static size_t stem_len(const char *name)
{
	const char *ext = ext_of(name);

	return *ext ? (size_t)(ext - 1 - name) : strlen(name);
}

/* ---- YOLO ---- */

enum { LINE_BLANK, LINE_BOX, LINE_BAD };

/* One line: "class cx cy w h", or a segmentation polygon "class x1 y1 ...
 * xn yn" (n >= 3) read as the box around it, since boxes are what Edge
 * Impulse takes.  WHY says what is wrong with a LINE_BAD. */
static int yolo_line(const char *s, size_t n, struct dataset_box *box, char *why, size_t whysz)
{
	const char *end = s + n, *tok;
	double v[4] = {0}, lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY}, x;
	size_t len, count = 0;

	if (!next_token(&s, end, &tok, &len))
		return LINE_BLANK;
	*box = (struct dataset_box){.class_id = -1};
	if (!parse_class(tok, len, &box->class_id)) {
		snprintf(why, whysz, "the class is not a whole number");
		return LINE_BAD;
	}
	for (; next_token(&s, end, &tok, &len); count++) {
		if (!parse_number(tok, len, &x)) {
			snprintf(why, whysz, "field %zu is not a number", count + 2);
			return LINE_BAD;
		}
		if (count < 4)
			v[count] = x;
		lo[count % 2] = fmin(lo[count % 2], x);
		hi[count % 2] = fmax(hi[count % 2], x);
	}
	if (count == 4) {
		box->x = v[0] - v[2] / 2;
		box->y = v[1] - v[3] / 2;
		box->w = v[2];
		box->h = v[3];
	} else if (count >= 6 && count % 2 == 0) {
		box->x = lo[0];
		box->y = lo[1];
		box->w = hi[0] - lo[0];
		box->h = hi[1] - lo[1];
	} else {
		snprintf(why, whysz, "expected 5 numbers, found %zu", count + 1);
		return LINE_BAD;
	}
	return LINE_BOX;
}

/* Every line of HEAD a YOLO line (STRICT), or its first non-blank one.
 * A CUT head's last line may be whole only in the file: not judged.  An
 * empty .txt is YOLO too: images with no objects are normal in YOLO
 * datasets, and their label files are empty. */
static bool yolo_head(const char *head, size_t len, bool cut, bool strict)
{
	struct lines l = {head, head + len, 0};
	struct dataset_box box;
	const char *s;
	char why[64];
	size_t n;

	while (next_line(&l, &s, &n)) {
		int kind;

		if (cut && s + n == head + len)
			break;
		kind = yolo_line(s, n, &box, why, sizeof(why));
		if (kind == LINE_BAD)
			return false;
		if (kind == LINE_BOX && !strict)
			break;
	}
	return true;
}

static int parse_yolo(struct build *b, const char *name, const char *text, size_t len)
{
	struct lines l = {text, text + len, 0};
	struct dataset *d = b->d;
	struct dataset_box box;
	char *key = copy_of(base_of(name), stem_len(base_of(name)));
	const char *s, *why;
	char bad[64];
	ssize_t i;
	size_t n;

	if (!key)
		return oom(b);
	i = image_at(b, key);
	free(key);
	if (i < 0)
		return -1;
	while (next_line(&l, &s, &n)) {
		switch (yolo_line(s, n, &box, bad, sizeof(bad))) {
		case LINE_BLANK: continue;
		case LINE_BAD: return fail(b, "line %u: %s", l.no, bad);
		}
		if ((why = box_problem(&box))) {
			skip(b, "line %u: %s", l.no, why);
			continue;
		}
		d->outside += outside_unit(&box);
		if (add_box(b, &d->images[i], &box) < 0)
			return -1;
	}
	return 0;
}

/* ---- class names: one a line ---- */

/* Ids are line numbers: a blank line in the middle would shift every
 * class after it, so it is an error, not skipped. */
static int parse_name_lines(struct build *b, const char *text, size_t len)
{
	struct lines l = {text, text + len, 0};
	unsigned blank = 0;
	const char *s;
	size_t n;

	while (next_line(&l, &s, &n)) {
		char *name;

		trim(&s, &n);
		if (n == 0) {
			blank = blank ? blank : l.no;
			continue;
		}
		if (blank)
			return fail(b, "line %u: an empty class name", blank);
		if (memchr(s, '\0', n))
			return fail(b, "line %u: a NUL byte", l.no);
		name = strndup(s, n);
		if (!name)
			return oom(b);
		if (add_name(b, name, NULL) < 0)
			return -1;
	}
	return 0;
}

/* ---- class names: YAML, just the subset that holds them ---- */

static bool is_one_of(char c, const char *set)
{
	return c && strchr(set, c);
}

/* Where a comment starts in S: a '#' at the start or after a blank,
 * outside quotes (which open only where a scalar can start). */
static size_t yaml_uncommented(const char *s, size_t n)
{
	char quote = 0;

	for (size_t i = 0; i < n; i++) {
		if (quote == '"' && s[i] == '\\')
			i++;
		else if (quote && s[i] == quote)
			quote = 0;
		else if (!quote && (s[i] == '\'' || s[i] == '"') &&
			 (i == 0 || is_one_of(s[i - 1], " \t[{,:")))
			quote = s[i];
		else if (!quote && s[i] == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t'))
			return i;
	}
	return n;
}

/* A line "KEY:" or "KEY: rest" at the top level; *REST after the colon. */
static bool yaml_key(const char *s, size_t n, const char *key, const char **rest, size_t *restn)
{
	size_t k = strlen(key);

	if (n < k || memcmp(s, key, k) != 0)
		return false;
	for (s += k, n -= k; n && (*s == ' ' || *s == '\t'); s++, n--)
		;
	if (!n || *s != ':' || (n > 1 && !is_blank(s[1])))
		return false;
	*rest = s + 1;
	*restn = n - 1;
	return true;
}

static bool yaml_head(const char *head, size_t len)
{
	struct lines l = {head, head + len, 0};
	const char *s, *rest;
	size_t n, restn;

	while (next_line(&l, &s, &n)) {
		if (yaml_key(s, n, "names", &rest, &restn))
			return true;
	}
	return false;
}

/* A scalar, unquoted, into *OUT (malloc'd): 0, or -1 with *WHY. */
static int yaml_scalar(const char *s, size_t n, char **out, const char **why)
{
	char *o;

	trim(&s, &n);
	*why = NULL;
	if (n && (s[0] == '\'' || s[0] == '"') && (n < 2 || s[n - 1] != s[0]))
		*why = "a quote is not closed";
	else if (memchr(s, '\0', n))
		*why = "a NUL byte";
	else if (n == 0 || (n == 2 && s[0] == s[1] && (s[0] == '\'' || s[0] == '"')))
		*why = "an empty name";
	if (*why)
		return -1;
	if (!(*out = o = malloc(n + 1))) {
		*why = "out of memory";
		return -1;
	}
	if (s[0] != '\'' && s[0] != '"') {
		memcpy(o, s, n);
		o[n] = '\0';
		return 0;
	}
	for (size_t i = 1; i + 1 < n; i++) {
		/* '' in single quotes, a backslash in double quotes. */
		if ((s[0] == '\'' && s[i] == '\'') || (s[0] == '"' && s[i] == '\\'))
			i += i + 2 < n;
		*o++ = s[i];
	}
	*o = '\0';
	return 0;
}

struct yaml_pair {
	long key;
	char *name;
};

struct yaml_names {
	struct build *b;
	unsigned line;
	char kind; /* 0 until the first item, then '-' a list or ':' a map */
	size_t npairs;
	struct yaml_pair *pairs;
};

/* The ':' that ends a map key in S, or NULL. */
static const char *yaml_colon(const char *s, size_t n)
{
	char quote = 0;

	for (size_t i = 0; i < n; i++) {
		if (quote && s[i] == quote)
			quote = 0;
		else if (!quote && i == 0 && (s[i] == '\'' || s[i] == '"'))
			quote = s[i];
		else if (!quote && s[i] == ':' && (i + 1 == n || is_blank(s[i + 1])))
			return s + i;
	}
	return NULL;
}

/* One item: a list's "value", or a map's "class: value". */
static int yaml_item(struct yaml_names *y, const char *s, size_t n, char kind)
{
	const char *colon = kind == ':' ? yaml_colon(s, n) : NULL, *why;
	struct yaml_pair *pairs;
	char *key, *name;
	long id;

	if (y->kind && y->kind != kind)
		return fail(y->b, "line %u: names: a list and a map mixed", y->line);
	y->kind = kind;
	if (kind == ':' && !colon)
		return fail(y->b, "line %u: names: expected \"class: name\"", y->line);
	if (yaml_scalar(colon ? colon + 1 : s, colon ? n - (size_t)(colon + 1 - s) : n, &name,
			&why) < 0)
		return fail(y->b, "line %u: names: %s", y->line, why);
	if (kind == '-')
		return add_name(y->b, name, NULL);
	if (yaml_scalar(s, (size_t)(colon - s), &key, &why) == 0) {
		why = parse_class(key, strlen(key), &id) ? NULL : "bad";
		free(key);
	}
	if (why) {
		free(name);
		return fail(y->b, "line %u: names: a key is not a class number", y->line);
	}
	pairs = y->npairs < DATASET_NAMES_MAX ? grown(y->pairs, y->npairs, sizeof(*pairs)) : NULL;
	if (!pairs) {
		free(name);
		return oom(y->b);
	}
	y->pairs = pairs;
	pairs[y->npairs++] = (struct yaml_pair){id, name};
	return 0;
}

static int by_key(const void *a, const void *b)
{
	const struct yaml_pair *x = a, *y = b;

	return (x->key > y->key) - (x->key < y->key);
}

/* A map's names, by class: its keys must be 0 to N-1. */
static int yaml_map_done(struct yaml_names *y)
{
	int rc = 0;

	qsort(y->pairs, y->npairs, sizeof(*y->pairs), by_key);
	for (size_t i = 0; i < y->npairs; i++) {
		char *name = y->pairs[i].name;

		if (rc == 0 && y->pairs[i].key != (long)i)
			rc = fail(y->b, "names: the classes are not 0 to %zu", y->npairs - 1);
		if (rc == 0)
			rc = add_name(y->b, name, NULL);
		else
			free(name);
	}
	free(y->pairs);
	y->pairs = NULL;
	return rc;
}

/* Past a comment at S: the end of its line. */
static const char *yaml_comment_end(const char *s, const char *end)
{
	const char *nl = memchr(s, '\n', (size_t)(end - s));

	return nl ? nl : end;
}

/* "names: [a, b]" or "names: {0: a}", which may run over several lines
 * with comments: S..END from the bracket on.  *NEXT: past the closing
 * bracket.  An item ends at a comment; one starts after it. */
static int yaml_flow(struct yaml_names *y, const char *s, const char *end, const char **next)
{
	char close = *s == '[' ? ']' : '}', kind = *s == '[' ? '-' : ':', quote = 0;
	const char *item = ++s, *item_end = NULL;
	int rc = 0;

	for (; s < end && rc == 0; s++) {
		if (quote == '"' && *s == '\\' && s + 1 < end) {
			s++;
		} else if (quote && *s == quote) {
			quote = 0;
		} else if (!quote && (*s == '\'' || *s == '"') &&
			   (is_blank(s[-1]) || is_one_of(s[-1], "[{,:"))) {
			quote = *s;
		} else if (!quote && *s == '#' && is_blank(s[-1])) {
			if (only_blanks(item, (size_t)(s - item)))
				item = yaml_comment_end(s, end);
			else if (!item_end)
				item_end = s;
			s = yaml_comment_end(s, end) - 1;
		} else if (!quote && (*s == '[' || *s == '{')) {
			return fail(y->b, "line %u: names: a nested list", y->line);
		} else if (!quote && (*s == ',' || *s == close)) {
			size_t n = (size_t)((item_end ? item_end : s) - item);

			trim(&item, &n);
			/* [a, b,] and [] are fine: no item after the last comma. */
			if (n || *s == ',')
				rc = yaml_item(y, item, n, kind);
			item = s + 1;
			item_end = NULL;
			if (*s == close) {
				*next = s + 1;
				return rc;
			}
		} else if (*s == '\n') {
			y->line++;
		}
	}
	return rc ? rc : fail(y->b, "line %u: names: '%c' is missing", y->line, close);
}

/* "names:" then "- a" lines, or "0: a" lines, indented (a list may also
 * start at the first column, as YAML allows). */
static int yaml_block(struct yaml_names *y, struct lines *l)
{
	const char *s;
	size_t n;

	for (;;) {
		struct lines before = *l;
		size_t indent = 0;

		if (!next_line(l, &s, &n))
			return 0;
		n = yaml_uncommented(s, n);
		while (indent < n && (s[indent] == ' ' || s[indent] == '\t'))
			indent++;
		s += indent;
		n -= indent;
		trim(&s, &n);
		if (n == 0)
			continue;
		if (s[0] == '-' && (n == 1 || is_blank(s[1]))) {
			y->line = l->no;
			if (yaml_item(y, s + 1, n - 1, '-') < 0)
				return -1;
		} else if (indent) {
			y->line = l->no;
			if (yaml_item(y, s, n, ':') < 0)
				return -1;
		} else {
			*l = before;
			return 0;
		}
	}
}

static int yaml_names(struct build *b, struct lines *l, const char *rest, size_t n)
{
	struct yaml_names y = {.b = b, .line = l->no};
	const char *next = rest;
	int rc;

	n = yaml_uncommented(rest, n);
	trim(&rest, &n);
	if (n == 0) {
		rc = yaml_block(&y, l);
	} else if (rest[0] == '[' || rest[0] == '{') {
		rc = yaml_flow(&y, rest, l->end, &next);
		/* Go on from the line after the bracket. */
		while (rc == 0 && l->p < next) {
			const char *nl = memchr(l->p, '\n', (size_t)(l->end - l->p));

			l->p = nl ? nl + 1 : l->end;
			l->no++;
		}
	} else {
		rc = fail(b, "line %u: names: not a list or a map", l->no);
	}
	if (y.kind == ':' && rc == 0)
		return yaml_map_done(&y);
	for (size_t i = 0; i < y.npairs; i++)
		free(y.pairs[i].name);
	free(y.pairs);
	return rc;
}

static int parse_yaml(struct build *b, const char *text, size_t len)
{
	struct lines l = {text, text + len, 0};
	const char *s, *rest;
	size_t n, restn;
	long nc = -1;
	bool found = false;

	while (next_line(&l, &s, &n)) {
		n = yaml_uncommented(s, n);
		if (yaml_key(s, n, "nc", &rest, &restn) && !parse_class(rest, restn, &nc))
			nc = -1;
		if (!found && yaml_key(s, n, "names", &rest, &restn)) {
			found = true;
			if (yaml_names(b, &l, rest, restn) < 0)
				return -1;
		}
	}
	if (!found)
		return fail(b, "no names:");
	if (nc >= 0 && (size_t)nc != b->d->nnames)
		return fail(b, "nc is %ld, but names has %zu", nc, b->d->nnames);
	return 0;
}

/* ---- CSV (RFC 4180) ---- */

struct csv {
	const char *p, *end;
	unsigned line, next; /* where the record read last starts; where the next does */
	char *buf;           /* the record's fields, unquoted, each NUL-terminated */
	size_t len, cap;
	size_t nfields;
	size_t field[CSV_FIELDS_MAX]; /* offsets in buf */
	bool nul;                     /* a field holds a NUL byte */
	bool oom;
};

static void csv_put(struct csv *c, char ch)
{
	if (c->len == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		char *buf = realloc(c->buf, cap);

		if (!buf) {
			c->oom = true;
			return;
		}
		c->buf = buf;
		c->cap = cap;
	}
	c->buf[c->len++] = ch;
}

static void csv_byte(struct csv *c, char ch)
{
	c->nul |= ch == '\0';
	csv_put(c, ch);
}

/* A quoted field, from its opening quote: -1 when the text ends inside. */
static int csv_quoted(struct csv *c)
{
	for (c->p++; c->p < c->end; c->p++) {
		if (*c->p == '"') {
			if (c->p + 1 == c->end || c->p[1] != '"') {
				c->p++;
				return 0;
			}
			c->p++;
		} else if (*c->p == '\n') {
			c->next++;
		}
		csv_byte(c, *c->p);
	}
	return -1;
}

/* Blanks around a field are not part of it; what follows a closing
 * quote is kept, as Python's csv keeps it. */
static int csv_field(struct csv *c)
{
	size_t start;

	if (c->nfields == CSV_FIELDS_MAX)
		return -1;
	c->field[c->nfields++] = c->len;
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
	if (c->p < c->end && *c->p == '"' && csv_quoted(c) < 0)
		return -2;
	start = c->len;
	while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r')
		csv_byte(c, *c->p++);
	while (!c->oom && c->len > start &&
	       (c->buf[c->len - 1] == ' ' || c->buf[c->len - 1] == '\t'))
		c->len--;
	csv_put(c, '\0');
	return 0;
}

/* Read a record into C, blank lines skipped: 1, 0 at the end, or -1
 * with ERR. */
static int csv_next(struct csv *c, struct build *b)
{
	do {
		int rc = 0;

		if (c->p >= c->end)
			return 0;
		c->line = c->next;
		c->len = c->nfields = 0;
		c->nul = false;
		while ((rc = csv_field(c)) == 0 && c->p < c->end && *c->p == ',')
			c->p++;
		if (rc == -1)
			return fail(b, "line %u: more than %d fields", c->line, CSV_FIELDS_MAX);
		if (rc == -2)
			return fail(b, "line %u: a quoted field is not closed", c->line);
		if (c->oom)
			return oom(b);
		if (c->p < c->end && *c->p == '\r')
			c->p++;
		if (c->p < c->end && *c->p == '\n')
			c->p++;
		c->next++;
	} while (c->nfields == 1 && c->buf[0] == '\0' && !c->nul);
	return 1;
}

static char *csv_get(const struct csv *c, size_t i)
{
	return i < c->nfields ? c->buf + c->field[i] : NULL;
}

static const char *const oi_cols[] = {"ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"};
static const char *const box_cols[] = {"file_name", "classes", "xmin", "ymin", "xmax", "ymax"};
static const char *const label_cols[] = {"file_name", "class_name"};
#define MAX_COLS 6

struct csv_kind {
	enum dataset_format format;
	const char *const *cols;
	size_t ncols;
};

/* In the order tried: a header fitting two takes the richer. */
static const struct csv_kind csv_kinds[] = {
	{DATASET_OPEN_IMAGES, oi_cols, 6},
	{DATASET_CSV_BOXES, box_cols, 6},
	{DATASET_CSV_LABEL, label_cols, 2},
};

/* The header C holds has every column of K: COL[i] is where K's i-th is. */
static bool csv_columns(const struct csv *c, const struct csv_kind *k, size_t col[])
{
	for (size_t i = 0; i < k->ncols; i++) {
		for (col[i] = 0; col[i] < c->nfields; col[i]++) {
			const char *f = csv_get(c, col[i]);
			size_t n = strlen(f);

			trim(&f, &n);
			if (same(f, n, k->cols[i]))
				break;
		}
		if (col[i] == c->nfields)
			return false;
	}
	return true;
}

static const struct csv_kind *csv_kind_of(enum dataset_format f)
{
	for (size_t i = 0; i < sizeof(csv_kinds) / sizeof(csv_kinds[0]); i++) {
		if (csv_kinds[i].format == f)
			return &csv_kinds[i];
	}
	return NULL;
}

static enum dataset_format csv_header(const char *head, size_t len)
{
	struct csv c = {.p = head, .end = head + len, .next = 1};
	struct build quiet = {0};
	enum dataset_format f = DATASET_NONE;
	size_t col[MAX_COLS];

	if (csv_next(&c, &quiet) > 0) {
		for (size_t i = 0; i < sizeof(csv_kinds) / sizeof(csv_kinds[0]) && !f; i++) {
			if (csv_columns(&c, &csv_kinds[i], col))
				f = csv_kinds[i].format;
		}
	}
	free(c.buf);
	return f;
}

/* Every whole record of HEAD has 2 fields (STRICT), or its first one. */
static bool classes_head(const char *head, size_t len, bool cut, bool strict)
{
	struct csv c = {.p = head, .end = head + len, .next = 1};
	struct build quiet = {0};
	bool ok = false;
	int rc;

	while ((rc = csv_next(&c, &quiet)) > 0 && !(cut && c.p == c.end)) {
		ok = c.nfields == 2;
		if (!ok || !strict)
			break;
	}
	/* A quote open at the end of a cut head may close further on. */
	if (rc < 0 && !(cut && c.p == c.end))
		ok = false;
	free(c.buf);
	return ok;
}

static enum dataset_format csv_detect(const char *name, const char *head, size_t len, bool cut,
				      bool strict)
{
	if (strcasestr(base_of(name), "class-descriptions") && classes_head(head, len, cut, strict))
		return DATASET_OI_CLASSES;
	return csv_header(head, len);
}

/* The row's fields in the header's order into F: false (skipped) when
 * it cannot be read. */
static bool csv_row(struct build *b, const struct csv *c, const struct csv_kind *k,
		    const size_t col[], char *f[])
{
	for (size_t i = 0; i < k->ncols; i++) {
		if (!(f[i] = csv_get(c, col[i]))) {
			skip(b, "line %u: %zu fields, no %s", c->line, c->nfields, k->cols[i]);
			return false;
		}
	}
	if (c->nul) {
		skip(b, "line %u: a NUL byte", c->line);
		return false;
	}
	return true;
}

static bool csv_numbers(struct build *b, const struct csv *c, char *const f[],
			const char *const cols[], double v[4])
{
	for (int i = 0; i < 4; i++) {
		if (!parse_number(f[i], strlen(f[i]), &v[i])) {
			skip(b, "line %u: %s is not a number", c->line, cols[i]);
			return false;
		}
	}
	return true;
}

static int keep_box(struct build *b, unsigned line, const char *key, const char *label,
		    struct dataset_box *box)
{
	struct dataset *d = b->d;
	const char *why = box_problem(box);
	ssize_t i, l;

	if (why) {
		skip(b, "line %u: %s", line, why);
		return 0;
	}
	if ((i = image_at(b, key)) < 0 || (l = intern(b, label)) < 0)
		return -1;
	box->label = d->labels[l];
	d->outside += d->normalized ? outside_unit(box) : outside_pixels(box, 0, 0);
	return add_box(b, &d->images[i], box);
}

static int oi_row(struct build *b, const struct csv *c, char *f[])
{
	struct dataset_box box = {.class_id = -1};
	double v[4]; /* XMin, XMax, YMin, YMax */

	if (!f[0][0] || !f[1][0]) {
		skip(b, "line %u: an empty ImageID or LabelName", c->line);
		return 0;
	}
	if (!csv_numbers(b, c, f + 2, oi_cols + 2, v))
		return 0;
	box.x = v[0];
	box.y = v[2];
	box.w = v[1] - v[0];
	box.h = v[3] - v[2];
	return keep_box(b, c->line, f[0], f[1], &box);
}

static bool all_empty(char *const f[], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (f[i][0])
			return false;
	}
	return true;
}

static int boxes_row(struct build *b, const struct csv *c, char *f[])
{
	struct dataset_box box = {.class_id = -1};
	double v[4]; /* xmin, ymin, xmax, ymax */
	char *save = NULL, *label;
	size_t kept = 0;

	if (!f[0][0]) {
		skip(b, "line %u: an empty file_name", c->line);
		return 0;
	}
	/* A listed image with no objects. */
	if (all_empty(f + 1, 5))
		return image_at(b, f[0]) < 0 ? -1 : 0;
	if (!csv_numbers(b, c, f + 2, box_cols + 2, v))
		return 0;
	for (label = strtok_r(f[1], ";", &save); label; label = strtok_r(NULL, ";", &save)) {
		size_t n = strlen(label);

		while (n && is_blank(label[n - 1]))
			label[--n] = '\0';
		while (is_blank(*label))
			label++;
		if (!*label)
			continue;
		box = (struct dataset_box){NULL, -1, v[0], v[1], v[2] - v[0], v[3] - v[1]};
		if (keep_box(b, c->line, f[0], label, &box) < 0)
			return -1;
		kept++;
	}
	if (!kept)
		skip(b, "line %u: no class", c->line);
	return 0;
}

static int label_row(struct build *b, const struct csv *c, char *f[])
{
	struct dataset *d = b->d;
	ssize_t i, l;

	if (!f[0][0] || !f[1][0]) {
		skip(b, "line %u: an empty file_name or class_name", c->line);
		return 0;
	}
	if ((i = image_at(b, f[0])) < 0 || (l = intern(b, f[1])) < 0)
		return -1;
	/* Labels are shared: the same text is the same pointer. */
	if (d->images[i].label && d->images[i].label != d->labels[l])
		skip(b, "line %u: a second class_name for one file", c->line);
	else
		d->images[i].label = d->labels[l];
	return 0;
}

static int classes_row(struct build *b, const struct csv *c, bool first)
{
	const char *code = csv_get(c, 0), *name = csv_get(c, 1);
	char *k, *v;

	if (c->nfields != 2) {
		skip(b, "line %u: expected 2 fields, found %zu", c->line, c->nfields);
		return 0;
	}
	if (first && strcmp(code, "LabelName") == 0 && strcmp(name, "DisplayName") == 0)
		return 0;
	if (!code[0] || !name[0] || c->nul) {
		skip(b, "line %u: an empty LabelName or DisplayName", c->line);
		return 0;
	}
	k = strdup(code);
	v = strdup(name);
	if (!k || !v) {
		free(k);
		free(v);
		return oom(b);
	}
	return add_name(b, v, k);
}

static int csv_rows(struct build *b, struct csv *c, const struct csv_kind *k, const size_t col[])
{
	int rc;

	while ((rc = csv_next(c, b)) > 0) {
		char *f[MAX_COLS];

		if (!k) {
			rc = classes_row(b, c, false);
		} else if (csv_row(b, c, k, col, f)) {
			rc = k->format == DATASET_OPEN_IMAGES ? oi_row(b, c, f)
			     : k->format == DATASET_CSV_BOXES ? boxes_row(b, c, f)
							      : label_row(b, c, f);
		}
		if (rc < 0)
			return -1;
	}
	return rc;
}

static int parse_csv(struct build *b, const char *text, size_t len)
{
	struct csv c = {.p = text, .end = text + len, .next = 1};
	const struct csv_kind *k = csv_kind_of(b->d->format);
	size_t col[MAX_COLS];
	int rc = csv_next(&c, b);

	if (rc == 0)
		rc = k ? fail(b, "no header") : 0;
	else if (rc > 0 && !k)
		rc = classes_row(b, &c, true);
	else if (rc > 0 && !csv_columns(&c, k, col))
		rc = fail(b, "line 1: the header lacks a column");
	if (rc >= 0)
		rc = csv_rows(b, &c, k, col);
	free(c.buf);
	return rc < 0 ? -1 : 0;
}

/* ---- Pascal VOC XML ---- */

enum xml_token { XML_END, XML_TEXT, XML_OPEN, XML_CLOSE, XML_EMPTY, XML_ERROR };

struct xml {
	const char *p, *end;
	unsigned line;
	const char *why; /* XML_ERROR */
};

/* Past the first STOP in X, lines counted; false when there is none. */
static bool xml_past(struct xml *x, const char *stop)
{
	size_t n = strlen(stop);

	for (; (size_t)(x->end - x->p) >= n; x->p++) {
		if (memcmp(x->p, stop, n) == 0) {
			x->p += n;
			return true;
		}
		x->line += *x->p == '\n';
	}
	x->p = x->end;
	return false;
}

/* A tag from its '<': name into *S, *N; attributes skipped. */
static enum xml_token xml_tag(struct xml *x, const char **s, size_t *n)
{
	bool close = x->p + 1 < x->end && x->p[1] == '/';
	char quote = 0, last = 0;

	x->p += 1 + close;
	*s = x->p;
	while (x->p < x->end && !is_blank(*x->p) && *x->p != '/' && *x->p != '>')
		x->p++;
	*n = (size_t)(x->p - *s);
	for (; x->p < x->end && (quote || *x->p != '>'); x->p++) {
		if (quote && *x->p == quote)
			quote = 0;
		else if (!quote && (*x->p == '"' || *x->p == '\''))
			quote = *x->p;
		x->line += *x->p == '\n';
		last = is_blank(*x->p) ? last : *x->p;
	}
	if (x->p == x->end || *n == 0) {
		x->why = x->p == x->end ? "a tag is not closed" : "a tag with no name";
		return XML_ERROR;
	}
	x->p++;
	return close ? XML_CLOSE : last == '/' ? XML_EMPTY : XML_OPEN;
}

/* The next text or tag; comments, processing instructions and
 * declarations are passed over. */
static enum xml_token xml_next(struct xml *x, const char **s, size_t *n)
{
	for (;;) {
		const char *stop = NULL;

		if (x->p >= x->end)
			return XML_END;
		if (*x->p != '<') {
			*s = x->p;
			while (x->p < x->end && *x->p != '<')
				x->line += *x->p++ == '\n';
			*n = (size_t)(x->p - *s);
			return XML_TEXT;
		}
		if ((size_t)(x->end - x->p) >= 4 && memcmp(x->p, "<!--", 4) == 0)
			stop = "-->";
		else if ((size_t)(x->end - x->p) >= 2 && x->p[1] == '?')
			stop = "?>";
		else if ((size_t)(x->end - x->p) >= 2 && x->p[1] == '!')
			stop = ">";
		else
			return xml_tag(x, s, n);
		if (!xml_past(x, stop)) {
			x->why = "a comment or declaration is not closed";
			return XML_ERROR;
		}
	}
}

/* The root element's name is "annotation". */
static bool voc_head(const char *head, size_t len)
{
	struct xml x = {head, head + len, 1, NULL};
	const char *s;
	size_t n;

	for (;;) {
		switch (xml_next(&x, &s, &n)) {
		case XML_TEXT:
			if (!only_blanks(s, n))
				return false;
			break;
		case XML_OPEN:
		case XML_EMPTY: return same(s, n, "annotation");
		default: return false;
		}
	}
}

enum voc_at {
	V_OTHER,
	V_ROOT,
	V_FILENAME,
	V_SIZE,
	V_WIDTH,
	V_HEIGHT,
	V_OBJECT,
	V_NAME,
	V_BNDBOX,
	V_XMIN, /* the four in this order */
	V_YMIN,
	V_XMAX,
	V_YMAX,
};

static const struct {
	enum voc_at parent;
	const char *name;
	enum voc_at at;
} voc_children[] = {
	{V_ROOT, "filename", V_FILENAME}, {V_ROOT, "size", V_SIZE},
	{V_ROOT, "object", V_OBJECT},     {V_SIZE, "width", V_WIDTH},
	{V_SIZE, "height", V_HEIGHT},     {V_OBJECT, "name", V_NAME},
	{V_OBJECT, "bndbox", V_BNDBOX},   {V_BNDBOX, "xmin", V_XMIN},
	{V_BNDBOX, "ymin", V_YMIN},       {V_BNDBOX, "xmax", V_XMAX},
	{V_BNDBOX, "ymax", V_YMAX},
};

static enum voc_at voc_child(enum voc_at parent, const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(voc_children) / sizeof(voc_children[0]); i++) {
		if (voc_children[i].parent == parent && same(s, n, voc_children[i].name))
			return voc_children[i].at;
	}
	return V_OTHER;
}

struct voc {
	struct build *b;
	struct xml x;
	int depth;
	enum voc_at at[XML_DEPTH_MAX];
	const char *tag[XML_DEPTH_MAX];
	size_t taglen[XML_DEPTH_MAX];
	char *filename;
	double size[2]; /* width, height; -1 when not given */
	/* The object being read: its name and xmin..ymax, the first of each. */
	size_t nobjects;
	char *name;
	double v[4];
	unsigned have; /* bit i: v[i] */
	const char *bad;
	/* Boxes wait for <filename>, which may come last. */
	size_t nboxes;
	struct dataset_box *boxes;
};

/* TEXT with the five XML entities resolved, blanks trimmed: malloc'd,
 * or NULL (out of memory, or a NUL byte in it). */
static char *xml_text(const char *s, size_t n)
{
	static const char *const ent[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
	static const char chr[] = "&<>\"'";
	char *out, *o;

	trim(&s, &n);
	if (memchr(s, '\0', n) || !(out = o = malloc(n + 1)))
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t e = 0;

		while (s[i] == '&' && e < 5 &&
		       !(n - i >= strlen(ent[e]) && memcmp(s + i, ent[e], strlen(ent[e])) == 0))
			e++;
		if (s[i] == '&' && e < 5) {
			*o++ = chr[e];
			i += strlen(ent[e]);
		} else {
			*o++ = s[i++];
		}
	}
	*o = '\0';
	return out;
}

static void voc_text(struct voc *v, const char *s, size_t n)
{
	static const char *const corners[] = {"xmin", "ymin", "xmax", "ymax"};
	enum voc_at at = v->depth ? v->at[v->depth - 1] : V_OTHER;
	double num;

	/* Blanks before a comment inside an element are not its value. */
	if (only_blanks(s, n))
		return;
	if (at == V_FILENAME && !v->filename) {
		v->filename = xml_text(s, n);
	} else if ((at == V_WIDTH || at == V_HEIGHT) && parse_number(s, n, &num) && num >= 0 &&
		   num <= UINT_MAX && num == floor(num)) {
		v->size[at == V_HEIGHT] = num;
	} else if (at == V_NAME && !v->name) {
		v->name = xml_text(s, n);
	} else if (at >= V_XMIN && !(v->have & 1u << (at - V_XMIN))) {
		if (parse_number(s, n, &v->v[at - V_XMIN]))
			v->have |= 1u << (at - V_XMIN);
		else if (!v->bad)
			v->bad = corners[at - V_XMIN];
	}
}

static int voc_object_done(struct voc *v)
{
	struct build *b = v->b;
	struct dataset_box box = {NULL, -1, v->v[0], v->v[1], v->v[2] - v->v[0], v->v[3] - v->v[1]};
	const char *why = NULL;
	struct dataset_box *boxes;
	ssize_t l;

	v->nobjects++;
	if (!v->name || !v->name[0])
		skip(b, "object %zu: no <name>", v->nobjects);
	else if (v->bad)
		skip(b, "object %zu: <%s> is not a number", v->nobjects, v->bad);
	else if (v->have != 15)
		skip(b, "object %zu: no <bndbox> with xmin, ymin, xmax and ymax", v->nobjects);
	else if ((why = box_problem(&box)))
		skip(b, "object %zu: %s", v->nobjects, why);
	else if (b->d->nboxes + v->nboxes >= DATASET_BOXES_MAX)
		return fail(b, "more than %zu boxes", DATASET_BOXES_MAX);
	else if ((l = intern(b, v->name)) < 0 || !(boxes = grown(v->boxes, v->nboxes, sizeof(box))))
		return oom(b);
	else {
		v->boxes = boxes;
		box.label = b->d->labels[l];
		v->boxes[v->nboxes++] = box;
	}
	free(v->name);
	v->name = NULL;
	v->have = 0;
	v->bad = NULL;
	return 0;
}

static int voc_open(struct voc *v, const char *s, size_t n, bool empty)
{
	enum voc_at at = v->depth ? voc_child(v->at[v->depth - 1], s, n) : V_ROOT;
	char tag[40];

	if (!v->depth && !same(s, n, "annotation"))
		return fail(v->b, "line %u: the root is <%s>, not <annotation>", v->x.line,
			    shown(tag, sizeof(tag), s, n));
	if (v->depth == XML_DEPTH_MAX)
		return fail(v->b, "line %u: elements nested too deep", v->x.line);
	/* <annotation/> is over at once. */
	if (empty)
		return at == V_OBJECT ? voc_object_done(v) : !v->depth;
	v->at[v->depth] = at;
	v->tag[v->depth] = s;
	v->taglen[v->depth++] = n;
	return 0;
}

/* 1 when the root closed. */
static int voc_close(struct voc *v, const char *s, size_t n)
{
	char tag[40], open[40];

	if (!v->depth)
		return fail(v->b, "line %u: </%s> closes nothing", v->x.line,
			    shown(tag, sizeof(tag), s, n));
	v->depth--;
	if (n != v->taglen[v->depth] || memcmp(s, v->tag[v->depth], n) != 0)
		return fail(v->b, "line %u: </%s> does not close <%s>", v->x.line,
			    shown(tag, sizeof(tag), s, n),
			    shown(open, sizeof(open), v->tag[v->depth], v->taglen[v->depth]));
	if (v->at[v->depth] == V_OBJECT && voc_object_done(v) < 0)
		return -1;
	return v->depth == 0;
}

static int voc_scan(struct voc *v)
{
	const char *s;
	size_t n;
	int rc = 0;
	char tag[40];

	while (rc == 0) {
		switch (xml_next(&v->x, &s, &n)) {
		case XML_TEXT: voc_text(v, s, n); break;
		case XML_OPEN: rc = voc_open(v, s, n, false); break;
		case XML_EMPTY: rc = voc_open(v, s, n, true); break;
		case XML_CLOSE: rc = voc_close(v, s, n); break;
		case XML_ERROR: return fail(v->b, "line %u: %s", v->x.line, v->x.why);
		case XML_END:
			return fail(v->b, "the file ends inside <%s>",
				    v->depth ? shown(tag, sizeof(tag), v->tag[v->depth - 1],
						     v->taglen[v->depth - 1])
					     : "annotation");
		}
	}
	return rc < 0 ? -1 : 0;
}

static int voc_done(struct voc *v)
{
	struct dataset *d = v->b->d;
	struct dataset_image *img;
	ssize_t i;

	if (!v->filename || !v->filename[0])
		return fail(v->b, "no <filename>");
	if ((i = image_at(v->b, v->filename)) < 0)
		return -1;
	img = &d->images[i];
	img->width = v->size[0] > 0 ? (unsigned)v->size[0] : 0;
	img->height = v->size[1] > 0 ? (unsigned)v->size[1] : 0;
	img->boxes = v->boxes;
	img->nboxes = v->nboxes;
	v->boxes = NULL;
	d->nboxes += img->nboxes;
	for (size_t k = 0; k < img->nboxes; k++)
		d->outside += outside_pixels(&img->boxes[k], img->width, img->height);
	return 0;
}

static int parse_voc(struct build *b, const char *text, size_t len)
{
	struct voc *v = calloc(1, sizeof(*v));
	int rc;

	if (!v)
		return oom(b);
	*v = (struct voc){.b = b, .x = {text, text + len, 1, NULL}, .size = {-1, -1}};
	rc = voc_scan(v);
	if (rc == 0)
		rc = voc_done(v);
	free(v->filename);
	free(v->name);
	free(v->boxes);
	free(v);
	return rc;
}

/* ---- COCO JSON ---- */

/* COCO files run to hundreds of megabytes, mostly segmentation polygons
 * of numbers that a cJSON tree holds in 64 bytes each.  So the file is
 * walked with a bracket matcher and each element of images[],
 * categories[] and annotations[] parsed on its own: the memory a parse
 * takes is that of the largest element, plus what is kept. */

struct idslot {
	int64_t id;
	size_t value;
	bool used;
};

struct idmap {
	struct idslot *slot;
	size_t size, count;
};

static struct idslot *id_slot(const struct idmap *m, int64_t id)
{
	uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
	size_t i = (size_t)(h ^ (h >> 29)) & (m->size - 1);

	while (m->slot[i].used && m->slot[i].id != id)
		i = (i + 1) & (m->size - 1);
	return &m->slot[i];
}

static ssize_t id_get(const struct idmap *m, int64_t id)
{
	const struct idslot *s = m->size ? id_slot(m, id) : NULL;

	return s && s->used ? (ssize_t)s->value : -1;
}

static int id_put(struct idmap *m, int64_t id, size_t value)
{
	if ((m->count + 1) * 2 > m->size) {
		struct idmap big = {.size = m->size ? m->size * 2 : 64, .count = m->count};

		big.slot = calloc(big.size, sizeof(*big.slot));
		if (!big.slot)
			return -ENOMEM;
		for (size_t i = 0; i < m->size; i++) {
			if (m->slot[i].used)
				*id_slot(&big, m->slot[i].id) = m->slot[i];
		}
		free(m->slot);
		*m = big;
	}
	*id_slot(m, id) = (struct idslot){id, value, true};
	m->count++;
	return 0;
}

static const char *json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Past the string at P (its opening quote), or NULL when it never ends. */
static const char *json_string_end(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '"')
			return p + 1;
		/* An escape: the next byte is not the end. */
		if (*p == '\\' && ++p == end)
			break;
	}
	return NULL;
}

/* Past the JSON value at P: brackets matched and strings passed over;
 * the rest is for cJSON to check, or unread in values no one reads.
 * NULL when malformed, *AT then where (END: the text ended first). */
static const char *json_value_end(const char *p, const char *end, const char **at)
{
	char open[JSON_DEPTH_MAX];
	size_t depth = 0;

	do {
		const char *q = p = json_ws(p, end);

		if (p == end) {
			*at = end;
			return NULL;
		}
		if (*p == '"') {
			q = json_string_end(p, end);
		} else if (*p == '{' || *p == '[') {
			q = depth < JSON_DEPTH_MAX ? p + 1 : NULL;
			if (q)
				open[depth++] = *p == '{' ? '}' : ']';
		} else if (*p == '}' || *p == ']') {
			q = depth && open[depth - 1] == *p ? p + 1 : NULL;
			depth -= q != NULL;
		} else if (depth && (*p == ',' || *p == ':')) {
			q = p + 1;
		} else {
			while (q < end && !is_one_of(*q, ",:[]{}\" \t\r\n"))
				q++;
			q = q > p ? q : NULL;
		}
		if (!q) {
			*at = *p == '"' ? end : p;
			return NULL;
		}
		p = q;
	} while (depth);
	return p;
}

struct coco {
	struct build *b;
	const char *text, *end;
	struct idmap images, categories;
};

typedef int (*coco_fn)(struct coco *c, const cJSON *item, size_t i);

static int coco_bad_json(struct coco *c, const char *prefix, const char *at)
{
	const char *stop = at && at > c->text ? (at < c->end ? at : c->end) : c->text;
	unsigned line, col;

	text_line_col(c->text, (size_t)(stop - c->text), &line, &col);
	return fail(c->b, "%snot valid JSON at line %u, column %u", prefix, line, col);
}

/* The array KEY at P, each element parsed and given to FN. */
static int coco_array(struct coco *c, const char *key, const char *p, const char **next, coco_fn fn)
{
	const char *end = c->end, *at = NULL;
	char where[48];

	if (p == end || *p != '[')
		return fail(c->b, "%s: not an array", key);
	p = json_ws(p + 1, end);
	for (size_t i = 0; p == end || *p != ']'; i++) {
		const char *e = json_value_end(p, end, &at);
		cJSON *item;
		int rc;

		if (!e)
			return coco_bad_json(c, "", at);
		item = cJSON_ParseWithLengthOpts(p, (size_t)(e - p), &at, false);
		if (!item) {
			snprintf(where, sizeof(where), "%s[%zu]: ", key, i);
			return coco_bad_json(c, where, at);
		}
		rc = fn(c, item, i);
		cJSON_Delete(item);
		if (rc < 0)
			return -1;
		p = json_ws(e, end);
		if (p < end && *p == ',')
			p = json_ws(p + 1, end);
		else if (p == end || *p != ']')
			return coco_bad_json(c, "", p);
	}
	*next = p + 1;
	return 0;
}

/* Each member of the top-level object; the array KEY's elements to FN. */
static int coco_walk(struct coco *c, const char *key, coco_fn fn)
{
	const char *p = json_ws(c->text, c->end), *end = c->end, *at = p, *k;

	if (p == end || *p != '{')
		return fail(c->b, "not a JSON object");
	p = json_ws(p + 1, end);
	while (p < end && *p == '"') {
		if (!(k = json_string_end(p, end)))
			return coco_bad_json(c, "", end);
		at = json_ws(k, end);
		if (at == end || *at != ':')
			return coco_bad_json(c, "", at);
		at = json_ws(at + 1, end);
		if (same(p + 1, (size_t)(k - p - 2), key)) {
			if (coco_array(c, key, at, &p, fn) < 0)
				return -1;
		} else if (!(p = json_value_end(at, end, &at))) {
			return coco_bad_json(c, "", at);
		}
		p = json_ws(p, end);
		if (p == end || *p != ',')
			break;
		p = json_ws(p + 1, end);
		if (p == end || *p != '"')
			return coco_bad_json(c, "", p);
	}
	if (p == end || *p != '}')
		return coco_bad_json(c, "", p);
	/* Nothing but blanks after the object. */
	p = json_ws(p + 1, end);
	return p == end ? 0 : coco_bad_json(c, "", p);
}

/* A whole number in LO..HI, as ids and sizes are. */
static bool json_whole(const cJSON *n, double lo, double hi, int64_t *out)
{
	if (!cJSON_IsNumber(n) || !isfinite(n->valuedouble) ||
	    n->valuedouble != floor(n->valuedouble) || n->valuedouble < lo || n->valuedouble > hi)
		return false;
	*out = (int64_t)n->valuedouble;
	return true;
}

/* Absent or null: 0, unknown. */
static bool coco_size(const cJSON *img, const char *field, int64_t *v)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(img, field);

	*v = 0;
	return !n || cJSON_IsNull(n) || json_whole(n, 0, UINT_MAX, v);
}

static int coco_image(struct coco *c, const cJSON *e, size_t i)
{
	const cJSON *fn = cJSON_GetObjectItemCaseSensitive(e, "file_name");
	struct dataset_image *img;
	int64_t id, w, h;
	ssize_t at;

	if (!cJSON_IsObject(e))
		return fail(c->b, "images[%zu]: not an object", i);
	if (!json_whole(cJSON_GetObjectItemCaseSensitive(e, "id"), -ID_LIMIT, ID_LIMIT, &id))
		skip(c->b, "images[%zu]: no id", i);
	else if (!cJSON_IsString(fn) || !fn->valuestring[0])
		skip(c->b, "images[%zu]: no file_name", i);
	else if (!coco_size(e, "width", &w) || !coco_size(e, "height", &h))
		skip(c->b, "images[%zu]: width or height is not a whole number", i);
	else if (id_get(&c->images, id) >= 0)
		skip(c->b, "images[%zu]: id %lld given twice", i, (long long)id);
	else if ((at = image_at(c->b, fn->valuestring)) < 0)
		return -1;
	else {
		img = &c->b->d->images[at];
		if (!img->width && !img->height) {
			img->width = (unsigned)w;
			img->height = (unsigned)h;
		}
		return id_put(&c->images, id, (size_t)at) < 0 ? oom(c->b) : 0;
	}
	return 0;
}

static int coco_category(struct coco *c, const cJSON *e, size_t i)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
	int64_t id;
	ssize_t l;

	if (!cJSON_IsObject(e))
		return fail(c->b, "categories[%zu]: not an object", i);
	if (!json_whole(cJSON_GetObjectItemCaseSensitive(e, "id"), -ID_LIMIT, ID_LIMIT, &id))
		skip(c->b, "categories[%zu]: no id", i);
	else if (!cJSON_IsString(name) || !name->valuestring[0])
		skip(c->b, "categories[%zu]: no name", i);
	else if (id_get(&c->categories, id) >= 0)
		skip(c->b, "categories[%zu]: id %lld given twice", i, (long long)id);
	else if ((l = intern(c->b, name->valuestring)) < 0)
		return -1;
	else
		return id_put(&c->categories, id, (size_t)l) < 0 ? oom(c->b) : 0;
	return 0;
}

static bool four_numbers(const cJSON *a, double v[4])
{
	const cJSON *n;
	int i = 0;

	if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4)
		return false;
	cJSON_ArrayForEach(n, a)
	{
		if (!cJSON_IsNumber(n) || !isfinite(n->valuedouble))
			return false;
		v[i++] = n->valuedouble;
	}
	return true;
}

static int coco_annotation(struct coco *c, const cJSON *e, size_t i)
{
	const cJSON *bbox = cJSON_GetObjectItemCaseSensitive(e, "bbox");
	struct dataset *d = c->b->d;
	struct dataset_box box = {.class_id = -1};
	struct dataset_image *img;
	int64_t image_id, cat_id;
	ssize_t at, l;
	const char *why;
	double v[4];

	if (!cJSON_IsObject(e))
		return fail(c->b, "annotations[%zu]: not an object", i);
	if (bbox && !cJSON_IsNull(bbox) && !four_numbers(bbox, v))
		return fail(c->b, "annotations[%zu].bbox: not 4 numbers", i);
	if (!json_whole(cJSON_GetObjectItemCaseSensitive(e, "image_id"), -ID_LIMIT, ID_LIMIT,
			&image_id) ||
	    !json_whole(cJSON_GetObjectItemCaseSensitive(e, "category_id"), -ID_LIMIT, ID_LIMIT,
			&cat_id) ||
	    !bbox || cJSON_IsNull(bbox)) {
		skip(c->b, "annotations[%zu]: no image_id, category_id or bbox", i);
		return 0;
	}
	if ((at = id_get(&c->images, image_id)) < 0) {
		skip(c->b, "annotations[%zu]: unknown image_id %lld", i, (long long)image_id);
		return 0;
	}
	if ((l = id_get(&c->categories, cat_id)) < 0) {
		skip(c->b, "annotations[%zu]: unknown category_id %lld", i, (long long)cat_id);
		return 0;
	}
	box = (struct dataset_box){d->labels[l], -1, v[0], v[1], v[2], v[3]};
	if ((why = box_problem(&box))) {
		skip(c->b, "annotations[%zu].bbox: %s", i, why);
		return 0;
	}
	img = &d->images[at];
	d->outside += outside_pixels(&box, img->width, img->height);
	return add_box(c->b, img, &box);
}

static int parse_coco(struct build *b, const char *text, size_t len)
{
	struct coco c = {.b = b, .text = text, .end = text + len};
	int rc;

	/* Annotations name images and categories that may come after them. */
	rc = coco_walk(&c, "images", coco_image);
	if (rc == 0)
		rc = coco_walk(&c, "categories", coco_category);
	if (rc == 0)
		rc = coco_walk(&c, "annotations", coco_annotation);
	free(c.images.slot);
	free(c.categories.slot);
	return rc;
}

enum { K_IMAGES = 1, K_ANNOTATIONS = 2, K_CATEGORIES = 4, K_SENSOR = 8, K_CUT_COCO = 16 };

static unsigned coco_key(const char *s, size_t n)
{
	return same(s, n, "images")                               ? K_IMAGES
	       : same(s, n, "annotations")                        ? K_ANNOTATIONS
	       : same(s, n, "categories")                         ? K_CATEGORIES
	       : same(s, n, "payload") || same(s, n, "protected") ? K_SENSOR
								  : 0;
}

/* A head cut inside images[] or annotations[], as one of a large file is:
 * it is COCO when the elements look like COCO's. */
static unsigned coco_cut(unsigned key, const char *value, const char *end)
{
	const char *mark = key == K_IMAGES ? "\"file_name\"" : "\"image_id\"";

	if (key != K_IMAGES && key != K_ANNOTATIONS)
		return 0;
	return memmem(value, (size_t)(end - value), mark, strlen(mark)) ? K_CUT_COCO : 0;
}

/* Top-level keys "images" and "annotations" or "categories", and none of
 * Edge Impulse's own data format ("payload", "protected"). */
static bool coco_head(const char *p, size_t len)
{
	const char *end = p + len, *k, *v, *at;
	unsigned seen = 0;

	p = json_ws(p, end);
	if (p == end || *p != '{')
		return false;
	for (p = json_ws(p + 1, end); p < end && *p == '"';) {
		unsigned key;

		if (!(k = json_string_end(p, end)))
			break;
		key = coco_key(p + 1, (size_t)(k - p - 2));
		seen |= key;
		p = json_ws(k, end);
		if (p == end || *p != ':')
			break;
		p = json_ws(p + 1, end);
		if (!(v = json_value_end(p, end, &at))) {
			seen |= at == end ? coco_cut(key, p, end) : 0;
			break;
		}
		p = json_ws(v, end);
		if (p == end || *p != ',')
			break;
		p = json_ws(p + 1, end);
	}
	if (seen & K_SENSOR)
		return false;
	return (seen & K_CUT_COCO) ||
	       ((seen & K_IMAGES) && (seen & (K_ANNOTATIONS | K_CATEGORIES)));
}

/* ---- detection and parsing ---- */

static const struct {
	const char *name;
	bool normalized, by_stem;
} formats[] = {
	[DATASET_NONE] = {"none", false, false},
	[DATASET_YOLO] = {"YOLO", true, true},
	[DATASET_NAMES] = {"YOLO class names", false, false},
	[DATASET_COCO] = {"COCO JSON", false, false},
	[DATASET_VOC] = {"Pascal VOC XML", false, false},
	[DATASET_OPEN_IMAGES] = {"Open Images CSV", true, true},
	[DATASET_OI_CLASSES] = {"Open Images class descriptions", false, false},
	[DATASET_CSV_LABEL] = {"plain CSV", false, false},
	[DATASET_CSV_BOXES] = {"plain CSV with boxes", false, false},
};

const char *dataset_format_name(enum dataset_format f)
{
	return (size_t)f < sizeof(formats) / sizeof(formats[0]) ? formats[f].name : "none";
}

/* CUT: HEAD is all that was read of a longer file. */
static enum dataset_format detect(const char *name, const char *head, size_t len, bool strict)
{
	bool cut = len >= DATASET_HEAD_MAX;
	const char *ext;

	name = name ? name : "";
	ext = ext_of(name);
	skip_bom(&head, &len);
	if (strcasecmp(base_of(name), "classes.txt") == 0 || strcasecmp(ext, "names") == 0)
		return DATASET_NAMES;
	if (strcasecmp(ext, "yaml") == 0 || strcasecmp(ext, "yml") == 0)
		return yaml_head(head, len) ? DATASET_NAMES : DATASET_NONE;
	if (strcasecmp(ext, "txt") == 0)
		return yolo_head(head, len, cut, strict) ? DATASET_YOLO : DATASET_NONE;
	if (strcasecmp(ext, "json") == 0)
		return coco_head(head, len) ? DATASET_COCO : DATASET_NONE;
	if (strcasecmp(ext, "xml") == 0)
		return voc_head(head, len) ? DATASET_VOC : DATASET_NONE;
	if (strcasecmp(ext, "csv") == 0)
		return csv_detect(name, head, len, cut, strict);
	return DATASET_NONE;
}

enum dataset_format dataset_detect(const char *name, const char *head, size_t len)
{
	if (!head)
		len = 0;
	return detect(name, head ? head : "", len < DATASET_HEAD_MAX ? len : DATASET_HEAD_MAX,
		      true);
}

static int parse_format(struct build *b, const char *name, const char *text, size_t len)
{
	const char *ext = ext_of(name);

	switch (b->d->format) {
	case DATASET_YOLO: return parse_yolo(b, name, text, len);
	case DATASET_NAMES:
		return strcasecmp(ext, "yaml") == 0 || strcasecmp(ext, "yml") == 0
			       ? parse_yaml(b, text, len)
			       : parse_name_lines(b, text, len);
	case DATASET_COCO: return parse_coco(b, text, len);
	case DATASET_VOC: return parse_voc(b, text, len);
	case DATASET_OPEN_IMAGES:
	case DATASET_OI_CLASSES:
	case DATASET_CSV_LABEL:
	case DATASET_CSV_BOXES: return parse_csv(b, text, len);
	default: return fail(b, "not a dataset file");
	}
}

static struct dataset *dataset_new(enum dataset_format f)
{
	struct dataset *d = calloc(1, sizeof(*d));

	if (!d || !(d->index = calloc(1, sizeof(*d->index)))) {
		free(d);
		return NULL;
	}
	d->format = f;
	d->normalized = formats[f].normalized;
	d->by_stem = formats[f].by_stem;
	return d;
}

int dataset_parse(const char *name, const char *text, size_t len, struct dataset **out, char *err,
		  size_t errsz)
{
	struct build b = {.err = err, .errsz = errsz};
	enum dataset_format f;
	int rc;

	*out = NULL;
	if (err && errsz)
		err[0] = '\0';
	name = name ? name : "";
	if (!text) {
		text = "";
		len = 0;
	}
	/* What dataset_detect() says of the head, else the lenient view. */
	f = detect(name, text, len < DATASET_HEAD_MAX ? len : DATASET_HEAD_MAX, true);
	if (f == DATASET_NONE)
		f = detect(name, text, len < DATASET_HEAD_MAX ? len : DATASET_HEAD_MAX, false);
	if (f == DATASET_NONE)
		return 1;
	if (len > DATASET_FILE_MAX)
		return fail(&b, "too large (%zu MB; at most %zu MB)", (len >> 20) + 1,
			    DATASET_FILE_MAX >> 20);
	skip_bom(&text, &len);
	if (!(b.d = dataset_new(f)))
		return fail(&b, "out of memory");
	rc = parse_format(&b, name, text, len);
	free(b.labels.slot);
	if (rc < 0) {
		if (err && errsz && !err[0])
			snprintf(err, errsz, "malformed");
		dataset_free(b.d);
		return -1;
	}
	*out = b.d;
	return 0;
}

void dataset_free(struct dataset *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nimages; i++) {
		free(d->images[i].key);
		free(d->images[i].boxes);
	}
	free(d->images);
	for (size_t i = 0; i < d->nnames; i++) {
		free(d->names[i]);
		if (d->name_keys)
			free(d->name_keys[i]);
	}
	free(d->names);
	free(d->name_keys);
	for (size_t i = 0; i < d->nlabels; i++)
		free(d->labels[i]);
	free(d->labels);
	if (d->index)
		free(d->index->slot);
	free(d->index);
	free(d);
}

const struct dataset_image *dataset_find(const struct dataset *d, const char *file_name)
{
	ssize_t i;

	if (!d || !file_name)
		return NULL;
	i = map_get(d->index, file_name, d->by_stem ? stem_len(file_name) : strlen(file_name));
	return i < 0 ? NULL : &d->images[i];
}

/* ---- image sizes ---- */

static unsigned long be(const unsigned char *p, int n)
{
	unsigned long v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int png_size(const unsigned char *p, size_t len, unsigned *w, unsigned *h)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
	unsigned long pw, ph;

	if (len < 24 || memcmp(p, sig, 8) != 0 || memcmp(p + 12, "IHDR", 4) != 0)
		return -1;
	pw = be(p + 16, 4);
	ph = be(p + 20, 4);
	/* PNG allows 1 to 2^31 - 1. */
	if (!pw || !ph || pw > INT32_MAX || ph > INT32_MAX)
		return -1;
	*w = (unsigned)pw;
	*h = (unsigned)ph;
	return 0;
}

/* A start of frame: baseline, extended, progressive, lossless, in
 * Huffman or arithmetic coding; not DHT (C4), JPG (C8) nor DAC (CC). */
static bool jpeg_sof(unsigned m)
{
	return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

static int jpeg_size(const unsigned char *p, size_t len, unsigned *w, unsigned *h)
{
	size_t i = 2;

	if (len < 4 || p[0] != 0xFF || p[1] != 0xD8)
		return -1;
	while (i + 1 < len && p[i] == 0xFF) {
		unsigned m, seglen;

		while (i + 1 < len && p[i + 1] == 0xFF) /* fill bytes */
			i++;
		if (i + 1 >= len)
			break;
		m = p[i + 1];
		i += 2;
		/* Markers with no segment: TEM and the restarts. */
		if (m == 0x01 || (m >= 0xD0 && m <= 0xD7))
			continue;
		/* Stuffed zero, another SOI, EOI, or the scan with no frame before. */
		if (m == 0x00 || m == 0xD8 || m == 0xD9 || m == 0xDA || i + 2 > len)
			break;
		seglen = (unsigned)be(p + i, 2);
		if (seglen < 2)
			break;
		if (jpeg_sof(m)) {
			if (seglen < 7 || i + 7 > len || !be(p + i + 3, 2) || !be(p + i + 5, 2))
				break;
			*h = (unsigned)be(p + i + 3, 2);
			*w = (unsigned)be(p + i + 5, 2);
			return 0;
		}
		i += seglen;
	}
	return -1;
}

int dataset_image_size(const unsigned char *head, size_t len, unsigned *w, unsigned *h)
{
	if (!head || !w || !h)
		return -1;
	if (png_size(head, len, w, h) == 0)
		return 0;
	return jpeg_size(head, len, w, h);
}

/* ---- boxes for Edge Impulse ---- */

struct out {
	char *s;
	size_t len, cap;
	bool oom;
};

static void out_put(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->cap - o->len <= n) {
		size_t cap = o->cap ? o->cap : 256;
		char *p;

		while (cap - o->len <= n && cap < SIZE_MAX / 2)
			cap *= 2;
		if (cap - o->len <= n || !(p = realloc(o->s, cap))) {
			o->oom = true;
			return;
		}
		o->s = p;
		o->cap = cap;
	}
	memcpy(o->s + o->len, s, n);
	o->len += n;
	o->s[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

static void out_json_string(struct out *o, const char *s)
{
	out_put(o, "\"", 1);
	for (; *s; s++) {
		char esc[8];

		if (*s == '"' || *s == '\\') {
			esc[0] = '\\';
			esc[1] = *s;
			out_put(o, esc, 2);
		} else if ((unsigned char)*s < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned char)*s);
			out_str(o, esc);
		} else {
			out_put(o, s, 1);
		}
	}
	out_put(o, "\"", 1);
}

static void out_number(struct out *o, const char *key, double v)
{
	char num[400];

	snprintf(num, sizeof(num), ",\"%s\":%.0f", key, v);
	out_str(o, num);
}

/* POS and SIZE on one axis, cut to 0..LIMIT when they pass it. */
static void clamp_axis(double *pos, double *size, unsigned limit)
{
	double lo = fmax(*pos, 0), hi = fmin(*pos + *size, limit);

	if (lo != *pos || hi != *pos + *size) {
		*pos = lo;
		*size = hi - lo;
	}
}

/* The box in whole pixels into V (x, y, width, height): false when
 * nothing is left of it.  Each is rounded from the exact value; only a
 * clamped box whose rounded corner and size together pass the edge loses
 * that pixel, so that it stays inside. */
static bool box_pixels(const struct dataset_box *box, bool normalized, unsigned w, unsigned h,
		       double v[4])
{
	double sx = normalized ? w : 1, sy = normalized ? h : 1;

	v[0] = box->x * sx;
	v[1] = box->y * sy;
	v[2] = box->w * sx;
	v[3] = box->h * sy;
	for (int i = 0; i < 4; i++) {
		if (!isfinite(v[i]))
			return false;
	}
	if (w && h) {
		clamp_axis(&v[0], &v[2], w);
		clamp_axis(&v[1], &v[3], h);
	}
	for (int i = 0; i < 4; i++)
		v[i] = round(v[i]) + 0.0; /* + 0.0: never "-0" */
	if (w && h) {
		v[2] = fmin(v[2], w - v[0]);
		v[3] = fmin(v[3], h - v[1]);
	}
	return v[2] >= 1 && v[3] >= 1;
}

static const char *box_label(const struct dataset_box *box, const char *const *names, size_t nnames,
			     char *num, size_t numsz, size_t *unknown)
{
	if (box->label)
		return box->label;
	if (names && box->class_id >= 0 && (size_t)box->class_id < nnames && names[box->class_id])
		return names[box->class_id];
	snprintf(num, numsz, "%ld", box->class_id);
	(*unknown)++;
	return num;
}

char *dataset_boxes_json(const struct dataset_box *boxes, size_t n, bool normalized, unsigned w,
			 unsigned h, const char *const *names, size_t nnames, size_t *unknown,
			 size_t *dropped)
{
	struct out o = {0};
	size_t nunknown = 0, ndropped = 0, kept = 0;

	if (normalized && (!w || !h))
		return NULL;
	out_put(&o, "[", 1);
	for (size_t i = 0; i < n; i++) {
		char num[24];
		double v[4];

		if (!box_pixels(&boxes[i], normalized, w, h, v)) {
			ndropped++;
			continue;
		}
		out_str(&o, kept++ ? ",{\"label\":" : "{\"label\":");
		out_json_string(&o,
				box_label(&boxes[i], names, nnames, num, sizeof(num), &nunknown));
		out_number(&o, "x", v[0]);
		out_number(&o, "y", v[1]);
		out_number(&o, "width", v[2]);
		out_number(&o, "height", v[3]);
		out_put(&o, "}", 1);
	}
	out_put(&o, "]", 1);
	if (o.oom) {
		free(o.s);
		return NULL;
	}
	if (unknown)
		*unknown = nunknown;
	if (dropped)
		*dropped = ndropped;
	return o.s;
}
