#!/usr/bin/env python3
"""Real writers: rsync, cp, tar, mv, file-manager and camera patterns.
Each must give exactly one upload of the complete file, with the right
label, and nothing from temporary or junk files."""
import hashlib
import os
import shutil
import subprocess
import time

from mountlib import Emulator, Mount, Tap, require_fuse, sha256, wait_until, workdir

require_fuse()
t = Tap()
root = workdir("writers")
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=300")
src = os.path.join(root, "src")


def make_tree(base, n=6, depth=1, seed="x"):
    files = {}
    for i in range(n):
        sub = os.path.join(*["d%d" % k for k in range(depth)]) if depth else ""
        rel = os.path.join(sub, "s%s%02d.json" % (seed, i))
        data = b'{"seed": "%s", "i": %d, "pad": "%s"}' % (seed.encode(), i, b"p" * (i * 37))
        p = os.path.join(base, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        files[rel] = data
    return files


def check_once(files, label, category="training", name=""):
    """Every file stored exactly once with LABEL, and nothing else of ours."""
    by_hash = {}
    for s in emu.samples():
        by_hash.setdefault(s["sha256"], []).append(s)
    bad = [r for r, d in files.items()
           if [(s["category"], s["label"]) for s in by_hash.get(sha256(d), [])] != [(category, label)]]
    return t.ok(not bad, "%s: each file stored once as %s/%s" % (name, category, label),
                "wrong: %r" % bad[:5])


def requests_now():
    return len(emu.requests())


def status_all(base, rels):
    return {m.xattr(os.path.join(base, r)) for r in rels}


# ---- rsync -a: temporary .name.XXXXXX, then rename ----
files = make_tree(os.path.join(src, "rs"), 8, depth=0, seed="r")
r = subprocess.run(["rsync", "-a", os.path.join(src, "rs") + "/", m.path("training/rsync") + "/"],
                   capture_output=True, text=True)
t.eq(r.returncode, 0, "rsync -a into the mount", r.stderr)
t.eq(m.wait_done()[0], 0, "rsync -a: all uploaded")
check_once(files, "rsync", name="rsync -a")
t.ok(not any(s["filename"].startswith(".") for s in emu.samples()), "no rsync temp file was sent")
t.eq(status_all("training/rsync", files), {"uploaded"}, "rsync -a: status uploaded")
before = requests_now()
r = subprocess.run(["rsync", "-a", os.path.join(src, "rs") + "/", m.path("training/rsync") + "/"])
time.sleep(1)
m.wait_done()
t.eq(requests_now(), before, "a second rsync of the same tree uploads nothing")

# ---- rsync --inplace and rsync -aX ----
files = make_tree(os.path.join(src, "inpl"), 5, depth=0, seed="i")
subprocess.run(["rsync", "-a", "--inplace", os.path.join(src, "inpl") + "/",
                m.path("training/inplace") + "/"], check=True)
m.wait_done()
check_once(files, "inplace", name="rsync --inplace")
files = make_tree(os.path.join(src, "xattr"), 3, depth=0, seed="x")
for rel in files:
    os.setxattr(os.path.join(src, "xattr", rel), "user.camera", b"cam-" + rel.encode())
r = subprocess.run(["rsync", "-aX", os.path.join(src, "xattr") + "/", m.path("training/xat") + "/"],
                   capture_output=True, text=True)
t.eq(r.returncode, 0, "rsync -aX into the mount", r.stderr)
m.wait_done()
check_once(files, "xat", name="rsync -aX")
rel0 = sorted(files)[0]
t.eq(os.getxattr(m.path("training/xat/" + rel0), "user.camera"), b"cam-" + rel0.encode(),
     "rsync -aX keeps user xattrs")

# ---- cp, cp -a, cp -r of a deep tree ----
files = make_tree(os.path.join(src, "cp"), 3, depth=0, seed="c")
os.makedirs(m.path("training/cp"))
for rel in files:
    shutil.copyfile(os.path.join(src, "cp", rel), m.path("training/cp/" + rel))
subprocess.run(["cp", os.path.join(src, "cp", sorted(files)[0]), m.path("training/cp/")], check=True)
m.wait_done()
check_once(files, "cp", name="cp")
files = make_tree(os.path.join(src, "cpa"), 3, depth=0, seed="a")
p0 = os.path.join(src, "cpa", sorted(files)[0])
os.chmod(p0, 0o640)
os.utime(p0, (1500000000, 1500000000))
os.setxattr(p0, "user.site", b"lab")
r = subprocess.run(["cp", "-a", os.path.join(src, "cpa"), m.path("training/")], capture_output=True,
                   text=True)
t.eq(r.returncode, 0, "cp -a into the mount", r.stderr)
m.wait_done()
check_once(files, "cpa", name="cp -a")
st = os.stat(m.path("training/cpa/" + sorted(files)[0]))
t.eq((oct(st.st_mode & 0o777), int(st.st_mtime)), (oct(0o640), 1500000000), "cp -a keeps mode and time")
t.eq(os.getxattr(m.path("training/cpa/" + sorted(files)[0]), "user.site"), b"lab",
     "cp -a keeps user xattrs")
files = make_tree(os.path.join(src, "deep"), 4, depth=5, seed="d")
subprocess.run(["cp", "-r", os.path.join(src, "deep"), m.path("testing/")], check=True)
m.wait_done()
check_once(files, "deep", category="testing", name="cp -r, 5 levels deep")

# ---- tar -x, mv from outside ----
files = make_tree(os.path.join(src, "tar"), 4, depth=2, seed="t")
tarball = os.path.join(root, "t.tar")
subprocess.run(["tar", "-cf", tarball, "-C", os.path.join(src, "tar"), "."], check=True)
os.makedirs(m.path("anomaly/tarred"))
subprocess.run(["tar", "-xf", tarball, "-C", m.path("anomaly/tarred")], check=True)
m.wait_done()
check_once(files, "tarred", category="anomaly", name="tar -x")
files = make_tree(os.path.join(src, "mv"), 3, depth=0, seed="m")
os.makedirs(m.path("training/moved"))
r = subprocess.run(["mv"] + [os.path.join(src, "mv", f) for f in files] + [m.path("training/moved/")],
                   capture_output=True, text=True)
t.eq(r.returncode, 0, "mv from outside the mount", r.stderr)
t.ok(not os.listdir(os.path.join(src, "mv")), "the source is gone after mv")
m.wait_done()
check_once(files, "moved", name="mv from outside")

# ---- file manager: .goutputstream then rename; junk from other systems ----
os.makedirs(m.path("training/gio"))
data = b'{"gio": "saved by a file manager"}'
tmp = m.path("training/gio/.goutputstream-ABC123")
with open(tmp, "wb") as f:
    f.write(data[:10])
    f.flush()
    f.write(data[10:])
os.rename(tmp, m.path("training/gio/doc.json"))
for junk in (".DS_Store", "._doc.json", "Thumbs.db", "desktop.ini"):
    m.write("training/gio/" + junk, b"junk")
m.wait_done()
check_once({"doc.json": data}, "gio", name="gio-style save")
t.eq({m.xattr("training/gio/" + j) for j in (".DS_Store", "._doc.json", "Thumbs.db", "desktop.ini")},
     {"ignored"}, "junk from other systems is ignored")

# ---- camera and recorder software ----
os.makedirs(m.path("training/cam"))
p = m.path("training/cam/slow.csv")
h = hashlib.sha256()
with open(p, "wb") as f:
    for i in range(12):
        chunk = b"%d,%d\n" % (i, i * i)
        f.write(chunk)
        h.update(chunk)
        f.flush()
        os.fsync(f.fileno())
        time.sleep(0.1)
m.wait_done()
t.eq([s["sha256"] for s in emu.samples() if s["filename"] == "slow.csv"], [h.hexdigest()],
     "many small writes with fsync over seconds: one upload of the final content")
p = m.path("training/cam/append.csv")
content = b""
for i in range(5):
    with open(p, "ab") as f:
        f.write(b"row %d\n" % i)
    content += b"row %d\n" % i
    time.sleep(0.05)
m.wait_done()
t.eq([s["sha256"] for s in emu.samples() if s["filename"] == "append.csv"], [sha256(content)],
     "closed and reopened for append within settle: one upload")
for suffix in (".tmp", ".part"):
    data = b'{"renamed from": "%s"}' % suffix.encode()
    p = m.path("training/cam/clip%s.json%s" % (suffix.replace(".", "_"), suffix))
    with open(p, "wb") as f:
        f.write(data)
    os.rename(p, p[: -len(suffix)])
m.wait_done()
t.eq(sorted(s["filename"] for s in emu.samples() if s["filename"].startswith("clip")),
     ["clip_part.json", "clip_tmp.json"], "written as .tmp/.part then renamed: one upload each")
p = m.path("training/cam/video.mp4")
h = hashlib.sha256()
block = os.urandom(1 << 20)
with open(p, "wb") as f:
    for i in range(90):
        chunk = block[i:] + block[:i]
        f.write(chunk)
        h.update(chunk)
        if i % 10 == 0:
            time.sleep(0.05)
rc = m.wait_done("training/cam/video.mp4", timeout=120)[0]
t.eq(rc, 0, "a 90 MB video written slowly is uploaded")
t.eq([s["sha256"] for s in emu.samples() if s["filename"] == "video.mp4"], [h.hexdigest()],
     "once, with the right bytes")

# ---- a file changed while it is being uploaded ----
emu.control(hold=True)
m.write("training/cam/changing.json", b'{"version": 1}')
wait_until(lambda: m.xattr("training/cam/changing.json") == "uploading", 10)
t.eq(m.xattr("training/cam/changing.json"), "uploading", "held in upload")
m.write("training/cam/changing.json", b'{"version": 2, "final": true}')
emu.control(hold=False)
m.wait_done()
t.eq(m.xattr("training/cam/changing.json"), "uploaded", "changed during upload: uploaded")
got = [s["sha256"] for s in emu.samples() if s["filename"] == "changing.json"]
t.ok(sha256(b'{"version": 2, "final": true}') in got,
     "the final content reached the service (sent again after the change)", got)

# ---- an editor's safe save over an uploaded file ----
m.write("training/cam/notes.txt", b"first draft\n")
m.wait_done()
tmp = m.path("training/cam/.notes.txt.swx")
with open(tmp, "wb") as f:
    f.write(b"second draft\n")
os.rename(tmp, m.path("training/cam/notes.txt"))
m.wait_done()
got = [s["sha256"] for s in emu.samples() if s["filename"] == "notes.txt"]
t.eq(got, [sha256(b"first draft\n"), sha256(b"second draft\n")],
     "safe save over an uploaded file: the new content once")

# ---- reading like a disk ----
with open(m.path("training/cam/video.mp4"), "rb") as f:
    t.eq(hashlib.sha256(f.read()).hexdigest(), h.hexdigest(), "an uploaded file reads back whole")
d = m.path("anomaly/big")
os.makedirs(d)
for i in range(10000):
    with open(os.path.join(d, "f%05d.tmp" % i), "wb"):
        pass
start = time.monotonic()
r = subprocess.run(["ls", "-l", d], capture_output=True)
took = time.monotonic() - start
t.ok(r.returncode == 0 and r.stdout.count(b"\n") == 10001, "ls -l of 10,000 files lists them all")
t.diag("ls -l of 10,000 files: %.3f s" % took)
t.eq(m.stop(), 0, "clean unmount")
t.done()
