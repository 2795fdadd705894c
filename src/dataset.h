/* dataset.h: annotation files of the dataset formats people already have
 * (YOLO, COCO, Pascal VOC, Open Images, plain CSV) read into one shape.
 * Pure: no I/O, no global state; fuzzed. */
#ifndef INGESTFS_DATASET_H
#define INGESTFS_DATASET_H

#include <stdbool.h>
#include <stddef.h>

/* What dataset_detect() needs to see of a file. */
#define DATASET_HEAD_MAX ((size_t)64 * 1024)
/* Larger files fail with a clear result, as annotation files do. */
#define DATASET_FILE_MAX ((size_t)256 * 1024 * 1024)
/* Beyond these a file fails rather than take more than ~400 MB. */
#define DATASET_BOXES_MAX ((size_t)4 * 1024 * 1024)
#define DATASET_IMAGES_MAX ((size_t)1024 * 1024)
#define DATASET_NAMES_MAX ((size_t)1024 * 1024)

enum dataset_format {
	/* not one of these */
	DATASET_NONE,
	/* one .txt per image: "class cx cy w h" lines, normalised, centred
	 * (a segmentation line "class x1 y1 ... xn yn" gives the box around
	 * its polygon) */
	DATASET_YOLO,
	/* class names: classes.txt, *.names (one per line), data.yaml /
	 * *.yaml ("names:" list, flow list [a, b], or map {0: a} / block map
	 * "  0: a") */
	DATASET_NAMES,
	/* COCO JSON: images[{id,file_name,width,height}],
	 * annotations[{image_id,category_id,bbox:[x,y,w,h]}],
	 * categories[{id,name}] (pixels, top-left) */
	DATASET_COCO,
	/* Pascal VOC XML: <annotation><filename>, <size><width><height>,
	 * <object><name>, <bndbox><xmin><ymin><xmax><ymax> (pixels) */
	DATASET_VOC,
	/* CSV with ImageID, LabelName, XMin, XMax, YMin, YMax (normalised;
	 * ImageID is the image's name without extension) */
	DATASET_OPEN_IMAGES,
	/* Open Images class-descriptions CSV: "LabelName,DisplayName" rows
	 * (e.g. /m/011k07,Tortoise), no header or with one */
	DATASET_OI_CLASSES,
	/* plain CSV, header file_name,class_name: one label per file */
	DATASET_CSV_LABEL,
	/* plain CSV, header file_name,classes,xmin,ymin,xmax,ymax (pixels;
	 * classes may be "a;b": one box per class) */
	DATASET_CSV_BOXES,
};

struct dataset_box {
	/* the class name as the file gives it, or NULL when only CLASS_ID is
	 * known (YOLO); shared with other boxes, owned by the dataset */
	char *label;
	long class_id; /* YOLO; -1 otherwise */
	/* top-left corner and size: pixels, or fractions of the image when
	 * the dataset is normalised (YOLO already converted from centre to
	 * corner) */
	double x, y, w, h;
};

struct dataset_image {
	/* how the file names its image: a file name (COCO, VOC <filename>,
	 * CSV file_name), or a name without extension (YOLO: the .txt's own
	 * stem, Open Images ImageID) */
	char *key;
	char *label; /* DATASET_CSV_LABEL; else NULL */
	size_t nboxes;
	struct dataset_box *boxes;
	unsigned width, height; /* as the file states (COCO images[], VOC <size>), else 0 */
};

struct dataset_index;

struct dataset {
	enum dataset_format format;
	bool normalized; /* boxes are fractions of the image size (YOLO, Open Images) */
	bool by_stem;    /* keys are names without extension (YOLO, Open Images) */
	size_t nimages;
	/* in file order; at most one per key (boxes of repeated keys merged) */
	struct dataset_image *images;
	size_t nnames;
	char **names;     /* DATASET_NAMES: index -> name; DATASET_OI_CLASSES: see below */
	char **name_keys; /* DATASET_OI_CLASSES: LabelName codes matching names[] (else NULL) */
	size_t nboxes;    /* boxes kept in all */
	size_t skipped;   /* rows/objects left out (bad numbers, negative size, missing fields) */
	char skip_note[160]; /* why, for the first one, with its line number or index */
	/* boxes partly or wholly outside the image, as far as the file itself
	 * tells (normalised values outside 0..1, or beyond a stated
	 * width/height): kept, clamped later */
	size_t outside;

	/* dataset.c's own.  The label strings of boxes and images are
	 * shared: a 100,000-row CSV names a few classes. */
	size_t nlabels;
	char **labels;
	struct dataset_index *index; /* key -> image, for dataset_find() */
};

/* From the file's NAME (base name) and its first LEN bytes HEAD (the
 * caller reads at most 64 KiB for this): the format it would be, or
 * DATASET_NONE when it is surely none (so a sensor-data .json or .csv,
 * or a text sample, is not mistaken).  Cheap: no full parse. */
enum dataset_format dataset_detect(const char *name, const char *head, size_t len);

/* Parse the whole file.  0 with *OUT; 1 when it is none of these formats
 * (then *OUT is NULL: the file is an ordinary sample); -1 when it is one
 * of them but malformed, with ERR saying what and where (line and
 * column, or field, like "line 3: expected 5 numbers, found 4" or
 * "annotations[2].bbox: not 4 numbers"), as short as that.
 *
 * Whenever dataset_detect() names a format, this reads it as that.  It
 * is more lenient than dataset_detect(): a .txt whose first line is a
 * YOLO line, or a class-descriptions file whose first row has two
 * fields, is that format, and a bad line further on an error or a row
 * skipped rather than a reason to upload the file as a sample. */
int dataset_parse(const char *name, const char *text, size_t len, struct dataset **out, char *err,
		  size_t errsz);
void dataset_free(struct dataset *d);

/* The image KEY (a file name, or with by_stem its name without
 * extension) in D, or NULL.  With by_stem, FILE_NAME loses its extension
 * here: "img1.jpg" finds the key "img1". */
const struct dataset_image *dataset_find(const struct dataset *d, const char *file_name);

/* Width and height from the first LEN bytes of a JPEG (the SOFn marker;
 * skip APPn and other segments properly; progressive too) or PNG (IHDR)
 * file.  0, or -1 when not found in HEAD (other formats, truncated). */
int dataset_image_size(const unsigned char *head, size_t len, unsigned *w, unsigned *h);

/* The boxes as Edge Impulse takes them: a JSON array text
 * [{"label":"cat","x":1,"y":2,"width":3,"height":4},...], integers in
 * pixels, top-left origin.  NORMALIZED boxes are scaled by W and H (both
 * > 0 needed; else return NULL).  Labels: box->label, else
 * NAMES[class_id] when 0 <= class_id < NNAMES, else the class id as a
 * decimal string (counted in *UNKNOWN when not NULL).  Boxes are clamped
 * to the image when W and H are known (W, H > 0 and not NORMALIZED: the
 * stated size), boxes left with no area dropped (counted in *DROPPED
 * when not NULL).  Rounding: round half away from zero of x, y, width
 * and height each from the exact pixel values (x = X*W etc.).  Malloc'd;
 * NULL when out of memory or as above.
 *
 * *UNKNOWN and *DROPPED are set, not added to.  A box narrower or lower
 * than half a pixel has no area.  A clamped box whose rounded x and
 * width together pass W loses that pixel of width (likewise y, H), so
 * that it stays inside the image. */
char *dataset_boxes_json(const struct dataset_box *boxes, size_t n, bool normalized, unsigned w,
			 unsigned h, const char *const *names, size_t nnames, size_t *unknown,
			 size_t *dropped);
/* "YOLO", "YOLO class names", "COCO JSON", "Pascal VOC XML", "Open Images
 * CSV", "Open Images class descriptions", "plain CSV", "plain CSV with
 * boxes"; "none" for DATASET_NONE */
const char *dataset_format_name(enum dataset_format f);

#endif
