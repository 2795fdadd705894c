/* Unit tests of layout.c: categories, labels, ignore rules, encoding. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "layout.h"
#include "tap.h"

static void check_label(const char *path, int category, const char *label, unsigned depth)
{
	struct layout_path lp;
	char buf[256] = "";

	is_int(layout_classify(path, &lp), 0, "%s parses", path);
	is_int(lp.category, category, "%s: category", path);
	if (lp.label)
		snprintf(buf, sizeof(buf), "%.*s", (int)lp.label_len, lp.label);
	is_str(lp.label ? buf : NULL, label, "%s: label", path);
	is_int(lp.depth, depth, "%s: depth", path);
	ok(lp.ignored == NULL, "%s: not ignored", path);
}

static void check_ignored(const char *path, int want)
{
	struct layout_path lp;

	layout_classify(path, &lp);
	ok((lp.ignored != NULL) == want, "%s is %s", path, want ? "ignored" : "uploaded");
}

static void test_labels(void)
{
	check_label("training/idle.01.json", 0, NULL, 1);
	check_label("training/car/IMG_0001.jpg", 0, "car", 2);
	check_label("testing/car/2026-11-22/cam1/0002.jpg", 1, "car", 4);
	check_label("anomaly/x.wav", 2, NULL, 1);
	check_label("training/two words/a.png", 0, "two words", 2);
}

static void test_kinds(void)
{
	struct layout_path lp;

	layout_classify("", &lp);
	is_int(lp.kind, LAYOUT_ROOT, "empty path is the root");
	layout_classify(".", &lp);
	is_int(lp.kind, LAYOUT_ROOT, "'.' is the root");
	layout_classify("training", &lp);
	is_int(lp.kind, LAYOUT_TOPLEVEL, "a category is top level");
	is_int(lp.category, 0, "training is category 0");
	layout_classify("junk", &lp);
	is_int(lp.category, -1, "junk is no category");
	is_int(layout_classify("/abs", &lp), -EINVAL, "absolute paths are refused");
	layout_classify("validation/a.json", &lp);
	ok(lp.ignored != NULL, "an unexposed category's files are ignored");
}

static void test_ignored(void)
{
	static const struct {
		const char *path;
		int ignored;
	} cases[] = {
		{"training/.car.jpg.Xa81Z", 1},
		{"training/.DS_Store", 1},
		{"training/._IMG.jpg", 1},
		{"training/.goutputstream-ABC", 1},
		{"training/.Trash-1000/files/a.jpg", 1},
		{"training/car/.hidden/a.jpg", 1},
		{"training/a.jpg~", 1},
		{"training/a.swp", 1},
		{"training/a.tmp", 1},
		{"training/a.jpg.part", 1},
		{"training/a.crdownload", 1},
		{"training/Thumbs.db", 1},
		{"training/car/desktop.ini", 1},
		{"training/a.exe", 1},
		{"training/noext", 1},
		{"training/a.JPG", 0},
		{"training/a.JpEg", 0},
		{"training/a.cbor", 0},
		{"training/a.csv", 0},
		{"training/a.wav", 0},
		{"training/a.png", 0},
		{"training/a.mp4", 0},
		{"training/a.avi", 0},
		{"training/bounding_boxes.labels", 0},
		{"training/a.txt", 0},
		{"training/a.parquet", 0},
		{"training/a.json", 0},
		{"training/car.v1/a.json", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_ignored(cases[i].path, cases[i].ignored);
}

static void test_checks(void)
{
	is_int(layout_check_dir("newdir"), -EPERM, "mkdir at the root is refused");
	is_int(layout_check_dir("training"), -EPERM, "a category cannot be made again");
	is_int(layout_check_dir("training/car"), 0, "a label folder is fine");
	is_int(layout_check_dir("training/ca\nr"), -EINVAL, "a label with LF is refused");
	is_int(layout_check_dir("training/ca\rr"), -EINVAL, "a label with CR is refused");
	is_int(layout_check_dir("training/ca\x7fr"), -EINVAL, "a label with DEL is refused");
	is_int(layout_check_dir("training/car/sub\tdir"), 0, "deeper folders are not labels");
	is_int(layout_check_file("a.json"), -EPERM, "files at the root are refused");
	is_int(layout_check_file("training/a.json"), 0, "files in a category are fine");
}

static void test_encoding(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"car", "car"},
		{"two words", "two%20words"},
		{"a/b?c&d=e", "a%2Fb%3Fc%26d%3De"},
		{"keep-_.!~*'()", "keep-_.!~*'()"},
		{"caf\xc3\xa9", "caf%C3%A9"},
		{"100%", "100%25"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = layout_url_encode(cases[i].in, strlen(cases[i].in));

		is_str(got, cases[i].out, "encode '%s'", cases[i].in);
		free(got);
	}
	is_str(layout_content_type("a.JPG"), "image/jpeg", "jpg MIME type");
	is_str(layout_content_type("a.wav"), "audio/wav", "wav MIME type");
	is_str(layout_content_type("a.bin"), "application/octet-stream", "unknown MIME type");
}

int main(void)
{
	test_labels();
	test_kinds();
	test_ignored();
	test_checks();
	test_encoding();
	return done_testing();
}
