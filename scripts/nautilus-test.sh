#!/bin/sh
# The GNOME Files extension (contrib/nautilus/ingestfs-nautilus.py) for real:
# installs Nautilus and what it needs, builds ingestfs in _build/nautilus,
# mounts it against tests/emulator.py with a file in every state, checks
# the extension's answers, runs Nautilus on Xvfb with the extension and
# takes screenshots.  Root only (apt-get, mounts).  Not part of `make check`:
# it installs a desktop's worth of packages.
#
#   sh scripts/nautilus-test.sh           # prints the screenshots' paths
#   INGESTFS_NAUTILUS_NO_INSTALL=1 ...    # skip apt-get (already installed)
#
# Packages: scripts/setup-debian.sh's, and nautilus python3-nautilus
# adwaita-icon-theme xvfb dbus-daemon imagemagick xdotool fonts-dejavu-core
# (--no-install-recommends).  Nautilus runs as root, on an Xvfb and a
# session bus of its own, with HOME and settings in _build/nautilus/run.
#
# Output: TAP from scripts/nautilus_check.py, then "N passed, N failed";
# exit 0 when all passed.  Screenshots in _build/nautilus/:
# nautilus-status.png (every state, the moving ones held), nautilus-menu.png
# (the context menu with Retry upload), nautilus-after-retry.png.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=$top/_build/nautilus
run=$build/run
shot=$build/nautilus-status.png
menu=$build/nautilus-menu.png
after=$build/nautilus-after-retry.png
start=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
	echo "nautilus-test.sh: run as root (it installs packages and mounts)" >&2
	exit 2
fi

unmount() {
	if mountpoint -q "$run/mnt" 2>/dev/null; then
		fusermount3 -u "$run/mnt" 2>/dev/null || fusermount3 -uz "$run/mnt" 2>/dev/null || true
	fi
}
# Whatever happens: no mount, emulator, Xvfb or Nautilus left behind.  The
# checker removes its list of pids once it has stopped them all itself.
cleanup() {
	if [ -f "$run/pids" ]; then
		while read -r pid; do
			kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		done <"$run/pids"
	fi
	unmount
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$build"
if [ "${INGESTFS_NAUTILUS_NO_INSTALL:-0}" != 1 ]; then
	sh scripts/setup-debian.sh >"$top/_build/nautilus-apt.log" 2>&1 ||
		{ cat "$top/_build/nautilus-apt.log"; exit 1; }
	# Nautilus 43 and nautilus-python 4.0; a bare X server; a session bus
	# (dbus-run-session); import and convert; keys and the pointer; a font.
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		nautilus python3-nautilus adwaita-icon-theme xvfb dbus-daemon imagemagick \
		xdotool fonts-dejavu-core >>"$top/_build/nautilus-apt.log" 2>&1 ||
		{ cat "$top/_build/nautilus-apt.log"; exit 1; }
fi

echo "=== build in $build"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
(cd "$build" && "$top/configure" -q && make -s -j"$(nproc 2>/dev/null || echo 2)" ingestfs) ||
	exit 1

unmount  # of a run killed before its own cleanup (its pids are stale now)
rm -rf "$run"
mkdir -p "$run"
rm -f "$shot" "$menu" "$after"
echo "=== extension checks, Nautilus on Xvfb"
status=0
/usr/bin/python3 "$top/scripts/nautilus_check.py" --bin "$build/ingestfs" --run "$run" \
	--shot "$shot" --menu "$menu" --after "$after" >"$build/nautilus-check.tap" 2>&1 || status=$?
cat "$build/nautilus-check.tap"
passed=$(grep -c '^ok ' "$build/nautilus-check.tap" || true)
failed=$(grep -c '^not ok ' "$build/nautilus-check.tap" || true)
if [ "$status" -ne 0 ]; then
	echo "--- nautilus log (tail)"
	tail -n 40 "$run/nautilus.log" 2>/dev/null || true
	echo "--- ingestfs log (tail)"
	tail -n 20 "$run/ingestfs.log" 2>/dev/null || true
	[ "$failed" -gt 0 ] || failed=1
fi
[ -f "$shot" ] && echo "screenshot: $shot"
[ -f "$menu" ] && echo "screenshot of the menu: $menu"
[ -f "$after" ] && echo "screenshot after retry: $after"
echo "took $(($(date +%s) - start)) s"
echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
