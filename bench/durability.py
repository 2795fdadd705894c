#!/usr/bin/env python3
"""What durability costs: files per second through a mount, with the
journal's grouped syncs and without them (INGESTFS_UNSAFE_NO_SYNC=1).

For each mode: N small files are written into label folders of a fresh
mount (one writer, like cp), then we wait until all are uploaded to the
local emulator.  Prints a table.  A benchmark, not a test: run it by hand.

    python3 bench/durability.py [--files N] [--size BYTES] [--settle MS] [--spool-dir DIR] [--bin PATH]
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import mountlib  # noqa: E402


def run(mode_env, nfiles, size, spool_dir, settle):
    root = mountlib.workdir("bench-dur")
    emu = mountlib.Emulator(root)
    spool = os.path.join(spool_dir or root, "spool-%d" % time.monotonic_ns())
    m = mountlib.Mount(root, emu.url, opts="settle=%d" % settle, spool=spool, env=mode_env)
    payload = os.urandom(size)
    start = time.monotonic()
    for i in range(nfiles):
        m.write("training/l%d/f%05d.json" % (i % 10, i), payload[:-8] + b"%08d" % i)
    written = time.monotonic() - start
    rc, out, err = m.wait_done(timeout=600)
    done = time.monotonic() - start
    journal = os.path.getsize(m.journal())
    requests = len(emu.requests())
    m.stop()
    emu.stop()
    if rc != 0:
        sys.exit("upload did not finish: %s %s" % (out, err))
    return written, done, journal, requests


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--spool-dir", help="where spools go (default: /tmp); put it on the disk to measure")
    ap.add_argument("--settle", type=int, default=500, help="settle=MS of the mount (500)")
    ap.add_argument("--bin", help="ingestfs binary")
    args = ap.parse_args()
    if args.bin:
        mountlib.BIN = os.path.abspath(args.bin)
    mountlib.require_fuse()
    rows = []
    for name, env in (("journal + grouped fdatasync", {}),
                      ("journal, no syncs (unsafe)", {"INGESTFS_UNSAFE_NO_SYNC": "1"})):
        rows.append((name,) + run(env, args.files, args.size, args.spool_dir, args.settle))
    print("\n%d files of %d bytes, one writer, settle=%d, emulator on loopback"
          % (args.files, args.size, args.settle))
    print("| mode | write (s) | files/s written | until all uploaded (s) | files/s end to end "
          "| requests | journal bytes |")
    print("|---|---|---|---|---|---|---|")
    for name, w, d, j, r in rows:
        print("| %s | %.2f | %.0f | %.2f | %.0f | %d | %d |"
              % (name, w, args.files / w, d, args.files / d, r, j))
    base = rows[1][2]
    print("\nend-to-end cost of the syncs: %.1f%%" % ((rows[0][2] - base) / base * 100))


if __name__ == "__main__":
    main()
