#!/usr/bin/env python3
"""Fits the desktop and server: mount(8) through mount.fuse3, readiness
for systemd, the config file, x-metadata, and .labels files travelling
with their samples."""
import json
import os
import socket
import subprocess
import time

from mountlib import BIN, GOOD_KEY, Emulator, Mount, Tap, require_fuse, wait_until, workdir

require_fuse()
t = Tap()
root = workdir("desktop")
emu = Emulator(root)

# ---- mount -t fuse "PROGRAM#SOURCE" goes through mount.fuse3 like fstab ----
key = os.path.join(root, "key")
with open(key, "w") as f:
    f.write(GOOD_KEY)
os.chmod(key, 0o600)
mnt = os.path.join(root, "fstab-mnt")
os.mkdir(mnt)
if os.geteuid() != 0:
    t.ok(True, "# SKIP mount(8) needs root")
else:
    r = subprocess.run(["mount", "-t", "fuse", "%s#ingestfs" % BIN, mnt, "-o",
                        "noauto,_netdev,url=%s,api_key_file=%s,spool=%s,settle=20"
                        % (emu.url, key, os.path.join(root, "fstab-spool"))],
                       capture_output=True, text=True,
                       env=dict(os.environ, INGESTFS_CONFIG=os.path.join(root, "none")))
    t.eq(r.returncode, 0, "mount -t fuse through mount.fuse3 with fstab options", r.stderr)
    try:
        with open(os.path.join(mnt, "training", "via-mount.json"), "wb") as f:
            f.write(b'{"mount": 8}')
        rc = subprocess.run([BIN, "status", "--wait", "--timeout", "20", mnt],
                            capture_output=True).returncode
        t.eq(rc, 0, "files in an fstab-style mount upload")
    finally:
        subprocess.run(["umount", mnt])
    t.ok(not os.path.ismount(mnt), "umount unmounts it")

# ---- Type=notify: READY=1 on $NOTIFY_SOCKET once the mount is live ----
sock_path = os.path.join(root, "notify.sock")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sock_path)
sock.settimeout(10)
cfg = os.path.join(root, "config")
with open(cfg, "w") as f:
    f.write("# defaults for this test\nsettle = 20\nmetadata = site=lab-2, device=cam 1\n"
            "log_level = debug\n")
m = Mount(root, emu.url, opts="metadata=device=cam-override",
          env={"NOTIFY_SOCKET": sock_path, "INGESTFS_CONFIG": cfg})
try:
    msg = sock.recv(100)
except socket.timeout:
    msg = b""
t.eq(msg, b"READY=1", "systemd is told READY=1")
t.ok(os.path.ismount(m.mnt), "and by then the mount is live")

# ---- config defaults and x-metadata ----
m.write("training/meta/a.json", b'{"meta": 1}')
m.wait_done()
s = [x for x in emu.samples() if x["filename"] == "a.json"]
meta = json.loads(s[0]["headers"].get("x-metadata", "{}")) if s else {}
t.eq(meta, {"site": "lab-2", "device": "cam-override"},
     "x-metadata from the config file, the command line winning")
t.ok("debug:" in m.log(), "log_level from the config file applies")

# ---- .labels files go with their folder's samples ----
boxes = {"version": 1, "type": "bounding-box-labels",
         "boundingBoxes": {"img1.jpg": [{"label": "car", "x": 1, "y": 2, "width": 3, "height": 4}],
                           "img2.jpg": []}}
os.makedirs(m.path("training/cars"))
with open(m.path("training/cars/bounding_boxes.labels"), "w") as f:
    f.write(json.dumps(boxes))
for n in ("img1.jpg", "img2.jpg"):
    m.write("training/cars/" + n, b"\xff\xd8" + n.encode())
m.wait_done()
got = {x["filename"]: x["bounding_boxes"] for x in emu.samples() if x["filename"].startswith("img")}
t.eq(got, {"img1.jpg": boxes["boundingBoxes"]["img1.jpg"], "img2.jpg": []},
     "each sample arrives with its own boxes from its folder's .labels file")
t.eq(m.xattr("training/cars/bounding_boxes.labels"), "uploaded", "the .labels file shows uploaded")
t.ok(all(not any(p["filename"] == "bounding_boxes.labels" and set(p["keys"]) - {"img1.jpg", "img2.jpg"}
                 for p in r.get("labels_parts", [])) for r in emu.requests()),
     "and each request's .labels part names only its own samples")
# written after: waits for the .labels being written within settle
with open(m.path("training/cars/info.labels.tmp"), "w") as f:
    f.write("{}")
m.write("training/cars/img3.jpg", b"\xff\xd8img3")
m.wait_done()
t.eq([x["bounding_boxes"] for x in emu.samples() if x["filename"] == "img3.jpg"],
     [None], "a later sample it does not name goes without boxes")
t.eq(m.stop(), 0, "clean unmount")
t.done()
