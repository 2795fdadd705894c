#!/usr/bin/env python3
"""Memory and start-up against a long history (issue: months unattended).

  A. a spool with N files (default 1,000,000) uploaded earlier and still
     in the mount, as a journal of that many records (what an older
     ingestfs left behind): the first start moves them into the state
     index; then, after a clean unmount, the figures that matter every
     day:
       - RSS of the daemon once mounted (target <= 128 MiB)
       - mount ready, from exec to mounted (target <= 2 s)
       - `ingestfs status MNT` (target <= 100 ms)
       - a folder's user.ingest.summary getxattr (target <= 10 ms)
       - a file's user.ingest.status getxattr (served from the index)
       - FUSE operations (create, write, close; stat; getxattr) while new
         files upload and the index and journal are maintained: the
         slowest, and how many took over 50 ms (target: none)
       - a start after kill -9, which scans the whole spool
  B. keep=60s and a writer making 50 files a second for 10 minutes: RSS,
     journal, index and spool size every 30 s; they must level off.

A benchmark, not a test: it prints figures and exits 0.

    python3 bench/history.py [--files 1000000] [--minutes 10] [--only A,B] [--bin PATH]
"""
import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import mountlib  # noqa: E402

FOLDERS = 100


def rss_kib(pid, field="VmRSS"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def journal_line(kind, ino, state, sent, size, path, result):
    def esc(s):
        return "=" + "".join("%%%02X" % ord(c) if c <= " " or c in "%\x7f" else c for c in s)
    body = "%s %d %d %d %d %s %s" % (kind, ino, state, sent, size, esc(path), esc(result))
    return "%s %08x\n" % (body, zlib.crc32(body.encode()) & 0xFFFFFFFF)


def make_history(spool, n):
    """N empty files, uploaded, in FOLDERS label folders, and the journal
    an older ingestfs would have written for them."""
    files = os.path.join(spool, "files")
    state = os.path.join(spool, "state")
    os.makedirs(state, mode=0o700)
    for c in ("training", "testing", "anomaly"):
        os.makedirs(os.path.join(files, c), exist_ok=True)
    with open(os.path.join(state, "journal"), "w") as j:
        j.write("ingestfs-journal 1\n")
        for i in range(n):
            rel = "training/label%02d/%07d.jpg" % (i % FOLDERS, i)
            p = os.path.join(files, rel)
            if i < FOLDERS:
                os.makedirs(os.path.dirname(p), exist_ok=True)
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
            ino = os.fstat(fd).st_ino
            os.close(fd)
            j.write(journal_line("F", ino, 3, 0, 0, rel, "%07d.jpg.4ha5m2" % i))
    os.chmod(spool, 0o700)


def timed(fn, runs):
    out = []
    for _ in range(runs):
        t = time.monotonic()
        fn()
        out.append((time.monotonic() - t) * 1000)
    return out


def ms(values):
    return "median %.2f ms, max %.2f ms" % (statistics.median(values), max(values))


def index_rows(spool):
    try:
        c = sqlite3.connect("file:%s?mode=ro" % os.path.join(spool, "state", "index.db"),
                            uri=True, timeout=5)
        n = c.execute("select count(*) from files").fetchone()[0]
        c.close()
        return n
    except sqlite3.Error:
        return -1


def start_timed(m):
    t = time.monotonic()
    m.start()
    return (time.monotonic() - t) * 1000


def op_latencies(m, n, seconds):
    """Writers and readers in the mount while uploads end and the index
    and journal are maintained behind them: every operation's time."""
    stop = time.monotonic() + seconds
    lat = {"create+write+close": [], "stat": [], "getxattr summary": []}
    lock = threading.Lock()

    def writer(k):
        i = 0
        while time.monotonic() < stop:
            p = m.path("training/new%d/%06d.json" % (k, i))
            if i == 0:
                os.makedirs(os.path.dirname(p), exist_ok=True)
            t = time.monotonic()
            with open(p, "wb") as f:
                f.write(b'{"n": %d}' % i)
            d = (time.monotonic() - t) * 1000
            with lock:
                lat["create+write+close"].append(d)
            i += 1
            time.sleep(0.002)

    def reader():
        while time.monotonic() < stop:
            t = time.monotonic()
            k = random.randrange(0, n // FOLDERS) * FOLDERS + 7
            os.stat(m.path("training/label07/%07d.jpg" % k))
            d1 = (time.monotonic() - t) * 1000
            t = time.monotonic()
            os.getxattr(m.path("training"), "user.ingest.summary")
            d2 = (time.monotonic() - t) * 1000
            with lock:
                lat["stat"].append(d1)
                lat["getxattr summary"].append(d2)
            time.sleep(0.005)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    threads.append(threading.Thread(target=reader))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lat


def part_a(args):
    n = args.files
    print("A. history of %d files" % n, flush=True)
    root = mountlib.workdir("bench-history")
    spool = os.path.join(root, "spool")
    t = time.monotonic()
    make_history(spool, n)
    print("  made %d files and their journal in %.0f s (journal %.0f MB)"
          % (n, time.monotonic() - t, os.path.getsize(os.path.join(spool, "state/journal")) / 1e6),
          flush=True)
    emu = mountlib.Emulator(root)
    t = time.monotonic()
    m = mountlib.Mount(root, emu.url, opts="settle=100", spool=spool)
    ready = (time.monotonic() - t) * 1000
    pid = m.proc.pid
    print("  first start (replays the old journal): ready in %.1f s" % (ready / 1000), flush=True)
    t = time.monotonic()
    while index_rows(spool) < n and time.monotonic() - t < 1800:
        time.sleep(1)
    print("  moved into the index in %.0f s more; peak RSS %.0f MiB; RSS now %.0f MiB"
          % (time.monotonic() - t, rss_kib(pid, "VmHWM") / 1024, rss_kib(pid) / 1024),
          flush=True)
    t = time.monotonic()
    rc = m.stop()
    print("  clean unmount: %.1f s (rc %s)" % (time.monotonic() - t, rc), flush=True)

    readies = []
    for _ in range(3):
        readies.append(start_timed(m))
        pid = m.proc.pid
        rss_ready = rss_kib(pid)
        if len(readies) < 3:
            m.stop()
    print("  mount ready: %s                          target <= 2000 ms" % ms(readies))
    print("  RSS once mounted: %.1f MiB                       target <= 128 MiB"
          % (rss_ready / 1024), flush=True)
    status = timed(lambda: subprocess.run([mountlib.BIN, "status", m.mnt],
                                          capture_output=True, check=False), 10)
    r = subprocess.run([mountlib.BIN, "status", m.mnt], capture_output=True, text=True)
    print("  ingestfs status MNT: %s            target <= 100 ms" % ms(status))
    print("    " + r.stdout.strip().replace("\n", "\n    "))
    summ = timed(lambda: os.getxattr(m.path("training"), "user.ingest.summary"), 200)
    summ += timed(lambda: os.getxattr(m.path("training/label42"), "user.ingest.summary"), 200)
    print("  folder summary getxattr: %s        target <= 10 ms" % ms(summ))
    picks = [random.randrange(n) for _ in range(2000)]
    it = iter(picks)
    st = timed(lambda: os.getxattr(m.path("training/label%02d/%07d.jpg" % (
        (i := next(it)) % FOLDERS, i)), "user.ingest.status"), len(picks))
    print("  file status getxattr (from the index, cold): %s" % ms(st))
    print("  RSS after 2,000 status reads: %.1f MiB" % (rss_kib(pid) / 1024), flush=True)
    lat = op_latencies(m, n, 60)
    for what, v in lat.items():
        v.sort()
        print("  %-20s during uploads + maintenance: %d ops, p99 %.2f ms, max %.1f ms, "
              "%d over 50 ms" % (what, len(v), v[int(len(v) * 0.99)], v[-1],
                                 sum(1 for x in v if x > 50)))
    print("  RSS after that: %.1f MiB" % (rss_kib(pid) / 1024), flush=True)
    m.kill9()
    t = start_timed(m)
    print("  start after kill -9 (scans the spool): ready in %.1f s, RSS %.0f MiB (peak %.0f)"
          % (t / 1000, rss_kib(m.proc.pid) / 1024, rss_kib(m.proc.pid, "VmHWM") / 1024),
          flush=True)
    m.stop()
    emu.stop()


def du(path):
    n = b = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(d, f))
            except FileNotFoundError:
                continue
            n += 1
            b += st.st_blocks * 512
    return n, b


def part_b(args):
    print("B. keep=60s, %g files/s for %g minutes" % (args.rate, args.minutes), flush=True)
    root = mountlib.workdir("bench-keep")
    emu = mountlib.Emulator(root)
    spool = os.path.join(root, "spool")
    m = mountlib.Mount(root, emu.url, opts="keep=60s", spool=spool)
    pid = m.proc.pid
    os.makedirs(m.path("training/cam"))
    payload = os.urandom(20000)
    stop = time.monotonic() + args.minutes * 60
    print("  %6s %9s %10s %10s %12s %8s" % ("t (s)", "RSS MiB", "journal kB", "index kB",
                                            "spool files", "MB"), flush=True)
    start = time.monotonic()
    nxt = start
    i = 0
    report = start
    while time.monotonic() < stop:
        with open(m.path("training/cam/%07d.jpg" % i), "wb") as f:
            f.write(b"%07d" % i + payload)
        i += 1
        nxt += 1 / args.rate
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)
        if time.monotonic() >= report:
            files, b = du(os.path.join(spool, "files"))
            idx = sum(os.path.getsize(os.path.join(spool, "state", f))
                      for f in os.listdir(os.path.join(spool, "state")) if f.startswith("index"))
            print("  %6.0f %9.1f %10.0f %10.0f %12d %8.1f" % (
                time.monotonic() - start, rss_kib(pid) / 1024,
                os.path.getsize(os.path.join(spool, "state/journal")) / 1e3, idx / 1e3,
                files, b / 1e6), flush=True)
            report += 30
    print("  wrote %d files; lifetime: %s" % (
        i, os.getxattr(m.mnt, "user.ingest.lifetime").decode()), flush=True)
    m.stop()
    emu.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000000)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=50, help="files a second in B")
    ap.add_argument("--only", default="A,B")
    ap.add_argument("--bin")
    args = ap.parse_args()
    if args.bin:
        mountlib.BIN = os.path.abspath(args.bin)
    if "A" in args.only:
        part_a(args)
    if "B" in args.only:
        part_b(args)


if __name__ == "__main__":
    main()
