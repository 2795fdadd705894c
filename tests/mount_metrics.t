#!/usr/bin/env python3
"""metrics=PATH (ingestfs(1) METRICS): a Prometheus text file, replaced
whole every few seconds, that a strict parser of the exposition format
accepts, whose counters match what the emulator saw after a run with
faults, and whose lifetime counters survive a restart.  And the log
(ingestfs(1) LOGGING): one line per request that decided something, one
per final failure, nothing repeated while retrying."""
import collections
import json
import os
import re
import time

from mountlib import Emulator, Mount, Tap, require_fuse, wait_until, workdir

require_fuse()
t = Tap()
root = workdir("metrics")
emu = Emulator(root)
prom = os.path.join(root, "ingestfs.prom")
m = Mount(root, emu.url, opts="settle=50,batch=5,backoff=100,backoff_max=400,metrics=" + prom)

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)\})? (\S+)$" % (NAME, LABEL, LABEL))


def parse(text):
    """The Prometheus text format, strictly: HELP and TYPE before a
    family's samples, samples of a family together, counters named
    *_total, values that are numbers, no series twice, a final newline."""
    if not text.endswith("\n"):
        raise ValueError("no final newline")
    families, series, current = {}, {}, None
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            name = line.split()[2]
            if name in families:
                raise ValueError("line %d: %s described twice" % (n, name))
            families[name] = {"help": True}
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            if name != current or typ not in ("counter", "gauge"):
                raise ValueError("line %d: TYPE of %s out of place or unknown" % (n, name))
            if typ == "counter" and not name.endswith("_total"):
                raise ValueError("line %d: counter %s not named _total" % (n, name))
            families[name]["type"] = typ
        elif line.startswith("#") or not line:
            raise ValueError("line %d: unexpected %r" % (n, line))
        else:
            match = SAMPLE.match(line)
            if not match:
                raise ValueError("line %d: not a sample: %r" % (n, line))
            name, labels, value = match.groups()
            if name != current or "type" not in families.get(name, {}):
                raise ValueError("line %d: %s not in its family's place" % (n, name))
            value = float(value)
            key = (name, labels or "")
            if key in series:
                raise ValueError("line %d: %s{%s} twice" % (n, name, labels))
            series[key] = value
    return families, series


def read_metrics():
    with open(prom) as f:
        return parse(f.read())


def value(series, name, **labels):
    for (n, lab), v in series.items():
        got = dict(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', lab))
        if n == name and all(got.get(k) == str(w) for k, w in labels.items()):
            return v
    return None


t.ok(wait_until(lambda: os.path.exists(prom), 15), "the metrics file appears")
families, series = read_metrics()
t.ok("ingestfs_build_info" in families and value(series, "ingestfs_files", state="uploaded") == 0,
     "a strict parser reads it", sorted(families))
t.eq(value(series, "ingestfs_paused", reason="api_key"), 0, "not paused")

# A run with faults: refused requests, dropped connections, a duplicate,
# a file the service refuses for good.
emu.control(fail_rate=0.3, drop_rate=0.15)
for i in range(40):
    m.write("training/cam/%02d.json" % i, b'{"n": %d}' % i)
rc, out, err = m.wait_done(timeout=120)
# Without faults, so that its reply is surely about another file.
emu.control(fail_rate=0.0, drop_rate=0.0)
m.write("training/cam/copy.json", b'{"n": 7}')
m.wait_done("training/cam/copy.json")
emu.control(reply_status=400,
            reply_body=json.dumps({"success": False, "error": "no such thing"}))
m.write("training/cam/refused.json", b'{"refused": 1}')
m.wait_done("training/cam/refused.json")
emu.control(reply_status=0)
t.ok(m.xattr("training/cam/refused.json") == "failed", "one file failed for good")
time.sleep(6)  # the next write of the file
families, series = read_metrics()
stored = len(emu.samples())
statuses = collections.Counter(r["status"] for r in emu.requests())
ours = {int(re.search(r'code="(\d+)"', lab).group(1)): v
        for (n, lab), v in series.items() if n == "ingestfs_requests_total"}
t.eq(value(series, "ingestfs_uploaded_files_total") + value(
    series, "ingestfs_duplicate_files_total"), 41,
     "uploaded and duplicate files add up to the 41 sent")
t.eq(value(series, "ingestfs_duplicate_files_total"), 1, "the copy was a duplicate")
t.eq(value(series, "ingestfs_failed_files_total"), 1, "one failed")
# 400: the emulator stored it, then said no (a broken service).
t.eq(value(series, "ingestfs_uploaded_files_total"), stored - 1,
     "uploaded files match what the emulator stored (%d)" % stored)
t.eq({c: v for c, v in ours.items() if c != 0}, {c: float(n) for c, n in statuses.items()
                                                 if isinstance(c, int) and c > 0},
     "requests by HTTP status match the emulator's log (%s)" % dict(statuses))
# curl sends a request again by itself when a reused connection was
# closed before any reply: the daemon saw one request, the emulator two.
t.ok(ours.get(0, 0) <= statuses[None],
     "dropped connections count as code 0 (%s of %d)" % (ours.get(0), statuses[None]))
t.ok(value(series, "ingestfs_retries_total") > 0, "retries are counted")
t.eq(value(series, "ingestfs_files", state="uploaded"), 40, "files by state")
t.eq(value(series, "ingestfs_oldest_waiting_seconds"), 0, "nothing waits")
t.ok(value(series, "ingestfs_last_success_timestamp_seconds") > time.time() - 60,
     "the last success is recent")
before = value(series, "ingestfs_uploaded_files_total")

# The log a person reads.
log = m.log()
req_lines = [l for l in log.splitlines() if re.search(r"training/cam: \d+ file\(s\)", l)]
t.ok(req_lines and all("HTTP" in l and "MB in" in l for l in req_lines),
     "one info line per request that decided something", req_lines[:3])
t.ok(any("refused.json: upload failed: HTTP 400: no such thing" in l for l in log.splitlines()),
     "one line per final failure, with the service's words", log[-800:])
retry_lines = [l for l in log.splitlines() if "retrying with backoff" in l]
t.ok(len(retry_lines) < 10, "retries are told once per change, not per attempt (%d lines)"
     % len(retry_lines), retry_lines[:5])

# Paused by a refused key; the counters survive a restart.
emu.control(api_keys=["ei_other"])
m.write("training/cam/later.json", b'{"later": 1}')
t.ok(wait_until(lambda: value(read_metrics()[1], "ingestfs_paused", reason="api_key") == 1, 20),
     "a refused key shows as paused")
t.ok(value(read_metrics()[1], "ingestfs_oldest_waiting_seconds") > 0,
     "and the waiting file's age grows")
emu.control(api_keys=["ei_0123456789abcdef"])
t.eq(m.stop(), 0, "unmounts cleanly")
m.start()
m.write_key("ei_0123456789abcdef")
m.wait_done(timeout=60)
time.sleep(6)
series = read_metrics()[1]
t.eq(value(series, "ingestfs_uploaded_files_total"), before + 1,
     "lifetime counters survive a restart (and count on)")
t.eq(value(series, "ingestfs_paused", reason="api_key"), 0, "no longer paused")
t.eq(m.stop(), 0, "unmounts cleanly")
t.done()
