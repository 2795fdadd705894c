#!/usr/bin/env python3
"""Datasets in the formats people have (ingestfs(1) DATASETS): YOLO, COCO,
Pascal VOC, Open Images and plain CSV, each made here with real PNG and
JPEG headers of known sizes, copied in with cp -r and with rsync -a:
every image arrives once with exactly its boxes (in pixels) or its
label, no annotation file is stored as a sample, and each shows ignored
with what it was read as.  A malformed one fails with its line, a late
one says how to send again, no_datasets sends them as they are, and a
sensor .json or a text .txt is still a sample."""
import json
import os
import shutil
import struct
import subprocess
import zlib

from mountlib import Emulator, Mount, Tap, require_fuse, workdir

require_fuse()
t = Tap()
root = workdir("datasets")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=100")
serial = [0]


def png(w, h):
    """A real PNG header (IHDR) and a tiny image body; unique bytes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    serial[0] += 1
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            chunk(b"tEXt", b"n\x00%d" % serial[0]) + chunk(b"IDAT", zlib.compress(b"\x00")) +
            chunk(b"IEND", b""))


def jpeg(w, h):
    """SOI, APP0 (JFIF), a comment, SOF0 with the size, EOI."""
    serial[0] += 1
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    com = b"n%d" % serial[0]
    sof = struct.pack(">BHHB", 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 +
            b"\xff\xfe" + struct.pack(">H", len(com) + 2) + com +
            b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + b"\xff\xd9")


def make(tree, files):
    shutil.rmtree(tree, ignore_errors=True)
    for rel, data in files.items():
        p = os.path.join(tree, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
    return tree


def copy(how, src, dest):
    d = m.path(dest)
    os.makedirs(os.path.dirname(d), exist_ok=True)
    if how == "cp -r":
        r = subprocess.run(["cp", "-r", src, d], capture_output=True, text=True)
    else:
        r = subprocess.run(["rsync", "-a", src + "/", d + "/"], capture_output=True, text=True)
    t.eq(r.returncode, 0, "%s %s" % (how, dest), r.stderr)


def stored(prefix):
    """Samples stored from below PREFIX, by file name: [boxes or label]."""
    out = {}
    for s in emu.samples():
        out.setdefault(s["filename"], []).append(s)
    return out


def box(label, x, y, w, h):
    return {"label": label, "x": x, "y": y, "width": w, "height": h}


def check(name, dest, images, annotations, fmt):
    """IMAGES: file name -> expected boxes (list) or label (str)."""
    rc, out, err = m.wait_done(dest, timeout=90)
    t.eq(rc, 0, "%s: everything settles" % name, out + err)
    got = stored(dest)
    for img, want in images.items():
        samples = [s for s in got.get(img, []) if s["category"] == "training"]
        if isinstance(want, str):
            t.eq([s["label"] for s in samples], [want], "%s: %s arrived once, labelled %s"
                 % (name, img, want))
        else:
            t.eq([s["bounding_boxes"] for s in samples], [want],
                 "%s: %s arrived once with exactly its boxes" % (name, img))
    for a in annotations:
        base = os.path.basename(a)
        t.eq(got.get(base, []), [], "%s: %s is never stored as a sample" % (name, a))
        status = m.xattr(os.path.join(dest, a))
        result = m.xattr(os.path.join(dest, a), "result")
        t.ok(status == "ignored" and fmt in result, "%s: %s shows ignored, read as %s"
             % (name, a, fmt), "%s: %s" % (status, result))


src = os.path.join(root, "src")
for how, n in (("cp -r", 1), ("rsync -a", 2)):
    # ---- YOLO, the Roboflow/Ultralytics layout ----
    tree = make(os.path.join(src, "yolo%d" % n), {
        "data.yaml": "train: ../train/images\nnc: 2\nnames: ['cat', 'dog']\n",
        "train/images/y%da.jpg" % n: jpeg(640, 480),
        "train/images/y%db.png" % n: png(320, 240),
        "train/images/y%dc.jpg" % n: jpeg(100, 100),
        "train/labels/y%da.txt" % n: "0 0.5 0.5 0.25 0.5\n1 0.25 0.25 0.1 0.1\n",
        "train/labels/y%db.txt" % n: "1 0.5 0.5 1.0 1.0\n",
        "train/labels/y%dc.txt" % n: "",
    })
    copy(how, tree, "training/yolo%d" % n)
    check("YOLO (%s)" % how, "training/yolo%d" % n, {
        "y%da.jpg" % n: [box("cat", 240, 120, 160, 240), box("dog", 128, 96, 64, 48)],
        "y%db.png" % n: [box("dog", 0, 0, 320, 240)],
        "y%dc.jpg" % n: [],
    }, ["train/labels/y%da.txt" % n, "data.yaml"], "YOLO")

    # ---- COCO JSON beside its images ----
    coco = {"info": {}, "images": [
        {"id": 1, "file_name": "c%dx.jpg" % n, "width": 200, "height": 100},
        {"id": 2, "file_name": "c%dy.png" % n, "width": 50, "height": 50}],
        "categories": [{"id": 3, "name": "car"}, {"id": 4, "name": "bus"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30.4, 40.6]},
            {"id": 2, "image_id": 1, "category_id": 4, "bbox": [0, 0, 5, 5]},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [1, 2, 3, 4]}]}
    tree = make(os.path.join(src, "coco%d" % n), {
        "train/_annotations.coco.json": json.dumps(coco),
        "train/c%dx.jpg" % n: jpeg(200, 100), "train/c%dy.png" % n: png(50, 50)})
    copy(how, tree, "training/coco%d" % n)
    check("COCO (%s)" % how, "training/coco%d" % n, {
        "c%dx.jpg" % n: [box("car", 10, 20, 30, 41), box("bus", 0, 0, 5, 5)],
        "c%dy.png" % n: [box("car", 1, 2, 3, 4)],
    }, ["train/_annotations.coco.json"], "COCO")

    # ---- Pascal VOC ----
    voc = ("<annotation><folder>JPEGImages</folder><filename>v%da.jpg</filename>"
           "<size><width>300</width><height>200</height><depth>3</depth></size>"
           "<object><name>person</name><bndbox><xmin>10</xmin><ymin>20</ymin>"
           "<xmax>110</xmax><ymax>220</ymax></bndbox></object>"
           "<object><name>dog</name><bndbox><xmin>5.5</xmin><ymin>6</ymin><xmax>50</xmax>"
           "<ymax>60</ymax></bndbox></object></annotation>" % n)
    tree = make(os.path.join(src, "voc%d" % n), {
        "Annotations/v%da.xml" % n: voc, "JPEGImages/v%da.jpg" % n: jpeg(300, 200)})
    copy(how, tree, "training/voc%d" % n)
    check("Pascal VOC (%s)" % how, "training/voc%d" % n, {
        # ymax 220 reaches past the stated height: clamped to 200.
        "v%da.jpg" % n: [box("person", 10, 20, 100, 180), box("dog", 6, 6, 45, 54)],
    }, ["Annotations/v%da.xml" % n], "Pascal VOC")

    # ---- Open Images ----
    tree = make(os.path.join(src, "oi%d" % n), {
        "oidv6-class-descriptions.csv": "LabelName,DisplayName\n/m/01yrx,Cat\n/m/0bt9lr,Dog\n",
        "labels.csv": "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax\n"
                      "o%da,xclick,/m/01yrx,1,0.1,0.5,0.2,0.6\n"
                      "o%da,xclick,/m/0bt9lr,1,0.0,1.0,0.0,1.0\n" % (n, n),
        "images/o%da.jpg" % n: jpeg(1000, 500)})
    copy(how, tree, "training/oi%d" % n)
    check("Open Images (%s)" % how, "training/oi%d" % n, {
        "o%da.jpg" % n: [box("Cat", 100, 100, 400, 200), box("Dog", 0, 0, 1000, 500)],
    }, ["labels.csv", "oidv6-class-descriptions.csv"], "Open Images")

    # ---- plain CSV: one label per file, and boxes ----
    tree = make(os.path.join(src, "csv%d" % n), {
        "labels.csv": "file_name,class_name\np%da.jpg,happy\np%db.png,sad\n" % (n, n),
        "p%da.jpg" % n: jpeg(10, 10), "p%db.png" % n: png(10, 10)})
    copy(how, tree, "training/csv%d" % n)
    check("plain CSV (%s)" % how, "training/csv%d" % n,
          {"p%da.jpg" % n: "happy", "p%db.png" % n: "sad"}, ["labels.csv"], "plain CSV")
    tree = make(os.path.join(src, "csvb%d" % n), {
        "boxes.csv": "file_name,classes,xmin,ymin,xmax,ymax\nq%da.jpg,cup;mug,1,2,11,22\n" % n,
        "q%da.jpg" % n: jpeg(40, 40)})
    copy(how, tree, "training/csvb%d" % n)
    check("plain CSV with boxes (%s)" % how, "training/csvb%d" % n,
          {"q%da.jpg" % n: [box("cup", 1, 2, 10, 20), box("mug", 1, 2, 10, 20)]},
          ["boxes.csv"], "plain CSV")

# ---- a malformed file fails, with its line; its image goes as its folder says ----
tree = make(os.path.join(src, "bad"), {
    "images/z1.jpg": jpeg(64, 64), "labels/z1.txt": "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 oops 0.2\n"})
copy("rsync -a", tree, "training/bad")
m.wait_done("training/bad", timeout=60)
res = m.xattr("training/bad/labels/z1.txt", "result")
t.ok(m.xattr("training/bad/labels/z1.txt") == "failed" and "line 2" in res,
     "a malformed YOLO file fails, naming the line", res)
t.eq([s["bounding_boxes"] for s in emu.samples() if s["filename"] == "z1.jpg"], [None],
     "and its image went up, without boxes")

# ---- late: the images first, then their annotations ----
os.makedirs(m.path("training/late/images"))
m.write("training/late/images/l1.jpg", jpeg(100, 100))
m.wait_done("training/late", timeout=60)
m.write("training/late/labels/l1.txt", b"0 0.5 0.5 0.5 0.5\n")
m.wait_done("training/late", timeout=60)
res = m.xattr("training/late/labels/l1.txt", "result")
t.ok(m.xattr("training/late/labels/l1.txt") == "failed" and "had gone before" in res and
     "resend" in res, "an annotation file that came after its image says so, and how to "
     "send again", res)
os.setxattr(m.path("training/late/labels/l1.txt"), "user.ingest.status", b"resend")
m.wait_done("training/late", timeout=60)
t.eq([len(r["labels_parts"]) for r in emu.requests() if r["samples"] == 1][-1:], [1],
     "resend sends the image again with its boxes")

# ---- what is not a dataset is still a sample ----
m.write("training/sensors/run1.json",
        json.dumps({"protected": {"ver": "v1", "alg": "none"}, "signature": "0",
                    "payload": {"device_type": "X", "interval_ms": 10,
                                "sensors": [{"name": "a", "units": "m/s2"}],
                                "values": [[1], [2]]}}).encode())
m.write("training/sensors/accel.csv", b"timestamp,accX,accY\n0,1,2\n10,3,4\n")
m.write("training/notes/hello.txt", b"hello world, this is a text sample\n")
m.wait_done("training/sensors", "training/notes", timeout=60)
for name in ("run1.json", "accel.csv", "hello.txt"):
    t.eq(len([s for s in emu.samples() if s["filename"] == name]), 1,
         "%s is uploaded as a sample" % name)
t.eq(m.stop(), 0, "unmounts cleanly")

# ---- no_datasets: the raw files go as they are ----
m2 = Mount(os.path.join(root, "raw"), emu.url, opts="settle=100,no_datasets",
           spool=os.path.join(root, "raw-spool"))
m2.write("training/raw/r1.jpg", jpeg(10, 10))
m2.write("training/raw/r1.txt", b"0 0.5 0.5 0.5 0.5\n")
m2.wait_done(timeout=60)
t.eq(len([s for s in emu.samples() if s["filename"] == "r1.txt"]), 1,
     "with no_datasets a YOLO .txt is uploaded as a text sample")
t.eq([s["bounding_boxes"] for s in emu.samples() if s["filename"] == "r1.jpg"], [None],
     "and its image without boxes")
t.eq(m2.stop(), 0, "unmounts cleanly")
t.done()
