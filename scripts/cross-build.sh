#!/bin/sh
# Cross-build ingestfs for 64-bit and 32-bit ARM (Raspberry Pi OS, Debian
# arm64 and armhf) on a Debian 12 amd64 host, with -Werror, and run the
# unit tests under qemu-user.  As root (or with sudo): it installs Debian's
# cross compilers and qemu-user, and the target's libraries.
#
#   scripts/cross-build.sh [arm64|armhf|all]      (default: all)
#
# The target's -dev packages come by multiarch (dpkg --add-architecture)
# when they can be installed next to the host's, else from a sysroot: the
# same packages downloaded by a private apt (its own lists, cache and an
# empty dpkg status, so nothing on the host changes) and unpacked with
# dpkg -x.  Multiarch needs the host's amd64 libraries and the target's at
# the same versions (apt may upgrade the host's to match); a foreign
# architecture whose package index cannot be fetched is taken out again.
# After the tests the host is put back: a foreign architecture the script
# added is removed with its packages (CROSS_KEEP=1 keeps it); the cross
# compilers and qemu-user stay.
#
# Builds in _build/cross-ARCH (sysroots in _build/sysroot-ARCH), prints
# PASS or FAIL per unit test and "N passed, N failed" at the end; exits
# non-zero on any failure.  Then checks that the host still builds natively.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
APT="$SUDO apt-get -q -o DPkg::Lock::Timeout=600"
DEV_PKGS="libfuse3-dev libcurl4-openssl-dev libcjson-dev libsqlite3-dev"

case "${1:-all}" in
arm64 | armhf) arches=$1 ;;
all) arches="arm64 armhf" ;;
*)
	echo "usage: $0 [arm64|armhf|all]" >&2
	exit 2
	;;
esac

say() { printf '=== %s\n' "$*"; }
run() {
	printf '+ %s\n' "$*"
	"$@"
}
now() { date +%s; }
# Print the command, run it with its output in LOG; on failure show the end.
run_to() {
	log=$1
	shift
	printf '+ %s  > %s\n' "$*" "${log#"$top"/}"
	"$@" >"$log" 2>&1 && return 0
	tail -n 25 "$log" | sed 's/^/    /'
	return 1
}

passed=0
failed=0
status=0

# apt-get update, twice if need be (a mirror caught mid-sync).  Output kept
# in $1 for whoever reads why it failed.
apt_update() {
	log=$1
	shift
	for try in 1 2; do
		if $APT "$@" update >"$log" 2>&1; then
			return 0
		fi
		[ "$try" = 2 ] || sleep 5
	done
	grep -E '^(E|W|Err):' "$log" | sed 's/^/    /' | head -n 8
	return 1
}

host_update_ok=
host_update() {
	if [ -z "$host_update_ok" ]; then
		say "host: apt-get update"
		if apt_update "$top/_build/apt-update.log"; then
			host_update_ok=yes
		else
			host_update_ok=no
			echo "    the host's own apt-get update fails: multiarch is not tried"
		fi
	fi
}

host_packages() {
	say "host: compilers and tools"
	# shellcheck disable=SC2086
	run_to "$top/_build/apt-install-host.log" $APT install -y --no-install-recommends \
		build-essential autoconf automake pkgconf "crossbuild-essential-$1" qemu-user
}

arch_installed() {
	dpkg-query -W -f '${Architecture}\n' 2>/dev/null | grep -qx "$1"
}

# Take ARCH out of dpkg again if this script put it there and nothing of it
# is installed, and bring the package lists back to the host's own.
multiarch_undo() {
	if [ "$added" = yes ] && ! arch_installed "$1"; then
		run $SUDO dpkg --remove-architecture "$1"
		apt_update "$top/_build/apt-update.log" ||
			echo "    warning: apt-get update still fails after removing $1"
	fi
}

# Multiarch: sets PKG_CONFIG_FOR and QEMU_PREFIX, or returns 1.
try_multiarch() {
	arch=$1
	triplet=$2
	pkgs="pkgconf:$arch"
	for p in $DEV_PKGS; do pkgs="$pkgs $p:$arch"; done
	added=no
	[ "$host_update_ok" = yes ] || return 1
	if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		run $SUDO dpkg --add-architecture "$arch" || return 1
		added=yes
	fi
	say "$arch: apt-get update with $arch"
	if ! apt_update "$top/_build/apt-update-$arch.log"; then
		echo "    the $arch package index cannot be fetched: no multiarch"
		multiarch_undo "$arch"
		return 1
	fi
	say "$arch: can $arch's -dev packages go next to the host's? (apt-get -s)"
	sim="$top/_build/apt-simulate-$arch.log"
	# shellcheck disable=SC2086
	if ! $APT install -s -y --no-install-recommends $pkgs >"$sim" 2>&1; then
		grep -E 'Depends|^E:' "$sim" | sed 's/^/    /' | head -n 8
		echo "    not co-installable: no multiarch"
		multiarch_undo "$arch"
		return 1
	fi
	if grep -q '^Remv' "$sim"; then
		grep '^Remv' "$sim" | sed 's/^/    /'
		echo "    multiarch would remove host packages: no multiarch"
		multiarch_undo "$arch"
		return 1
	fi
	# Host libraries apt moves to the version the target's have.
	grep '^Inst .*\[.*\] (.*\[amd64\])' "$sim" | sed 's/^Inst/    upgrades host package/' || true
	# shellcheck disable=SC2086
	run_to "$top/_build/apt-install-$arch.log" $APT install -y --no-install-recommends $pkgs || {
		multiarch_undo "$arch"
		return 1
	}
	PKG_CONFIG_FOR="$triplet-pkg-config"
	# The target's own ld.so and libc (libc6:ARCH, under / by multiarch):
	# /usr/TRIPLET holds libc6-ARCH-cross, an older build whose ld.so
	# with the newer libc.so.6 hangs in the first pthread_create.
	QEMU_PREFIX=/
	MODE=multiarch
	return 0
}

# Sysroot: sets SYSROOT and QEMU_PREFIX.
make_sysroot() {
	arch=$1
	base="$top/_build/sysroot-$arch"
	SYSROOT="$base/root"
	aptdir="$base/apt"
	say "$arch: sysroot in $SYSROOT (private apt, dpkg -x)"
	rm -rf "$base"
	mkdir -p "$aptdir/state/lists/partial" "$aptdir/cache/archives/partial" "$SYSROOT"
	: >"$aptdir/state/status"
	set -- -o "APT::Architecture=$arch" -o "APT::Architectures=$arch" \
		-o "Dir::State=$aptdir/state" -o "Dir::State::status=$aptdir/state/status" \
		-o "Dir::Cache=$aptdir/cache" -o Debug::NoLocking=1
	# A source whose $arch index fails is left out by apt (its other
	# sources still count); the download below says if anything is missing.
	apt_update "$aptdir/update.log" "$@" ||
		echo "    (some $arch indexes failed; going on with the rest)"
	# shellcheck disable=SC2086
	run_to "$aptdir/download.log" apt-get -q "$@" install -y --download-only \
		--no-install-recommends libc6-dev $DEV_PKGS || return 1
	n=0
	for deb in "$aptdir"/cache/archives/*.deb; do
		dpkg -x "$deb" "$SYSROOT" || return 1
		n=$((n + 1))
	done
	echo "    $n packages unpacked"
	# Absolute links (libfoo.so -> /lib/...) would point into the host.
	find "$SYSROOT" -type l -lname '/*' | while read -r link; do
		target=$(readlink "$link")
		ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$SYSROOT$target")" "$link"
	done
	QEMU_PREFIX=$SYSROOT
	MODE=sysroot
}

# The names make knows: UNIT_TESTS, check_PROGRAMS.
make_var() {
	# shellcheck disable=SC2016
	printf 'print-var:\n\t@echo $(%s)\n' "$1" | make -s -f Makefile -f - print-var
}

build_and_test() {
	arch=$1
	triplet=$2
	qemu=$3
	dir="$top/_build/cross-$arch"
	say "$arch: configure --host=$triplet --enable-werror ($MODE)"
	rm -rf "$dir"
	mkdir -p "$dir"
	cd "$dir" || return 1
	if [ "$MODE" = sysroot ]; then
		# pkg-config reads the sysroot's .pc files and prefixes their
		# paths with it; the compiler and linker look there too.
		run env PKG_CONFIG_SYSROOT_DIR="$SYSROOT" \
			PKG_CONFIG_LIBDIR="$SYSROOT/usr/lib/$triplet/pkgconfig:$SYSROOT/usr/share/pkgconfig" \
			"$top/configure" -q --host="$triplet" --enable-werror \
			CC="$triplet-gcc --sysroot=$SYSROOT" PKG_CONFIG=pkg-config || return 1
	else
		run "$top/configure" -q --host="$triplet" --enable-werror \
			PKG_CONFIG="$PKG_CONFIG_FOR" || return 1
	fi
	say "$arch: make, and the test programs (warnings are errors)"
	run_to "$dir/build.log" make -j"$jobs" || return 1
	unit=$(make_var UNIT_TESTS)
	# shellcheck disable=SC2046
	run_to "$dir/build-tests.log" make -j"$jobs" $(make_var check_PROGRAMS) || return 1
	# -Werror stops the compiler's; this catches the rest (ar, ld).
	if grep -i 'warning' "$dir/build.log" "$dir/build-tests.log"; then
		echo "    the build printed warnings"
		return 1
	fi
	say "$arch: unit tests under $qemu -L $QEMU_PREFIX"
	for t in $unit; do
		log="$t.qemu.log"
		start=$(now)
		rc=0
		timeout 900 "$qemu" -L "$QEMU_PREFIX" "./$t" >"$log" 2>&1 || rc=$?
		secs=$(($(now) - start))
		oks=$(grep -c '^ok ' "$log" || true)
		nots=$(grep -c '^not ok ' "$log" || true)
		if [ "$rc" -eq 0 ] && [ "$nots" -eq 0 ] && grep -q '^1\.\.[0-9]' "$log"; then
			echo "PASS: $arch $t ($oks checks, ${secs}s)"
			passed=$((passed + 1))
		else
			echo "FAIL: $arch $t (exit $rc, $nots of $((oks + nots)) checks failed, ${secs}s)"
			grep -A3 '^not ok ' "$log" | head -n 20 | sed 's/^/    /'
			[ "$nots" -gt 0 ] || tail -n 5 "$log" | sed 's/^/    /'
			failed=$((failed + 1))
			status=1
		fi
	done
	cd "$top" || return 1
}

# A foreign architecture this script added goes again once the tests ran,
# with every package of it: left there, its index would be fetched by every
# apt-get update on this host, and one failed download of it (a mirror
# mid-sync) would fail them all.  CROSS_KEEP=1 keeps it, for quicker runs.
multiarch_cleanup() {
	arch=$1
	[ "$MODE" = multiarch ] && [ "$added" = yes ] || return 0
	if [ "${CROSS_KEEP:-0}" = 1 ]; then
		echo "    CROSS_KEEP=1: $arch stays a foreign architecture"
		return 0
	fi
	say "$arch: removing the $arch packages and architecture again (CROSS_KEEP=1 keeps them)"
	# The essential ones are $arch's libc6 and friends, never the host's.
	# shellcheck disable=SC2016,SC2046,SC2086
	run_to "$top/_build/apt-purge-$arch.log" $APT purge -y --allow-remove-essential \
		$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}:${Architecture}\n' |
			awk -v a=":$arch" '$1 !~ /^u/ && substr($2, length($2) - length(a) + 1) == a { print $2 }') ||
		return 1
	run $SUDO dpkg --remove-architecture "$arch" || return 1
	apt_update "$top/_build/apt-update.log"
}

# After all that, the host's own build still has what it needs.
check_host() {
	say "host: native build still works"
	[ -z "$(dpkg --audit)" ] || {
		dpkg --audit
		return 1
	}
	printf '#include <fuse.h>\n#include <curl/curl.h>\n#include <cjson/cJSON.h>\n#include <sqlite3.h>\nint main(void) { return !curl_version() + !cJSON_Version() + !sqlite3_libversion() + !fuse_version(); }\n' >"$top/_build/host-check.c"
	# shellcheck disable=SC2046
	run cc -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=312 -o "$top/_build/host-check" \
		"$top/_build/host-check.c" $(pkg-config --cflags --libs fuse3 libcurl libcjson sqlite3) ||
		return 1
	"$top/_build/host-check" || return 1
	echo "    amd64: fuse3 $(pkg-config --modversion fuse3), libcurl $(pkg-config --modversion libcurl)," \
		"libcjson $(pkg-config --modversion libcjson), sqlite3 $(pkg-config --modversion sqlite3)"
}

mkdir -p "$top/_build"
say "autoreconf"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
for arch in $arches; do
	case $arch in
	arm64) triplet=aarch64-linux-gnu qemu=qemu-aarch64 ;;
	armhf) triplet=arm-linux-gnueabihf qemu=qemu-arm ;;
	esac
	started=$(now)
	MODE=
	added=no
	host_update
	if ! host_packages "$arch"; then
		echo "FAIL: $arch: cannot install the cross compiler"
		failed=$((failed + 1))
		status=1
		continue
	fi
	if ! try_multiarch "$arch" "$triplet" && ! make_sysroot "$arch"; then
		echo "FAIL: $arch: neither multiarch nor a sysroot gave the $arch libraries"
		failed=$((failed + 1))
		status=1
		continue
	fi
	if ! build_and_test "$arch" "$triplet" "$qemu"; then
		cd "$top"
		echo "FAIL: $arch: the build failed"
		failed=$((failed + 1))
		status=1
	fi
	if ! multiarch_cleanup "$arch"; then
		echo "FAIL: $arch: could not put the host's packages back as they were"
		failed=$((failed + 1))
		status=1
	fi
	say "$arch: $MODE, $(($(now) - started))s"
done
check_host || status=1
echo "cross-build: $passed passed, $failed failed"
exit $status
