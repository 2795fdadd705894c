/* layout.c: category, label and ignore rules (ingestfs(1) LAYOUT). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "layout.h"

/* A table, not literals.  The first ones are folders at the root; the
 * service knows more, which an info.labels entry may name. */
static const char *const categories[] = {"training",   "testing",         "anomaly",
					 "validation", "post-processing", "split"};
#define FOLDER_CATEGORIES 3

struct extension_type {
	const char *ext;
	const char *mime;
};

static const struct extension_type supported[] = {
	{"json", "application/json"}, {"cbor", "application/cbor"},
	{"csv", "text/csv"},          {"wav", "audio/wav"},
	{"jpg", "image/jpeg"},        {"jpeg", "image/jpeg"},
	{"png", "image/png"},         {"mp4", "video/mp4"},
	{"avi", "video/x-msvideo"},   {"labels", "application/json"},
	{"txt", "text/plain"},        {"parquet", "application/octet-stream"},
};

static const char *const junk_suffixes[] = {"~", ".swp", ".tmp", ".part", ".crdownload"};
static const char *const junk_names[] = {"Thumbs.db", "desktop.ini"};
static const char why_type[] = "file type not accepted by the service";
static const char why_trash[] = "in the trash";

size_t layout_category_count(void)
{
	return FOLDER_CATEGORIES;
}

const char *layout_category_name(int index)
{
	if (index < 0 || (size_t)index >= sizeof(categories) / sizeof(categories[0]))
		return NULL;
	return categories[index];
}

static int category_among(const char *name, size_t len, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (strlen(categories[i]) == len && memcmp(categories[i], name, len) == 0)
			return (int)i;
	}
	return -1;
}

int layout_category_find(const char *name, size_t len)
{
	return category_among(name, len, FOLDER_CATEGORIES);
}

int layout_service_category_find(const char *name)
{
	return category_among(name, strlen(name), sizeof(categories) / sizeof(categories[0]));
}

const char *layout_extension_of(const char *name)
{
	const char *dot = strrchr(name, '.');

	return (dot && dot != name) ? dot + 1 : NULL;
}

static const struct extension_type *find_extension(const char *name)
{
	const char *ext = layout_extension_of(name);

	if (!ext)
		return NULL;
	for (size_t i = 0; i < sizeof(supported) / sizeof(supported[0]); i++) {
		if (strcasecmp(ext, supported[i].ext) == 0)
			return &supported[i];
	}
	return NULL;
}

static bool has_suffix_ci(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

const char *layout_ignored_name(const char *name)
{
	if (name[0] == '.')
		return "hidden name";
	for (size_t i = 0; i < sizeof(junk_names) / sizeof(junk_names[0]); i++) {
		if (strcasecmp(name, junk_names[i]) == 0)
			return "system junk file";
	}
	for (size_t i = 0; i < sizeof(junk_suffixes) / sizeof(junk_suffixes[0]); i++) {
		if (has_suffix_ci(name, junk_suffixes[i]))
			return "temporary file";
	}
	if (!find_extension(name))
		return why_type;
	return NULL;
}

bool layout_dataset_candidate(const char *path)
{
	static const char *const exts[] = {"txt", "names", "yaml", "yml", "xml", "csv", "json"};
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	const char *ext = layout_extension_of(name), *why = layout_ignored(path);

	if (!ext || (why && why != why_type))
		return false;
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		if (strcasecmp(ext, exts[i]) == 0)
			return true;
	}
	return false;
}

const char *layout_content_type(const char *name)
{
	const struct extension_type *t = find_extension(name);

	return t ? t->mime : "application/octet-stream";
}

bool layout_is_fuse_hidden(const char *name)
{
	static const char prefix[] = ".fuse_hidden";
	size_t n = strlen(prefix);

	if (strncmp(name, prefix, n) != 0 || strlen(name) != n + 16)
		return false;
	return strspn(name + n, "0123456789abcdef") == 16;
}

bool layout_below(const char *path, const char *dir, size_t dlen, bool self)
{
	if (dlen == 0)
		return true;
	return strncmp(path, dir, dlen) == 0 && (path[dlen] == '/' || (self && path[dlen] == '\0'));
}

bool layout_has_control_chars(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

static size_t component_len(const char *p)
{
	const char *slash = strchr(p, '/');

	return slash ? (size_t)(slash - p) : strlen(p);
}

/* Walk the components below the category: count depth, remember the label
 * and whether any folder on the way is hidden. */
static void classify_below_category(const char *p, struct layout_path *out)
{
	bool hidden_dir = false;

	while (*p) {
		size_t len = component_len(p);
		bool last = p[len] == '\0';

		out->depth++;
		if (last) {
			out->name = p;
			break;
		}
		if (p[0] == '.')
			hidden_dir = true;
		if (out->depth == 1) {
			out->label = p;
			out->label_len = len;
		}
		p += len + 1;
	}
	if (hidden_dir)
		out->ignored = "inside a hidden folder";
}

/* At the root only a Studio export's info.labels is read; anything else
 * is no sample (a category is a folder, and a hidden or temporary name
 * may be a writer's way to make info.labels). */
static const char *root_file_ignored(const struct layout_path *lp)
{
	const char *why;

	if (lp->category >= 0 || strcmp(lp->name, LAYOUT_INFO_NAME) == 0)
		return NULL;
	why = layout_ignored_name(lp->name);
	return why ? why : "not inside a category folder";
}

/* The trash folders of the freedesktop.org spec that a file manager makes
 * at the top of a mount: .Trash (shared, sticky) and .Trash-UID. */
static bool is_trash_name(const char *name, size_t len)
{
	if (len == 6 && memcmp(name, ".Trash", 6) == 0)
		return true;
	if (len < 8 || memcmp(name, ".Trash-", 7) != 0)
		return false;
	for (size_t i = 7; i < len; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
	}
	return true;
}

int layout_classify(const char *path, struct layout_path *out)
{
	size_t len;

	memset(out, 0, sizeof(*out));
	out->category = -1;
	if (path[0] == '/')
		return -EINVAL;
	if (path[0] == '\0' || strcmp(path, ".") == 0) {
		out->kind = LAYOUT_ROOT;
		out->name = path;
		return 0;
	}
	len = component_len(path);
	out->category = layout_category_find(path, len);
	out->trash = is_trash_name(path, len);
	if (path[len] == '\0') {
		out->kind = LAYOUT_TOPLEVEL;
		out->name = path;
		out->ignored = out->trash ? why_trash : root_file_ignored(out);
		return 0;
	}
	out->kind = LAYOUT_ENTRY;
	if (out->category < 0) {
		out->ignored = out->trash ? why_trash : "not inside a category folder";
		out->name = strrchr(path, '/') + 1;
		return 0;
	}
	classify_below_category(path + len + 1, out);
	if (!out->name)
		out->name = "";
	if (!out->ignored)
		out->ignored = layout_ignored_name(out->name);
	return 0;
}

const char *layout_ignored(const char *path)
{
	struct layout_path lp;

	if (layout_classify(path, &lp) < 0 || lp.kind == LAYOUT_ROOT)
		return "not inside a category folder";
	return lp.ignored;
}

int layout_check_dir(const char *path)
{
	struct layout_path lp;

	if (layout_classify(path, &lp) < 0)
		return -EINVAL;
	if (lp.trash)
		return 0;
	if (lp.kind != LAYOUT_ENTRY || lp.category < 0)
		return -EPERM;
	if (lp.depth == 1 && layout_has_control_chars(lp.name, strlen(lp.name)))
		return -EINVAL;
	return 0;
}

/* The root takes info.labels, and the temporaries and junk that writers
 * of it leave (rsync's .info.labels.XXXXXX, an editor's backup): those
 * are ignored like anywhere else. */
static bool root_takes_file(const struct layout_path *lp)
{
	const char *why;

	if (lp->category >= 0)
		return false;
	if (strcmp(lp->name, LAYOUT_INFO_NAME) == 0)
		return true;
	why = layout_ignored_name(lp->name);
	return why && why != why_type;
}

int layout_check_file(const char *path)
{
	struct layout_path lp;

	if (layout_classify(path, &lp) < 0)
		return -EINVAL;
	if (lp.trash || (lp.kind == LAYOUT_TOPLEVEL && root_takes_file(&lp)))
		return 0;
	if (lp.kind != LAYOUT_ENTRY || lp.category < 0)
		return -EPERM;
	return 0;
}

static bool is_uri_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       strchr("-_.!~*'()", c) != NULL;
}

char *layout_url_encode(const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(len * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c != '\0' && is_uri_unreserved(c)) {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}
