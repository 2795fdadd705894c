/* Unit tests of dataset.c: each format read, detection (and what must
 * not be taken for a dataset file), class names, boxes for Edge Impulse
 * and image sizes. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dataset.h"
#include "tap.h"

static struct dataset *parse_ok(const char *name, const char *text, enum dataset_format f)
{
	struct dataset *d = NULL;
	char err[160] = "";
	int rc = dataset_parse(name, text, strlen(text), &d, err, sizeof(err));

	is_int(rc, 0, "%s parses", name);
	if (rc)
		printf("#   %s\n", err);
	is_int(d ? d->format : DATASET_NONE, f, "%s is %s", name, dataset_format_name(f));
	if (!d)
		exit(done_testing() | 1);
	return d;
}

static void parse_fails(const char *name, const char *text, const char *want)
{
	struct dataset *d = NULL;
	char err[160] = "";

	is_int(dataset_parse(name, text, strlen(text), &d, err, sizeof(err)), -1, "%s is malformed",
	       name);
	ok(d == NULL, "%s: no dataset", name);
	is_str(err, want, "%s: the error says where", name);
	dataset_free(d);
}

/* Neither format detection nor parsing takes it for a dataset file. */
static void not_dataset(const char *name, const char *text, const char *why)
{
	struct dataset *d = NULL;
	char err[160] = "";

	is_int(dataset_detect(name, text, strlen(text)), DATASET_NONE, "%s: %s", name, why);
	is_int(dataset_parse(name, text, strlen(text), &d, err, sizeof(err)), 1,
	       "%s: parsing says it is a sample", name);
	ok(d == NULL, "%s: no dataset", name);
}

static void is_box(const struct dataset_box *b, const char *label, long class_id, double x,
		   double y, double w, double h, const char *what)
{
	is_str(b->label, label, "%s: label", what);
	is_int(b->class_id, class_id, "%s: class id", what);
	ok(fabs(b->x - x) < 1e-9 && fabs(b->y - y) < 1e-9 && fabs(b->w - w) < 1e-9 &&
		   fabs(b->h - h) < 1e-9,
	   "%s: %g %g %g %g", what, x, y, w, h);
	if (!(fabs(b->x - x) < 1e-9 && fabs(b->y - y) < 1e-9 && fabs(b->w - w) < 1e-9 &&
	      fabs(b->h - h) < 1e-9))
		printf("#   got %.17g %.17g %.17g %.17g\n", b->x, b->y, b->w, b->h);
}

static void is_names(const struct dataset *d, const char *const want[], size_t n, const char *what)
{
	is_int(d->nnames, n, "%s: %zu names", what, n);
	for (size_t i = 0; i < n && i < d->nnames; i++)
		is_str(d->names[i], want[i], "%s: name %zu", what, i);
}

/* ---- YOLO ---- */

static void test_yolo(void)
{
	struct dataset *d = parse_ok("img1.txt",
				     "0 0.5 0.5 0.2 0.4\n"
				     "3 0.25 0.75 0.5 0.5\r\n"
				     "\n"
				     "1\t0.95 0.5 0.2 0.2\n"
				     "2 0.1 0.2 0.5 0.2 0.3 0.6\n",
				     DATASET_YOLO);

	ok(d->normalized && d->by_stem, "YOLO: normalised, keyed by stem");
	is_int(d->nimages, 1, "YOLO: one image per file");
	is_str(d->images[0].key, "img1", "YOLO: the key is the .txt's stem");
	is_int(d->images[0].nboxes, 4, "YOLO: 4 boxes");
	is_int(d->nboxes, 4, "YOLO: 4 boxes in all");
	is_box(&d->images[0].boxes[0], NULL, 0, 0.4, 0.3, 0.2, 0.4, "YOLO box 1, centre to corner");
	is_box(&d->images[0].boxes[1], NULL, 3, 0, 0.5, 0.5, 0.5, "YOLO box 2, CRLF");
	is_box(&d->images[0].boxes[2], NULL, 1, 0.85, 0.4, 0.2, 0.2, "YOLO box 3, a tab");
	is_box(&d->images[0].boxes[3], NULL, 2, 0.1, 0.2, 0.4, 0.4, "YOLO polygon, its bounds");
	is_int(d->outside, 1, "YOLO: the box past the right edge is counted");
	is_int(d->skipped, 0, "YOLO: nothing skipped");
	ok(dataset_find(d, "img1.jpg") == &d->images[0], "YOLO: img1.jpg finds its boxes");
	ok(dataset_find(d, "img1.png") == &d->images[0], "YOLO: so does img1.png");
	ok(dataset_find(d, "img1") == &d->images[0], "YOLO: and img1");
	ok(dataset_find(d, "img2.jpg") == NULL, "YOLO: img2.jpg is not described");
	dataset_free(d);

	d = parse_ok("empty.txt", "", DATASET_YOLO);
	is_int(d->nimages, 1, "an empty .txt: an image with no objects");
	is_int(d->images[0].nboxes, 0, "an empty .txt: no boxes");
	dataset_free(d);

	d = parse_ok("neg.txt", "0 0.5 0.5 -0.2 0.2\n0 0.5 0.5 0.2 0.2\n", DATASET_YOLO);
	is_int(d->skipped, 1, "YOLO: a negative width is skipped");
	is_str(d->skip_note, "line 1: negative width or height", "YOLO: the note says where");
	is_int(d->nboxes, 1, "YOLO: the good box is kept");
	dataset_free(d);

	is_int(dataset_detect("a.txt", "0 0.5 0.5 0.2 0.2\n", 18), DATASET_YOLO, "YOLO detected");
	is_int(dataset_detect("a.TXT", "", 0), DATASET_YOLO, "an empty .TXT is YOLO");
	parse_fails("bad.txt", "0 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.2 0.2\n1 0.5 0.5 0.2\n",
		    "line 3: expected 5 numbers, found 4");
	parse_fails("bad2.txt", "0 0.5 0.5 0.2 0.2\n1 0.5 x 0.2 0.2\n",
		    "line 2: field 3 is not a number");
	parse_fails("bad3.txt", "0 0.5 0.5 0.2 0.2\ncar 0.5 0.5 0.2 0.2\n",
		    "line 2: the class is not a whole number");
	parse_fails("bad4.txt", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 nan 0.2\n",
		    "line 2: field 4 is not a number");
	is_int(dataset_detect("bad.txt", "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n", 32), DATASET_NONE,
	       "detection wants every line a YOLO line");
	not_dataset("notes.txt", "hello world\n", "a text sample is not YOLO");
	not_dataset("nums.txt", "1 2 3\n4 5 6\n", "rows of 3 numbers are not YOLO");
	not_dataset("six.txt", "0 0.1 0.2 0.3 0.4 0.5\n", "6 numbers are neither box nor polygon");
	not_dataset(".txt", "0 0.5 0.5 0.2 0.2\n", "a hidden file has no extension");
	not_dataset("a.txt", "0 0.5 0.5 0.2 0.2 junk\n", "trailing words are not YOLO");
}

/* ---- class names ---- */

static void test_names(void)
{
	static const char *const cat_dog[] = {"cat", "dog"};
	static const char *const three[] = {"cat", "dog", "c d"};
	struct dataset *d;

	d = parse_ok("classes.txt", "cat\r\ndog\n\n\n", DATASET_NAMES);
	is_names(d, cat_dog, 2, "classes.txt");
	is_int(d->nimages, 0, "classes.txt: no images");
	dataset_free(d);
	d = parse_ok("obj.names",
		     "\xEF\xBB\xBF"
		     "cat\n  dog  \n",
		     DATASET_NAMES);
	is_names(d, cat_dog, 2, "obj.names with a BOM");
	dataset_free(d);
	parse_fails("coco.names", "cat\n\ndog\n", "line 2: an empty class name");

	d = parse_ok("data.yaml",
		     "# from Roboflow\npath: ../datasets\ntrain: images/train\nnc: 3\n"
		     "names: ['cat', \"dog\", 'c d']  # the classes\n",
		     DATASET_NAMES);
	is_names(d, three, 3, "a flow list");
	dataset_free(d);
	d = parse_ok("data.yml", "names:\n  - cat\n  - 'dog'   # second\n\n  - c d\nval: x\n",
		     DATASET_NAMES);
	is_names(d, three, 3, "a block list");
	dataset_free(d);
	d = parse_ok("d.yaml", "names:\n- cat\n- dog\nnc: 2\n", DATASET_NAMES);
	is_names(d, cat_dog, 2, "a block list at the first column");
	dataset_free(d);
	d = parse_ok("coco8.yaml", "path: x\nnames:\n  1: dog\n  0: cat\n", DATASET_NAMES);
	is_names(d, cat_dog, 2, "a block map, out of order");
	dataset_free(d);
	d = parse_ok("f.yaml", "names: {0: cat, 1: \"dog\"}\n", DATASET_NAMES);
	is_names(d, cat_dog, 2, "a flow map");
	dataset_free(d);
	d = parse_ok("m.yaml", "names: [\n  cat,  # 0\n  # none\n  dog, # 1\n]\nnc: 2\n",
		     DATASET_NAMES);
	is_names(d, cat_dog, 2, "a flow list over lines, with comments");
	dataset_free(d);
	d = parse_ok("q.yaml", "names: ['it''s', \"say \\\"hi\\\"\", a#b, it's]\n", DATASET_NAMES);
	is_str(d->nnames == 4 ? d->names[0] : NULL, "it's", "'' in single quotes");
	is_str(d->nnames == 4 ? d->names[1] : NULL, "say \"hi\"", "\\\" in double quotes");
	is_str(d->nnames == 4 ? d->names[2] : NULL, "a#b", "# inside a word is no comment");
	is_str(d->nnames == 4 ? d->names[3] : NULL, "it's", "a quote inside a word is no quote");
	dataset_free(d);

	parse_fails("gap.yaml", "names:\n  0: cat\n  2: dog\n",
		    "names: the classes are not 0 to 1");
	parse_fails("nc.yaml", "nc: 3\nnames: [cat, dog]\n", "nc is 3, but names has 2");
	parse_fails("s.yaml", "names: cat\n", "line 1: names: not a list or a map");
	parse_fails("e.yaml", "names: [cat, , dog]\n", "line 1: names: an empty name");
	parse_fails("o.yaml", "names: [cat, dog\n", "line 2: names: ']' is missing");
	parse_fails("mix.yaml", "names:\n  - cat\n  1: dog\n",
		    "line 3: names: a list and a map mixed");
	not_dataset("config.yaml", "model: yolov8n.pt\nepochs: 10\n", "a yaml with no names");
	not_dataset("x.yaml", "  names: [a]\n", "an indented names: is not the top level");
}

/* ---- COCO ---- */

static const char coco[] =
	"{\"info\": {\"year\": 2017, \"description\": \"a [test] {set}\"},\n"
	" \"licenses\": [],\n"
	" \"images\": [{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 640, \"height\": 480},\n"
	"   {\"id\": 2, \"file_name\": \"train/b.jpg\", \"width\": 100, \"height\": 50},\n"
	"   {\"id\": 3, \"file_name\": \"c.jpg\", \"width\": 10, \"height\": 10}],\n"
	" \"annotations\": [\n"
	"   {\"id\": 1, \"image_id\": 1, \"category_id\": 18, \"bbox\": [10.5, 20, 30, 40],\n"
	"    \"iscrowd\": 0, \"segmentation\": [[1, 2, 3, 4, 5, 6]], \"area\": 1200},\n"
	"   {\"id\": 2, \"image_id\": 2, \"category_id\": 1, \"bbox\": [90, 10, 20, 10]},\n"
	"   {\"id\": 3, \"image_id\": 9, \"category_id\": 1, \"bbox\": [0, 0, 1, 1]},\n"
	"   {\"id\": 4, \"image_id\": 1, \"category_id\": 1, \"bbox\": [1, 2, 3, 4]}],\n"
	" \"categories\": [{\"id\": 1, \"name\": \"person\", \"supercategory\": \"\\\"p\\\\\"}, "
	"{\"id\": 18, \"name\": \"dog\"}]}\n";

static void test_coco(void)
{
	static const char cut[] = "{\"info\":{},\"licenses\":[],\"images\":[{\"id\":1,"
				  "\"file_name\":\"a.jpg\"},{\"id\":2,\"fi";
	struct dataset *d = parse_ok("instances_val.json", coco, DATASET_COCO);
	const struct dataset_image *img;

	ok(!d->normalized && !d->by_stem, "COCO: pixels, keyed by file name");
	is_int(d->nimages, 3, "COCO: three images, one with no objects");
	is_str(d->images[0].key, "a.jpg", "COCO: image 1");
	is_str(d->images[1].key, "train/b.jpg", "COCO: image 2 keeps its folder");
	is_str(d->images[2].key, "c.jpg", "COCO: image 3");
	is_int(d->images[0].width, 640, "COCO: width");
	is_int(d->images[0].height, 480, "COCO: height");
	is_int(d->images[0].nboxes, 2, "COCO: two boxes on a.jpg");
	is_box(&d->images[0].boxes[0], "dog", -1, 10.5, 20, 30, 40, "COCO box 1");
	is_box(&d->images[0].boxes[1], "person", -1, 1, 2, 3, 4, "COCO box 4");
	is_box(&d->images[1].boxes[0], "person", -1, 90, 10, 20, 10, "COCO box 2");
	is_int(d->images[2].nboxes, 0, "COCO: c.jpg has none");
	is_int(d->nboxes, 3, "COCO: 3 boxes in all");
	is_int(d->outside, 1, "COCO: the box past b.jpg's width is counted");
	is_int(d->skipped, 1, "COCO: the annotation of an unknown image is skipped");
	is_str(d->skip_note, "annotations[2]: unknown image_id 9", "COCO: the note says which");
	img = dataset_find(d, "train/b.jpg");
	ok(img == &d->images[1], "COCO: found by its file_name");
	ok(dataset_find(d, "b.jpg") == NULL, "COCO: not by another name");
	ok(d->images[0].boxes[1].label == d->images[1].boxes[0].label, "COCO: labels are shared");
	dataset_free(d);

	/* Order does not matter; ids may be shared by images and categories. */
	d = parse_ok("o.json",
		     "{\"annotations\":[{\"image_id\":7,\"category_id\":7,\"bbox\":[1,2,3,4]},"
		     "{\"image_id\":7,\"category_id\":8,\"bbox\":[0,0,1,1]}],"
		     "\"categories\":[{\"id\":7,\"name\":\"cat\"}],"
		     "\"images\":[{\"id\":7,\"file_name\":\"x.png\"}]}",
		     DATASET_COCO);
	is_int(d->nboxes, 1, "COCO: annotations before images");
	is_int(d->images[0].width, 0, "COCO: no width stated");
	is_str(d->skip_note, "annotations[1]: unknown category_id 8", "COCO: unknown category");
	dataset_free(d);

	parse_fails(
		"b.json",
		"{\"images\":[],\"annotations\":[{\"image_id\":1,\"category_id\":1,\"bbox\":[1,2]},"
		"{\"image_id\":1,\"category_id\":1,\"bbox\":[1,2,3]},"
		"{\"image_id\":1,\"category_id\":1,\"bbox\":[1,2,\"3\",4]}]}",
		"annotations[0].bbox: not 4 numbers");
	parse_fails("c.json", "{\"images\":[],\n \"annotations\": [}",
		    "not valid JSON at line 2, column 18");
	parse_fails("d.json", "{\"images\":[{\"id\":1,\"file_name\":tru}],\"categories\":[]}",
		    "images[0]: not valid JSON at line 1, column 32");
	parse_fails("e.json", "{\"images\":{},\"categories\":[]}", "images: not an array");
	parse_fails("f.json", "{\"images\":[], \"categories\":[]} x",
		    "not valid JSON at line 1, column 32");

	/* A head cut in the middle of a large images[]. */
	is_int(dataset_detect("big.json", cut, strlen(cut)), DATASET_COCO,
	       "COCO: a head cut inside images[] is detected");
	not_dataset(
		"sample.json",
		"{\"protected\":{\"ver\":\"v1\",\"alg\":\"none\"},\"signature\":\"0\",\"payload\":"
		"{\"device_type\":\"x\",\"interval_ms\":10,\"sensors\":[{\"name\":\"accX\","
		"\"units\":\"m/s2\"}],\"values\":[[1],[2]]}}",
		"Edge Impulse's sensor data is not COCO");
	not_dataset("sneaky.json", "{\"images\":[],\"annotations\":[],\"payload\":{}}",
		    "not even with COCO's keys");
	not_dataset("i.json", "{\"images\":[{\"id\":1,\"file_name\":\"a.jpg\"}]}",
		    "images[] alone is not COCO");
	not_dataset("n.json", "{\"meta\":{\"images\":[],\"annotations\":[]}}",
		    "nested keys are not top-level keys");
	not_dataset("a.json", "[{\"images\":[],\"annotations\":[]}]", "an array is not COCO");
}

/* ---- Pascal VOC ---- */

static const char voc[] =
	"\xEF\xBB\xBF<?xml version=\"1.0\"?>\n"
	"<!-- made by labelImg -->\n"
	"<annotation verified=\"yes\">\n"
	"\t<folder>images</folder>\n"
	"\t<filename>dog &amp; cat.jpg</filename>\n"
	"\t<source><database>Unknown</database></source>\n"
	"\t<size><width>500</width><height>375</height><depth>3</depth></size>\n"
	"\t<object><name>dog</name><pose>Left</pose><difficult>0</difficult>\n"
	"\t\t<bndbox><xmin>48</xmin><ymin>240.5</ymin><xmax>195</xmax><ymax>371</ymax></bndbox>\n"
	"\t\t<part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
	"<ymax>2</ymax></bndbox></part>\n"
	"\t</object>\n"
	"\t<object>\n\t\t<name> cat </name>\n"
	"\t\t<bndbox><xmin>8</xmin><ymin>12</ymin><xmax>520</xmax><ymax>300</ymax></bndbox>\n"
	"\t</object>\n"
	"\t<object><name>bad</name><bndbox><xmin>x</xmin><ymin>1</ymin><xmax>2</xmax>"
	"<ymax>2</ymax></bndbox></object>\n"
	"\t<object><name/><bndbox/></object>\n"
	"</annotation>\n";

static void test_voc(void)
{
	struct dataset *d = parse_ok("000001.xml", voc, DATASET_VOC);

	is_int(d->nimages, 1, "VOC: one image");
	is_str(d->images[0].key, "dog & cat.jpg", "VOC: <filename>, entities resolved");
	is_int(d->images[0].width, 500, "VOC: width");
	is_int(d->images[0].height, 375, "VOC: height");
	is_int(d->images[0].nboxes, 2, "VOC: two good objects");
	is_box(&d->images[0].boxes[0], "dog", -1, 48, 240.5, 147, 130.5,
	       "VOC object 1, not its part");
	is_box(&d->images[0].boxes[1], "cat", -1, 8, 12, 512, 288, "VOC object 2");
	is_int(d->outside, 1, "VOC: the box past <width> is counted");
	is_int(d->skipped, 2, "VOC: two objects skipped");
	is_str(d->skip_note, "object 3: <xmin> is not a number", "VOC: the first note");
	ok(dataset_find(d, "dog & cat.jpg") != NULL, "VOC: found by its file name");
	dataset_free(d);

	d = parse_ok("late.xml",
		     "<annotation><object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin>"
		     "<xmax>3</xmax><ymax>4</ymax></bndbox></object><filename>z.png</filename>"
		     "</annotation>",
		     DATASET_VOC);
	is_int(d->nboxes, 1, "VOC: <filename> after the objects");
	is_int(d->images[0].width, 0, "VOC: no <size>");
	dataset_free(d);

	parse_fails("n.xml", "<annotation><object><name>a</name></object></annotation>",
		    "no <filename>");
	parse_fails("m.xml", "<annotation>\n<filename>a.jpg</size>\n</annotation>",
		    "line 2: </size> does not close <filename>");
	parse_fails("t.xml", "<annotation><filename>a.jpg</filename><object><name>a",
		    "the file ends inside <name>");
	parse_fails("c.xml", "<annotation><!-- open",
		    "line 1: a comment or declaration is not closed");
	is_int(dataset_detect("v.xml", "<?xml version=\"1.0\"?><!DOCTYPE x><annotation>", 45),
	       DATASET_VOC, "VOC: detected past the declarations");
	not_dataset("s.xml", "<svg><annotation/></svg>", "another root is not VOC");
	not_dataset("t.xml", "annotation", "text is not VOC");
	not_dataset("v.xml", "<annotations></annotations>", "<annotations> is not <annotation>");
}

/* ---- CSV ---- */

static void test_open_images(void)
{
	struct dataset *d =
		parse_ok("validation-annotations-bbox.csv",
			 "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded\n"
			 "000002b66c9c498e,xclick,/m/01g317,1,0.0125,0.195312,0.148438,0.5875,0\n"
			 "000002b66c9c498e,xclick,/m/0284d,1,0.5,0.6,0.1,0.2,0\n"
			 "000002b97e5471a0,xclick,/m/05_5p_0,1,0.2,1.1,0.3,0.4,0\n"
			 "bad,xclick,/m/01g317,1,0.5,x,0.1,0.2,0\n"
			 "short,xclick\n",
			 DATASET_OPEN_IMAGES);

	ok(d->normalized && d->by_stem, "Open Images: normalised, keyed by ImageID");
	is_int(d->nimages, 2, "Open Images: rows merged by ImageID");
	is_str(d->images[0].key, "000002b66c9c498e", "Open Images: image 1");
	is_int(d->images[0].nboxes, 2, "Open Images: two boxes on image 1");
	is_box(&d->images[0].boxes[0], "/m/01g317", -1, 0.0125, 0.148438, 0.195312 - 0.0125,
	       0.5875 - 0.148438, "Open Images box 1");
	is_box(&d->images[1].boxes[0], "/m/05_5p_0", -1, 0.2, 0.3, 0.9, 0.1, "Open Images box 3");
	is_int(d->outside, 1, "Open Images: XMax 1.1 is outside");
	is_int(d->skipped, 2, "Open Images: a bad number and a short row skipped");
	is_str(d->skip_note, "line 5: XMax is not a number", "Open Images: the first note");
	ok(dataset_find(d, "000002b97e5471a0.jpg") == &d->images[1],
	   "Open Images: found by the image's file name");
	dataset_free(d);

	d = parse_ok("oi.csv",
		     "\xEF\xBB\xBF\"LabelName\", ImageID ,XMin,YMin,XMax,YMax\r\n"
		     "\"/m/0,x\",img,0.1,0.2,0.3,0.4\r\n",
		     DATASET_OPEN_IMAGES);
	is_box(&d->images[0].boxes[0], "/m/0,x", -1, 0.1, 0.2, 0.2, 0.2,
	       "Open Images: columns in any order, quoted, BOM, CRLF");
	dataset_free(d);
}

static void test_oi_classes(void)
{
	static const char *const names[] = {"Tortoise", "Container", "Magpie, \"black\""};
	struct dataset *d = parse_ok("class-descriptions-boxable.csv",
				     "/m/011k07,Tortoise\n/m/011q46kg,Container\n"
				     "/m/012074,\"Magpie, \"\"black\"\"\"\n",
				     DATASET_OI_CLASSES);

	is_names(d, names, 3, "class descriptions");
	is_str(d->name_keys ? d->name_keys[0] : NULL, "/m/011k07", "class descriptions: codes");
	is_str(d->name_keys ? d->name_keys[2] : NULL, "/m/012074", "class descriptions: code 3");
	dataset_free(d);

	d = parse_ok("oidv7-class-descriptions.csv",
		     "LabelName,DisplayName\n/m/0100nhbf,Sprenger's tulip\n/m/x,a,b\n",
		     DATASET_OI_CLASSES);
	is_int(d->nnames, 1, "class descriptions: the header is not a class");
	is_int(d->skipped, 1, "class descriptions: a row of 3 is skipped");
	is_str(d->skip_note, "line 3: expected 2 fields, found 3", "class descriptions: note");
	dataset_free(d);
	is_int(dataset_detect("class-descriptions.csv", "a,b\nc,d,e\n", 10), DATASET_NONE,
	       "class descriptions: detection wants 2 fields in every row");
	not_dataset("class-descriptions.csv", "a,b,c\n", "three columns are no class descriptions");
}

static void test_csv_label(void)
{
	struct dataset *d = parse_ok("labels.csv",
				     "file_name,class_name\n"
				     "a.jpg,cat\n"
				     "\"b, 2.jpg\",\"dog \"\"big\"\"\"\r\n"
				     "\n"
				     "a.jpg,cat\n"
				     "c.jpg,\n"
				     "a.jpg,dog\n",
				     DATASET_CSV_LABEL);

	is_int(d->nimages, 2, "label CSV: two files");
	is_str(d->images[0].key, "a.jpg", "label CSV: file 1");
	is_str(d->images[0].label, "cat", "label CSV: its label");
	is_str(d->images[1].key, "b, 2.jpg", "label CSV: a quoted comma");
	is_str(d->images[1].label, "dog \"big\"", "label CSV: doubled quotes");
	is_int(d->images[0].nboxes, 0, "label CSV: no boxes");
	is_int(d->skipped, 2, "label CSV: an empty class and a second class skipped");
	is_str(d->skip_note, "line 6: an empty file_name or class_name", "label CSV: note");
	dataset_free(d);

	parse_fails("q.csv", "file_name,class_name\n\"a.jpg,cat\n",
		    "line 2: a quoted field is not closed");
	not_dataset("accel.csv", "timestamp,accX,accY\n0,1,2\n10,1,2\n",
		    "sensor data is not a dataset");
	not_dataset("l.csv", "File_Name,Class_Name\na,b\n", "the header is case-sensitive");
}

static void test_csv_boxes(void)
{
	struct dataset *d = parse_ok("boxes.csv",
				     "file_name,classes,xmin,ymin,xmax,ymax,extra\n"
				     "x.jpg,car; person,10,20,110,220,e\n"
				     "y.jpg,,,,,\n"
				     "x.jpg,bike,5,5,1,1\n"
				     "x.jpg,bus,-5,0,10,10\n",
				     DATASET_CSV_BOXES);

	ok(!d->normalized && !d->by_stem, "boxes CSV: pixels, keyed by file name");
	is_int(d->nimages, 2, "boxes CSV: two files");
	is_int(d->images[0].nboxes, 3, "boxes CSV: one box per class");
	is_box(&d->images[0].boxes[0], "car", -1, 10, 20, 100, 200, "boxes CSV: box 1");
	is_box(&d->images[0].boxes[1], "person", -1, 10, 20, 100, 200, "boxes CSV: box 2");
	is_box(&d->images[0].boxes[2], "bus", -1, -5, 0, 15, 10, "boxes CSV: box 3");
	is_int(d->images[1].nboxes, 0, "boxes CSV: a file listed with no objects");
	is_int(d->skipped, 1, "boxes CSV: a negative size skipped");
	is_str(d->skip_note, "line 4: negative width or height", "boxes CSV: note");
	is_int(d->outside, 1, "boxes CSV: a negative xmin is outside");
	dataset_free(d);
}

/* ---- detection ---- */

static void test_detect(void)
{
	static const struct {
		const char *name, *head;
		enum dataset_format f;
	} cases[] = {
		{"classes.txt", "cat\n", DATASET_NAMES},
		{"Classes.TXT", "cat\n", DATASET_NAMES},
		{"voc.names", "", DATASET_NAMES},
		{"data.yaml", "nc: 1\nnames: [a]\n", DATASET_NAMES},
		{"labels/train/img.txt", "0 0.5 0.5 0.1 0.1", DATASET_YOLO},
		{"a.xml", "\xEF\xBB\xBF<annotation>", DATASET_VOC},
		{"a.json", "{\"images\":[],\"categories\":[]}", DATASET_COCO},
		{"b.csv", "ImageID,LabelName,XMin,XMax,YMin,YMax\n", DATASET_OPEN_IMAGES},
		{"c.csv", "file_name,classes,xmin,ymin,xmax,ymax\n", DATASET_CSV_BOXES},
		{"d.csv", "file_name,class_name\n", DATASET_CSV_LABEL},
		{"class-descriptions-boxable.csv", "/m/1,a\n/m/2,b", DATASET_OI_CLASSES},
		{"a.jpg", "\xFF\xD8\xFF", DATASET_NONE},
		{"a", "0 0.5 0.5 0.1 0.1", DATASET_NONE},
		{"a.json", "{\"values\":[1,2]}", DATASET_NONE},
		{"a.csv", "", DATASET_NONE},
		{"a.xml", "", DATASET_NONE},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(dataset_detect(cases[i].name, cases[i].head, strlen(cases[i].head)),
		       cases[i].f, "detect %s", cases[i].name);
	is_int(dataset_detect(NULL, NULL, 10), DATASET_NONE, "no name, no head");
	is_str(dataset_format_name(DATASET_YOLO), "YOLO", "format name: YOLO");
	is_str(dataset_format_name(DATASET_NAMES), "YOLO class names", "format name: names");
	is_str(dataset_format_name(DATASET_CSV_BOXES), "plain CSV with boxes", "format name: CSV");
}

/* ---- files longer than the head detection sees ---- */

/* A growing text, as large files are built here. */
struct text {
	char *s;
	size_t len;
};

static void append(struct text *t, const char *s)
{
	size_t n = strlen(s);

	t->s = realloc(t->s, t->len + n + 1);
	if (!t->s)
		exit(1);
	memcpy(t->s + t->len, s, n + 1);
	t->len += n;
}

static void test_large(void)
{
	struct text yolo = {0}, json = {0};
	struct dataset *d = NULL;
	char err[160], line[128];
	char *huge;
	unsigned i;

	/* Line 3001 comes after the head, cut in the middle of a line. */
	for (i = 0; i < 3000; i++)
		append(&yolo, "0 0.512345 0.512345 0.212345 0.212345\n");
	append(&yolo, "0 0.5 0.5 0.2\n");
	ok(yolo.len > DATASET_HEAD_MAX, "a YOLO file longer than the head");
	is_int(dataset_detect("big.txt", yolo.s, DATASET_HEAD_MAX), DATASET_YOLO,
	       "its head, cut inside a line, is YOLO");
	is_int(dataset_parse("big.txt", yolo.s, yolo.len, &d, err, sizeof(err)), -1,
	       "a bad line after the head: malformed");
	is_str(err, "line 3001: expected 5 numbers, found 4", "the error has its line number");

	/* As COCO files are written: annotations after a long images[]. */
	append(&json, "{\"info\":{\"year\":2017},\"images\":[");
	for (i = 0; i < 2000; i++) {
		snprintf(line, sizeof(line),
			 "%s{\"id\":%u,\"file_name\":\"%012u.jpg\",\"width\":640,\"height\":480}",
			 i ? "," : "", i, i);
		append(&json, line);
	}
	append(&json, "],\"annotations\":[{\"image_id\":1999,\"category_id\":1,"
		      "\"bbox\":[1,2,3,4]},{\"image_id\":5,\"category_id\":1,\"bbox\":[1,1,-3,4]}],"
		      "\"categories\":[{\"id\":1,\"name\":\"cat\"}]}");
	ok(json.len > DATASET_HEAD_MAX, "a COCO file longer than the head");
	is_int(dataset_detect("instances.json", json.s, DATASET_HEAD_MAX), DATASET_COCO,
	       "its head, cut inside images[], is COCO");
	d = parse_ok("instances.json", json.s, DATASET_COCO);
	is_int(d->nimages, 2000, "all the images");
	is_str(d->images[1999].key, "000000001999.jpg", "the last image");
	is_int(d->images[1999].nboxes, 1, "its box");
	is_str(d->skip_note, "annotations[1].bbox: negative width or height",
	       "a negative COCO size is skipped");
	dataset_free(d);
	free(yolo.s);
	free(json.s);

	/* Refused before it is read: only the head is. */
	huge = calloc(1, DATASET_FILE_MAX + 1);
	if (huge) {
		is_int(dataset_parse("classes.txt", huge, DATASET_FILE_MAX + 1, &d, err,
				     sizeof(err)),
		       -1, "a file over 256 MB is refused");
		is_str(err, "too large (257 MB; at most 256 MB)", "and says why");
		free(huge);
	}
}

static void test_limits(void)
{
	struct text csv = {0};
	struct dataset *d;

	d = parse_ok("r.csv",
		     "ImageID,LabelName,XMin,XMax,YMin,YMax\n"
		     "a,b,-1e308,1e308,0,1\n",
		     DATASET_OPEN_IMAGES);
	is_str(d->skip_note, "line 2: a number out of range", "a width past a double is skipped");
	dataset_free(d);
	d = parse_ok("p.txt", "0 -1e308 0 1e308 0 0 1\n", DATASET_YOLO);
	is_int(d->skipped, 1, "so is a polygon as wide");
	dataset_free(d);

	append(&csv, "file_name,class_name\na.jpg,b");
	for (int i = 0; i < 1024; i++)
		append(&csv, ",");
	parse_fails("wide.csv", csv.s, "line 2: more than 1024 fields");
	free(csv.s);
}

/* ---- boxes for Edge Impulse ---- */

static void is_json(const char *got, const char *want, const char *what)
{
	cJSON *j = got ? cJSON_Parse(got) : NULL;

	is_str(got, want, "%s", what);
	ok(cJSON_IsArray(j), "%s: parses as a JSON array", what);
	cJSON_Delete(j);
}

static void test_boxes_json(void)
{
	static const char *const names[] = {"person", "car"};
	struct dataset_box yolo[] = {
		{NULL, 0, 0.4, 0.3, 0.2, 0.4},
		{NULL, 1, 0, 0, 1, 1},
		{NULL, 7, 0.5, 0.5, 0.1, 0.1},
	};
	struct dataset_box px[] = {
		{"a", -1, 0.5, 1.5, 2.5, 3.5},
		{"b", -1, -0.5, -2.5, 2.49, 0.5},
	};
	struct dataset_box clamp[] = {
		{"in", -1, -10, -10, 30, 30},   {"edge", -1, 90, 90, 20, 20},
		{"gone", -1, 200, 200, 10, 10}, {"thin", -1, 5, 5, 0.4, 10},
		{"half", -1, 0.5, 0, 99.5, 10}, {"a\"b\\\x01", -1, 1, 1, 1, 1},
	};
	size_t unknown = 9, dropped = 9;
	char *j;

	j = dataset_boxes_json(yolo, 3, true, 640, 480, names, 2, &unknown, &dropped);
	is_json(j,
		"[{\"label\":\"person\",\"x\":256,\"y\":144,\"width\":128,\"height\":192},"
		"{\"label\":\"car\",\"x\":0,\"y\":0,\"width\":640,\"height\":480},"
		"{\"label\":\"7\",\"x\":320,\"y\":240,\"width\":64,\"height\":48}]",
		"normalised boxes, names and an unknown class");
	is_int(unknown, 1, "class 7 has no name");
	is_int(dropped, 0, "none dropped");
	free(j);
	ok(dataset_boxes_json(yolo, 3, true, 0, 480, names, 2, NULL, NULL) == NULL,
	   "normalised boxes need the image's size");

	j = dataset_boxes_json(px, 2, false, 0, 0, NULL, 0, &unknown, &dropped);
	is_json(j,
		"[{\"label\":\"a\",\"x\":1,\"y\":2,\"width\":3,\"height\":4},"
		"{\"label\":\"b\",\"x\":-1,\"y\":-3,\"width\":2,\"height\":1}]",
		"half away from zero, not clamped when the size is unknown");
	is_int(unknown, 0, "labels given: none unknown");
	free(j);

	j = dataset_boxes_json(clamp, 6, false, 100, 100, NULL, 0, &unknown, &dropped);
	is_json(j,
		"[{\"label\":\"in\",\"x\":0,\"y\":0,\"width\":20,\"height\":20},"
		"{\"label\":\"edge\",\"x\":90,\"y\":90,\"width\":10,\"height\":10},"
		"{\"label\":\"half\",\"x\":1,\"y\":0,\"width\":99,\"height\":10},"
		"{\"label\":\"a\\\"b\\\\\\u0001\",\"x\":1,\"y\":1,\"width\":1,\"height\":1}]",
		"clamped to the stated size; labels escaped");
	is_int(dropped, 2, "a box outside and one thinner than a pixel are dropped");
	free(j);

	clamp[0].w = NAN;
	clamp[1].x = INFINITY;
	j = dataset_boxes_json(clamp, 2, false, 0, 0, NULL, 0, &unknown, &dropped);
	is_json(j, "[]", "boxes of no finite size");
	is_int(dropped, 2, "are dropped");
	free(j);

	j = dataset_boxes_json(NULL, 0, true, 1, 1, NULL, 0, NULL, NULL);
	is_json(j, "[]", "no boxes");
	free(j);
}

/* ---- image sizes ---- */

static size_t put_segment(unsigned char *p, unsigned marker, size_t len, unsigned char fill)
{
	p[0] = 0xFF;
	p[1] = (unsigned char)marker;
	p[2] = (unsigned char)((len + 2) >> 8);
	p[3] = (unsigned char)(len + 2);
	memset(p + 4, fill, len);
	return len + 4;
}

/* A JPEG's head as encoders write it: SOI, APP0 (JFIF), APP1 (Exif), a
 * comment, DQT, DHT, then the frame header SOF_MARKER of 640x480. */
static size_t make_jpeg(unsigned char *p, unsigned sof_marker)
{
	static const unsigned char sof[] = {0x08, 0x01, 0xE0, 0x02, 0x80, 0x03, 0x01, 0x22,
					    0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01};
	size_t n = 0;

	p[n++] = 0xFF;
	p[n++] = 0xD8;
	n += put_segment(p + n, 0xE0, 14, 0);
	memcpy(p + n - 14, "JFIF", 5);
	n += put_segment(p + n, 0xE1, 300, 0xC0); /* bytes like markers inside */
	n += put_segment(p + n, 0xFE, 5, 'x');
	p[n++] = 0xFF; /* a fill byte */
	n += put_segment(p + n, 0xDB, 65, 1);
	n += put_segment(p + n, 0xC4, 30, 0);
	n += put_segment(p + n, sof_marker, sizeof(sof), 0);
	memcpy(p + n - sizeof(sof), sof, sizeof(sof));
	return n;
}

static void test_image_size(void)
{
	/* The start of a 1x1 PNG ImageMagick wrote, and a 3000x2000 one. */
	static const unsigned char png[] = {0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00,
					    0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
					    0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00,
					    0x00, 0x00, 0x37, 0x6E, 0xF9, 0x24};
	unsigned char big[24], jpeg[512];
	unsigned w = 0, h = 0;
	size_t n;

	is_int(dataset_image_size(png, sizeof(png), &w, &h), 0, "PNG: IHDR read");
	ok(w == 1 && h == 1, "PNG: 1x1");
	memcpy(big, png, sizeof(big));
	big[18] = 0x0B;
	big[19] = 0xB8;
	big[22] = 0x07;
	big[23] = 0xD0;
	is_int(dataset_image_size(big, 24, &w, &h), 0, "PNG: the first 24 bytes are enough");
	ok(w == 3000 && h == 2000, "PNG: 3000x2000");
	is_int(dataset_image_size(png, 23, &w, &h), -1, "PNG: cut short");

	n = make_jpeg(jpeg, 0xC0);
	w = h = 0;
	is_int(dataset_image_size(jpeg, n, &w, &h), 0, "JPEG baseline: SOF0 found");
	ok(w == 640 && h == 480, "JPEG baseline: 640x480 (got %ux%u)", w, h);
	n = make_jpeg(jpeg, 0xC2);
	w = h = 0;
	is_int(dataset_image_size(jpeg, n, &w, &h), 0, "JPEG progressive: SOF2 found");
	ok(w == 640 && h == 480, "JPEG progressive: 640x480");
	is_int(dataset_image_size(jpeg, n - 11, &w, &h), -1, "JPEG: SOF cut short");
	is_int(dataset_image_size(jpeg, 200, &w, &h), -1, "JPEG: cut inside APP1");
	jpeg[n - 14] = 0; /* height 0: defined later by DNL, which we do not read */
	jpeg[n - 13] = 0;
	is_int(dataset_image_size(jpeg, n, &w, &h), -1, "JPEG: no size in the frame header");
	jpeg[2] = 0x12; /* not a marker where one must be */
	is_int(dataset_image_size(jpeg, n, &w, &h), -1, "JPEG: corrupt");
	is_int(dataset_image_size((const unsigned char *)"GIF89a\x01\x00\x01\x00", 10, &w, &h), -1,
	       "GIF: not read");
	is_int(dataset_image_size((const unsigned char *)"\xFF\xD8\xFF\xDA\x00\x02", 6, &w, &h), -1,
	       "JPEG: a scan before any frame");
	is_int(dataset_image_size(NULL, 0, &w, &h), -1, "nothing read");
}

int main(void)
{
	test_yolo();
	test_names();
	test_coco();
	test_voc();
	test_open_images();
	test_oi_classes();
	test_csv_label();
	test_csv_boxes();
	test_detect();
	test_large();
	test_limits();
	test_boxes_json();
	test_image_size();
	return done_testing();
}
