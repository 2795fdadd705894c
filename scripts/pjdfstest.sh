#!/bin/sh
# Run pjdfstest (https://github.com/pjd/pjdfstest) on a folder of an
# ingestfs mount with allow_other, and on the same tests over bindfs, a
# plain FUSE passthrough, to tell our failures from FUSE's.  Not part of
# `make check`: pjdfstest is not packaged for Debian and CI has no network.
#
#   scripts/pjdfstest.sh PJDFSTEST_SOURCE_DIR [TESTS...]
#
# As root (pjdfstest changes owners).  TESTS default to open rename unlink
# mkdir rmdir truncate ftruncate chmod utimensat.  Needs autoconf, make, a C
# compiler, prove (perl), python3, and bindfs (apt-get install bindfs).
# Prints, per file system, the failing subtests of each test file.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
src=${1:?usage: $0 PJDFSTEST_SOURCE_DIR [TESTS...]}
shift
tests=${*:-open rename unlink mkdir rmdir truncate ftruncate chmod utimensat}
bin=${INGESTFS_BIN:-$top/_build/plain/ingestfs}
[ "$(id -u)" -eq 0 ] || { echo "pjdfstest.sh: run as root" >&2; exit 2; }
command -v bindfs >/dev/null || { echo "pjdfstest.sh: apt-get install bindfs" >&2; exit 2; }

work=$(mktemp -d /var/tmp/ingestfs-pjd.XXXXXX)
chmod 755 "$work"
cleanup() {
	fusermount3 -u "$work/mnt" 2>/dev/null || true
	fusermount3 -u "$work/bind" 2>/dev/null || true
	[ -n "${emu_pid:-}" ] && kill "$emu_pid" 2>/dev/null || true
	[ -n "${ifs_pid:-}" ] && kill "$ifs_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Build pjdfstest out of its tree (a checkout, or a bare git directory).
if [ -f "$src/configure.ac" ]; then
	cp -r "$src" "$work/pjd"
else
	mkdir "$work/pjd"
	git --git-dir="$src" archive HEAD | tar -x -C "$work/pjd"
fi
(cd "$work/pjd" && autoreconf -fi >/dev/null 2>&1 && ./configure -q >/dev/null && make -s >/dev/null 2>&1) ||
	{ echo "pjdfstest.sh: cannot build pjdfstest in $work/pjd" >&2; exit 1; }

# ingestfs against its emulator.
python3 "$top/tests/emulator.py" --port 0 --port-file "$work/port" >/dev/null 2>&1 &
emu_pid=$!
while [ ! -s "$work/port" ]; do sleep 0.1; done
echo "ei_0123456789abcdef" > "$work/key"
chmod 600 "$work/key"
mkdir -p "$work/mnt" "$work/bind" "$work/plain"
INGESTFS_CONFIG=/nonexistent "$bin" -f -o "url=http://127.0.0.1:$(cat "$work/port"),api_key_file=$work/key,spool=$work/spool,allow_other,settle=100" "$work/mnt" 2>"$work/ingestfs.log" &
ifs_pid=$!
while ! mountpoint -q "$work/mnt"; do sleep 0.1; done
mkdir -p "$work/mnt/training/pjd"
chmod 777 "$work/mnt/training/pjd"
bindfs -o allow_other,default_permissions "$work/plain" "$work/bind"
# Both at the same depth: the FUSE high-level API builds paths from the
# mount's root, so depth matters for PATH_MAX.
mkdir -p "$work/bind/training/pjd"
chmod 777 "$work/bind/training/pjd"

# Sort each failing subtest by its cause: a node type ingestfs refuses
# (mkfifo, mknod, bind: EPERM) and what follows from it, a path longer than
# PATH_MAX from the mount's root, or something else (printed).
classify() {
	python3 - "$@" <<'PY'
import re, sys
kinds = {"refused node type": 0, "path too long from the mount root": 0, "other": 0}
others = []


def paths(cmd):
    return {w for w in cmd.split() if "pjdfstest_" in w}


def related(a, b):
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


for path in sys.argv[1:]:
    refused, last = set(), "other"
    for line in open(path, errors="replace"):
        line = line.strip()
        if not line.startswith("not ok"):
            continue
        m = re.match(r"not ok (\d+) - tried '(.*)', expected (.*), got (.*)$", line)
        if not m:
            # A check right after a failed command (test_check): its cause.
            kind = last
        else:
            cmd, want, got = m.group(2), m.group(3), m.group(4)
            words = paths(cmd)
            if re.search(r"\b(mkfifo|mknod|bind)\b", cmd) and got == "EPERM":
                kind = "refused node type"
            elif any(related(w, r) for w in words for r in refused) or \
                    re.search(r"\b(fifo|block|char|socket)\b", want):
                kind = "refused node type"
            elif got == "ENAMETOOLONG" or len(cmd) > 3000:
                kind = "path too long from the mount root"
            else:
                kind = "other"
            if kind == "refused node type":
                refused |= words
        kinds[kind] += 1
        last = kind
        if kind == "other":
            others.append(line[:220])
print("    failed subtests by cause: " + ", ".join("%s %d" % kv for kv in kinds.items()))
for o in others:
    print("      other: " + o)
PY
}

run() {
	name=$1 dir=$2
	for t in $tests; do
		(cd "$dir" && prove -v -r "$work/pjd/tests/$t" 2>&1) >"$work/$name-$t.out" || true
		summary=$(grep -E '^Files=|^Result:' "$work/$name-$t.out" | tr '\n' ' ')
		failed=$(grep -c '^not ok' "$work/$name-$t.out" || true)
		echo "$name $t: $failed failed; $summary"
		if [ "$failed" -gt 0 ]; then classify "$work/$name-$t.out"; fi
	done
}
echo "=== ingestfs (allow_other, a folder below training/)"
run ingestfs "$work/mnt/training/pjd"
echo "=== bindfs (allow_other,default_permissions, a folder as deep)"
run bindfs "$work/bind/training/pjd"
