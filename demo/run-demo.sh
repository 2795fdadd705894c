#!/bin/sh
# The README's demo: start the local emulator of the ingestion service,
# mount ingestfs on a temporary folder, copy sample files into label
# folders, show their status, unmount.  Nothing leaves this machine.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${INGESTFS_BIN:-$top/ingestfs}
work=$(mktemp -d /tmp/ingestfs-demo.XXXXXX)
emu_pid=

cleanup() {
	if mountpoint -q "$work/mnt" 2>/dev/null; then fusermount3 -u "$work/mnt" || true; fi
	[ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== starting the ingestion emulator"
python3 "$top/tests/emulator.py" --port 0 --port-file "$work/port" --log "$work/samples.jsonl" 2>"$work/emulator.log" &
emu_pid=$!
i=0
while [ ! -s "$work/port" ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { echo "emulator did not start" >&2; exit 1; }
	sleep 0.1
done
url="http://127.0.0.1:$(cat "$work/port")"

echo "== mounting ingestfs on $work/mnt (service $url)"
mkdir "$work/mnt"
printf 'ei_0123456789abcdef\n' > "$work/key"
chmod 600 "$work/key"
"$bin" -o "url=$url,api_key_file=$work/key,spool=$work/spool,settle=200" "$work/mnt"
ls -l "$work/mnt"

echo "== copying samples"
mkdir -p "$work/mnt/training/idle" "$work/mnt/training/tone" "$work/mnt/testing/colours"
cp "$top/demo/samples/idle.01.json" "$top/demo/samples/temperature.csv" "$work/mnt/training/idle/"
cp "$top/demo/samples/beep.wav" "$work/mnt/training/tone/"
cp "$top/demo/samples/red.png" "$top/demo/samples/blue.png" "$work/mnt/testing/colours/"
cp "$top/demo/samples/wave.01.json" "$work/mnt/training/"
touch "$work/mnt/training/idle/.DS_Store"
(cd "$work/mnt" && find . -type f | sort)

echo "== ingestfs status --wait"
"$bin" status --wait --timeout 30 "$work/mnt" || true

echo "== per-file status (getfattr -n user.ingest.status / user.ingest.result)"
(cd "$work/mnt" && find . -type f | sort | while read -r f; do
	printf '%-36s %-9s %s\n' "$f" \
		"$(getfattr --only-values -n user.ingest.status "$f" 2>/dev/null)" \
		"$(getfattr --only-values -n user.ingest.result "$f" 2>/dev/null)"
done)

echo "== what the emulator stored"
python3 -c 'import json,sys
for l in open(sys.argv[1]):
    s = json.loads(l)
    print("  %-9s label=%-8s %-16s %6d bytes" % (s["category"], s["label"], s["filename"], s["size"]))' "$work/samples.jsonl"

echo "== unmounting"
fusermount3 -u "$work/mnt"
