#!/usr/bin/python3
"""The Nautilus extension against a real mount, and in a real Nautilus.

Run by scripts/nautilus-test.sh (which installs the packages and builds
ingestfs); as root, with the system's Python 3 (PyGObject, Nautilus 4.0).

    nautilus_check.py --bin INGESTFS --run DIR --shot PNG --menu PNG --after PNG
    nautilus_check.py --unit        # only step 0: no root, mount or display

0. The plain functions of contrib/nautilus/ingestfs-nautilus.py on made-up
   input (mountinfo, summaries, fake attributes), and the module imported
   without PyGObject.
1. Starts tests/emulator.py and mounts ingestfs (mountlib's Emulator and
   Mount) at DIR/mnt, then makes a file in every state below
   training/car: uploaded, duplicate (the same bytes again), failed (the
   emulator answers 400), ignored, and with the emulator holding requests
   uploading, pending and writing (a file kept open); batch2/ holds one
   uploaded and one failed file.
2. Checks the plain functions on each: emblem, status and detail texts,
   the folder summaries, and the files "Retry upload" applies to.
3. Installs the extension in a private XDG_DATA_HOME, runs Nautilus on a
   private Xvfb and D-Bus in list view with the extension's columns, waits
   until the extension has answered for every file (its debug lines), and
   takes a screenshot (--shot).
4. Lets the emulator go; retry() on failed.csv, which uploads.  Then in
   Nautilus: selects everything, opens the context menu (screenshot
   --menu), which offers Retry upload for batch2/, chooses it, and checks
   that batch2/bad.csv uploads; waits until Nautilus shows every file
   uploaded (the extension asks again by itself): screenshot --after.

TAP output; exit status 0 when every check passed.  Processes it started
write their pids to DIR/pids, for the shell script's trap.
"""
import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests"))
import mountlib  # noqa: E402

EXTENSION = os.path.join(TOP, "contrib", "nautilus", "ingestfs-nautilus.py")
LABEL = "training/car"
COLUMNS = ["name", "size", "ingestfs_status", "ingestfs_detail", "date_modified"]

t = mountlib.Tap()


def load_extension():
    spec = importlib.util.spec_from_file_location("ingestfs_nautilus", EXTENSION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def note_pid(run, pid):
    with open(os.path.join(run, "pids"), "a") as f:
        f.write("%d\n" % pid)


def xattr(path, name="status"):
    try:
        return os.getxattr(path, "user.ingest." + name).decode()
    except OSError as e:
        return "<%s>" % (e.strerror or e)


def wait_state(path, want, timeout=30):
    want = (want,) if isinstance(want, str) else want
    return mountlib.wait_until(lambda: xattr(path) in want, timeout)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def csv(n):
    return ("timestamp,value\n" + "".join("%d,%d\n" % (i, (i * 7 + n) % 100) for i in range(20))).encode()


class Desktop:
    """Xvfb, a session bus and Nautilus, each in a process group of its own."""

    def __init__(self, run, ext):
        self.run = run
        self.procs = []
        self.home = os.path.join(run, "home")
        self.log_path = os.path.join(run, "nautilus.log")
        for d in ("", ".config", ".local/share/nautilus-python/extensions", ".cache", "runtime"):
            os.makedirs(os.path.join(self.home, d), exist_ok=True)
        os.chmod(os.path.join(self.home, "runtime"), 0o700)
        shutil.copy(ext, os.path.join(self.home, ".local/share/nautilus-python/extensions",
                                      "ingestfs-nautilus.py"))
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.home, "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root",
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "XDG_DATA_HOME": os.path.join(self.home, ".local/share"),
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "XDG_RUNTIME_DIR": os.path.join(self.home, "runtime"),
            "GSETTINGS_BACKEND": "keyfile",       # settings in a file of this run
            # No gvfs: its trash daemon looks at every mount of the machine,
            # and one hung FUSE mount (anyone's) kept Nautilus from ever
            # opening a window.
            "GIO_USE_VFS": "local",
            "GDK_BACKEND": "x11", "GSK_RENDERER": "cairo",
            "NO_AT_BRIDGE": "1", "GTK_A11Y": "none",
            "INGESTFS_NAUTILUS_DEBUG": "1", "NAUTILUS_PYTHON_DEBUG": "misc",
        }

    def spawn(self, cmd, **kw):
        p = subprocess.Popen(cmd, env=self.env, start_new_session=True, **kw)
        self.procs.append(p)
        note_pid(self.run, p.pid)
        return p

    def start_x(self):
        r, w = os.pipe()
        self.spawn(["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x640x24", "-nolisten",
                    "tcp"], pass_fds=(w,), stdout=subprocess.DEVNULL,
                   stderr=open(os.path.join(self.run, "xvfb.log"), "w"))
        os.close(w)
        display = b""
        deadline = time.monotonic() + 20
        while not display.endswith(b"\n") and time.monotonic() < deadline:
            chunk = os.read(r, 16)
            if not chunk:
                break
            display += chunk
        os.close(r)
        if not display.strip():
            raise RuntimeError("Xvfb did not start: see xvfb.log")
        self.env["DISPLAY"] = ":" + display.decode().strip()

    def gsettings(self, schema, key, value):
        subprocess.run(["gsettings", "set", schema, key, value], env=self.env, check=True)

    def start_nautilus(self, folder):
        nautilus = "org.gnome.nautilus"
        self.gsettings(nautilus + ".preferences", "default-folder-viewer", "list-view")
        self.gsettings(nautilus + ".list-view", "default-visible-columns", repr(COLUMNS))
        self.gsettings(nautilus + ".list-view", "default-column-order", repr(COLUMNS))
        self.gsettings(nautilus + ".window-state", "initial-size", "(1280, 640)")
        self.log = open(self.log_path, "w")
        self.spawn(["dbus-run-session", "--", "nautilus", "--new-window", folder],
                   stdout=self.log, stderr=subprocess.STDOUT)

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def shown(self):
        """{path: (emblem, status, detail)} from the extension's last debug
        line for each path."""
        seen = {}
        for line in self.log_text().splitlines():
            if not line.startswith("ingestfs-nautilus: info "):
                continue
            rest = line[len("ingestfs-nautilus: info "):]
            try:
                path, rest = rest.split(" emblem=", 1)
                emblem, rest = rest.split(" status=", 1)
                status, detail = rest.split(" detail=", 1)
            except ValueError:
                continue
            seen[path] = (None if emblem == "None" else emblem, status, detail)
        return seen

    def logged(self, mark, what):
        """The rest of the extension's last "WHAT..." debug line after
        offset MARK of the log, or None."""
        found = None
        prefix = "ingestfs-nautilus: " + what
        for line in self.log_text()[mark:].splitlines():
            if line.startswith(prefix):
                found = line[len(prefix):]
        return found

    def pointer(self, x, y):
        subprocess.run(["xdotool", "mousemove", str(x), str(y)], env=self.env, check=True,
                       timeout=30)

    def click(self, x, y):
        subprocess.run(["xdotool", "mousemove", str(x), str(y), "click", "1"], env=self.env,
                       check=True, timeout=30)

    def key(self, *keys):
        # No window manager: keys go to the window under the pointer.
        subprocess.run(["xdotool", "key", "--delay", "150"] + list(keys), env=self.env,
                       check=True, timeout=30)

    def screenshot(self, png):
        tmp = png + ".tmp.png"
        subprocess.run(["import", "-window", "root", tmp], env=self.env, check=True,
                       timeout=60)
        os.replace(tmp, png)

    def colours(self, png):
        r = subprocess.run(["convert", png, "-format", "%k", "info:"], capture_output=True,
                           text=True, env=self.env)
        return int(r.stdout.strip() or 0)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        self.procs = []


def unit_checks(ext):
    """Step 0: no mount, no display."""
    mi = ("22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
          "30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
          "41 30 0:45 / /home/ann/my\\040ei rw,nosuid,nodev shared:9 - fuse.ingestfs ingestfs rw\n"
          "42 30 0:46 / /mnt/far rw - fuse.sshfs ann@far: rw\n"
          "43 30 0:47 / /net rw - nfs4 srv:/x rw\n"
          "garbage line\n")
    mounts = ext.parse_mountinfo(mi)
    t.eq(mounts.get((0, 45)), ("/home/ann/my ei", "fuse.ingestfs"),
         "parse_mountinfo: mount point unescaped, type after the separator")
    t.eq(len(mounts), 5, "parse_mountinfo: a line it cannot read is skipped")
    t.eq([ext.classify_fstype(f) for f in ("fuse.ingestfs", "ext4", "btrfs", "tmpfs",
                                             "fuse.sshfs", "fuseblk", "nfs4", "cifs", None)],
         ["mount", "local", "local", "local", None, None, None, None, None],
         "classify_fstype: ingestfs mounts, local file systems; never another FUSE or a network")
    t.eq(ext.parse_summary("uploaded=12 duplicate=0 pending=3 uploading=1 failed=1 ignored=0"),
         {"uploaded": 12, "duplicate": 0, "pending": 3, "uploading": 1, "failed": 1,
          "ignored": 0}, "parse_summary")
    t.eq(ext.parse_summary("nonsense"), None, "parse_summary of something else: None")
    t.eq(ext.short_summary({"uploaded": 12, "failed": 1}), "12 up, 1 failed", "short_summary")
    t.eq(ext.short_summary(dict.fromkeys(ext.SUMMARY_KEYS, 0)), "no files",
         "short_summary of an empty folder")

    attrs = {
        ("/m/a.jpg", "user.ingest.status"): b"failed",
        ("/m/a.jpg", "user.ingest.result"): b"refused: File too\nlarge",
        ("/m/b.jpg", "user.ingest.status"): b"uploaded",
        ("/m/d", "user.ingest.summary"):
            b"uploaded=1 duplicate=0 pending=2 uploading=0 failed=0 ignored=0",
    }
    asked = []

    def fake(path, name, follow_symlinks=True):
        asked.append((path, name, follow_symlinks))
        if (path, name) not in attrs:
            raise OSError(61, "No data available")
        return attrs[(path, name)]
    info = ext.read_info("/m/a.jpg", is_dir=False, kind="mount", getxattr=fake)
    t.eq(ext.describe(info), ext.View("emblem-important", "failed", "refused: File too large"),
         "a failed file: emblem, state, reason on one line")
    t.ok(all(not follow for _, _, follow in asked), "attributes are read without following links")
    t.eq(ext.describe(ext.read_info("/m/d", is_dir=True, kind="mount", getxattr=fake)),
         ext.View("document-open-recent", "pending", "1 up, 2 pending"), "a folder still pending")
    t.eq(ext.read_info("/m/none", is_dir=False, kind="mount", getxattr=fake), None,
         "no attribute: nothing")
    del asked[:]
    t.eq(ext.read_info("/far/x", kind=None, getxattr=fake, mounts=ext.MountTable("/nonexistent")),
         None, "a path whose file system is unknown: nothing")
    t.eq(asked, [], "... and no attribute is asked for")

    def boom(*a, **k):
        raise RuntimeError("surprise")
    t.eq(ext.read_info("/m/a.jpg", is_dir=False, kind="mount", getxattr=boom), None,
         "read_info never raises")
    watched = ext.read_info("/m/a.jpg", is_dir=False, kind="local", getxattr=fake)
    t.ok(not ext.can_retry(watched), "a failed file of a watched folder: no Retry upload")
    read = {p: ext.read_info(p, is_dir=p == "/m/d", kind="mount", getxattr=fake)
            for p in ("/m/a.jpg", "/m/b.jpg", "/m/d")}
    t.eq(ext.retry_targets(["/m/b.jpg", "/m/a.jpg", "/m/d"], read=read.get), ["/m/a.jpg"],
         "retry_targets: the failed file only")
    t.eq([ext.needs_refresh(read[p]) for p in ("/m/a.jpg", "/m/b.jpg", "/m/d")],
         [True, False, True], "asked again: failed files and folders, not uploaded files")
    written = []
    errs = ext.retry(["/m/a.jpg", "/gone"], setxattr=lambda p, n, v, follow_symlinks=True: (
        written.append((p, n, v, follow_symlinks)) if p != "/gone"
        else (_ for _ in ()).throw(OSError(2, "No such file"))))
    t.eq(written, [("/m/a.jpg", "user.ingest.status", b"retry", False)], "retry() writes retry")
    t.eq([(p, e.errno) for p, e in errs], [("/gone", 2)], "retry() returns the errors")

    r = subprocess.run([sys.executable, "-S", "-c",
                        "import importlib.util as u, sys\n"
                        "s = u.spec_from_file_location('x', sys.argv[1])\n"
                        "m = u.module_from_spec(s); s.loader.exec_module(m)\n"
                        "print(m.Nautilus, m.short_summary({'failed': 2}))", EXTENSION],
                       capture_output=True, text=True)
    t.eq(r.stdout.strip(), "None 2 failed",
         "the module imports without PyGObject (python3 -S), and its functions work", r.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", action="store_true")
    for name in ("--bin", "--run", "--shot", "--menu", "--after"):
        ap.add_argument(name)
    args = ap.parse_args()
    ext = load_extension()
    unit_checks(ext)
    if args.unit:
        t.done()
    if not all((args.bin, args.run, args.shot, args.menu, args.after)):
        ap.error("--bin, --run, --shot, --menu and --after, or --unit")
    mountlib.BIN = args.bin
    run = os.path.abspath(args.run)
    # Run last, once everything below is stopped: the shell's trap then has
    # nothing to kill (and no stale pid to hit).
    mountlib._cleanups.append(lambda: os.path.exists(os.path.join(run, "pids"))
                              and os.unlink(os.path.join(run, "pids")))

    t.ok(ext.Nautilus is not None, "the extension sees Nautilus 4.0 through PyGObject")
    if ext.Nautilus is not None:
        provider = ext.IngestfsExtension()
        cols = provider.get_columns()
        t.eq([(c.props.name, c.props.label) for c in cols],
             [("ingestfs_status", "Upload status"), ("ingestfs_detail", "Upload detail")],
             "ColumnProvider: two columns, named as in gsettings")

        class FakeFile:
            def __init__(self, n):
                self.n, self.asked = n, 0

            def get_uri(self):
                return "file:///m/%d" % self.n

            def is_gone(self):
                return self.n == 0

            def invalidate_extension_info(self):
                self.asked += 1
        fakes = [FakeFile(n) for n in range(5000)]
        t.eq(provider._delay(), 2, "asked again after 2 s")
        for f in fakes:
            provider._ask_again(f)
        provider._tick()
        t.eq(sum(f.asked for f in fakes), 4999, "a round asks again every file but a gone one")
        t.eq(provider._delay(), 10, "5000 files: every 10 s")
        t.ok(not provider._refresh, "a round empties the set; what is still shown comes back")

    emu = mountlib.Emulator(run)
    note_pid(run, emu.proc.pid)
    m = mountlib.Mount(run, emu.url, opts="settle=200,concurrency=1")
    note_pid(run, m.proc.pid)
    car = m.path(LABEL)
    p = {name: os.path.join(car, name) for name in (
        "uploaded.csv", "duplicate.csv", "failed.csv", "uploading.csv", "pending.csv",
        "writing.csv", "notes.tmp", "batch2", "batch2/ok.csv", "batch2/bad.csv")}

    # Final states first, then the moving ones behind a held request.
    write(p["uploaded.csv"], csv(1))
    write(p["batch2/ok.csv"], csv(2))
    t.ok(wait_state(p["uploaded.csv"], "uploaded") and wait_state(p["batch2/ok.csv"], "uploaded"),
         "uploaded.csv and batch2/ok.csv uploaded", m.log())
    write(p["duplicate.csv"], csv(1))
    t.ok(wait_state(p["duplicate.csv"], "duplicate"), "duplicate.csv: the same bytes again")
    emu.control(reply_status=400, reply_body='{"success": false, "error": "bad"}')
    write(p["failed.csv"], csv(3))
    write(p["batch2/bad.csv"], csv(4))
    t.ok(wait_state(p["failed.csv"], "failed") and wait_state(p["batch2/bad.csv"], "failed"),
         "failed.csv and batch2/bad.csv failed (HTTP 400)")
    emu.control(reply_status=0)
    write(p["notes.tmp"], b"not a sample\n")
    emu.control(hold=True)
    write(p["uploading.csv"], csv(5))
    t.ok(wait_state(p["uploading.csv"], "uploading"), "uploading.csv: its request is held")
    write(p["pending.csv"], csv(6))
    t.ok(mountlib.wait_until(lambda: xattr(p["pending.csv"]) == "pending", 10),
         "pending.csv waits behind it (concurrency=1)", xattr(p["pending.csv"]))
    writer = open(p["writing.csv"], "wb")
    writer.write(csv(7))
    writer.flush()
    t.eq(xattr(p["writing.csv"]), "writing", "writing.csv: still open")

    # The plain functions, on the real mount.
    want = {
        "uploaded.csv": ("emblem-default", "uploaded", "uploaded"),
        "duplicate.csv": ("emblem-documents", "duplicate", None),
        "failed.csv": ("emblem-important", "failed", "HTTP 400: bad"),
        "uploading.csv": ("emblem-synchronizing", "uploading", None),
        "pending.csv": ("document-open-recent", "pending", None),
        "writing.csv": ("document-open-recent", "writing", None),
        "notes.tmp": (None, "ignored", None),
        "batch2": ("emblem-important", "failed", "1 up, 1 failed"),
    }
    for name, (emblem, status, detail) in want.items():
        info = ext.read_info(p[name])
        view = ext.describe(info)
        t.ok(view is not None, "%s: read_info() answers" % name)
        if view is None:
            continue
        t.eq(view.emblem, emblem, "%s: emblem %s" % (name, emblem))
        t.eq(view.status, status, "%s: status column %r" % (name, status))
        if detail is None and not info.is_dir:
            detail = xattr(p[name], "result")
            detail = "" if detail.startswith("<") else detail
        t.eq(view.detail, detail, "%s: detail column %r" % (name, detail))
    for path in (p["uploaded.csv"], p["batch2"]):
        t.ok(ext.read_info(path).mount, "%s is in a mount" % os.path.basename(path))
    label = ext.describe(ext.read_info(car))
    t.eq(label, ext.View("emblem-important", "failed",
                         "2 up, 1 dup, 2 pending, 1 uploading, 2 failed, 1 ignored"),
         "the label folder: counts of everything below it (writing counts as pending)")
    t.eq(ext.read_info(os.path.join(run, "key")), None, "a file outside the mount: nothing")
    t.eq(ext.read_info("/proc/self/status"), None, "a file on /proc: nothing")
    entries = sorted(os.path.join(car, n) for n in os.listdir(car))
    targets = ext.retry_targets(entries)
    t.eq(targets, [p["batch2"], p["failed.csv"]],
         "Retry upload applies to the failed file and the folder with one below")

    # Nautilus itself.
    desk = Desktop(run, EXTENSION)
    try:
        desk.start_x()
        desk.start_nautilus(car)
        expect = {p[n]: want[n] for n in want}

        def all_shown():
            seen = desk.shown()
            return all(path in seen and seen[path][:2] == w[:2] for path, w in expect.items())
        ok = mountlib.wait_until(all_shown, 90, 0.5)
        t.ok(ok, "Nautilus ran the extension for every file (emblem and status as expected)",
             "shown: %r\nlog:\n%s" % (desk.shown(), desk.log_text()[-3000:]))
        time.sleep(3)  # the last answers drawn
        desk.screenshot(args.shot)
        t.ok(desk.colours(args.shot) > 50, "the screenshot is not blank: " + args.shot)

        # Let everything go.
        emu.control(hold=False)
        writer.close()
        for name in ("uploading.csv", "pending.csv", "writing.csv"):
            t.ok(wait_state(p[name], "uploaded"), "%s uploaded once let go" % name,
                 xattr(p[name]))
        t.eq(ext.retry_targets(entries), [p["batch2"], p["failed.csv"]],
             "Retry upload still applies to the failed file and its folder")
        emu._call("POST", "/_reset")  # forget the bytes stored before the 400

        # Retry upload, the plain functions, on the failed file.
        t.eq(ext.retry([p["failed.csv"]]), [], "retry() on failed.csv")
        t.ok(wait_state(p["failed.csv"], "uploaded"), "failed.csv uploaded after retry()",
             "%s: %s" % (xattr(p["failed.csv"]), xattr(p["failed.csv"], "result")))
        t.eq(ext.describe(ext.read_info(p["failed.csv"])),
             ext.View("emblem-default", "uploaded", "failed"),
             "failed.csv now shows the uploaded emblem and its stored name")
        t.eq(ext.retry_targets(entries), [p["batch2"]], "Retry upload now applies to batch2 only")
        t.eq(len(ext.retry([os.path.join(car, "no-such-file.csv")])), 1,
             "retry() of a missing file reports the error, never raises")

        # Retry upload, in Nautilus: Select All, the context menu, its item.
        desk.click(1000, 119)  # the first row: the list has the keyboard now
        time.sleep(1)
        mark = len(desk.log_text())
        desk.key("ctrl+a")
        time.sleep(1)
        desk.key("shift+F10")
        line = mountlib.wait_until(lambda: desk.logged(mark, "menu "), 15, 0.2)
        t.eq(line and line.split(), [p["batch2"]],
             "the context menu of everything selected offers Retry upload for batch2",
             desk.log_text()[mark:][-2000:])
        time.sleep(1.5)
        desk.screenshot(args.menu)
        desk.key("u")  # the item's mnemonic: Retry _upload
        line = mountlib.wait_until(lambda: desk.logged(mark, "retry "), 15, 0.2)
        t.eq(line and line.split(), [p["batch2"]], "choosing it writes retry on batch2")
        t.ok(wait_state(p["batch2/bad.csv"], "uploaded"), "batch2/bad.csv uploaded after it",
             "%s: %s" % (xattr(p["batch2/bad.csv"]), xattr(p["batch2/bad.csv"], "result")))
        t.eq(ext.describe(ext.read_info(p["batch2"])),
             ext.View("emblem-default", "uploaded", "2 up"), "batch2: 2 up")
        t.eq(ext.retry_targets(entries), [], "Retry upload applies to nothing any more")

        # Nautilus follows, without being told.
        def refreshed():
            seen = desk.shown()
            return all(seen.get(p[n], (None, ""))[:2] == ("emblem-default", "uploaded")
                       for n in ("batch2", "failed.csv", "uploading.csv", "pending.csv",
                                 "writing.csv"))
        t.ok(mountlib.wait_until(refreshed, 30, 0.5),
             "Nautilus shows every file uploaded (the extension asks again by itself)",
             repr(desk.shown()))
        desk.key("Escape")
        desk.click(700, 590)  # below the rows: nothing selected
        desk.pointer(1270, 630)
        time.sleep(3)
        desk.screenshot(args.after)
        t.ok(desk.colours(args.after) > 50, "second screenshot: " + args.after)
        t.ok("Traceback" not in desk.log_text(), "no Python traceback in Nautilus's output",
             desk.log_text()[-3000:])
    finally:
        desk.stop()
    t.eq(m.stop(), 0, "unmounted cleanly")
    t.done()


if __name__ == "__main__":
    main()
