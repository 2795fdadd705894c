#!/usr/bin/env python3
"""Watch mode: the same queue fed by inotify on an ordinary folder.  The
writers that need no FUSE, a folder that appears whole, restarts without
re-uploads, and recovery from lost inotify events."""
import os
import shutil
import signal
import subprocess
import time

from mountlib import Emulator, Tap, Watcher, sha256, wait_until, workdir

t = Tap()
root = workdir("watch")
emu = Emulator(root)
w = Watcher(root, emu.url, opts="settle=200")
src = os.path.join(root, "src")
os.makedirs(src)


def put(rel, data):
    p = os.path.join(src, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return p


def stored(name):
    return [(s["category"], s["label"], s["sha256"]) for s in emu.samples() if s["filename"] == name]


t.eq(sorted(os.listdir(w.mnt)), ["anomaly", "testing", "training"], "the categories are created")
d = w.path("training/car")
os.makedirs(d)

# cp, cp -a, rsync -a, mv in
p = put("cp.json", b'{"cp": 1}')
subprocess.run(["cp", p, d], check=True)
p = put("cpa.json", b'{"cpa": 1}')
subprocess.run(["cp", "-a", p, d], check=True)
put("rs/rs1.json", b'{"rsync": 1}')
put("rs/rs2.json", b'{"rsync": 2}')
subprocess.run(["rsync", "-a", os.path.join(src, "rs") + "/", d + "/"], check=True)
p = put("mv.json", b'{"mv": 1}')
os.rename(p, os.path.join(d, "mv.json"))
# camera: reopened for append within settle; temp name then rename; junk
with open(os.path.join(d, "cam.csv"), "wb") as f:
    f.write(b"t,v\n")
for i in range(3):
    time.sleep(0.05)
    with open(os.path.join(d, "cam.csv"), "ab") as f:
        f.write(b"%d,%d\n" % (i, i))
with open(os.path.join(d, "clip.json.part"), "wb") as f:
    f.write(b'{"clip": 1}')
os.rename(os.path.join(d, "clip.json.part"), os.path.join(d, "clip.json"))
for junk in (".DS_Store", "Thumbs.db", "._cam.csv"):
    with open(os.path.join(d, junk), "wb") as f:
        f.write(b"junk")
rc, out, err = w.wait_done()
t.eq(rc, 0, "ingestfs status --wait works on a watched tree", out + err)
want = {"cp.json": b'{"cp": 1}', "cpa.json": b'{"cpa": 1}', "rs1.json": b'{"rsync": 1}',
        "rs2.json": b'{"rsync": 2}', "mv.json": b'{"mv": 1}', "clip.json": b'{"clip": 1}',
        "cam.csv": b"t,v\n0,0\n1,1\n2,2\n"}
for name, data in want.items():
    t.eq(stored(name), [("training", "car", sha256(data))], "%s: stored once, right label and bytes" % name)
t.ok(not any(s["filename"].startswith(".") or s["filename"] in ("Thumbs.db",) for s in emu.samples()),
     "no junk and no rsync temp file was sent")
t.eq(w.xattr("training/car/cp.json"), "uploaded", "status xattr on the real file")
t.eq(w.xattr("training/car/cp.json", "result"), "cp", "result xattr on the real file")
t.eq(w.xattr("training/car/.DS_Store"), "ignored", "ignored files say so")

# a folder that appears whole: moved in, and copied in with cp -r
for i in range(5):
    put("whole/w%d.json" % i, b'{"whole": %d}' % i)
os.rename(os.path.join(src, "whole"), w.path("testing/whole"))
for i in range(5):
    put("tree/sub/t%d.json" % i, b'{"tree": %d}' % i)
subprocess.run(["cp", "-r", os.path.join(src, "tree"), w.path("anomaly/")], check=True)
w.wait_done()
t.eq(sorted(s["filename"] for s in emu.samples() if s["label"] == "whole"),
     ["w%d.json" % i for i in range(5)], "a folder moved in with files inside: all sent once")
t.eq(sorted(s["filename"] for s in emu.samples() if s["label"] == "tree"),
     ["t%d.json" % i for i in range(5)], "a tree copied in with cp -r: all sent once")

# moves inside the tree; removal
os.makedirs(w.path("training/bus"))
os.rename(w.path("testing/whole/w0.json"), w.path("training/bus/w0.json"))
w.wait_done()
t.ok(any(r["path"] == "/api/training/files" and r["files"] == 1 for r in emu.requests()[-2:]),
     "an uploaded file moved to another label is sent there")
t.eq(w.xattr("training/bus/w0.json"), "duplicate", "where the service already has its bytes")

# renames and removals that race the event reader
x = w.path("training/z/x")
os.makedirs(x)
for i in range(4):
    with open(os.path.join(x, "x%d.json" % i), "wb") as f:
        f.write(b'{"x": %d}' % i)
w.wait_done()
n_before = len(emu.samples())
os.rename(x, w.path("training/z/y"))
os.rename(w.path("training/z/y"), w.path("training/z/z"))
with open(w.path("training/z/z/new.json"), "wb") as f:
    f.write(b'{"after": "two renames"}')
w.wait_done()
t.eq([s["label"] for s in emu.samples()[n_before:]], ["z"],
     "a folder renamed twice at once: its files stay known, a new one in it is sent")
t.eq({w.xattr("training/z/z/x%d.json" % i) for i in range(4)}, {"uploaded"},
     "and the old ones stay uploaded",
     [w.xattr("training/z/z/x%d.json" % i, "result") for i in range(4)])
t.eq(len(emu.samples()) - n_before, 1, "none of them was sent again")

with open(w.path("training/z/open.json"), "wb") as f:
    f.write(b'{"part": 1')
    f.flush()
    time.sleep(0.3)
    os.rename(w.path("training/z/open.json"), w.path("training/z/renamed-open.json"))
    time.sleep(0.3)
    f.write(b', "part2": 2}')
w.wait_done()
t.eq(stored("renamed-open.json"), [("training", "z", sha256(b'{"part": 1, "part2": 2}'))],
     "renamed while open: sent once, complete, under the new name")

f = open(w.path("training/z/gone.json"), "wb")
f.write(b'{"gone": 1}')
f.flush()
os.unlink(w.path("training/z/gone.json"))
f.close()
with open(w.path("training/z/gone.json"), "wb") as f:
    f.write(b'{"gone": "back"}')
w.wait_done()
t.eq(stored("gone.json"), [("training", "z", sha256(b'{"gone": "back"}'))],
     "unlinked while open, then made again: the new file is sent")

with open(w.path("training/z/save.json"), "wb") as f:
    f.write(b'{"draft": 1}')
w.wait_done()
with open(w.path("training/z/.save.json.tmp"), "wb") as f:
    f.write(b'{"draft": 2}')
os.rename(w.path("training/z/.save.json.tmp"), w.path("training/z/save.json"))
w.wait_done()
t.eq([x[2] for x in stored("save.json")], [sha256(b'{"draft": 1}'), sha256(b'{"draft": 2}')],
     "safe-save over an uploaded file: the new content once")
os.link(w.path("training/z/save.json"), w.path("training/z/.save-link"))
rc = w.wait_done(timeout=10)[0]
t.eq(rc, 0, "a hard link does not leave the file writing for ever")

outside = os.path.join(root, "outside")
os.makedirs(outside)
os.rename(w.path("training/z"), os.path.join(outside, "z.old"))
os.makedirs(os.path.join(src, "newz"))
with open(os.path.join(src, "newz", "fresh.json"), "wb") as f:
    f.write(b'{"fresh": 1}')
os.rename(os.path.join(src, "newz"), w.path("training/z"))
shutil.rmtree(os.path.join(outside, "z.old"))
w.wait_done()
t.eq(stored("fresh.json"), [("training", "z", sha256(b'{"fresh": 1}'))],
     "a folder moved out and another moved in under its name: the new files are sent")

# restart: nothing is sent again; files added while stopped are sent
before = len(emu.requests())
t.eq(w.stop(), 0, "the watcher stops cleanly on SIGTERM")
for i in range(3):
    with open(w.path("training/car/offline%d.json" % i), "wb") as f:
        f.write(b'{"offline": %d}' % i)
w.start()
w.wait_done()
t.eq(sorted(s["filename"] for s in emu.samples() if s["filename"].startswith("offline")),
     ["offline0.json", "offline1.json", "offline2.json"], "files added while stopped go at restart")
# (In one request or several, as they are read: a .json may be a COCO file.)
t.eq(sum(r["samples"] for r in emu.requests()[before:]), 3, "and nothing else is sent again",
     emu.requests()[before:])
t.ok("not yet uploaded" not in w.log(), "no file was left behind at the stop", w.log()[-400:])

# a file half written across a restart is sent once, complete
f = open(w.path("training/car/across.json"), "wb")
f.write(b'{"half": ')
f.flush()
w.stop()
f.write(b'"whole"}')
f.close()
w.start()
w.wait_done()
t.eq(stored("across.json"), [("training", "car", sha256(b'{"half": "whole"}'))],
     "written across a restart: sent once, complete")
w.stop()

# lost events: a tiny inotify queue, the watcher paused while files land
if os.geteuid() == 0:
    knob = "/proc/sys/fs/inotify/max_queued_events"
    old = open(knob).read().strip()
    with open(knob, "w") as f:
        f.write("32")
    try:
        w.start()
    finally:
        with open(knob, "w") as f:
            f.write(old)
    os.makedirs(w.path("training/burst"))
    time.sleep(0.5)
    w.proc.send_signal(signal.SIGSTOP)
    for i in range(300):
        with open(w.path("training/burst/b%03d.json" % i), "wb") as f:
            f.write(b'{"burst": %d}' % i)
    w.proc.send_signal(signal.SIGCONT)
    rc, out, err = w.wait_done()
    t.ok("lost events" in w.log(), "the overflow is noticed and logged", w.log()[-300:])
    burst = [s["filename"] for s in emu.samples() if s["label"] == "burst"]
    t.eq((len(burst), len(set(burst))), (300, 300), "after an overflow every file is sent exactly once")
    t.eq(rc, 0, "and the tree is done")
    w.stop()
else:
    t.ok(True, "# SKIP overflow test needs root to shrink the inotify queue")

# too few inotify watches: a clear error naming the sysctl
if os.geteuid() == 0:
    knob = "/proc/sys/fs/inotify/max_user_watches"
    old = open(knob).read().strip()
    many = os.path.join(root, "many")
    for i in range(40):
        os.makedirs(os.path.join(many, "training", "l%02d" % i))
    with open(knob, "w") as f:
        f.write("20")
    try:
        r = subprocess.run([w.cmd[0], "watch", "-f", "-o", "state=%s/s2" % root, many],
                           capture_output=True, text=True,
                           env=dict(w.env, EI_API_KEY="ei_0123456789abcdef"), timeout=30)
    finally:
        with open(knob, "w") as f:
            f.write(old)
    t.ok(r.returncode == 1 and "max_user_watches" in r.stderr,
         "the watch limit gives a clear error naming the sysctl", r.stderr)
else:
    t.ok(True, "# SKIP the watch limit test needs root")

# the state lives outside the folder; refusing a state dir inside it
t.ok(not any(f == "journal" for _, _, fs in os.walk(w.mnt) for f in fs), "no state inside the watched folder")
r = subprocess.run([w.cmd[0], "watch", "-f", "-o", "state=%s/x" % w.mnt, w.mnt], capture_output=True,
                   text=True, env=dict(w.env, EI_API_KEY="ei_0123456789abcdef"))
t.ok(r.returncode == 1 and "outside" in r.stderr, "a state dir inside the watched folder is refused",
     r.stderr)
t.done()
