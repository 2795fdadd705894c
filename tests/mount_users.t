#!/usr/bin/env python3
"""Every writer, any user (ingestfs(1) OWNERSHIP, SECURITY): on a mount
that root started with allow_other, a camera's user who is not root
writes as on a local disk: what it makes is its own, with its mode; links,
open-then-unlinked files, touch and the trash work; copies with cp -a,
rsync, tar, bsdtar and unzip exit 0; and no user can starve the others,
forge the admin's terminal, hold a folder's uploads, or reach the
daemon's key."""
import json
import os
import shutil
import stat
import subprocess
import time

from mountlib import (CAMERA_UID, OTHER_UID, Emulator, Mount, Tap, Watcher, as_user, require_fuse,
                      require_root, user_python, wait_until, workdir)

require_fuse()
t = Tap()
require_root(t, "acting as other users")
U, V = CAMERA_UID, OTHER_UID
root = workdir("users")
os.chmod(root, 0o755)
emu = Emulator(root)
m = Mount(root, emu.url, opts="settle=100,allow_other,owner=%d,annotation_wait=2" % U)


def sh(uid, script, **kw):
    return as_user(uid, "sh", "-c", script, cwd=m.mnt, **kw)


def requests():
    return len(emu.requests())


def stored(name):
    return [s for s in emu.samples() if s["filename"] == name]


# ---- ownership and modes ----
t.eq((os.stat(m.path("training")).st_uid, stat.S_IMODE(os.stat(m.path("training")).st_mode)),
     (U, 0o755), "owner= gives the categories to the camera's user, 0755")
rc, out, err = sh(U, "umask 000 && mkdir training/cam && touch training/cam/a.json && "
                     "umask 022 && touch training/cam/b.json && mkdir training/cam/d")
t.eq(rc, 0, "the camera's user makes a folder and files", err)
st_a, st_b = os.stat(m.path("training/cam/a.json")), os.stat(m.path("training/cam/b.json"))
t.eq((st_a.st_uid, st_a.st_gid), (U, U), "a file belongs to whoever made it")
t.eq(stat.S_IMODE(st_a.st_mode), 0o666, "umask 000 gives 0666: the daemon's umask never applies")
t.eq(stat.S_IMODE(st_b.st_mode), 0o644, "umask 022 gives 0644")
t.eq(stat.S_IMODE(os.stat(m.path("training/cam/d")).st_mode), 0o755, "and folders 0755")
rc, out, err = sh(U, "chmod 640 training/cam/b.json && touch -d 2001-02-03 training/cam/b.json && "
                     "echo more >> training/cam/b.json && touch training/cam/d/x.json")
t.eq(rc, 0, "it may chmod, set times, reopen and write in its own folder", err)
os.chmod(m.path("training/cam"), 0o2777)
os.chown(m.path("training/cam"), U, 4300)
rc, out, err = sh(V, "touch training/cam/v.json && mkdir training/cam/vd")
t.eq(rc, 0, "another user writes in a folder open to it", err)
t.eq(os.stat(m.path("training/cam/v.json")).st_gid, 4300, "a setgid folder gives its group")
t.eq(os.stat(m.path("training/cam/vd")).st_mode & stat.S_ISGID, stat.S_ISGID,
     "and its setgid bit to folders made in it")

# sticky folder: rename your own file, not another's
sh(U, "mkdir training/sticky && chmod 1777 training/sticky && echo u > training/sticky/u.json")
sh(V, "echo v > training/sticky/v.json")
rc, out, err = sh(V, "mv training/sticky/v.json training/sticky/v2.json")
t.eq(rc, 0, "renaming your own file in a sticky folder", err)
rc, out, err = sh(V, "mv training/sticky/u.json training/sticky/stolen.json")
t.ok(rc != 0 and "not permitted" in err, "but not another user's, as on a local disk", err)
rc, out, err = m.wait_done()
t.ok(rc in (0, 1), "uploads settle", out + err)

# ---- open, then unlinked or renamed over ----
rc, out, err = user_python(U, """
import os
p = "training/cam/tmp.json"
f = open(p, "w"); f.write("temp"); f.flush()
os.unlink(p)
os.fstat(f.fileno()); os.fchmod(f.fileno(), 0o600); os.utime(f.fileno(), (1, 1))
os.fchown(f.fileno(), %d, %d)
f.write(" more"); f.close()
a = open("training/cam/a.json")
open("training/cam/new.json", "w").write("replacement")
os.rename("training/cam/new.json", "training/cam/a.json")
os.fstat(a.fileno()); os.fchmod(a.fileno(), 0o644); a.close()
print(sorted(os.listdir("training/cam")))
""" % (U, U), cwd=m.mnt)
t.eq(rc, 0, "fstat, fchmod, futimens, fchown on an open file after unlink or rename-over", err)
t.ok("tmp.json" not in out and ".fuse_hidden" not in out, "the unlinked file is not listed", out)
m.wait_done()
t.eq(stored("tmp.json"), [], "an unlinked temp file is never uploaded")

# ---- only new content sends a file again ----
rc, out, err = sh(U, "printf photo > training/cam/photo.jpg")
m.wait_done("training/cam/photo.jpg")
n = requests()
rc, out, err = sh(U, "touch training/cam/photo.jpg; chmod 600 training/cam/photo.jpg; "
                     "touch -d 2010-01-01 training/cam/photo.jpg; setfattr -n user.tag -v 1 "
                     "training/cam/photo.jpg")
time.sleep(1.0)
m.wait_done()
t.eq((requests(), m.xattr("training/cam/photo.jpg")), (n, "uploaded"),
     "touch, chmod and setfattr of an uploaded file send nothing", err)
sh(U, "printf more >> training/cam/photo.jpg")
m.wait_done()
t.eq(len(stored("photo.jpg")), 2, "new content does")

n = requests()
rc, out, err = user_python(U, """
import os
fd = os.open("training/cam/photo.jpg", os.O_WRONLY)
os.truncate("training/cam/photo.jpg", os.stat("training/cam/photo.jpg").st_size)
os.ftruncate(fd, os.fstat(fd).st_size); os.close(fd)
fd = os.open("training/cam/photo.jpg", os.O_RDONLY); os.close(fd)
""", cwd=m.mnt)
time.sleep(1.0)
m.wait_done()
t.eq((rc, requests(), m.xattr("training/cam/photo.jpg")), (0, n, "uploaded"),
     "truncate to the same size, or opening for writing without a write, sends nothing", err)
for how in ("touch", "mkdir", "ln -s x"):
    rc, out, err = sh(U, "%s training/cam/.fuse_hidden0000000a00000001" % how)
    t.ok(rc != 0, "a name libfuse uses for open unlinked files is refused (%s)" % how, err)

# ---- the trash ----
m.write("training/cam/trash-me.jpg", b"\xff\xd8 trash me")
m.wait_done()
n = requests()
rc, out, err = sh(U, "gio trash training/cam/trash-me.jpg")
t.eq(rc, 0, "gio trash works for the camera's user", err)
trashed = m.path(".Trash/%d/files/trash-me.jpg" % U)
t.ok(os.path.exists(trashed) and not os.path.exists(m.path("training/cam/trash-me.jpg")),
     "into the shared .Trash/UID", os.listdir(m.path(".Trash")))
t.eq(m.xattr(".Trash/%d/files/trash-me.jpg" % U), "ignored", "the trash is never uploaded")
rc, out, err = as_user(U, "mv", trashed, m.path("training/cam/trash-me.jpg"))
m.wait_done()
t.eq((rc, m.xattr("training/cam/trash-me.jpg"), requests()), (0, "uploaded", n),
     "restored unchanged: uploaded, not sent again")
rc, out, err = sh(0, "mkdir .Trash-0 && mkdir .Trash-0/files && rmdir .Trash-0/files .Trash-0")
t.eq(rc, 0, ".Trash-UID can be made at the root", err)

# ---- copies with links ----
src = os.path.join(root, "src")
os.makedirs(os.path.join(src, "links/sub"))
with open(os.path.join(src, "links/one.json"), "w") as f:
    f.write('{"one": 1}')
os.link(os.path.join(src, "links/one.json"), os.path.join(src, "links/one-again.json"))
os.symlink("one.json", os.path.join(src, "links/sym.json"))
os.symlink("../one.json", os.path.join(src, "links/sub/up.json"))
with open(os.path.join(src, "links/sub/two.json"), "w") as f:
    f.write('{"two": 2}')
for p, dirs, files in os.walk(src):
    for n_ in dirs + files:
        os.lchown(os.path.join(p, n_), U, U)
os.chown(src, U, U)
subprocess.run(["tar", "-cf", os.path.join(root, "links.tar"), "-C", src, "links"], check=True)
subprocess.run(["sh", "-c", "cd %s && zip -qry %s links" % (src, os.path.join(root, "links.zip"))],
               check=True)
os.chmod(os.path.join(root, "links.tar"), 0o644)
os.chmod(os.path.join(root, "links.zip"), 0o644)
tools = [("cp -a", "cp -a %s/links training/cp" % src),
         ("rsync -a", "rsync -a %s/links/ training/rsync/" % src),
         ("rsync -aH", "rsync -aH %s/links/ training/rsynch/" % src),
         ("tar -x", "mkdir training/tar && tar -xf %s -C training/tar" % os.path.join(root, "links.tar")),
         ("bsdtar -x", "mkdir training/bsdtar && bsdtar -xf %s -C training/bsdtar"
          % os.path.join(root, "links.tar")),
         ("unzip", "mkdir training/unzip && unzip -q %s -d training/unzip"
          % os.path.join(root, "links.zip"))]
for name, cmd in tools:
    rc, out, err = sh(U, cmd)
    t.eq(rc, 0, "%s of a tree with hard and symbolic links exits 0" % name, err)
rc, out, err = m.wait_done(*["training/" + d for d in
                              ("cp", "rsync", "rsynch", "tar", "bsdtar", "unzip")])
t.eq(rc, 0, "and everything uploads", out + err)
one = [s for s in emu.samples() if s["filename"] in ("one.json", "one-again.json")]
t.eq(len(one), 1, "a file with two names is sent once (the rest are duplicates)",
     [s["filename"] for s in one])
t.ok(os.path.islink(m.path("training/tar/links/sym.json")), "symlinks are kept")
rc, out, err = m.status_cmd(m.path("training/tar/links/sym.json"))
t.ok("ignored" in out, "and show as ignored", out + err)
rc, out, err = sh(U, "mkfifo training/cam/fifo")
t.ok(rc != 0, "fifos are still refused", err)

# ---- SECURITY: terminal escapes in names and replies ----
esc = "training/cam/\x1b[31mred\x1b[0m\u009b2J.json"
m.write(esc, b'{"esc": 1}')
raw8 = m.path("training/cam/").encode() + b"raw\x9b1m.json"
with open(raw8, "wb") as f:
    f.write(b'{"raw": 1}')
m.wait_done()
r = subprocess.run([os.environ.get("INGESTFS_BIN"), "status", "--failed", m.mnt],
                   capture_output=True)
r2 = subprocess.run([os.environ.get("INGESTFS_BIN"), "status", m.path("training/cam")],
                    capture_output=True)
listing = subprocess.run([os.environ.get("INGESTFS_BIN"), "status", "--json", m.mnt],
                         capture_output=True)
bad = [b"\x1b", b"\x9b", b"\xc2\x9b", b"\n\x1b"]
t.ok(not any(x in r.stdout + r2.stdout + listing.stdout for x in bad),
     "ingestfs status never prints ESC or C1 codes from names")
try:
    json.loads(listing.stdout.decode("utf-8"))
    t.ok(True, "and --json stays valid UTF-8 JSON")
except ValueError as e:
    t.ok(False, "and --json stays valid UTF-8 JSON", e)
emu.control(reply_status=400, reply_body=json.dumps({"success": False,
                                                      "error": "bad \x1b[2J\u009b1m thing"}))
m.write("training/cam/c1.json", b'{"c1": 1}')
m.wait_done("training/cam/c1.json")
emu.control(reply_status=0)
res = os.getxattr(m.path("training/cam/c1.json"), "user.ingest.result")
t.ok(b"\x1b" not in res and b"\xc2\x9b" not in res and b"thing" in res,
     "C0 and C1 from the service never reach a result", res)
t.ok("\x1b" not in m.log() and "\u009b" not in m.log(), "nor the log")

# ---- SECURITY: a .labels file held open does not hold the folder for long ----
rc, out, err = user_python(U, """
import os, time, subprocess
os.makedirs("training/held", exist_ok=True)
f = open("training/held/bounding_boxes.labels", "w"); f.write("{}"); f.flush()
open("training/held/x.jpg", "wb").write(b"held sample")
time.sleep(8)
f.close()
""", cwd=m.mnt, timeout=60)
t.eq(rc, 0, "a user holds a .labels open for 8 s", err)
t.eq(m.xattr("training/held/x.jpg"), "uploaded",
     "the folder's sample went anyway, after annotation_wait")
t.ok("stayed open" in m.xattr("training/held/x.jpg", "result"), "saying why",
     m.xattr("training/held/x.jpg", "result"))
m.stop()

# ---- SECURITY: descriptors: one user cannot starve the others or the uploads ----
root2 = workdir("fds")
os.chmod(root2, 0o755)
m2 = Mount(root2, emu.url, opts="settle=50,allow_other,owner=%d" % U,
           wrap=["prlimit", "--nofile=400:400", "--"])
os.mkdir(m2.path("training/shared"))
os.chmod(m2.path("training/shared"), 0o1777)
hog = subprocess.Popen(["setpriv", "--reuid=%d" % U, "--regid=%d" % U, "--clear-groups", "--",
                        "/usr/bin/python3", "-c", """
import os, resource, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4000, 4000))
os.makedirs("training/hog", exist_ok=True)
held, refused = [], 0
for i in range(600):
    try:
        held.append(open("training/hog/%d.json" % i, "w"))
    except OSError:
        refused += 1
print(len(held), refused, flush=True)
time.sleep(8)
"""], cwd=m2.mnt, stdout=subprocess.PIPE, text=True)
line = hog.stdout.readline().split()
t.ok(line and int(line[1]) > 0, "a user opening 600 files is refused past its share (%s)" % line)
rc, out, err = user_python(V, "open('training/shared/other.json', 'w').write('{\"v\": 1}')",
                           cwd=m2.mnt)
t.eq(rc, 0, "another user can still write meanwhile", err)
m2.write("training/root.json", b'{"root": 1}')
rc, out, err = m2.wait_done("training/root.json", "training/shared/other.json", timeout=20)
t.eq(rc, 0, "and uploads go on", out + err)
t.eq(m2.log().count("user %d holds half" % U), 1, "the log names the user, once", m2.log()[-500:])
t.eq(m2.log().count("at their limit"), 0, "and the mount as a whole was never short", m2.log()[-500:])
hog.wait()
rc, out, err = user_python(U, "open('training/after.json', 'w').write('{\"a\": 1}')", cwd=m2.mnt)
t.eq(rc, 0, "once they are closed, the user can open files again", err)
m2.stop()

# ---- SECURITY: spool and state folders others can write to ----
bad_spool = os.path.join(root, "open-spool")
os.makedirs(bad_spool)
os.chmod(bad_spool, 0o777)
os.makedirs(os.path.join(root, "mnt-bad"), exist_ok=True)
r = subprocess.run([os.environ["INGESTFS_BIN"], "-f", "-o", "url=%s,api_key_file=%s,spool=%s"
                    % (emu.url, m.key_file, bad_spool), os.path.join(root, "mnt-bad")],
                   capture_output=True, text=True, timeout=30,
                   env=dict(os.environ, INGESTFS_CONFIG="/nonexistent"))
t.ok(r.returncode == 1 and "writable by others" in r.stderr and len(r.stderr.splitlines()) == 1,
     "a spool others can write to is refused, in one line", r.stderr)
os.chown(bad_spool, U, U)
os.chmod(bad_spool, 0o700)
r = subprocess.run([os.environ["INGESTFS_BIN"], "-f", "-o", "url=%s,api_key_file=%s,spool=%s"
                    % (emu.url, m.key_file, bad_spool), os.path.join(root, "mnt-bad")],
                   capture_output=True, text=True, timeout=30,
                   env=dict(os.environ, INGESTFS_CONFIG="/nonexistent"))
t.ok(r.returncode == 1 and "owned by another user" in r.stderr, "so is one another user owns",
     r.stderr)

# ---- SECURITY: no core dump, no ptrace of the key's holder ----
wroot = workdir("dump")
os.chmod(wroot, 0o755)
folder = os.path.join(wroot, "watched")
os.makedirs(folder)
os.chown(folder, U, U)
state = os.path.join(wroot, "state")
os.makedirs(state)
os.chown(state, U, U)
key = os.path.join(wroot, "key")
with open(key, "w") as f:
    f.write("ei_0123456789abcdef")
os.chown(key, U, U)
os.chmod(key, 0o600)
w = subprocess.Popen(["setpriv", "--reuid=%d" % U, "--regid=%d" % U, "--clear-groups", "--",
                      os.environ["INGESTFS_BIN"], "watch", "-f", "-o",
                      "url=%s,api_key_file=%s,state=%s" % (emu.url, key, state), folder],
                     stderr=subprocess.PIPE, text=True,
                     env={"PATH": "/usr/bin:/bin", "HOME": wroot, "INGESTFS_CONFIG": "/nonexistent"})
ok = wait_until(lambda: os.path.exists(os.path.join(folder, "training")), 10)
time.sleep(0.5)
t.eq(os.stat("/proc/%d/mem" % w.pid).st_uid, 0,
     "the daemon is not dumpable: its /proc files belong to root, its user cannot read its memory")
rc, out, err = as_user(U, "cat", "/proc/%d/environ" % w.pid)
t.ok(rc != 0, "nor its environment", out)
w.terminate()
_, werr = w.communicate(timeout=20)
t.ok("plain HTTP" in werr and "in clear" in werr, "url=http:// is warned about", werr[-300:])
t.done()
