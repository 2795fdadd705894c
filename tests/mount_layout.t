#!/usr/bin/env python3
"""The mount behaves like a local disk below the categories, and enforces
the layout: a fixed root (but for info.labels and the trash), no device
nodes, no labels that could break a header.  Renames and removals change
what is uploaded; links never make a file go twice."""
import errno
import os
import stat
import subprocess
import time

from mountlib import Emulator, Mount, Tap, require_fuse, sha256, wait_until, workdir

require_fuse()
t = Tap()
root = workdir("layout")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=300")


def fails_with(fn, code, name):
    try:
        fn()
    except OSError as e:
        return t.eq(errno.errorcode.get(e.errno), errno.errorcode[code], name)
    return t.ok(False, name, "it succeeded")


t.eq(sorted(os.listdir(m.mnt)), [".Trash", "anomaly", "testing", "training"],
     "the root holds the categories, and a shared trash")
t.eq(stat.S_IMODE(os.stat(m.path(".Trash")).st_mode), 0o1777, "the trash is sticky, for everyone")
fails_with(lambda: os.mkdir(m.path("other")), errno.EPERM, "mkdir at the root: EPERM")
fails_with(lambda: open(m.path("x.json"), "w"), errno.EPERM, "a file at the root: EPERM")
fails_with(lambda: os.rmdir(m.path("training")), errno.EPERM, "rmdir of a category: EPERM")
fails_with(lambda: os.rename(m.path("training"), m.path("testing/t")), errno.EPERM,
           "renaming a category: EPERM")
fails_with(lambda: os.mkdir(m.path("training/bad\nlabel")), errno.EINVAL,
           "a label with a newline: EINVAL")
fails_with(lambda: os.mkdir(m.path("training/bad\x01label")), errno.EINVAL,
           "a label with a control character: EINVAL")
os.mkdir(m.path("training/car"))
fails_with(lambda: os.symlink("x", m.path("link.json")), errno.EPERM, "a symlink at the root: EPERM")
m.write("training/car/real.json", b'{"a": 1}')
fails_with(lambda: os.mkfifo(m.path("training/car/fifo")), errno.EPERM, "fifo: EPERM")
fails_with(lambda: os.mknod(m.path("training/car/null"), 0o600 | stat.S_IFCHR, os.makedev(1, 3)),
           errno.EPERM, "device node: EPERM")
fails_with(lambda: os.rename(m.path("training/car"), m.path("training/ca\rr")), errno.EINVAL,
           "renaming a label to a name with CR: EINVAL")

# Ordinary operations on a local disk.
p = m.path("training/car/ops.csv")
with open(p, "wb") as f:
    f.write(b"a,b\n1,2\n3,4\n")
    f.flush()
    os.fsync(f.fileno())
os.truncate(p, 8)
with open(p, "rb") as f:
    t.eq(f.read(), b"a,b\n1,2\n", "write, fsync, truncate, read")
os.chmod(p, 0o640)
t.eq(stat.S_IMODE(os.stat(p).st_mode), 0o640, "chmod")
os.utime(p, (1000000000, 1000000000))
t.eq(int(os.stat(p).st_mtime), 1000000000, "utimens")
os.mkdir(m.path("training/car/sub"))
os.rename(p, m.path("training/car/sub/ops.csv"))
t.ok(os.path.exists(m.path("training/car/sub/ops.csv")), "rename into a subfolder")
t.ok("ops.csv" in os.listdir(m.path("training/car/sub")), "readdir")
sv = os.statvfs(m.mnt)
t.ok(sv.f_blocks > 0, "statfs")
with open(m.path("training/car/app.json"), "ab") as f:
    f.write(b'{"x"')
with open(m.path("training/car/app.json"), "ab") as f:
    f.write(b": 2}")
t.eq(open(m.path("training/car/app.json"), "rb").read(), b'{"x": 2}', "append")

# What renames and removals mean for uploads (settle=300 keeps them pending).
m.write("training/bus/moved.json", b'{"moved": 1}')
os.mkdir(m.path("training/truck"))
os.rename(m.path("training/bus/moved.json"), m.path("training/truck/moved.json"))
m.write("training/bus/cancel.json", b'{"cancel": 1}')
os.unlink(m.path("training/bus/cancel.json"))
m.write("training/van/renamed-dir.json", b'{"dir": 1}')
os.rename(m.path("training/van"), m.path("training/lorry"))
os.rmdir(m.path("training/bus"))
fails_with(lambda: os.rmdir(m.path("training/car")), errno.ENOTEMPTY, "rmdir of a full folder")
rc, out, err = m.wait_done()
t.eq(rc, 0, "all uploaded", out + err)
samples = {s["filename"]: s for s in emu.samples()}
t.eq(samples.get("moved.json", {}).get("label"), "truck", "a pending file moved to another label goes with the new label")
t.ok("cancel.json" not in samples, "rm of a pending file cancels it")
t.eq(samples.get("renamed-dir.json", {}).get("label"), "lorry", "renaming a label folder relabels its pending files")
t.eq(samples.get("ops.csv", {}).get("sha256"), sha256(b"a,b\n1,2\n"), "truncated content is what is sent")
t.eq(samples.get("app.json", {}).get("sha256"), sha256(b'{"x": 2}'), "appended content is sent once")
t.eq(sum(1 for s in emu.samples() if s["filename"] == "app.json"), 1, "append within settle: one upload")

# An uploaded file moved to another label is sent again there.
os.mkdir(m.path("testing/car"))
os.rename(m.path("training/car/real.json"), m.path("testing/car/real.json"))
m.wait_done()
t.ok(any(r["path"] == "/api/testing/files" for r in emu.requests()),
     "moving an uploaded file to another category re-queues it")
t.eq(m.xattr("testing/car/real.json"), "duplicate",
     "the service already holds those bytes: duplicate")

# ls -l of a folder with many files answers promptly.
d = m.path("anomaly/many")
os.mkdir(d)
for i in range(2000):
    with open(os.path.join(d, "f%05d.tmp" % i), "wb"):
        pass
start = time.monotonic()
r = subprocess.run(["ls", "-l", d], capture_output=True)
t.ok(r.returncode == 0 and r.stdout.count(b"\n") >= 2000, "ls -l of 2000 files works")
t.diag("ls -l of 2000 files took %.3f s" % (time.monotonic() - start))
m.stop()
t.done()
