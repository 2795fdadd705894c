#!/usr/bin/env python3
"""The state index (doc/internals.md "State on disk"): files whose upload
is over leave memory (a clean unmount puts them all in the index) and
everything still works on them: status, results, summaries, a folder
renamed, a retry of a folder, a file removed; a start after kill -9 scans
the spool against the index, forgetting files gone and sending nothing
twice."""
import os
import sqlite3
import time

from mountlib import Emulator, Mount, Tap, require_fuse, workdir

require_fuse()
t = Tap()
root = workdir("history")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=50")


def rows():
    c = sqlite3.connect("file:%s?mode=ro" % os.path.join(m.spool, "state", "index.db"), uri=True)
    try:
        return dict(c.execute("select path, state from files").fetchall())
    finally:
        c.close()


def summary(rel=""):
    text = os.getxattr(m.path(rel) if rel else m.mnt, "user.ingest.summary").decode()
    return {k: int(v) for k, v in (kv.split("=") for kv in text.split())}


for i in range(20):
    m.write("training/a/day1/%02d.json" % i, b'{"a": %d}' % i)
m.write("testing/b/keep.json", b'{"b": 1}')
m.wait_done()
emu.control(reply_status=400, reply_body='{"success": false, "error": "not today"}')
m.write("training/a/day1/bad.json", b'{"bad": 1}')
m.wait_done("training/a/day1/bad.json")
emu.control(reply_status=0)
sent = len(emu.requests())
t.eq(m.stop(), 0, "a clean unmount")
indexed = rows()
t.eq(len(indexed), 22, "puts every file whose upload is over in the index", sorted(indexed))
m.start()
t.eq(m.xattr("training/a/day1/07.json"), "uploaded", "a file's status comes from the index")
t.eq(m.xattr("training/a/day1/07.json", "result"), "07", "and its result")
t.ok("not today" in m.xattr("training/a/day1/bad.json", "result"), "a failure's reason too")
t.eq(summary("training"), dict(uploaded=20, duplicate=0, pending=0, uploading=0, failed=1,
                               ignored=0), "folder summaries count what the index holds")

os.rename(m.path("training/a/day1"), m.path("training/a/c"))
t.eq(m.xattr("training/a/c/07.json"), "uploaded", "a folder renamed: its files keep their status")
t.eq(summary("training/a/c")["uploaded"], 20, "the new folder counts them")
t.ok(not os.path.exists(m.path("training/a/day1")), "(and the old one is gone)")
os.setxattr(m.path("training/a/c"), "user.ingest.status", b"retry")
rc, out, err = m.wait_done("training/a/c/bad.json")
# The emulator stored it before it said 400: now it is a duplicate.
t.eq(m.xattr("training/a/c/bad.json"), "duplicate", "a retry of the folder sends its failed file")
os.unlink(m.path("training/a/c/00.json"))
t.eq(summary("training/a/c")["uploaded"], 19, "a file removed counts no more")
time.sleep(1)
t.eq(len(emu.requests()), sent + 1, "only the retried file was sent")

# kill -9, and a file deleted in the spool behind our back while down
t.eq(m.stop(), 0, "unmounts")
m.start()
m.write("training/a/c/new.json", b'{"new": 1}')
m.wait_done()
sent = len(emu.requests())
m.kill9()
os.unlink(os.path.join(m.spool, "files", "training/a/c/05.json"))
m.start()
m.wait_done()
names = sorted(os.listdir(m.path("training/a/c")))
s = summary("training/a/c")
t.eq(s["uploaded"] + s["duplicate"], len(names),
     "after kill -9 the summary counts exactly the files there (%d)" % len(names))
t.ok("05.json" not in names and "new.json" in names, "the deleted one is forgotten", names)
time.sleep(1)
t.eq(len(emu.requests()), sent, "and nothing was sent again")
t.eq(m.stop(), 0, "unmounts cleanly")
t.ok("training/a/c/05.json" not in rows() and "training/a/c/00.json" not in rows(),
     "the index keeps no row of a file that is gone")
t.done()
