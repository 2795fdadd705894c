#!/usr/bin/env python3
"""The real service's dialect (doc/internals.md "Replies", "Annotation
files"): entries for samples only, refused entries without a name, a 400
when nothing was stored; annotation files carried with each request's own
samples; a Studio export's info.labels read locally and never sent."""
import json
import os
import shutil
import subprocess

from mountlib import BIN, Emulator, Mount, Tap, require_fuse, wait_until, workdir

require_fuse()
t = Tap()
root = workdir("dialect")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=200,batch=50")


def stored(name):
    return [s for s in emu.samples() if s["filename"] == name]


def labels_parts():
    return [p for r in emu.requests() for p in r.get("labels_parts", [])]


def write_many(files):
    """Write every file before any settles, so they share requests."""
    for rel, data in files.items():
        m.write(rel, data)


# ---- bounding boxes travel with their own images ----
boxes = {"img1.jpg": [{"label": "car", "x": 10, "y": 20, "width": 30, "height": 40}],
         "img10.jpg": [{"label": "bus", "x": 1, "y": 2, "width": 3, "height": 4}],
         "img2.jpg": []}
write_many({"training/cars/bounding_boxes.labels": json.dumps(
    {"version": 1, "type": "bounding-box-labels", "boundingBoxes": boxes}).encode(),
            "training/cars/img1.jpg": b"\xff\xd8 one",
            "training/cars/img10.jpg": b"\xff\xd8 ten",
            "training/cars/img2.jpg": b"\xff\xd8 two"})
rc, out, err = m.wait_done()
t.eq(rc, 0, "status --wait returns 0 with a .labels file beside its images", out + err)
t.eq({n: stored(n)[0]["bounding_boxes"] if stored(n) else "missing" for n in boxes}, boxes,
     "every image arrived once with exactly its boxes")
t.eq(m.xattr("training/cars/bounding_boxes.labels"), "uploaded",
     "the .labels file is uploaded once a request carried it")
t.ok("sent with 3 sample" in m.xattr("training/cars/bounding_boxes.labels", "result"),
     "its result says with how many", m.xattr("training/cars/bounding_boxes.labels", "result"))
t.eq(stored("bounding_boxes.labels"), [], "the .labels file is never stored as a sample")

# ---- img1 (a duplicate) and img10 (new) in one request ----
write_many({"training/cam/img1.jpg": b"\xff\xd8 one",      # same bytes: a duplicate
            "training/cam/img10.jpg": b"\xff\xd8 new ten"})
m.wait_done()
t.eq((m.xattr("training/cam/img1.jpg"), m.xattr("training/cam/img10.jpg")),
     ("duplicate", "uploaded"), "img1 is the duplicate and img10 the new one, not swapped")

# ---- every sample of a request a duplicate: a 400 without entries ----
before = len(emu.requests())
write_many({"training/dups/a.jpg": b"\xff\xd8 one", "training/dups/b.jpg": b"\xff\xd8 two",
            "training/dups/c.jpg": b"\xff\xd8 ten"})
rc, out, err = m.wait_done()
t.eq([m.xattr("training/dups/%s.jpg" % n) for n in "abc"], ["duplicate"] * 3,
     "an all-duplicate request: each file shows duplicate, not failed")
t.eq(rc, 0, "and status exits 0")
statuses = [r["status"] for r in emu.requests()[before:]]
t.ok(statuses[0] == 400 if emu.dialect == "official" else True,
     "(the service said 400 to the whole request: %s)" % statuses)

# ---- multi-label: structured_labels.labels ----
ranges = {"noise.wav": [{"label": "idle", "startIndex": 0, "endIndex": 9},
                        {"label": "wave", "startIndex": 10, "endIndex": 19}]}
write_many({"training/multi/structured_labels.labels": json.dumps(
    {"version": 1, "type": "structured-labels", "structuredLabels": ranges}).encode(),
            "training/multi/noise.wav": b"RIFF noise"})
m.wait_done()
t.eq([s["structured_labels"] for s in stored("noise.wav")], [ranges["noise.wav"]],
     "a multi-label sample arrives with its ranges")

# ---- a .labels file after its images: said so, not retried ----
m.write("training/late/a.jpg", b"\xff\xd8 late a")
m.wait_done()
m.write("training/late/bounding_boxes.labels", json.dumps(
    {"version": 1, "type": "bounding-box-labels",
     "boundingBoxes": {"a.jpg": boxes["img1.jpg"]}}).encode())
rc, out, err = m.wait_done()
t.eq(m.xattr("training/late/bounding_boxes.labels"), "failed",
     "a .labels file that came after its images: failed")
res = m.xattr("training/late/bounding_boxes.labels", "result")
t.ok("came after" in res and "resend" in res, "saying so and what to do", res)
nreq = len(emu.requests())
rc, out, err = m.wait_done(timeout=3)
t.eq(len(emu.requests()), nreq, "nothing is retried for it")

# ---- malformed: failed with where; its images go as the folder says ----
write_many({"training/bad/bounding_boxes.labels": b'{"version": 1,\n "type": bounding}',
            "training/bad/x.jpg": b"\xff\xd8 bad x"})
m.wait_done()
t.eq(m.xattr("training/bad/bounding_boxes.labels"), "failed", "a malformed .labels fails")
t.ok("line 2" in m.xattr("training/bad/bounding_boxes.labels", "result"),
     "naming the line", m.xattr("training/bad/bounding_boxes.labels", "result"))
t.eq([(s["label"], s["bounding_boxes"]) for s in stored("x.jpg")], [("bad", None)],
     "its image went with the folder's label and no boxes")

# ---- what was read of an annotation file outlives a restart and a rename ----
m.restart()
rc, out, err = m.wait_done()
t.eq(m.xattr("training/cars/bounding_boxes.labels"), "uploaded",
     "after a restart an uploaded .labels stays uploaded, not late")
os.rename(m.path("training/cars/bounding_boxes.labels"), m.path("training/cars/boxes.labels"))
m.write("training/cars/img3.jpg", b"\xff\xd8 three")
boxes3 = {"img3.jpg": [{"label": "van", "x": 5, "y": 6, "width": 7, "height": 8}]}
m.write("training/van/bounding_boxes.labels", json.dumps(
    {"version": 1, "type": "bounding-box-labels", "boundingBoxes": boxes3}).encode())
os.rename(m.path("training/van"), m.path("training/vans"))
m.write("training/vans/img3.jpg", b"\xff\xd8 van three")
m.wait_done()
t.eq([x["bounding_boxes"] for x in stored("img3.jpg") if x["label"] == "vans"],
     [boxes3["img3.jpg"]], "a .labels whose folder was renamed still speaks for it")
# read before its images exist: pending, then uploaded once they come
m.write("training/early/bounding_boxes.labels", json.dumps(
    {"version": 1, "type": "bounding-box-labels", "boundingBoxes": {"e.jpg": []}}).encode())
wait_until(lambda: "yet" in m.xattr("training/early/bounding_boxes.labels", "result"), 5)
t.eq(m.xattr("training/early/bounding_boxes.labels"), "pending",
     "a .labels read before the images it names waits for them")
m.write("training/early/e.jpg", b"\xff\xd8 early")
rc, out, err = m.wait_done("training/early")
t.eq((rc, m.xattr("training/early/bounding_boxes.labels")), (0, "uploaded"), "then goes with them")
m.stop()

# ---- a Studio export copied whole: info.labels at the root ----
root2 = workdir("export")
export = os.path.join(root2, "export")
samples = {
    "training/a.wav": {"label": {"type": "label", "label": "noise"},
                       "metadata": {"site": "lab", "mic": "\u00e9"}},
    "training/b.wav": {"label": {"type": "unlabeled"}},
    "testing/c.wav": {"label": {"type": "label", "label": "wave"}},
    "training/d.wav": {"label": {"type": "multi-label",
                                 "labels": [{"label": "x", "startIndex": 0, "endIndex": 4}]}},
    "training/e.jpg": {"label": {"type": "label", "label": "cat"},
                       "boundingBoxes": [{"label": "cat", "x": 1, "y": 1, "width": 5,
                                          "height": 5}]},
    "testing/f.wav": {"category": "training", "label": {"type": "label", "label": "moved"}},
}
info = {"version": 1, "files": []}
for rel, extra in samples.items():
    os.makedirs(os.path.join(export, os.path.dirname(rel)), exist_ok=True)
    with open(os.path.join(export, rel), "wb") as f:
        f.write(b"RIFF" + rel.encode())
    entry = {"path": rel, "name": os.path.splitext(os.path.basename(rel))[0],
             "category": rel.split("/")[0]}
    entry.update(extra)
    info["files"].append(entry)
info["files"].append({"path": "../../etc/passwd", "category": "training",
                      "label": {"type": "label", "label": "x"}})
with open(os.path.join(export, "info.labels"), "w") as f:
    json.dump(info, f)
with open(os.path.join(export, "training", "plain.wav"), "wb") as f:
    f.write(b"RIFF plain")
emu2 = Emulator(root2)
m2 = Mount(root2, emu2.url, opts="settle=200,metadata=rig=7")
r = subprocess.run(["cp", "-r", export + "/.", m2.mnt], capture_output=True, text=True)
t.eq(r.returncode, 0, "cp -r of a Studio export into the mount root", r.stderr)
rc, out, err = m2.wait_done()
t.eq(rc, 0, "everything done", out + err)
got = {s["filename"]: s for s in emu2.samples()}
t.eq(sorted(got), ["a.wav", "b.wav", "c.wav", "d.wav", "e.jpg", "f.wav", "plain.wav"],
     "every sample once, info.labels never")
t.eq((got["a.wav"]["category"], got["a.wav"]["label"]), ("training", "noise"),
     "category and label from info.labels")
t.eq(json.loads(got["a.wav"]["headers"].get("x-metadata", "{}")),
     {"rig": "7", "site": "lab", "mic": "\u00e9"}, "its metadata over the mount's")
t.eq((got["b.wav"]["label"], got["b.wav"]["headers"].get("x-no-label")), (None, "1"),
     "unlabeled: x-no-label")
t.eq((got["c.wav"]["category"], got["c.wav"]["label"]), ("testing", "wave"), "testing")
t.eq(got["d.wav"]["structured_labels"], samples["training/d.wav"]["label"]["labels"],
     "multi-label ranges")
t.eq(got["e.jpg"]["bounding_boxes"], samples["training/e.jpg"]["boundingBoxes"], "boxes")
t.eq(got["f.wav"]["category"], "training", "the entry's category wins over the folder's")
t.eq(got["plain.wav"]["label"], "plain", "a file it does not describe goes as its folder says")
t.ok(all(p["filename"] != "info.labels" for p in
         [p for r in emu2.requests() for p in r.get("labels_parts", [])]),
     "info.labels is never sent")
t.eq(m2.xattr("info.labels"), "uploaded", "info.labels: done")
res = m2.xattr("info.labels", "result")
t.ok("never sent" in res and "refused" in res, "read locally, and the escaping path refused", res)
t.ok("info.labels" in m2.xattr("training/a.wav", "result"),
     "a sample says its labels came from info.labels", m2.xattr("training/a.wav", "result"))
try:
    m2.write("README.md", b"no")
    t.ok(False, "anything else at the root is still refused")
except PermissionError:
    t.ok(True, "anything else at the root is still refused")
m2.stop()

# ---- metadata too long for a header: refused at mount time ----
r = subprocess.run([BIN, "-f", "-o", "url=%s,api_key_file=%s,metadata=k=%s" %
                    (emu2.url, m2.key_file, "v" * 9000), os.path.join(root2, "mnt")],
                   capture_output=True, text=True, timeout=30,
                   env=dict(os.environ, INGESTFS_CONFIG="/nonexistent"))
t.ok(r.returncode == 1 and "metadata" in r.stderr and len(r.stderr.splitlines()) == 1,
     "metadata= too long for the header: refused at mount with one line", r.stderr)
root3 = workdir("meta")
m3 = Mount(root3, emu2.url, opts="settle=20,metadata=k=%s" % ("v" * 2000))
m3.write("training/meta/long.json", b'{"long": 1}')
rc, out, err = m3.wait_done(timeout=20)
t.eq(rc, 0, "2,000 bytes of metadata: uploaded")
lines = m3.log().count("\n")
t.ok(lines < 20, "and nothing spins in the log (%d lines)" % lines)
t.eq(m3.stop(), 0, "clean unmount")
t.done()
