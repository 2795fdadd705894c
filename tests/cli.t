#!/usr/bin/env python3
"""The command line: refusals with one clear line and exit 1, --help and
--version, and `ingestfs status` exit codes and JSON."""
import json
import os
import subprocess

from mountlib import BIN, GOOD_KEY, Emulator, Mount, Tap, require_fuse, workdir

require_fuse()
t = Tap()
root = workdir("cli")
env = dict(os.environ, INGESTFS_CONFIG=os.path.join(root, "none"))
env.pop("EI_API_KEY", None)


def run(*args, extra_env=None):
    e = dict(env, **(extra_env or {}))
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, env=e, timeout=30)


r = run("--version")
t.ok(r.returncode == 0 and r.stdout.startswith("ingestfs "), "--version", r.stdout)
r = run("--help")
t.ok(r.returncode == 0 and "api_key_file=" in r.stdout and "status" in r.stdout, "--help")

mnt = os.path.join(root, "mnt")
os.mkdir(mnt)
spool = os.path.join(root, "spool")


def refused(args, want, name, extra_env=None):
    r = run(*args, extra_env=extra_env)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    t.ok(r.returncode == 1 and len(lines) == 1 and want in lines[0],
         name + ": exit 1 and one clear line", "rc=%d stderr=%r" % (r.returncode, r.stderr))
    t.ok(not os.path.ismount(mnt), name + ": nothing mounted")


refused(["-f", "-o", "spool=" + spool, mnt], "no API key", "no key")
refused(["-f", "-o", "api_key_file=/nonexistent/key,spool=" + spool, mnt], "/nonexistent/key",
        "unreadable key file")
keyfile = os.path.join(root, "key")
with open(keyfile, "w") as f:
    f.write(GOOD_KEY)
os.chmod(keyfile, 0o600)
refused(["-f", "-o", "api_key_file=%s,spool=/proc/nope" % keyfile, mnt], "spool",
        "spool that cannot be created")
refused(["-f", "-o", "spool=" + spool, os.path.join(root, "missing")], "mountpoint",
        "missing mountpoint", extra_env={"EI_API_KEY": GOOD_KEY})
with open(os.path.join(mnt, "stray"), "w"):
    pass
refused(["-f", "-o", "spool=" + spool, mnt], "not empty", "non-empty mountpoint",
        extra_env={"EI_API_KEY": GOOD_KEY})
os.unlink(os.path.join(mnt, "stray"))
refused(["-f", "-o", "batch=0", mnt], "batch", "bad option value")
refused(["-f", "-o", "api_key=" + GOOD_KEY, mnt], "command line", "key on the command line")
refused(["--bogus", mnt], "--bogus", "unknown flag")

# The config file supplies defaults; a bad line names file and line.
cfg = os.path.join(root, "config")
with open(cfg, "w") as f:
    f.write("# test\nsettle = 10\nconcurency = 3\n")
refused(["-f", mnt], "%s:3" % cfg, "bad config line", extra_env={"INGESTFS_CONFIG": cfg})

# status on things that are not ingestfs
r = run("status", root)
t.eq(r.returncode, 3, "status of a plain folder exits 3")
t.ok("not in an ingestfs mount" in r.stderr, "and says why", r.stderr)
r = run("status")
t.eq(r.returncode, 3, "status without a path exits 3")
r = run("status", "--bogus", root)
t.eq(r.returncode, 3, "status with a bad flag exits 3")

# status on a live mount: pending at the timeout, JSON, exit codes.
emu = Emulator(root)
emu.control(hold=True)
m = Mount(root, emu.url, opts="settle=0", mnt=os.path.join(root, "mnt2"))
m.write("training/a/one.json", b'{"one": 1}')
rc, out, err = m.status_cmd("--wait", "--timeout", "1", m.mnt)
t.eq(rc, 2, "status --wait exits 2 when still pending at the timeout")
t.ok(m.xattr("training/a/one.json") == "uploading", "a held request shows uploading")
emu.control(hold=False)
rc, out, err = m.wait_done()
t.eq(rc, 0, "then 0 once uploaded")

# One spool serves one daemon: a second would rewrite the journal under the
# first and send its files again.
r = run("-f", "-o", "spool=" + m.spool, os.path.join(root, "mnt"),
        extra_env={"EI_API_KEY": GOOD_KEY})
t.ok(r.returncode == 1 and "in use by another ingestfs" in r.stderr,
     "a second mount of a spool in use is refused with one line", r.stderr)
t.ok(not os.path.ismount(os.path.join(root, "mnt")), "and nothing is mounted")
r = run("watch", "-f", "-o", "state=" + os.path.join(m.spool, "state"), os.path.join(root, "mnt"),
        extra_env={"EI_API_KEY": GOOD_KEY})
t.ok(r.returncode == 1 and "in use by another ingestfs" in r.stderr,
     "so is a watch that would share its state", r.stderr)
r = run("-f", "-o", "spool=" + os.path.join(root, "other-spool"), m.mnt,
        extra_env={"EI_API_KEY": GOOD_KEY})
t.ok(r.returncode == 1 and "already mounted" in r.stderr,
     "mounting over a live mount says it is mounted", r.stderr)
rc, out, err = m.status_cmd("--json", m.path("training"))
doc = json.loads(out)
t.eq(doc["summary"]["uploaded"], 1, "--json summary")
t.eq([f["status"] for f in doc["files"]], ["uploaded"], "--json lists files")
t.ok(doc["files"][0]["path"].endswith("training/a/one.json"), "--json file path")
rc, out, err = m.status_cmd(m.path("training/a/one.json"))
t.ok(rc == 0 and "uploaded" in out and "one.json" in out, "status of one file", out)
t.eq(m.stop(), 0, "clean unmount")

# The key given in the environment does not stay readable there.
m = Mount(root, emu.url, key="", opts="settle=0", mnt=os.path.join(root, "mnt3"),
          env={"EI_API_KEY": GOOD_KEY})
m.write("training/e/x.json", b'{"env": 1}')
t.eq(m.wait_done()[0], 0, "a key from EI_API_KEY works")
with open("/proc/%d/environ" % m.proc.pid, "rb") as f:
    environ = f.read()
t.ok(GOOD_KEY.encode() not in environ, "and is not left in /proc/PID/environ")
with open("/proc/%d/cmdline" % m.proc.pid, "rb") as f:
    t.ok(GOOD_KEY.encode() not in f.read(), "nor in the command line")
m.stop()

# Daemonized (no -f) with relative paths: they still work after the chdir.
mnt4 = os.path.join(root, "mnt4")
os.mkdir(mnt4)
r = subprocess.run([BIN, "-o", "url=%s,api_key_file=key,spool=relspool,settle=0" % emu.url, "mnt4"],
                   cwd=root, env=env, capture_output=True, text=True, timeout=30)
t.eq(r.returncode, 0, "daemonizing mount returns 0 once mounted", r.stderr)
try:
    p = os.path.join(mnt4, "training", "r.json")
    with open(p, "wb") as f:
        f.write(b'{"rel": 1}')
    os.setxattr(p, "user.comment", b"kept")
    t.eq(os.getxattr(p, "user.comment"), b"kept", "user xattrs work with a relative spool")
    t.ok(os.path.isdir(os.path.join(root, "relspool", "files")), "the relative spool is where asked")
    rc = subprocess.run([BIN, "status", "--wait", "--timeout", "20", p],
                        capture_output=True).returncode
    t.eq(rc, 0, "the relative key file was read")
finally:
    subprocess.run(["fusermount3", "-u", mnt4])
t.done()
