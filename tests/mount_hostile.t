#!/usr/bin/env python3
"""Bad input and hostile conditions: odd names, planted symlinks, broken
or hostile replies, TLS, secrets, limits.  Each gets a clear error and
loses nothing."""
import json
import os
import stat
import subprocess
import time

from mountlib import (GOOD_KEY, Emulator, Mount, Tap, require_fuse, sha256, wait_until,
                      workdir)

require_fuse()
t = Tap()

# ---- secrets and permissions ----
root = workdir("hostile")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=20")
os.chmod(m.key_file, 0o644)
m.stop()
m.restart()
t.ok("can be read by other users" in m.log(), "a key file readable by others is warned about")
t.eq(stat.S_IMODE(os.stat(m.spool).st_mode), 0o700, "the spool is 0700")
t.eq(stat.S_IMODE(os.stat(os.path.join(m.spool, "state")).st_mode), 0o700, "its state is 0700")
t.ok(GOOD_KEY not in m.log(), "the key is not in the log")
t.ok(all(GOOD_KEY.encode() not in open(os.path.join(dp, f), "rb").read()
         for dp, _, fs in os.walk(m.spool) for f in fs), "nor anywhere in the spool")

# ---- names of every kind ----
names = ['quote"d.json', "back\\slash.json", "100%.json", "  spaced  out .json",
         "-dash.json", "semi;colon=x.json", "\u00e9t\u00e9 \u65e5\u672c.json",
         "x" * 250 + ".json", "cr\rlf\n.json"]
os.makedirs(m.path("training/names"))
for i, n in enumerate(names):
    m.write("training/names/" + n, b'{"name": %d}' % i)
bad = os.path.join(m.path("training/names").encode(), b"\xff\xfebin.json")
with open(bad, "wb") as f:
    f.write(b'{"name": "not utf-8"}')
rc, out, err = m.wait_done()
t.eq(rc, 0, "files with odd names all upload", out + err)
got = {s["filename"] for s in emu.samples()}
for n in names:
    t.ok(n in got, "name arrives intact: %r" % n[:40], sorted(got))
t.eq(os.getxattr(bad, "user.ingest.status"), b"uploaded", "a name that is not UTF-8 uploads")
t.eq(len(emu.samples()), len(names) + 1, "one sample each")
m.write("training/names/forged\ningestfs: error: all is lost.json", b"")
m.wait_done()
t.ok("\ningestfs: error: all is lost" not in m.log() and "\\x0aingestfs" in m.log(),
     "a file name cannot forge a log line", m.log()[-300:])

# ---- symlinks planted in the spool never lead out ----
m.stop()
os.symlink("/etc/passwd", os.path.join(m.spool, "files", "training", "passwd.json"))
os.symlink("/etc", os.path.join(m.spool, "files", "training", "etc"))
m.restart()
time.sleep(1)
t.ok(all("passwd" not in s["filename"] for s in emu.samples()), "a planted symlink is never uploaded")
t.ok(os.path.islink(m.path("training/passwd.json")),
     "it shows as the link it is (the reader's kernel follows it, as on a local disk)")
m.write("training/etc.json", b'{"x": 1}')       # the daemon never walks through training/etc
rc, out, err = m.status_cmd("--json", m.path("training"))
listed = {os.path.relpath(f["path"], m.mnt): f for f in json.loads(out)["files"]}
t.ok(not any(p.startswith("training/etc/") for p in listed), "status never walks through it",
     sorted(listed))
t.eq((listed.get("training/passwd.json") or {}).get("status"), "ignored",
     "and lists it as an ignored link", listed.get("training/passwd.json"))

# ---- broken and hostile replies ----
def broken(body, status=200, repeat=1, **extra):
    emu.control(reply_status=status, reply_body=body, reply_repeat=repeat, **extra)


m.stop()
m = Mount(root, emu.url, opts="settle=20,backoff=100,backoff_max=300,timeout=2,reply_timeout=4",
          mnt=os.path.join(root, "mnt2"), spool=os.path.join(root, "spool2"))
# A 200 that does not say what became of the file is final, as the official
# clients treat it; a retry then learns it was stored (a duplicate of our
# own copy).  A reply that breaks off is retried.
cases = [("not JSON", dict(body="<html>oops</html>"), "failed"),
         ("JSON of the wrong shape", dict(body='{"files": "nope", "success": 1}'), "failed"),
         ("success:false in a 200", dict(body='{"success": false, "error": "Project full"}'),
          "failed"),
         ("a huge reply", dict(body="x", repeat=3 * 1024 * 1024), "retried"),
         ("an empty reply", dict(body=""), "failed"),
         ("a trickled reply", dict(body='{"success": true}', trickle_ms=2500), "retried")]
for i, (what, kw, fate) in enumerate(cases):
    broken(kw["body"], repeat=kw.get("repeat", 1), trickle_ms=kw.get("trickle_ms", 0))
    rel = "training/r/reply%d.json" % i
    m.write(rel, b'{"case": %d}' % i)
    if fate == "retried":
        ok = wait_until(lambda: "next attempt" in m.xattr(rel, "result"), 20)
        t.ok(ok, "%s: retried, not trusted (%s)" % (what, m.xattr(rel, "result")[:70]))
    else:
        ok = wait_until(lambda: m.xattr(rel) == "failed", 20)
        t.ok(ok and "HTTP 200" in m.xattr(rel, "result"),
             "%s: failed with the service's words, not retried for ever (%s)"
             % (what, m.xattr(rel, "result")[:70]))
    emu.control(reply_status=0, trickle_ms=0)
    if fate == "failed":
        os.setxattr(m.path(rel), "user.ingest.status", b"retry")
    rc = m.wait_done(rel)[0]
    t.eq((rc, m.xattr(rel)), (0, "uploaded"), "%s: uploaded once the service behaves" % what)
stored = [s for s in emu.samples() if s["filename"].startswith("reply")]
t.eq(len(stored), len(cases), "each stored once", [s["filename"] for s in stored])
broken('{"success": false, "error": "Bad things", "files": []}', status=400)
m.write("training/r/final400.json", b'{"final": 400}')
m.wait_done("training/r/final400.json")
t.eq(m.xattr("training/r/final400.json", "result"), "HTTP 400: Bad things",
     "a 400 that lists no files fails them with its message")
emu.control(reply_status=0)
t.ok(os.path.ismount(m.mnt), "the daemon survived every reply")
m.stop()

# ---- TLS ----
cert, key = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")
r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], capture_output=True)
if r.returncode != 0:
    t.ok(False, "openssl made a test certificate", r.stderr)
else:
    tls = Emulator(root, "--tls-cert", cert, "--tls-key", key)
    m = Mount(root, tls.url, opts="settle=20,backoff=200", mnt=os.path.join(root, "mnt3"),
              spool=os.path.join(root, "spool3"))
    m.write("training/tls/a.json", b'{"tls": 1}')
    ok = wait_until(lambda: "next attempt" in m.xattr("training/tls/a.json", "result"), 10)
    t.ok(ok and "certificate" in m.xattr("training/tls/a.json", "result").lower(),
         "an unknown certificate is refused by default", m.xattr("training/tls/a.json", "result"))
    m.stop()
    m = Mount(root, tls.url, opts="settle=20,cafile=" + cert, mnt=os.path.join(root, "mnt3"),
              spool=os.path.join(root, "spool3"))
    t.eq(m.wait_done()[0], 0, "cafile= trusts it")
    m.stop()
    m = Mount(root, tls.url, opts="settle=20,insecure", mnt=os.path.join(root, "mnt4"),
              spool=os.path.join(root, "spool4"))
    m.write("training/tls/b.json", b'{"tls": 2}')
    t.eq(m.wait_done()[0], 0, "insecure skips verification")
    t.ok("not verified" in m.log(), "and says so in the log", m.log())
    m.stop()

# ---- limits ----
m = Mount(root, emu.url, opts="settle=20", mnt=os.path.join(root, "mnt5"),
          spool=os.path.join(root, "spool5"))
deep = "training/deep/" + "/".join("d%02d" % i for i in range(64)) + "/bottom.json"
m.write(deep, b'{"depth": 64}')
block = os.urandom(1 << 20)
for name, size in (("exact.mp4", 100 * 1024 * 1024), ("over.mp4", 100 * 1024 * 1024 + 1)):
    with open(m.path("training/big/" + name) if os.path.isdir(m.path("training/big"))
              else (os.makedirs(m.path("training/big")) or m.path("training/big/" + name)), "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
        f.write(b"\0" * (size & 0xFFFFF))
rc, out, err = m.wait_done(timeout=300)
t.eq(m.xattr(deep), "uploaded", "a file 64 folders deep uploads")
t.eq([s["label"] for s in emu.samples() if s["filename"] == "bottom.json"], ["deep"],
     "with the label of its first folder")
t.eq(m.xattr("training/big/exact.mp4"), "uploaded", "a file of exactly 100 MB uploads")
t.eq(m.xattr("training/big/over.mp4"), "failed", "100 MB + 1 byte fails locally")
t.ok("limit" in m.xattr("training/big/over.mp4", "result"), "with a clear result",
     m.xattr("training/big/over.mp4", "result"))
t.ok(all(s["filename"] != "over.mp4" for s in emu.samples()), "and is never sent")
d = m.path("anomaly/huge")
os.makedirs(d)
n = int(os.environ.get("INGESTFS_MANY_FILES", "100000"))
for i in range(n):
    with open(os.path.join(d, "f%06d.tmp" % i), "wb"):
        pass
t.eq(len(os.listdir(d)), n, "%d files in one folder" % n)
t.eq(m.xattr("anomaly/huge", "summary"),
     "uploaded=0 duplicate=0 pending=0 uploading=0 failed=0 ignored=%d" % n,
     "and the folder summary counts them")
t.eq(m.stop(), 0, "clean unmount")
t.done()
