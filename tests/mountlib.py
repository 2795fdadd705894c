"""Helpers for the mount tests: TAP output, the emulator, and a real mount.

Every test script uses these so that each one starts the project's own
emulator of the ingestion service, mounts ingestfs for real, and always
unmounts, whatever happens.  On a machine without /dev/fuse a test skips;
with INGESTFS_REQUIRE_FUSE=1 (as in CI) a skip is a failure instead.
"""
import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

SRCDIR = os.environ.get("INGESTFS_SRCDIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("INGESTFS_BIN", os.path.join(SRCDIR, "ingestfs"))
EMULATOR = os.path.join(SRCDIR, "tests", "emulator.py")
GOOD_KEY = "ei_0123456789abcdef"


class Tap:
    """A TAP producer: ok(), eq(), then done() at the end of main."""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok" if cond else "not ok") + " %d - %s" % (self.n, name), flush=True)
        if not cond and diag is not None:
            for line in str(diag).splitlines() or [""]:
                print("#   " + line, flush=True)
        return cond

    def eq(self, got, want, name, diag=None):
        extra = "" if diag is None else "\n" + str(diag)
        return self.ok(got == want, name, "got:  %r\nwant: %r%s" % (got, want, extra))

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


def skip_all(reason):
    if os.environ.get("INGESTFS_REQUIRE_FUSE") == "1":
        print("Bail out! cannot run mount tests here (%s), and INGESTFS_REQUIRE_FUSE=1" % reason)
        sys.exit(1)
    print("1..0 # SKIP %s" % reason)
    sys.exit(0)


def require_fuse():
    """Skip (exit 77 semantics, via TAP) on a machine that cannot mount."""
    if not os.path.exists("/dev/fuse"):
        skip_all("no /dev/fuse")
    if not shutil.which("fusermount3"):
        skip_all("no fusermount3 (apt-get install fuse3)")
    if not os.access(BIN, os.X_OK):
        skip_all("ingestfs not built at %s" % BIN)


def free_port():
    """A loopback port nobody listens on right now."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def wait_until(pred, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


_cleanups = []


def _run_cleanups(*_):
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # cleanup must go on
            print("# cleanup: %s" % e, flush=True)


atexit.register(_run_cleanups)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, lambda s, f: (_run_cleanups(), sys.exit(128 + s)))


@contextlib.contextmanager
def tmpfs(root, size):
    """A tmpfs of SIZE (mount's size=) at ROOT/disk, for a spool that fills
    up; root only.  Unmounted on the way out."""
    disk = os.path.join(root, "disk")
    os.mkdir(disk)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", disk], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", disk])


def workdir(name):
    d = tempfile.mkdtemp(prefix="ingestfs-%s-" % name)
    _cleanups.append(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


class Emulator:
    """The project's fake ingestion service, on an ephemeral loopback port.

    It answers in the official clients' reply shape, or in the older one
    with INGESTFS_EMULATOR_DIALECT=legacy (scripts/check-all.sh runs the
    mount tests in both) or dialect="legacy"."""

    def __init__(self, root, *args, port=0, dialect=None):
        self.root = root
        self.dialect = dialect or os.environ.get("INGESTFS_EMULATOR_DIALECT", "official")
        self.log = os.path.join(root, "samples.jsonl")
        self.requests_log = os.path.join(root, "requests.jsonl")
        self.port_file = os.path.join(root, "port-%d" % id(self))
        self.args = list(args)
        self.port = port
        self.proc = None
        self.start()
        _cleanups.append(self.stop)

    def start(self):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        cmd = [sys.executable, EMULATOR, "--port", str(self.port), "--port-file", self.port_file,
               "--log", self.log, "--requests-log", self.requests_log,
               "--dialect", self.dialect] + self.args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.root, "emulator.err"), "a"))
        if not wait_until(lambda: os.path.exists(self.port_file), 10):
            raise RuntimeError("emulator did not start")
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        tls = "--tls-cert" in self.args
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        self.control_url = self.url

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        import ssl
        context = ssl._create_unverified_context() if self.url.startswith("https") else None
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return json.loads(r.read() or b"null")

    def control(self, **settings):
        return self._call("POST", "/_control", settings)

    def samples(self):
        """Every sample stored, across restarts of the emulator (from its log)."""
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def requests(self):
        if not os.path.exists(self.requests_log):
            return []
        with open(self.requests_log) as f:
            return [json.loads(line) for line in f if line.strip()]


class Mount:
    """ingestfs -f on a fresh mountpoint; unmounted at exit whatever happens."""

    log_name = "ingestfs.log"

    def command(self, url, options):
        return [BIN, "-f", "-o", options, self.mnt]

    def __init__(self, root, url, key=GOOD_KEY, opts="", spool=None, env=None, mnt=None,
                 wrap=()):
        self.root = root
        self.mnt = mnt or os.path.join(root, "mnt")
        self.spool = spool or os.path.join(root, "spool")
        self.key_file = os.path.join(root, "key")
        self.stderr_path = os.path.join(root, self.log_name)
        os.makedirs(self.mnt, exist_ok=True)
        if key:
            self.write_key(key)
        options = "url=%s,spool=%s" % (url, self.spool)
        if key:
            options += ",api_key_file=" + self.key_file
        if opts:
            options += "," + opts
        self.cmd = list(wrap) + self.command(url, options)
        if os.environ.get("INGESTFS_VALGRIND") == "1":
            # Any invalid access or definite leak makes the exit status 99,
            # which every test that unmounts checks.
            self.cmd = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                        "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                        "--log-file=%s.valgrind.%%p" % self.stderr_path] + self.cmd
        self.env = dict(os.environ, INGESTFS_CONFIG=os.path.join(root, "no-config"))
        self.env.pop("EI_API_KEY", None)
        self.env.update(env or {})
        self.proc = None
        self.start()
        _cleanups.append(self.stop)

    def write_key(self, key):
        tmp = self.key_file + ".new"
        with open(tmp, "w") as f:
            f.write(key + "\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, self.key_file)

    def start(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr_path, "a"))
        up = 60 if os.environ.get("INGESTFS_VALGRIND") == "1" else 10
        if not wait_until(lambda: os.path.ismount(self.mnt) or self.proc.poll() is not None, up):
            raise RuntimeError("mount did not come up: " + self.log())
        if self.proc.poll() is not None:
            raise RuntimeError("ingestfs exited: " + self.log())

    def stop(self):
        """Unmount and wait for the daemon; returns its exit status."""
        if self.proc is None:
            return None
        if os.path.ismount(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], stderr=subprocess.DEVNULL)
            if os.path.ismount(self.mnt):
                subprocess.run(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
        return self._reap()

    def _reap(self):
        """Wait for the daemon to exit (killing it after 20 s); its status."""
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        return rc

    def kill9(self):
        """Crash the daemon: SIGKILL, then clear the dead mount."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        subprocess.run(["fusermount3", "-uz", self.mnt], stderr=subprocess.DEVNULL)
        wait_until(lambda: not os.path.ismount(self.mnt), 5)

    def restart(self):
        """Mount again on the same spool."""
        if self.proc is not None:
            self.stop()
        self.start()

    def journal(self):
        return os.path.join(self.spool, "state", "journal")

    def log(self):
        text = ""
        for path in [self.stderr_path] + sorted(
                os.path.join(self.root, f) for f in os.listdir(self.root)
                if f.startswith(os.path.basename(self.stderr_path) + ".valgrind.")):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def path(self, rel):
        return os.path.join(self.mnt, rel)

    def write(self, rel, data):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def xattr(self, rel, name="status"):
        try:
            return os.getxattr(self.path(rel), "user.ingest." + name).decode()
        except OSError as e:
            return "<%s>" % (e.strerror or e)

    def status_cmd(self, *args, timeout=60):
        r = subprocess.run([BIN, "status"] + list(args), capture_output=True, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout, r.stderr

    def wait_done(self, *rels, timeout=30):
        paths = [self.path(r) for r in rels] or [self.mnt]
        return self.status_cmd("--wait", "--timeout", str(timeout), *paths,
                               timeout=timeout + 30)


class Watcher(Mount):
    """ingestfs watch -f on a plain folder; stopped with SIGTERM at exit."""

    log_name = "watch.log"

    def __init__(self, root, url, key=GOOD_KEY, opts="", state=None, env=None, folder=None,
                 wrap=()):
        super().__init__(root, url, key=key, opts=opts, spool=state or os.path.join(root, "state"),
                         env=env, mnt=folder or os.path.join(root, "watched"), wrap=wrap)

    def command(self, url, options):
        options = options.replace("spool=", "state=")
        return [BIN, "watch", "-f", "-o", options, self.mnt]

    def start(self):
        seen = self.log().count("watching")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.stderr_path, "a"))
        if not wait_until(lambda: self.log().count("watching") > seen
                          or self.proc.poll() is not None, 20):
            raise RuntimeError("watcher did not start: " + self.log())
        if self.proc.poll() is not None:
            raise RuntimeError("ingestfs watch exited: " + self.log())

    def stop(self):
        if self.proc is None:
            return None
        self.proc.terminate()
        return self._reap()

    def journal(self):
        return os.path.join(self.spool, "journal")


# ---- other users ----

# Users with no account: what a camera's service user is to the mount.
CAMERA_UID = 4242
OTHER_UID = 4243
# The system's Python: a developer's (pyenv, venv) may be out of their reach.
SYSTEM_PYTHON = "/usr/bin/python3"


def require_root(t, why):
    """Tests that act as other users need root to become them."""
    if os.geteuid() != 0:
        skip_all("%s needs root" % why)


def as_user(uid, *cmd, cwd=None, input=None, timeout=120, env=None):
    """Run CMD as UID (and the same gid, no other groups); returns
    (exit status, stdout, stderr) as text."""
    home = "/tmp/ingestfs-home-%d" % uid
    os.makedirs(home, exist_ok=True)
    os.chown(home, uid, uid)
    e = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8",
         "GIO_USE_VFS": "local", "XDG_DATA_HOME": os.path.join(home, ".local/share")}
    e.update(env or {})
    r = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                        "--"] + list(cmd), cwd=cwd, input=input, capture_output=True,
                       text=True, timeout=timeout, env=e)
    return r.returncode, r.stdout, r.stderr


def user_python(uid, code, cwd=None, timeout=120):
    """Run Python CODE as UID; returns (status, stdout, stderr)."""
    return as_user(uid, SYSTEM_PYTHON, "-c", code, cwd=cwd, timeout=timeout)
