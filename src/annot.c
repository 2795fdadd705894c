/* annot.c: parsing and checking annotation files, and building the
 * per-request parts (see annot.h).  Values are kept as compact JSON
 * text, not as cJSON trees: a dataset's file of 100,000 entries then
 * costs a few megabytes, not a hundred. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "annot.h"
#include "layout.h"
#include "text.h"

#define NOTE_MAX 200
#define NDJSON_MARKER "{\"__ndjson\":true"

struct annot_file {
	enum annot_kind kind;
	size_t count, cap;
	char **keys;
	char **values;                /* typed kinds */
	struct annot_sample *samples; /* info.labels */
	size_t *index;                /* open addressing: entry + 1, 0 empty */
	size_t index_size;
	size_t skipped, refused, attachments;
	char skip_note[NOTE_MAX], refuse_note[NOTE_MAX];
};

struct part_kind {
	const char *filename, *type, *field;
};

static const struct part_kind part_kinds[ANNOT_PART_KINDS] = {
	{"bounding_boxes.labels", "bounding-box-labels", "boundingBoxes"},
	{"structured_labels.labels", "structured-labels", "structuredLabels"},
	{"label_map.labels", "label-map-labels", "labels"},
};

const char *annot_part_filename(enum annot_kind kind)
{
	return kind < ANNOT_PART_KINDS ? part_kinds[kind].filename : ANNOT_INFO_NAME;
}

/* ---- the index: key -> entry ---- */

static int build_index(struct annot_file *f)
{
	size_t size = 16;

	while (size < f->count * 2)
		size *= 2;
	f->index = calloc(size, sizeof(*f->index));
	if (!f->index)
		return -ENOMEM;
	f->index_size = size;
	for (size_t i = 0; i < f->count; i++) {
		size_t b = text_hash(f->keys[i], strlen(f->keys[i])) & (size - 1);

		while (f->index[b] && strcmp(f->keys[f->index[b] - 1], f->keys[i]) != 0)
			b = (b + 1) & (size - 1);
		/* A key given twice: the first one counts. */
		if (!f->index[b])
			f->index[b] = i + 1;
	}
	return 0;
}

static ssize_t find_key(const struct annot_file *f, const char *key)
{
	size_t b;

	if (!f->index_size)
		return -1;
	for (b = text_hash(key, strlen(key)) & (f->index_size - 1); f->index[b];
	     b = (b + 1) & (f->index_size - 1)) {
		if (strcmp(f->keys[f->index[b] - 1], key) == 0)
			return (ssize_t)(f->index[b] - 1);
	}
	return -1;
}

/* ---- accessors ---- */

enum annot_kind annot_kind_of(const struct annot_file *f)
{
	return f->kind;
}

size_t annot_count(const struct annot_file *f)
{
	return f->count;
}

const char *annot_key(const struct annot_file *f, size_t i)
{
	return i < f->count ? f->keys[i] : NULL;
}

const char *annot_value(const struct annot_file *f, const char *name)
{
	ssize_t i = f->kind == ANNOT_INFO ? -1 : find_key(f, name);

	return i < 0 ? NULL : f->values[i];
}

const struct annot_sample *annot_sample_at(const struct annot_file *f, const char *path)
{
	ssize_t i = f->kind == ANNOT_INFO ? find_key(f, path) : -1;

	return i < 0 ? NULL : &f->samples[i];
}

size_t annot_skipped(const struct annot_file *f)
{
	return f->skipped;
}

const char *annot_skip_note(const struct annot_file *f)
{
	return f->skip_note;
}

size_t annot_attachments(const struct annot_file *f)
{
	return f->attachments;
}

size_t annot_refused(const struct annot_file *f)
{
	return f->refused;
}

const char *annot_refuse_note(const struct annot_file *f)
{
	return f->refuse_note;
}

static void sample_free(struct annot_sample *s)
{
	free(s->path);
	free(s->name);
	free(s->label);
	free(s->metadata);
	for (int k = 0; k < ANNOT_PART_KINDS; k++)
		free(s->part[k]);
}

void annot_free(struct annot_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->count; i++) {
		if (f->values) {
			free(f->values[i]);
			free(f->keys[i]);
		}
		/* An info.labels key is its sample's own path. */
		if (f->samples)
			sample_free(&f->samples[i]);
	}
	free(f->keys);
	free(f->values);
	free(f->samples);
	free(f->index);
	free(f);
}

/* ---- notes on entries left out ---- */

/* Names and values from the file go into results and logs. */
static const char *printable(char *dst, size_t size, const char *src)
{
	text_escape(dst, size, src, strlen(src));
	return dst;
}

static void skip(struct annot_file *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void skip(struct annot_file *f, const char *fmt, ...)
{
	va_list ap;

	if (f->skipped++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(f->skip_note, sizeof(f->skip_note), fmt, ap);
	va_end(ap);
}

static void refuse(struct annot_file *f, const char *path)
{
	if (f->refused++ == 0)
		printable(f->refuse_note, 121, path);
}

/* ---- checks of values, as the official tools and the service want them ---- */

static bool is_whole(const cJSON *n)
{
	return cJSON_IsNumber(n) && isfinite(n->valuedouble) &&
	       n->valuedouble == floor(n->valuedouble);
}

static const char *check_box(const cJSON *box)
{
	static const char *const numbers[] = {"x", "y", "width", "height"};

	if (!cJSON_IsObject(box))
		return "a box is not an object";
	if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(box, "label")))
		return "a box has no 'label' string";
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(box, numbers[i]);

		if (!cJSON_IsNumber(n) || !isfinite(n->valuedouble))
			return i < 2 ? "a box's 'x' or 'y' is not a number"
				     : "a box's 'width' or 'height' is not a number";
		if (i >= 2 && n->valuedouble <= 0)
			return "a box's 'width' or 'height' is not above 0";
	}
	return NULL;
}

static const char *check_boxes(const cJSON *v)
{
	const cJSON *box;

	if (!cJSON_IsArray(v))
		return "not an array of boxes";
	cJSON_ArrayForEach(box, v)
	{
		const char *why = check_box(box);

		if (why)
			return why;
	}
	return NULL;
}

static const char *check_ranges(const cJSON *v)
{
	const cJSON *r;

	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
		return "not a list of label ranges";
	cJSON_ArrayForEach(r, v)
	{
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "startIndex");
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "endIndex");

		if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "label")))
			return "a range has no 'label' string";
		if (!is_whole(s) || !is_whole(e) || s->valuedouble < 0 ||
		    e->valuedouble < s->valuedouble)
			return "a range's 'startIndex'/'endIndex' are not whole numbers in order";
	}
	return NULL;
}

static const char *check_strings(const cJSON *v, bool array_ok)
{
	const cJSON *item;

	if (!cJSON_IsObject(v) && !(array_ok && cJSON_IsArray(v)))
		return "not an object of strings";
	cJSON_ArrayForEach(item, v)
	{
		if (!cJSON_IsString(item))
			return "a value is not a string";
	}
	return NULL;
}

static const char *check_value(enum annot_kind kind, const cJSON *v)
{
	switch (kind) {
	case ANNOT_BOXES: return check_boxes(v);
	case ANNOT_STRUCTURED: return check_ranges(v);
	case ANNOT_LABEL_MAP: return check_strings(v, true);
	default: return "not an annotation";
	}
}

/* ---- building the file ---- */

static int grow(struct annot_file *f)
{
	size_t cap = f->cap ? f->cap * 2 : 64;
	char **keys = realloc(f->keys, cap * sizeof(*keys));

	if (!keys)
		return -ENOMEM;
	f->keys = keys;
	if (f->kind == ANNOT_INFO) {
		struct annot_sample *s = realloc(f->samples, cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		f->samples = s;
	} else {
		char **v = realloc(f->values, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->values = v;
	}
	f->cap = cap;
	return 0;
}

static char *print_json(const cJSON *v)
{
	return cJSON_PrintUnformatted(v);
}

static int add_typed(struct annot_file *f, const cJSON *item)
{
	const char *why = check_value(f->kind, item);
	char *text;

	if (why) {
		char name[81];

		skip(f, "'%s': %s", printable(name, sizeof(name), item->string), why);
		return 0;
	}
	if (f->count == f->cap && grow(f) < 0)
		return -ENOMEM;
	text = print_json(item);
	if (!text)
		return -ENOMEM;
	f->values[f->count] = text;
	f->keys[f->count] = strdup(item->string);
	if (!f->keys[f->count]) {
		free(text);
		return -ENOMEM;
	}
	f->count++;
	return 0;
}

static int typed_kind(const char *type, enum annot_kind *kind)
{
	for (int k = 0; k < ANNOT_PART_KINDS; k++) {
		if (strcmp(type, part_kinds[k].type) == 0) {
			*kind = (enum annot_kind)k;
			return 0;
		}
	}
	return -1;
}

static int parse_typed(struct annot_file *f, const cJSON *root, char *err, size_t errsz)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type"), *map, *item;

	if (!cJSON_IsString(type)) {
		snprintf(err, errsz, "no 'type' field (expected %s, %s or %s)", part_kinds[0].type,
			 part_kinds[1].type, part_kinds[2].type);
		return -1;
	}
	if (strcmp(type->valuestring, "attachments") == 0) {
		snprintf(err, errsz,
			 "attachments are not sent by ingestfs (use edge-impulse-uploader)");
		return -1;
	}
	if (typed_kind(type->valuestring, &f->kind) < 0) {
		char name[61];

		snprintf(err, errsz, "unknown 'type' \"%s\" (expected %s, %s or %s)",
			 printable(name, sizeof(name), type->valuestring), part_kinds[0].type,
			 part_kinds[1].type, part_kinds[2].type);
		return -1;
	}
	map = cJSON_GetObjectItemCaseSensitive(root, part_kinds[f->kind].field);
	if (!cJSON_IsObject(map)) {
		snprintf(err, errsz, "'%s' is not an object", part_kinds[f->kind].field);
		return -1;
	}
	cJSON_ArrayForEach(item, map)
	{
		if (add_typed(f, item) < 0) {
			snprintf(err, errsz, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* ---- info.labels ---- */

/* A path as info.labels gives it, made relative and clean: no ".", ".."
 * or empty components.  NULL when it leaves its folder (absolute, or a
 * ".." above it) or is empty.  Malloc'd. */
static char *clean_path(const char *path)
{
	size_t n = strlen(path), o = 0;
	char *out = malloc(n + 1);
	const char *p = path;

	if (!out || path[0] == '/' || path[0] == '\0') {
		free(out);
		return NULL;
	}
	while (*p) {
		size_t len = strcspn(p, "/");

		if (len == 2 && p[0] == '.' && p[1] == '.') {
			/* Up one folder, never above the one described. */
			if (o == 0) {
				free(out);
				return NULL;
			}
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if (len > 0 && !(len == 1 && p[0] == '.')) {
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, len);
			o += len;
		}
		p += len;
		if (*p == '/')
			p++;
	}
	out[o] = '\0';
	if (o == 0) {
		free(out);
		return NULL;
	}
	return out;
}

static const char *info_label(const cJSON *label, struct annot_sample *s)
{
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(label, "type");
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(label, "label");
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(label, "labels");
	const char *why;
	int part;

	if (!label)
		return NULL; /* the folder decides */
	if (!cJSON_IsString(type))
		return "'label' has no 'type'";
	if (strcmp(type->valuestring, "label") == 0) {
		if (!cJSON_IsString(value))
			return "'label.label' is not a string";
		s->label_mode = ANNOT_LABEL_GIVEN;
		s->label = strdup(value->valuestring);
		return s->label ? NULL : "out of memory";
	}
	if (strcmp(type->valuestring, "unlabeled") == 0) {
		s->label_mode = ANNOT_LABEL_NONE;
		return NULL;
	}
	if (strcmp(type->valuestring, "multi-label") == 0)
		part = ANNOT_STRUCTURED;
	else if (strcmp(type->valuestring, "keyvalue-labels") == 0)
		part = ANNOT_LABEL_MAP;
	else
		return "unknown 'label.type'";
	why = part == ANNOT_STRUCTURED ? check_ranges(labels) : check_strings(labels, false);
	if (why)
		return why;
	s->label_mode = ANNOT_LABEL_PARTS;
	s->part[part] = print_json(labels);
	return s->part[part] ? NULL : "out of memory";
}

static const char *info_fields(const cJSON *e, struct annot_sample *s)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
	const cJSON *cat = cJSON_GetObjectItemCaseSensitive(e, "category");
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e, "metadata");
	const cJSON *boxes = cJSON_GetObjectItemCaseSensitive(e, "boundingBoxes");
	const cJSON *att = cJSON_GetObjectItemCaseSensitive(e, "attachments");
	const char *why;

	s->category = -1;
	if (cJSON_IsString(name) && name->valuestring[0]) {
		if (strchr(name->valuestring, '/') ||
		    layout_has_control_chars(name->valuestring, strlen(name->valuestring)))
			return "'name' holds a '/' or a control character";
		if (!(s->name = strdup(name->valuestring)))
			return "out of memory";
	}
	if (cJSON_IsString(cat) &&
	    (s->category = layout_service_category_find(cat->valuestring)) < 0)
		return "unknown 'category'";
	if (meta && !cJSON_IsNull(meta)) {
		if ((why = check_strings(meta, false)))
			return "'metadata' is not an object of strings";
		if (!(s->metadata = print_json(meta)))
			return "out of memory";
	}
	if (boxes && !cJSON_IsNull(boxes) && cJSON_GetArraySize(boxes) > 0) {
		if ((why = check_boxes(boxes)))
			return why;
		if (!(s->part[ANNOT_BOXES] = print_json(boxes)))
			return "out of memory";
	}
	s->attachments = cJSON_IsArray(att) && cJSON_GetArraySize(att) > 0;
	return info_label(cJSON_GetObjectItemCaseSensitive(e, "label"), s);
}

static int add_info(struct annot_file *f, const cJSON *e, size_t nth)
{
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
	struct annot_sample s = {0};
	const char *why;

	if (!cJSON_IsObject(e) || !cJSON_IsString(path)) {
		skip(f, "entry %zu: no 'path' string", nth);
		return 0;
	}
	s.path = clean_path(path->valuestring);
	if (!s.path) {
		refuse(f, path->valuestring);
		return 0;
	}
	why = info_fields(e, &s);
	if (why) {
		char name[81];

		skip(f, "'%s': %s", printable(name, sizeof(name), path->valuestring), why);
		sample_free(&s);
		return strcmp(why, "out of memory") == 0 ? -ENOMEM : 0;
	}
	if (f->count == f->cap && grow(f) < 0) {
		sample_free(&s);
		return -ENOMEM;
	}
	f->attachments += s.attachments;
	f->samples[f->count] = s;
	f->keys[f->count++] = s.path;
	return 0;
}

static int check_version(const cJSON *root, char *err, size_t errsz)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");

	if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
		snprintf(err, errsz, "'version' is not 1");
		return -1;
	}
	return 0;
}

static int parse_info(struct annot_file *f, const cJSON *root, char *err, size_t errsz)
{
	const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files"), *e;
	size_t nth = 0;

	if (check_version(root, err, errsz) < 0)
		return -1;
	if (!cJSON_IsArray(files)) {
		snprintf(err, errsz, "'files' is not an array");
		return -1;
	}
	cJSON_ArrayForEach(e, files)
	{
		if (add_info(f, e, ++nth) < 0) {
			snprintf(err, errsz, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* ---- JSON text ---- */

static void where_in(const char *text, size_t len, const char *at, char *err, size_t errsz)
{
	size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : len;
	unsigned line, col;

	text_line_col(text, off, &line, &col);
	snprintf(err, errsz, "not valid JSON at line %u, column %u", line, col);
}

static cJSON *parse_json(const char *text, size_t len, char *err, size_t errsz)
{
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);

	if (!root) {
		where_in(text, len, end, err, errsz);
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errsz, "not a JSON object");
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

static bool is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	}
	return true;
}

/* A very large Studio export writes info.labels as JSON lines: a header
 * object, then {"__key":"files","__item":{...}} per sample. */
static int parse_ndjson(struct annot_file *f, const char *text, size_t len, char *err, size_t errsz)
{
	const char *p = text, *end = text + len;
	unsigned lineno = 0;
	size_t nth = 0;
	int rc = 0;

	for (; p < end && rc == 0; lineno++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		cJSON *row = n ? cJSON_ParseWithLength(p, n) : NULL;
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(row, "__key");

		if (!row && !is_blank(p, n)) {
			snprintf(err, errsz, "line %u is not valid JSON", lineno + 1);
			rc = -1;
		} else if (lineno == 0) {
			rc = check_version(row, err, errsz);
		} else if (cJSON_IsString(key) && strcmp(key->valuestring, "files") == 0) {
			rc = add_info(f, cJSON_GetObjectItemCaseSensitive(row, "__item"), ++nth);
			if (rc < 0)
				snprintf(err, errsz, "out of memory");
		}
		cJSON_Delete(row);
		p += n + 1;
	}
	return rc;
}

bool annot_is_info_name(const char *name)
{
	const char *slash = strrchr(name, '/');

	return strcmp(slash ? slash + 1 : name, ANNOT_INFO_NAME) == 0;
}

static int parse_text(struct annot_file *f, const char *text, size_t len, char *err, size_t errsz)
{
	cJSON *root;
	int rc;

	if (f->kind == ANNOT_INFO && len >= strlen(NDJSON_MARKER) &&
	    memcmp(text, NDJSON_MARKER, strlen(NDJSON_MARKER)) == 0)
		return parse_ndjson(f, text, len, err, errsz);
	root = parse_json(text, len, err, errsz);
	if (!root)
		return -1;
	if (f->kind == ANNOT_INFO)
		rc = parse_info(f, root, err, errsz);
	else
		rc = check_version(root, err, errsz) < 0 ? -1 : parse_typed(f, root, err, errsz);
	cJSON_Delete(root);
	return rc;
}

int annot_parse(const char *name, const char *text, size_t len, struct annot_file **out, char *err,
		size_t errsz)
{
	struct annot_file *f = calloc(1, sizeof(*f));

	*out = NULL;
	if (!f) {
		snprintf(err, errsz, "out of memory");
		return -1;
	}
	f->kind = annot_is_info_name(name) ? ANNOT_INFO : ANNOT_BOXES;
	if (len > ANNOT_FILE_MAX) {
		snprintf(err, errsz, "too large (%zu MB; at most %zu MB)", len >> 20,
			 ANNOT_FILE_MAX >> 20);
		goto fail;
	}
	if (parse_text(f, text, len, err, errsz) < 0)
		goto fail;
	if (build_index(f) < 0) {
		snprintf(err, errsz, "out of memory");
		goto fail;
	}
	*out = f;
	return 0;
fail:
	annot_free(f);
	return -1;
}

/* ---- request parts ---- */

char *annot_build_part(enum annot_kind kind, size_t n, const char *const keys[],
		       const char *const values[])
{
	size_t cap = 256, len = 0;
	char *out = malloc(cap), *p;

	if (!out || kind >= ANNOT_PART_KINDS)
		goto fail;
	len = (size_t)snprintf(out, cap, "{\"version\":1,\"type\":\"%s\",\"%s\":{",
			       part_kinds[kind].type, part_kinds[kind].field);
	for (size_t i = 0; i < n; i++) {
		cJSON *key = cJSON_CreateString(keys[i]);
		char *k = key ? cJSON_PrintUnformatted(key) : NULL;
		size_t need = (k ? strlen(k) : 0) + strlen(values[i]) + 4;

		cJSON_Delete(key);
		if (!k)
			goto fail;
		if (len + need + 4 > cap) {
			while (len + need + 4 > cap)
				cap *= 2;
			p = realloc(out, cap);
			if (!p) {
				free(k);
				goto fail;
			}
			out = p;
		}
		len += (size_t)snprintf(out + len, cap - len, "%s%s:%s", i ? "," : "", k,
					values[i]);
		free(k);
	}
	snprintf(out + len, cap - len, "}}");
	return out;
fail:
	free(out);
	return NULL;
}
