/* Fuzz the dataset readers (dataset.c): any content under a name that
 * selects a format.  The first byte picks the name, so every reader is
 * reached.  What is read must hold up: finite boxes of no negative size,
 * non-empty keys found again, box JSON that parses and stays inside the
 * image, and parsing that agrees with detection. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dataset.h"
#include "fuzz.h"

/* Enough images checked to find bugs, few enough to run fast. */
#define IMAGES_CHECKED 64

static bool is_whole(const cJSON *n)
{
	return cJSON_IsNumber(n) && isfinite(n->valuedouble) &&
	       n->valuedouble == floor(n->valuedouble);
}

static double number(const cJSON *box, const char *field)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(box, field);

	if (!is_whole(n))
		abort();
	return n->valuedouble;
}

/* W, H: the size boxes were clamped to, or 0. */
static void check_json(const char *text, size_t kept, unsigned w, unsigned h)
{
	cJSON *root = cJSON_Parse(text);
	const cJSON *box;

	if (!cJSON_IsArray(root) || (size_t)cJSON_GetArraySize(root) != kept)
		abort();
	cJSON_ArrayForEach(box, root)
	{
		const cJSON *label = cJSON_GetObjectItemCaseSensitive(box, "label");
		double x = number(box, "x"), y = number(box, "y");
		double bw = number(box, "width"), bh = number(box, "height");

		if (!cJSON_IsString(label) || !label->valuestring[0] || bw < 1 || bh < 1)
			abort();
		if (w && h && (x < 0 || y < 0 || x + bw > w || y + bh > h))
			abort();
	}
	cJSON_Delete(root);
}

static void check_boxes(const struct dataset *d, const struct dataset_image *img)
{
	unsigned w = d->normalized ? (img->width ? img->width : 640) : img->width;
	unsigned h = d->normalized ? (img->height ? img->height : 480) : img->height;
	size_t unknown = 0, dropped = 0;
	char *json;

	for (size_t i = 0; i < img->nboxes; i++) {
		const struct dataset_box *b = &img->boxes[i];

		if (!isfinite(b->x) || !isfinite(b->y) || !isfinite(b->w) || !isfinite(b->h) ||
		    b->w < 0 || b->h < 0)
			abort();
		if (b->label ? !b->label[0] || b->class_id != -1 : b->class_id < 0)
			abort();
	}
	json = dataset_boxes_json(img->boxes, img->nboxes, d->normalized, w, h,
				  (const char *const *)d->names, d->nnames, &unknown, &dropped);
	if (!json || unknown > img->nboxes || dropped > img->nboxes)
		abort();
	check_json(json, img->nboxes - dropped, w && h ? w : 0, w && h ? h : 0);
	free(json);
}

static void check_image(const struct dataset *d, const struct dataset_image *img)
{
	char name[512];

	if (!img->key || !img->key[0] || (img->label && !img->label[0]))
		abort();
	/* An image file is named by its key, plus an extension when keys are
	 * stems; no file name has a stem ending in '/'. */
	if (strlen(img->key) < sizeof(name) - 8 &&
	    !(d->by_stem && img->key[strlen(img->key) - 1] == '/')) {
		snprintf(name, sizeof(name), "%s%s", img->key, d->by_stem ? ".jpg" : "");
		if (dataset_find(d, name) != img)
			abort();
	}
	check_boxes(d, img);
}

static void check_dataset(const struct dataset *d)
{
	size_t boxes = 0;

	for (size_t i = 0; i < d->nimages; i++) {
		boxes += d->images[i].nboxes;
		if (i < IMAGES_CHECKED)
			check_image(d, &d->images[i]);
	}
	for (size_t i = 0; i < d->nnames; i++) {
		if (!d->names[i] || !d->names[i][0] ||
		    (d->format == DATASET_OI_CLASSES && (!d->name_keys || !d->name_keys[i][0])))
			abort();
	}
	if (boxes != d->nboxes || d->outside > d->nboxes ||
	    memchr(d->skip_note, '\0', sizeof(d->skip_note)) == NULL ||
	    (d->skipped > 0) != (d->skip_note[0] != '\0'))
		abort();
	if (d->normalized != (d->format == DATASET_YOLO || d->format == DATASET_OPEN_IMAGES))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* '0' to '?' in the seeds pick these in order. */
	static const char *const names[16] = {
		"img1.txt",
		"classes.txt",
		"obj.names",
		"data.yaml",
		"instances_val2017.json",
		"000001.xml",
		"train-annotations-bbox.csv",
		"class-descriptions-boxable.csv",
		"labels.csv",
		"boxes.csv",
		"a.b.txt",
		"coco8.yml",
		"_annotations.coco.JSON",
		"IMG_1.XML",
		"oidv7-class-descriptions.csv",
		"notes.TXT",
	};
	const char *name, *text;
	struct dataset *d = NULL;
	enum dataset_format f;
	unsigned w, h;
	char err[160];
	int rc;

	if (size < 1)
		return 0;
	name = names[data[0] % 16];
	text = (const char *)data + 1;
	f = dataset_detect(name, text, size - 1);
	rc = dataset_parse(name, text, size - 1, &d, err, sizeof(err));
	if (rc == 0) {
		if (!d || (f != DATASET_NONE && d->format != f))
			abort();
		check_dataset(d);
		dataset_free(d);
	} else if (rc == 1) {
		if (d || f != DATASET_NONE)
			abort();
	} else if (rc != -1 || d || !err[0] || strchr(err, '\n')) {
		abort();
	}
	if (dataset_image_size(data + 1, size - 1, &w, &h) == 0 && (!w || !h))
		abort();
	return 0;
}
