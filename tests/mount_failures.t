#!/usr/bin/env python3
"""Refusals: a 400 gives `failed` with the server's words, and retry or a
new write queues the file again; a wrong key pauses without failing
anything and resumes when the key file changes.  (Retries of server
errors are in mount_durability.t.)"""
import os
import signal
import time

from mountlib import GOOD_KEY, Emulator, Mount, Tap, require_fuse, sha256, wait_until, workdir

require_fuse()
t = Tap()

# ---- a 400 reply: failed, with the server's message ----
root = workdir("fail400")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=50")
m.write("training/car/empty.jpg", b"")
m.write("training/car/good.jpg", b"\xff\xd8good")
rc, out, err = m.wait_done()
t.eq(rc, 1, "status exits 1 when something failed")
t.eq(m.xattr("training/car/empty.jpg"), "failed", "the service's 400 gives failed")
t.eq(m.xattr("training/car/empty.jpg", "result"), "refused: File is empty",
     "user.ingest.result holds the server's message")
t.eq(m.xattr("training/car/good.jpg"), "uploaded", "the other file of the request is stored")
rc, out, err = m.status_cmd("--failed", m.mnt)
t.ok("empty.jpg" in out and "File is empty" in out and "good.jpg" not in out,
     "status --failed lists the failed file and why", out)

# setfattr retry re-queues; writing new content also does.
nreq = len(emu.requests())
os.setxattr(m.path("training/car/empty.jpg"), "user.ingest.status", b"retry")
wait_until(lambda: len(emu.requests()) > nreq, 10)
t.ok(len(emu.requests()) > nreq, "setfattr retry sends the file again")
wait_until(lambda: m.xattr("training/car/empty.jpg") == "failed", 10)
m.write("training/car/empty.jpg", b"\xff\xd8now with content")
rc, out, err = m.wait_done("training/car/empty.jpg")
t.eq(m.xattr("training/car/empty.jpg"), "uploaded", "new content after a failure is uploaded")
try:
    os.setxattr(m.path("training/car/good.jpg"), "user.ingest.status", b"uploaded")
    t.ok(False, "other writes to user.ingest.* are refused")
except PermissionError:
    t.ok(True, "other writes to user.ingest.* are refused")
os.setxattr(m.path("training/car/good.jpg"), "user.camera", b"cam1")
t.eq(os.getxattr(m.path("training/car/good.jpg"), "user.camera"), b"cam1",
     "other user xattrs are stored")
m.stop()

# ---- a wrong key: nothing fails; the right key written to the file resumes ----
root = workdir("badkey")
emu = Emulator(root)
m = Mount(root, emu.url, key="ei_wrong", opts="settle=50,backoff=100")
for i in range(5):
    m.write("training/k/%d.json" % i, b'{"i": %d}' % i)
wait_until(lambda: any(r["status"] == 401 for r in emu.requests()), 10)
time.sleep(1.0)
states = {m.xattr("training/k/%d.json" % i) for i in range(5)}
t.ok("failed" not in states and states <= {"pending", "uploading"},
     "a refused key never marks files failed", states)
t.ok("refused the API key" in m.log(), "the refusal is logged", m.log())
t.ok(m.log().count("refused the API key") == 1, "and logged once", m.log())
m.write_key(GOOD_KEY)
rc, out, err = m.wait_done(timeout=20)
t.eq(rc, 0, "the right key in the key file resumes uploads")
t.eq(len(emu.samples()), 5, "all files arrive after the key is fixed")
t.ok("ei_wrong" not in m.log() and GOOD_KEY not in m.log(), "no key in the log")
m.stop()

# ---- a wrong key accepted later: SIGHUP resumes ----
root = workdir("sighup")
emu = Emulator(root)
m = Mount(root, emu.url, key="ei_other", opts="settle=50")
m.write("training/h/a.json", b'{"h": 1}')
wait_until(lambda: any(r["status"] == 401 for r in emu.requests()), 10)
time.sleep(1.5)
t.eq(m.xattr("training/h/a.json"), "pending", "paused on 401: pending, not retried on its own")
n401 = sum(1 for r in emu.requests() if r["status"] == 401)
t.eq(n401, 1, "no requests while paused")
emu.control(api_keys=[GOOD_KEY, "ei_other"])
m.proc.send_signal(signal.SIGHUP)
rc, out, err = m.wait_done(timeout=20)
t.eq(rc, 0, "SIGHUP resumes uploads")
t.ok(os.path.ismount(m.mnt), "and does not unmount")
t.ok("SIGHUP" in m.log(), "the resume is logged", m.log())
m.stop()
t.done()
