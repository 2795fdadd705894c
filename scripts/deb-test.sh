#!/bin/bash
# Build the Debian packages from a pristine copy of HEAD, lint them,
# install them, upload two files through a mount made by the INSTALLED
# binary (through the installed ingestfs@.service when systemd runs the
# machine), then purge them and check that nothing is left behind.
#
# For CI: run as root on Debian 12 with /dev/fuse.  Needs the Debian
# mirrors (apt-get).  It installs, as its first step:
#   dpkg-dev   dpkg-buildpackage
#   debhelper  dh, dh_autoreconf (debian/control: debhelper-compat 13)
#   lintian    the lint step
#   and the Build-Depends of debian/control (apt-get build-dep, which adds
#   build-essential)
# and then the built packages, which pull in fuse3 and python3-nautilus.
#
# Its work directory ($INGESTFS_DEB_TEST_DIR, default
# /var/tmp/ingestfs-deb-test) is emptied at the start and keeps the
# packages and every log afterwards; the repository is not written to.
# Whatever fails, the mount, the emulator, the test's configuration and
# spool and the packages it installed are taken away again, so a run after
# an interrupted one starts clean.  Prints PASS or FAIL for each step, and
# exits non-zero on any failure.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
work=${INGESTFS_DEB_TEST_DIR:-/var/tmp/ingestfs-deb-test}
state=$work.state   # survives the start of the next run: what to undo
mnt=$work/mnt
etc=/etc/ingestfs
key=ei_0123456789abcdef  # the emulator's default key
packages="ingestfs ingestfs-nautilus"
unit=
export DEBIAN_FRONTEND=noninteractive
# apt-get that waits for another apt or dpkg to finish rather than fail.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }
start=$(date +%s)

results=()
current=
log() { printf '%s\n' "$*"; }
step() {
	current=$1
	log ""
	log "=== $current"
}
pass() {
	results+=("PASS  $current${1:+ ($1)}")
	current=
}
fail() {
	log "FAIL: $*" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# Undoing: everything this script sets up is recorded in $state first.

instance() { systemd-escape --path "$mnt"; }

undo() {
	local pid
	if [ -f "$state/unit" ]; then
		systemctl stop "$(cat "$state/unit")" 2>/dev/null || true
		systemctl reset-failed "$(cat "$state/unit")" 2>/dev/null || true
		rm -f "$state/unit"
	fi
	if findmnt -n -M "$mnt" >/dev/null 2>&1; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	for f in daemon emulator; do
		if [ -f "$state/$f.pid" ]; then
			pid=$(cat "$state/$f.pid")
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
			rm -f "$state/$f.pid"
		fi
	done
	if [ -f "$state/etc" ]; then
		rm -f "$etc/config" "$etc/key"
		rmdir "$etc" 2>/dev/null || true
		rm -f "$state/etc"
	fi
	if [ -f "$state/spool" ]; then
		case $(cat "$state/spool") in
		/var/lib/ingestfs/?*) rm -rf --one-file-system "$(cat "$state/spool")" ;;
		esac
		rm -f "$state/spool"
	fi
	if [ -f "$state/installed" ]; then
		# shellcheck disable=SC2086
		apt_get purge -y -q $packages >"$state/purge.log" 2>&1 || cat "$state/purge.log" >&2
		rm -f "$state/purge.log"
		rm -f "$state/installed"
	fi
	if [ -f "$state/var-lib" ]; then
		rmdir /var/lib/ingestfs 2>/dev/null || true
		rm -f "$state/var-lib"
	fi
}

finish() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$current" ]; then
		results+=("FAIL  $current")
		rc=1
	fi
	undo
	rm -f "$state/purge.log"
	rmdir "$state" 2>/dev/null || true
	log ""
	log "=== summary ($(($(date +%s) - start)) s; logs in $work)"
	printf '%s\n' "${results[@]}"
	if [ "$rc" -eq 0 ]; then
		log "deb-test: PASS"
	else
		log "deb-test: FAIL"
	fi
	exit "$rc"
}
trap finish EXIT
trap 'log "interrupted" >&2; exit 130' INT
trap 'log "terminated" >&2; exit 143' TERM

# ---------------------------------------------------------------------------
step "preconditions"
[ "$(id -u)" -eq 0 ] || fail "run as root (apt-get, dpkg, mounts)"
[ -c /dev/fuse ] || fail "no /dev/fuse"
command -v git >/dev/null || fail "git is needed to take a pristine copy of HEAD"
git -C "$top" rev-parse --verify -q HEAD >/dev/null || fail "$top is not a git checkout"
mkdir -p "$state"
undo   # what an interrupted run left behind
for p in $packages; do
	if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
		fail "$p is installed (not by this test); it would be purged: remove it first"
	fi
done
! findmnt -n -M "$mnt" >/dev/null || fail "$mnt is mounted and would not unmount"
for d in "$etc" /var/lib/ingestfs; do
	[ ! -e "$d" ] || fail "$d exists (not made by this test); the purge check needs a machine without it"
done
rm -rf --one-file-system "$work"
mkdir -p "$work"
[ -z "$(git -C "$top" status --porcelain)" ] ||
	log "note: $top has uncommitted changes; the packages are built from HEAD only"
pass "HEAD $(git -C "$top" rev-parse --short HEAD)"

step "build dependencies"
git -C "$top" archive --format=tar --prefix=ingestfs/ HEAD | tar -x -C "$work"
src=$work/ingestfs
apt_get update -q >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get update"; }
apt_get install -y -q --no-install-recommends dpkg-dev debhelper lintian \
	>>"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log"; fail "apt-get install"; }
apt_get build-dep -y -q --no-install-recommends "$src" \
	>>"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log"; fail "apt-get build-dep"; }
pass

step "dpkg-buildpackage -us -uc -b"
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
	{ tail -40 "$work/build.log"; fail "the package did not build (log: $work/build.log)"; }
if grep -n -i 'warning:' "$work/build.log"; then
	fail "the build printed warnings (above; log: $work/build.log)"
fi
arch=$(dpkg --print-architecture)
version=$(cd "$src" && dpkg-parsechangelog -S Version)
deb=$work/ingestfs_${version}_$arch.deb
deb_nautilus=$work/ingestfs-nautilus_${version}_all.deb
changes=$work/ingestfs_${version}_$arch.changes
for f in "$deb" "$deb_nautilus" "$changes"; do
	[ -f "$f" ] || fail "no $f"
done
log "tests during the build: $(grep -E '^# (TOTAL|PASS|FAIL|ERROR):' "$work/build.log" | tr -s ' ' | tr '\n' ' ' || true)"
pass "$(basename "$deb"), $(basename "$deb_nautilus")"

step "lintian -i --pedantic"
# As nobody: lintian warns against running as root.  Overridden tags are
# shown (O:) but only errors and warnings that are not fail.
chmod -R a+rX "$work"
(cd "$work" && runuser -u nobody -- env HOME="$work" \
	lintian -i --pedantic --show-overrides --fail-on none "$changes") >"$work/lintian.txt" 2>&1 ||
	{ cat "$work/lintian.txt"; fail "lintian did not run"; }
cat "$work/lintian.txt"
! grep -q '^[EW]:' "$work/lintian.txt" || fail "lintian: errors or warnings (above)"
pass "$(grep -c '^[EWIPXO]:' "$work/lintian.txt" || true) tags, overridden ones included"

step "apt-get install the packages"
touch "$state/installed"
apt_get install -y -q --no-install-recommends "$deb" "$deb_nautilus" >"$work/install.log" 2>&1 ||
	{ tail -20 "$work/install.log"; fail "apt-get install"; }
dpkg -L ingestfs ingestfs-nautilus | sort >"$work/files.txt"
# In the packages, and on disk (unless dpkg is told to leave out manuals
# and documentation, as in some container images).
excluding=no
if grep -qs '^path-exclude' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/*; then excluding=yes; fi
dpkg-deb -c "$deb" >"$work/contents.txt"
dpkg-deb -c "$deb_nautilus" >>"$work/contents.txt"
for f in /usr/bin/ingestfs /usr/share/man/man1/ingestfs.1.gz /usr/share/man/man5/ingestfs.conf.5.gz \
	/usr/share/bash-completion/completions/ingestfs \
	/lib/systemd/system/ingestfs@.service /lib/systemd/system/ingestfs-watch@.service \
	/usr/lib/systemd/user/ingestfs-user@.service \
	/usr/share/doc/ingestfs/examples/config.example /usr/share/doc/ingestfs/examples/fstab.example \
	/usr/share/nautilus-python/extensions/ingestfs-nautilus.py; do
	grep -q " \.$f\$" "$work/contents.txt" || fail "$f is not in the packages"
	case $excluding:$f in
	yes:/usr/share/man/* | yes:/usr/share/doc/*) ;;
	*) [ -f "$f" ] || fail "$f is not installed" ;;
	esac
done
for u in /lib/systemd/system/ingestfs@.service /lib/systemd/system/ingestfs-watch@.service \
	/usr/lib/systemd/user/ingestfs-user@.service; do
	grep -q '^ExecStart=/usr/bin/ingestfs ' "$u" || fail "$u does not start /usr/bin/ingestfs"
done
[ "$(/usr/bin/ingestfs --version)" = "ingestfs ${version%-*}" ] ||
	fail "/usr/bin/ingestfs --version: $(/usr/bin/ingestfs --version), not ${version%-*}"
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify /lib/systemd/system/ingestfs@.service \
		/lib/systemd/system/ingestfs-watch@.service || fail "systemd-analyze verify: system units"
	mkdir -m 700 "$work/xdg"
	XDG_RUNTIME_DIR=$work/xdg systemd-analyze verify --user \
		/usr/lib/systemd/user/ingestfs-user@.service || fail "systemd-analyze verify: user unit"
	log "systemd-analyze verify: the three units are valid"
else
	log "no systemd-analyze: the units were not verified"
fi
PYTHONDONTWRITEBYTECODE=1 python3 -c \
	'import sys; p = sys.argv[1]; compile(open(p).read(), p, "exec")' \
	/usr/share/nautilus-python/extensions/ingestfs-nautilus.py ||
	fail "the Nautilus extension is not valid Python"
pass "$(while read -r f; do [ -d "$f" ] || echo "$f"; done <"$work/files.txt" | wc -l) files"

step "emulator"
python3 "$src/tests/emulator.py" --port 0 --port-file "$work/port" --log "$work/samples.jsonl" \
	>"$work/emulator.out" 2>&1 &
echo $! >"$state/emulator.pid"
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { cat "$work/emulator.out"; fail "the emulator did not start"; }
url=http://127.0.0.1:$(cat "$work/port")
pass "$url"

if [ -d /run/systemd/system ]; then
	unit=ingestfs@$(instance).service
	step "mount: systemctl start $unit"
else
	step "mount: /usr/bin/ingestfs -f (no systemd as PID 1)"
fi
# The spool is the default one for root, /var/lib/ingestfs/<mount point>.
spool=/var/lib/ingestfs/$(python3 -c '
import os, sys
out = ""
for c in os.path.realpath(sys.argv[1]).lstrip("/").encode():
    ch = chr(c)
    out += "-" if ch == "/" else ch if ch.isascii() and (ch.isalnum() or ch in "._") else "%%%02X" % c
print(out or "-")' "$mnt")
echo "$spool" >"$state/spool"
touch "$state/var-lib"

if [ -n "${unit:-}" ]; then
	touch "$state/etc"
	mkdir -m 700 "$etc"
	printf '%s\n' "$key" >"$etc/key"
	chmod 600 "$etc/key"
	printf '# written by scripts/deb-test.sh\nurl = %s\napi_key_file = %s/key\n' "$url" "$etc" \
		>"$etc/config"
	echo "$unit" >"$state/unit"
	systemctl daemon-reload
	systemctl start "$unit" || {
		systemctl status --no-pager "$unit" || true
		journalctl -u "$unit" --no-pager | tail -30 || true
		fail "the unit did not start"
	}
	pid=$(systemctl show -P ExecMainPID "$unit")
	[ "$(readlink "/proc/$pid/exe")" = /usr/bin/ingestfs ] ||
		fail "the unit's main process ($pid) is not /usr/bin/ingestfs"
else
	mkdir -p "$mnt"
	printf '%s\n' "$key" >"$work/key"
	chmod 600 "$work/key"
	env -u XDG_STATE_HOME /usr/bin/ingestfs -f -o "url=$url,api_key_file=$work/key" "$mnt" \
		>"$work/daemon.log" 2>&1 &
	echo $! >"$state/daemon.pid"
fi
for _ in $(seq 100); do findmnt -n -M "$mnt" -t fuse.ingestfs >/dev/null && break; sleep 0.1; done
findmnt -n -M "$mnt" -t fuse.ingestfs >/dev/null || {
	cat "$work/daemon.log" 2>/dev/null || true
	fail "$mnt is not mounted"
}
[ -d "$spool" ] || fail "no spool at $spool"
pass "$(findmnt -n -o SOURCE,FSTYPE -M "$mnt")"

step "upload: two files into training/somelabel/"
mkdir "$mnt/training/somelabel"
cp "$src/demo/samples/idle.01.json" "$src/demo/samples/wave.01.json" "$mnt/training/somelabel/"
timeout 120 /usr/bin/ingestfs status --wait --timeout 60 "$mnt" ||
	fail "ingestfs status --wait: not all uploaded (exit $?)"
python3 - "$work/samples.jsonl" "$src/demo/samples" "$mnt/training/somelabel" <<'EOF' ||
import hashlib, json, os, sys
log, samples, folder = sys.argv[1:]
stored = [json.loads(line) for line in open(log)]
want = {}
for name in ("idle.01.json", "wave.01.json"):
    with open(os.path.join(samples, name), "rb") as f:
        want[name] = hashlib.sha256(f.read()).hexdigest()
got = {s["filename"]: (s["category"], s["label"], s["sha256"]) for s in stored}
ok = len(stored) == 2
for name, sha in want.items():
    status = os.getxattr(os.path.join(folder, name), "user.ingest.status").decode()
    line = f"{name}: stored as {got.get(name)}, status {status}"
    print(line)
    ok = ok and got.get(name) == ("training", "somelabel", sha) and status == "uploaded"
sys.exit(0 if ok else 1)
EOF
	fail "the emulator's samples log does not show both files in training/somelabel"
pass

step "unmount"
if [ -f "$state/unit" ]; then
	systemctl stop "$(cat "$state/unit")" || fail "systemctl stop"
	rm -f "$state/unit"
else
	fusermount3 -u "$mnt" || fail "fusermount3 -u"
	pid=$(cat "$state/daemon.pid")
	rc=0
	wait "$pid" || rc=$?
	rm -f "$state/daemon.pid"
	[ "$rc" -eq 0 ] || { cat "$work/daemon.log"; fail "the daemon exited $rc"; }
fi
! findmnt -n -M "$mnt" >/dev/null || fail "$mnt is still mounted"
pass

step "apt-get purge -y $packages"
# What the test itself made goes first: its configuration and its spool.
undo_keep_packages() {
	rm -f "$etc/config" "$etc/key"
	rmdir "$etc" 2>/dev/null || true
	rm -f "$state/etc"
	rm -rf "$spool"
	rm -f "$state/spool"
}
undo_keep_packages
# shellcheck disable=SC2086
apt_get purge -y -q $packages >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "apt-get purge"; }
rm -f "$state/installed" "$state/var-lib"
left=0
for p in $packages; do
	if dpkg -L "$p" >/dev/null 2>&1; then
		log "dpkg -L $p still lists files"
		left=1
	fi
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || echo not-installed)
	[ "$st" = not-installed ] || { log "$p: dpkg status $st"; left=1; }
done
while read -r f; do
	if [ -e "$f" ] && [ ! -d "$f" ]; then
		log "left behind: $f"
		left=1
	fi
done <"$work/files.txt"
for d in /usr/share/doc/ingestfs /usr/share/doc/ingestfs-nautilus "$etc" /var/lib/ingestfs; do
	[ ! -e "$d" ] || { log "left behind: $d"; left=1; }
done
if find /etc /var/lib /lib/systemd /usr/lib/systemd -name '*ingestfs*' | grep .; then
	log "left behind (above)"
	left=1
fi
[ "$left" -eq 0 ] || fail "the purge left files behind"
pass "nothing left: no dpkg -L, no package files, no $etc, no /var/lib/ingestfs"
