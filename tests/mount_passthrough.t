#!/usr/bin/env python3
"""Kernel passthrough of file data: writes go straight to the spool, and the
queue still learns everything it needs: content written through a dup'd fd
or mmap, readers and writers of one file at once, a spool that runs out of
space under a writer the daemon cannot see."""
import errno
import mmap
import os
import platform

from mountlib import Emulator, Mount, Tap, require_fuse, sha256, tmpfs, wait_until, workdir

require_fuse()
t = Tap()


def kernel_offers_passthrough():
    major, minor = (int(x) for x in platform.release().split(".")[:2])
    return os.geteuid() == 0 and (major, minor) >= (6, 9)


class DebugMount(Mount):
    """ingestfs -f -d: the FUSE debug log names every request the daemon sees."""

    def command(self, url, options):
        return [self.bin, "-f", "-d", "-o", options, self.mnt]

    def __init__(self, *args, **kw):
        import mountlib
        self.bin = mountlib.BIN
        super().__init__(*args, **kw)


def writes_seen(m):
    return m.log().count("opcode: WRITE ")


def settled_done(m, *rels):
    rc, out, err = m.wait_done(*rels)
    return rc == 0, out + err


root = workdir("passthrough")
emu = Emulator(root)
m = DebugMount(root, emu.url, opts="settle=50")
expect = kernel_offers_passthrough()
on = wait_until(lambda: "passthrough)" in m.log() or "goes through the daemon" in m.log(), 5)
if expect:
    t.ok("straight to the spool (kernel passthrough)" in m.log(),
         "passthrough is on (root, Linux >= 6.9)", m.log()[-2000:])
else:
    t.ok("goes through the daemon:" in m.log(), "without passthrough the log says why",
         m.log()[-2000:])

# A 4 MiB file written in 64 KiB pieces: every byte lands, none through us.
data = os.urandom(4 << 20)
os.makedirs(m.path("training/cam"))
before = writes_seen(m)
with open(m.path("training/cam/big.mp4"), "wb") as f:
    for i in range(0, len(data), 65536):
        f.write(data[i:i + 65536])
if expect:
    t.eq(writes_seen(m) - before, 0, "new files: write(2) goes straight to the spool")
with open(m.path("training/cam/big.mp4"), "rb") as f:
    t.eq(sha256(f.read()), sha256(data), "read back through the mount")
t.eq(os.stat(m.path("training/cam/big.mp4")).st_size, len(data), "size seen through the mount")

# Appending to a file that exists goes through the daemon, which journals
# the first write (a crash mid-append must show "interrupted").
with open(m.path("training/cam/log.csv"), "wb") as f:
    f.write(b"t,v\n")
ok, why = settled_done(m, "training/cam/log.csv")
before = writes_seen(m)
with open(m.path("training/cam/log.csv"), "ab") as f:
    f.write(b"1,2\n")
if expect:
    t.ok(writes_seen(m) - before >= 1, "appends to an existing file reach the daemon")

# A reader holding the file open while a writer appends: one backing file
# per inode, so neither gets EIO.
with open(m.path("training/cam/shared.csv"), "wb") as f:
    f.write(b"a,b\n")
reader = open(m.path("training/cam/shared.csv"), "rb")
try:
    with open(m.path("training/cam/shared.csv"), "ab") as w:
        w.write(b"1,2\n")
    with open(m.path("training/cam/shared.csv"), "rb") as r2:
        both = r2.read()
    t.eq(both, b"a,b\n1,2\n", "a second reader sees the append while the first is open")
    t.eq(reader.read(), b"a,b\n1,2\n", "so does the first")
except OSError as e:
    t.ok(False, "reader and writer of one file at once", e)
    t.ok(False, "so does the first")
finally:
    reader.close()

# Written again after an earlier close of a dup'd fd: the last bytes count.
fd = os.open(m.path("training/cam/dup.csv"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"x,y\n")
os.close(os.dup(fd))
os.write(fd, b"3,4\n")
os.close(fd)

# Changed through mmap after upload: sent again with the new bytes.
with open(m.path("training/cam/map.csv"), "wb") as f:
    f.write(b"m,n\n0,0\n")
ok, why = settled_done(m, "training/cam/map.csv")
t.ok(ok, "map.csv uploaded first", why)
with open(m.path("training/cam/map.csv"), "r+b") as f:
    mm = mmap.mmap(f.fileno(), 0)
    mm[4:7] = b"9,9"
    mm.flush()
    mm.close()

# No setuid/setgid bits: what lets the kernel skip its privilege checks.
fd = os.open(m.path("training/cam/suid.csv"), os.O_WRONLY | os.O_CREAT, 0o6755)
os.write(fd, b"s,u\n")
os.close(fd)
t.eq(os.stat(m.path("training/cam/suid.csv")).st_mode & 0o7777, 0o755,
     "a file created setuid/setgid is stored without those bits")
os.chmod(m.path("training/cam/suid.csv"), 0o4711)
t.eq(os.stat(m.path("training/cam/suid.csv")).st_mode & 0o7777, 0o711, "chmod u+s is dropped too")
os.chmod(m.path("training/cam"), 0o2775)
t.eq(os.stat(m.path("training/cam")).st_mode & 0o7777, 0o2775, "a setgid folder is kept")
os.chmod(m.path("training/cam"), 0o755)

# Opened for writing and only chmod'ed: not new content, not sent again.
with open(m.path("training/cam/meta.csv"), "wb") as f:
    f.write(b"k,v\n")
ok, why = settled_done(m, "training/cam/meta.csv")
with open(m.path("training/cam/meta.csv"), "r+b") as f:
    os.fchmod(f.fileno(), 0o600)

ok, why = settled_done(m)
t.ok(ok, "everything settles and uploads", why)
stored = {}
for s in emu.samples():
    stored.setdefault(s["filename"], []).append(s["sha256"])
t.eq(stored.get("big.mp4"), [sha256(data)], "big.mp4 stored once, whole")
t.eq(stored.get("log.csv", [])[-1:], [sha256(b"t,v\n1,2\n")], "log.csv: the appended bytes")
t.eq(stored.get("dup.csv"), [sha256(b"x,y\n3,4\n")],
     "dup.csv: one upload, with what was written after the dup'd fd closed")
t.eq(stored.get("map.csv", [])[-1:], [sha256(b"m,n\n9,9\n")], "map.csv: the mmap change was sent")
t.eq(len(stored.get("meta.csv", [])), 1, "meta.csv: a chmod while open is not a write")
t.eq(m.xattr("training/cam/meta.csv"), "uploaded", "and it stays uploaded")
t.eq(m.stop(), 0, "clean unmount")

# Turned off: the daemon sees the data again.
root = workdir("no-passthrough")
emu = Emulator(root)
m = DebugMount(root, emu.url, opts="settle=50,no_passthrough")
wait_until(lambda: "goes through the daemon" in m.log(), 5)
t.ok("goes through the daemon: passthrough turned off by -o no_passthrough" in m.log(),
     "no_passthrough turns it off and says so", m.log()[-2000:])
os.makedirs(m.path("training/cam"))
with open(m.path("training/cam/a.mp4"), "wb") as f:
    f.write(data)
t.ok(writes_seen(m) > 0, "with no_passthrough write(2) goes through the daemon")
ok, why = settled_done(m)
t.eq([s["sha256"] for s in emu.samples()], [sha256(data)], "and the file uploads the same")
t.eq(m.stop(), 0, "clean unmount")

# A spool that fills up under a passthrough writer: the writer gets ENOSPC
# from the kernel, the daemon never sees it, and still the file must not
# go up cut short.  1250 MiB of tmpfs: room for one passthrough writer
# (1 GiB + 128 MiB), not for a second, whose writes then go through us.
if os.geteuid() != 0:
    t.ok(True, "# SKIP a full spool needs root to mount a tmpfs")
else:
    root = workdir("fills-up")
    emu = Emulator(root)
    with tmpfs(root, "1250m") as disk:
        m = DebugMount(root, emu.url, opts="settle=20", spool=os.path.join(disk, "s"))
        os.makedirs(m.path("training/cam"))
        got = {}
        first = open(m.path("training/cam/cut.wav"), "wb", buffering=0)
        second = open(m.path("training/cam/second.wav"), "wb", buffering=0)
        before = writes_seen(m)
        first.write(os.urandom(1 << 20))
        first_writes = writes_seen(m) - before
        if expect:
            t.eq(first_writes, 0, "the first writer: passthrough")
        second.write(os.urandom(1 << 20))
        t.ok(writes_seen(m) - before > first_writes,
             "the second, with no room kept for it: through the daemon")
        with open(os.path.join(disk, "filler"), "wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * (8 << 20))
            except OSError:
                pass
        for name, f in (("cut.wav", first), ("second.wav", second)):
            try:
                for _ in range(16):
                    f.write(os.urandom(1 << 20))
            except OSError as e:
                got[name] = e.errno
            f.close()
        t.eq(got, {"cut.wav": errno.ENOSPC, "second.wav": errno.ENOSPC}, "both writers get ENOSPC")
        for name in ("cut.wav", "second.wav"):
            rel = "training/cam/" + name
            wait_until(lambda: m.xattr(rel) == "failed", 5)
            t.eq(m.xattr(rel), "failed", "%s is failed, not uploaded cut short" % name)
            t.ok("No space left" in m.xattr(rel, "result"), "and says why", m.xattr(rel, "result"))
        os.unlink(os.path.join(disk, "filler"))
        m.write("training/cam/after.wav", b"RIFF" + os.urandom(1000))
        ok, why = settled_done(m, "training/cam/after.wav")
        t.ok(ok, "with space again, new files upload", why)
        sent = [s["filename"] for s in emu.samples()]
        t.ok("cut.wav" not in sent and "second.wav" not in sent, "neither was ever sent", sent)
        t.eq(m.stop(), 0, "clean unmount")
t.done()
