#!/usr/bin/env python3
"""Nothing lost: kill -9 at awkward moments, an unreachable service, an
unmount with work left, a damaged journal, a full spool disk, and a
service that fails half the time.  Every sample ends in the dataset once."""
import errno
import os
import time

from mountlib import (Emulator, Mount, Tap, free_port, require_fuse, sha256, tmpfs, wait_until,
                      workdir)

require_fuse()
t = Tap()


def stored_once(emu, data, name):
    """Each of DATA's contents stored exactly once, with its label."""
    counts = {}
    for s in emu.samples():
        counts.setdefault(s["sha256"], []).append(s)
    bad = [rel for rel, d in data.items()
           if len(counts.get(sha256(d), [])) != 1
           or counts[sha256(d)][0]["label"] != rel.split("/")[1]]
    return t.ok(not bad and len(emu.samples()) == len(data), name,
                "wrong: %r; stored %d for %d files" % (bad[:5], len(emu.samples()), len(data)))


def write_set(m, prefix, n, labels=3):
    data = {}
    for i in range(n):
        rel = "training/%s%d/f%03d.json" % (prefix, i % labels, i)
        data[rel] = b'{"set": "%s", "i": %d}' % (prefix.encode(), i)
        m.write(rel, data[rel])
    return data


# ---- kill -9 while a batch is in flight ----
root = workdir("kill")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=20")
emu.control(hold=True)
data = write_set(m, "k", 12)
wait_until(lambda: m.xattr(list(data)[0]) == "uploading", 10)
t.eq(m.xattr(list(data)[0]), "uploading", "a batch is in flight")
m.kill9()
emu.control(hold=False)
time.sleep(0.5)
m.restart()
rc, out, err = m.wait_done()
t.eq(rc, 0, "after kill -9 and a new mount, everything ends uploaded", out + err)
stored_once(emu, data, "kill -9 mid-batch: each file stored exactly once")
t.ok(all(m.xattr(r) == "uploaded" for r in data),
     "a duplicate reply for our own earlier attempt counts as uploaded")
m.stop()

# ---- kill -9 right after close() returned ----
root = workdir("closed")
emu = Emulator(root)
emu.control(hold=True)
m = Mount(root, emu.url, opts="settle=60000")
data = write_set(m, "c", 20)
m.kill9()
emu.control(hold=False)
m.restart()
rc, out, err = m.wait_done()
t.eq(rc, 0, "files whose close() returned before kill -9 are uploaded after it", out + err)
stored_once(emu, data, "closed before the crash: each stored once")
m.stop()

# ---- kill -9 while a file is open for writing ----
root = workdir("interrupted")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=20")
m.write("training/w/done.json", b'{"done": 1}')
m.wait_done()
f = open(m.path("training/w/half.json"), "wb")
f.write(b'{"half": ')
f.flush()
m.kill9()
try:
    f.close()
except OSError:
    pass
m.restart()
time.sleep(0.5)
t.eq(m.xattr("training/w/half.json"), "failed", "a file open for writing at the crash is failed")
t.eq(m.xattr("training/w/half.json", "result"), "interrupted while writing",
     "with the reason")
t.eq(m.xattr("training/w/done.json"), "uploaded", "an uploaded file stays uploaded")
t.ok(all(s["filename"] != "half.json" for s in emu.samples()), "the half file was never sent")
t.eq(len(emu.samples()), 1, "and nothing was sent again")
with open(m.path("training/w/half.json"), "wb") as f:
    f.write(b'{"half": "now whole"}')
m.wait_done()
t.eq(m.xattr("training/w/half.json"), "uploaded", "a new write queues it again")
m.stop()

# ---- the service is down at mount time ----
root = workdir("down")
port = free_port()
m = Mount(root, "http://127.0.0.1:%d" % port, opts="settle=20,backoff=100,backoff_max=500")
data = write_set(m, "d", 9)
time.sleep(1)
rel0 = list(data)[0]
t.eq(m.xattr(rel0), "pending", "with the service down, files stay pending")
t.ok("next attempt at" in m.xattr(rel0, "result"), "the result says when the next try is",
     m.xattr(rel0, "result"))
emu = Emulator(root, port=port)
rc, out, err = m.wait_done()
t.eq(rc, 0, "once the service is up, everything is uploaded", out + err)
stored_once(emu, data, "service down at mount: each file stored once")
m.stop()

# ---- unmount with work left, then a new mount ----
root = workdir("unmount")
emu = Emulator(root)
emu.control(rate_limit_rate=1.0, retry_after=60)
m = Mount(root, emu.url, opts="settle=20")
data = write_set(m, "u", 10)
wait_until(lambda: "next attempt" in m.xattr(list(data)[0], "result"), 10)
t.eq(m.stop(), 0, "unmount with pending files exits cleanly")
t.ok("10 file(s) not yet uploaded" in m.log(), "and says how many are left", m.log())
emu.control(rate_limit_rate=0.0)
m.restart()
rc, out, err = m.wait_done()
t.eq(rc, 0, "the next mount uploads them")
stored_once(emu, data, "after unmount and remount: each stored once")
m.stop()

# ---- a stalled service: a send without progress times out and is retried ----
# The body must be larger than what the sockets buffer, or it is "sent"
# before the service reads a byte of it.
root = workdir("stall")
emu = Emulator(root)
emu.control(stall_ms=30000)
m = Mount(root, emu.url, opts="settle=20,timeout=1,backoff=100,backoff_max=200")
big = os.urandom(40 << 20)
m.write("training/s/a.mp4", big)
ok = wait_until(lambda: "next attempt" in m.xattr("training/s/a.mp4", "result"), 20)
t.ok(ok and "while sending" in m.xattr("training/s/a.mp4", "result"),
     "a request that stops moving while sending times out and is retried",
     m.xattr("training/s/a.mp4", "result"))
emu.control(stall_ms=0)
rc, out, err = m.wait_done(timeout=60)
t.eq(rc, 0, "and goes up once the service answers again")
m.stop()

# ---- a slow answer is not a stall: waiting for the reply is no resend ----
root = workdir("slow")
emu = Emulator(root)
emu.control(delay_ms=4000)
m = Mount(root, emu.url, opts="settle=20,timeout=1,backoff=100,allow_duplicates")
m.write("training/slow/a.json", b'{"slow": 1}')
rc, out, err = m.wait_done(timeout=30)
t.eq((rc, m.xattr("training/slow/a.json")), (0, "uploaded"),
     "a reply 4 s after the request, with timeout=1: uploaded")
t.eq(len(emu.requests()), 1, "sent once, never again while the service was answering",
     emu.requests())
t.eq(len(emu.samples()), 1, "stored once even with allow_duplicates")
m.stop()
emu.control(delay_ms=3000)
m = Mount(root, emu.url, opts="settle=20,timeout=1,reply_timeout=1,backoff=100,backoff_max=200",
          spool=os.path.join(root, "spool2"), mnt=os.path.join(root, "mnt2"))
m.write("training/slow/b.json", b'{"slow": 2}')
ok = wait_until(lambda: "no reply within 1 s" in m.xattr("training/slow/b.json", "result"), 15)
t.ok(ok, "past reply_timeout= the request is given up and retried",
     m.xattr("training/slow/b.json", "result"))
emu.control(delay_ms=0)
rc, out, err = m.wait_done(timeout=30)
t.eq((rc, m.xattr("training/slow/b.json"), len([x for x in emu.samples()
                                                 if x["filename"] == "b.json"])),
     (0, "uploaded", 1), "then uploaded, stored once (the resend was refused as ours)")
m.stop()

# ---- a damaged journal ----
root = workdir("journal")
port = free_port()
emu = Emulator(root, port=port)
m = Mount(root, emu.url, opts="settle=20,backoff=100,backoff_max=300")
done = write_set(m, "j", 6)
m.wait_done()
emu.stop()
pending = write_set(m, "p", 6)
time.sleep(0.5)
m.stop()
size = os.path.getsize(m.journal())
with open(m.journal(), "r+b") as f:
    f.truncate(size - 7)
    f.seek(0, 2)
    f.write(b"\x00\xffgarbage line\nQ 1 2 3\n")
emu.start()
m.restart()
rc, out, err = m.wait_done()
t.eq(rc, 0, "a truncated, garbled journal is recovered from", m.log())
t.ok("damaged line" in m.log(), "and the damage is logged", m.log())
stored_once(emu, dict(done, **pending), "each file stored once despite the damage")
m.stop()
with open(m.journal(), "wb") as f:
    f.write(b"\x89PNG not a journal at all")
m.restart()
rc, out, err = m.wait_done()
t.eq(rc, 0, "a journal that is not one is set aside; the spool decides")
t.ok(os.path.exists(os.path.join(os.path.dirname(m.journal()), "journal.bad")), "the bad journal is kept")
stored_once(emu, dict(done, **pending), "nothing stored twice after rebuilding from the spool")
m.stop()
# A journal too big to replay in memory (sparse, 3 GiB: past any share of
# memory the daemon allows itself) is set aside the same way.
os.unlink(os.path.join(os.path.dirname(m.journal()), "journal.bad"))
with open(m.journal(), "r+b") as f:
    f.truncate(3 << 30)
m.restart()
rc, out, err = m.wait_done()
t.eq(rc, 0, "a journal too big to replay is set aside; the spool decides", m.log())
t.ok("too big to replay in memory" in m.log(), "and the log says why", m.log())
t.ok(os.path.exists(os.path.join(os.path.dirname(m.journal()), "journal.bad")), "it is kept")
t.ok(os.path.getsize(m.journal()) < 1 << 20, "a new journal is written")
stored_once(emu, dict(done, **pending), "nothing stored twice after rebuilding again")
m.stop()

# ---- 300 files against a service that fails half the time ----
root = workdir("faults")
emu = Emulator(root, "--fail-rate", "0.3", "--drop-rate", "0.1", "--rate-limit-rate", "0.1",
               "--fail-after-store-rate", "0.05", "--drop-after-store-rate", "0.05",
               "--retry-after", "1", "--seed", "11")
m = Mount(root, emu.url, opts="settle=50,backoff=100,backoff_max=1000,batch=10")
data = write_set(m, "f", 300, labels=6)
rc, out, err = m.wait_done(timeout=180)
t.eq(rc, 0, "with 30% 500s, 10% drops and 10% 429s, all 300 files end uploaded", out + err)
stored_once(emu, data, "each of 300 files stored exactly once, right bytes and label")
faults = {r.get("fault") for r in emu.requests()}
t.ok({"fail", "drop", "rate_limit", "fail_after_store"} <= faults, "faults really happened",
     faults)
m.stop()

# ---- a full spool disk ----
if os.geteuid() != 0:
    t.ok(True, "# SKIP a full spool disk needs root to mount a small tmpfs")
else:
    root = workdir("enospc")
    emu = Emulator(root)
    with tmpfs(root, "4m") as spool:
        m = Mount(root, emu.url, opts="settle=20", spool=os.path.join(spool, "s"))
        kept = write_set(m, "s", 5)
        m.wait_done()
        got = None
        os.mkdir(m.path("training/big"))
        try:
            with open(m.path("training/big/huge.wav"), "wb") as f:
                for _ in range(64):
                    f.write(os.urandom(256 * 1024))
        except OSError as e:
            got = e.errno
        t.eq(got, errno.ENOSPC, "the writer gets ENOSPC")
        wait_until(lambda: m.xattr("training/big/huge.wav") == "failed", 5)
        t.eq(m.xattr("training/big/huge.wav"), "failed", "the cut-short file is not uploaded")
        t.ok("No space left" in m.xattr("training/big/huge.wav", "result"), "and says why",
             m.xattr("training/big/huge.wav", "result"))
        os.unlink(m.path("training/big/huge.wav"))
        more = write_set(m, "t", 3)
        rc, out, err = m.wait_done()
        t.eq(rc, 0, "with space again, new files upload", out + err)
        m.stop()
        m.restart()
        rc, out, err = m.wait_done()
        stored_once(emu, dict(kept, **more), "nothing accepted was lost or sent twice")
        m.stop()
t.done()
