#!/usr/bin/env python3
"""Files copied into a mount arrive at the service with the right category,
label and bytes; their status shows in xattrs and `ingestfs status`."""
import os
import subprocess

from mountlib import Emulator, Mount, Tap, require_fuse, sha256, workdir

require_fuse()
t = Tap()
root = workdir("basic")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=100")

files = {
    "training/car/IMG_0001.jpg": b"\xff\xd8\xff" + os.urandom(5000),
    "training/car/deep/2026-11-22/cam1/0002.png": b"\x89PNG" + os.urandom(3000),
    "testing/two words \u00e9/a.wav": b"RIFF" + os.urandom(2000),
    "anomaly/noise/x.csv": b"t,v\n0,1\n1,2\n",
    "training/idle.01.json": b'{"payload": {"values": [[1]]}}',
}
ignored = ["training/car/.IMG_0003.jpg.Xa81Z", "training/.DS_Store", "training/car/Thumbs.db",
           "training/car/notes.docx", "training/car/draft.jpg~", "training/.Trash-1000/files/x.jpg"]
for rel, data in files.items():
    m.write(rel, data)
for rel in ignored:
    m.write(rel, b"junk " + rel.encode())

rc, out, err = m.wait_done()
t.eq(rc, 0, "ingestfs status --wait exits 0 once everything is uploaded")
t.ok("uploaded=5" in out and "ignored=6" in out, "status summary counts", out + err)

samples = {s["filename"]: s for s in emu.samples()}
t.eq(len(emu.samples()), len(files), "exactly one stored sample per file, nothing else")
want_label = {"training/car/IMG_0001.jpg": "car",
              "training/car/deep/2026-11-22/cam1/0002.png": "car",
              "anomaly/noise/x.csv": "noise", "training/idle.01.json": "idle"}
for rel, data in files.items():
    name = os.path.basename(rel)
    s = samples.get(name)
    if not t.ok(s is not None, "%s arrived" % rel, sorted(samples)):
        continue
    t.eq(s["category"], rel.split("/")[0], "%s: category" % rel)
    t.eq(s["sha256"], sha256(data), "%s: bytes" % rel)
    t.eq(m.xattr(rel), "uploaded", "%s: user.ingest.status" % rel)
    t.eq(m.xattr(rel, "result"), s["name"], "%s: user.ingest.result is the stored name" % rel)
    if rel in want_label:
        t.eq(s["label"], want_label[rel], "%s: label" % rel)

s = samples.get("a.wav", {})
t.eq(s.get("label"), "two words \u00e9", "a label with a space and UTF-8 arrives intact")
s = samples.get("idle.01.json", {})
t.ok("x-label" not in s.get("headers", {}), "a file directly under a category has no x-label",
     s.get("headers"))
h = samples.get("IMG_0001.jpg", {}).get("headers", {})
t.ok("x-disallow-duplicates" in h, "x-disallow-duplicates is sent", h)
t.ok(h.get("x-upload-source", "").startswith("ingestfs/"), "x-upload-source names ingestfs", h)

for rel in ignored:
    t.eq(m.xattr(rel), "ignored", "%s shows ignored" % rel)
t.ok(all(os.path.basename(r) not in samples for r in ignored), "no ignored file was sent")

t.eq(m.xattr("training", "summary"),
     "uploaded=3 duplicate=0 pending=0 uploading=0 failed=0 ignored=6",
     "user.ingest.summary on a category")
t.eq(m.xattr("training/car/IMG_0001.jpg", "summary"), "<No data available>",
     "no summary on a file")

# The same bytes under another name: the service refuses the duplicate.
m.write("training/car/copy.jpg", files["training/car/IMG_0001.jpg"])
rc, out, err = m.wait_done("training/car/copy.jpg")
t.eq(m.xattr("training/car/copy.jpg"), "duplicate", "a copy of an uploaded file is a duplicate")
t.eq(rc, 0, "duplicate counts as done")

# Reading works like a disk.
with open(m.path("training/car/IMG_0001.jpg"), "rb") as f:
    t.eq(sha256(f.read()), sha256(files["training/car/IMG_0001.jpg"]), "read back what was written")

rc = m.stop()
t.eq(rc, 0, "ingestfs exits 0 after fusermount3 -u")
t.ok("ei_0123456789abcdef" not in m.log(), "the API key is not in the log")
t.done()
