#!/usr/bin/env python3
"""Retention (ingestfs(1) RETENTION): keep= removes uploaded files once
they are that old, max_spool= the oldest first past a size; pending and
failed files are never removed; when only they are left over the limit,
new files get ENOSPC and the log says why, once; the folder summaries
count what is in the mount and the lifetime totals what ever went, across
restarts; a kill -9 in the middle of removals loses and re-sends nothing."""
import errno
import os
import time

from mountlib import Emulator, Mount, Tap, require_fuse, wait_until, workdir

require_fuse()
t = Tap()
root = workdir("retention")
emu = Emulator(root)


def listing(m, rel="training/cam"):
    try:
        return sorted(os.listdir(m.path(rel)))
    except FileNotFoundError:
        return []


def lifetime(m):
    text = os.getxattr(m.mnt, "user.ingest.lifetime").decode()
    return dict(kv.split("=") for kv in text.split())


def summary(m, rel="training"):
    text = os.getxattr(m.path(rel), "user.ingest.summary").decode()
    return {k: int(v) for k, v in (kv.split("=") for kv in text.split())}


# ---- keep=: uploaded files go once they are that old ----
m = Mount(os.path.join(root, "k"), emu.url, opts="settle=50,keep=2s",
          spool=os.path.join(root, "k-spool"))
os.makedirs(m.path("training/cam"))
for i in range(5):
    m.write("training/cam/old%d.json" % i, b'{"old": %d}' % i)
m.wait_done()
t.eq(listing(m), ["old%d.json" % i for i in range(5)], "uploaded files are there at first")
emu.control(reply_status=400, reply_body='{"success": false, "error": "no such label"}')
m.write("training/cam/failed.json", b'{"failed": 1}')
m.wait_done("training/cam/failed.json")
emu.control(reply_status=0, fail_rate=1.0)
m.write("training/cam/waiting.json", b'{"waiting": 1}')
t.ok(wait_until(lambda: not any(n.startswith("old") for n in listing(m)), 20),
     "keep=2s: they leave the mount a few seconds after upload", listing(m))
t.eq(m.xattr("training/cam/failed.json"), "failed", "a failed file stays")
t.eq(m.xattr("training/cam/waiting.json"), "pending", "and so does one waiting for its upload")
s = summary(m)
t.eq((s["uploaded"], s["failed"], s["pending"]), (0, 1, 1),
     "the summary counts what is in the mount (%s)" % s)
life = lifetime(m)
t.eq((life["uploaded"], life["failed"]), ("5", "1"),
     "the lifetime totals count what ever went (%s)" % life)
emu.control(fail_rate=0.0)
m.wait_done("training/cam/waiting.json")
t.ok(wait_until(lambda: "waiting.json" not in listing(m), 20),
     "once uploaded, it goes too", listing(m))
n = len(emu.requests())
t.eq(m.stop(), 0, "unmounts cleanly")
m.start()
t.eq(lifetime(m)["uploaded"], "6", "the lifetime totals survive a restart")
t.eq(listing(m), ["failed.json"], "and what was removed stays removed")
time.sleep(1.5)
t.eq(len(emu.requests()), n, "nothing is sent again")
m.stop()

# ---- max_spool=: the oldest uploaded files first, pending never ----
m = Mount(os.path.join(root, "s"), emu.url, opts="settle=50,max_spool=3K",
          spool=os.path.join(root, "s-spool"))
os.makedirs(m.path("training/cam"))
for i in range(8):
    m.write("training/cam/%d.json" % i, b"[" + b"1," * 250 + b"1]")  # 503 bytes
    m.wait_done("training/cam/%d.json" % i)
    time.sleep(0.05)
t.ok(wait_until(lambda: len(listing(m)) <= 6, 20), "past 3 KiB the spool shrinks", listing(m))
kept = listing(m)
t.eq(kept, ["%d.json" % i for i in range(2, 8)], "to the newest files that fit")
t.ok(sum(os.path.getsize(m.path("training/cam/" + f)) for f in kept) <= 3072,
     "within max_spool")

# ---- only unsent files left: ENOSPC, one line, nothing lost ----
emu.control(fail_rate=1.0)
blocked = None
for i in range(12):
    try:
        m.write("training/cam/p%d.json" % i, b"[" + b"2," * 250 + b"2]")
    except OSError as e:
        blocked = (i, e.errno)
        break
    time.sleep(1.2)  # retention runs about once a second
t.ok(blocked is not None and blocked[1] == errno.ENOSPC,
     "once only unsent files are left past max_spool, new files get ENOSPC", blocked)
pend = [f for f in listing(m) if f.startswith("p")]
t.ok(pend and all(m.xattr("training/cam/" + f) == "pending" for f in pend),
     "every file written before is still there, pending (%d)" % len(pend))
t.ok(all(open(m.path("training/cam/" + f), "rb").read() == b"[" + b"2," * 250 + b"2]"
         for f in pend), "and whole")
t.eq(m.log().count("new files get ENOSPC"), 1, "the log says why, once", m.log()[-600:])
emu.control(fail_rate=0.0)
m.wait_done()


def can_write():
    try:
        m.write("training/cam/after.json", b'{"after": 1}')
        return True
    except OSError:
        return False


t.ok(wait_until(can_write, 20), "once they are uploaded and removed, writes work again")
t.ok("has room again" in m.log(), "the log says so")
t.eq(m.stop(), 0, "unmounts cleanly")

# ---- kill -9 while retention removes files ----
m = Mount(os.path.join(root, "c"), emu.url, opts="settle=50,keep=1s",
          spool=os.path.join(root, "c-spool"))
for d in range(4):
    for i in range(150):
        m.write("training/l%d/%d.json" % (d, i), b'{"n": %d}' % (d * 1000 + i))
m.wait_done(timeout=120)
sent = len(emu.samples())
t.ok(wait_until(lambda: sum(len(listing(m, "training/l%d" % d)) for d in range(4)) < 500, 20),
     "removal under way")
m.kill9()
m.start()
m.wait_done(timeout=60)
time.sleep(1.5)
left = sum(len(listing(m, "training/l%d" % d)) for d in range(4))
s = summary(m)
t.eq(s["uploaded"], left, "after kill -9 the summary counts exactly the files left (%d)" % left)
t.eq(s["pending"] + s["failed"], 0, "none is pending or failed")
t.eq(len(emu.samples()), sent, "nothing was sent again")
t.ok(wait_until(lambda: sum(len(listing(m, "training/l%d" % d)) for d in range(4)) == 0, 30),
     "and the rest go after the restart")
t.eq(summary(m)["uploaded"], 0, "the summary follows")
t.eq(m.stop(), 0, "unmounts cleanly")
t.done()
