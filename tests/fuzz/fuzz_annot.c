/* Fuzz the annotation-file parser (annot.c): any .labels or info.labels
 * content.  The first byte picks the file's name, so both kinds and the
 * JSON-lines form of info.labels are reached. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "annot.h"
#include "fuzz.h"

/* A path that leaves its folder is never kept. */
static void check_path(const char *p)
{
	if (p[0] == '/' || p[0] == '\0')
		abort();
	for (;;) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.') || (n == 1 && p[0] == '.'))
			abort();
		if (!p[n])
			return;
		p += n + 1;
	}
}

static void check_file(const struct annot_file *f)
{
	const char *keys[4], *values[4];
	size_t n = 0;

	for (size_t i = 0; i < annot_count(f) && n < 4; i++) {
		const char *key = annot_key(f, i);
		const struct annot_sample *s = annot_sample_at(f, key);

		if (s)
			check_path(s->path);
		if (annot_value(f, key)) {
			keys[n] = key;
			values[n++] = annot_value(f, key);
		}
	}
	if (n) {
		char *part = annot_build_part(ANNOT_BOXES, n, keys, values);

		if (!part || part[0] != '{')
			abort();
		free(part);
	}
	if (strlen(annot_skip_note(f)) >= 200 || strlen(annot_refuse_note(f)) >= 200)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"bounding_boxes.labels", "training/info.labels",
					    "x.labels", "info.labels"};
	struct annot_file *f = NULL;
	char err[256];

	if (size < 1)
		return 0;
	if (annot_parse(names[data[0] % 4], (const char *)data + 1, size - 1, &f, err,
			sizeof(err)) == 0) {
		check_file(f);
		annot_free(f);
	} else if (f || !err[0] || strchr(err, '\n')) {
		abort();
	}
	return 0;
}
