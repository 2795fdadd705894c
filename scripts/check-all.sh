#!/bin/sh
# Build and run the whole test suite: a normal build with -Werror, then an
# ASan + UBSan build, each running `make check` (unit and mount tests), then
# the suite again with the emulator answering in its older reply shape.
# Prints "N passed, N failed" at the end.  With INGESTFS_REQUIRE_FUSE=1 a
# test that would skip for want of FUSE fails instead.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi

status=0
run_build() {
	name=$1; shift
	dir="$top/_build/$name"
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "=== $name build: configure $*"
	if ! (cd "$dir" && "$top/configure" -q "$@" && make -s -j"$jobs" && make -s -j"$jobs" check); then
		status=1
		# The logs of the tests that failed, for whoever reads CI output.
		[ -f "$dir/test-suite.log" ] && cat "$dir/test-suite.log"
	fi
}

run_build plain --enable-werror
# The daemon under valgrind for two mount tests: any invalid access or
# definite leak fails them (exit status 99 at unmount).
echo "=== plain build: mount tests under valgrind"
(cd "$top/_build/plain" && INGESTFS_VALGRIND=1 make -s check \
	TESTS="tests/mount_basic.t tests/mount_failures.t") || status=1
echo "=== plain build: make distcheck"
(cd "$top/_build/plain" && make -s distcheck-unit >/dev/null) || { echo "make distcheck failed"; status=1; }
run_build sanitizers --enable-werror --enable-sanitizers
# The mount tests again against the emulator's older reply shape, which
# still tests reply matching by name (doc/internals.md "Tests").
INGESTFS_EMULATOR_DIALECT=legacy run_build legacy-dialect --enable-werror

passed=$(cat _build/*/tests/*.trs 2>/dev/null | grep -c '^:test-result: PASS' || true)
failed=$(cat _build/*/tests/*.trs 2>/dev/null | grep -c '^:test-result: \(FAIL\|ERROR\|XPASS\)' || true)
skipped=$(cat _build/*/tests/*.trs 2>/dev/null | grep -c '^:test-result: SKIP' || true)
if [ "${INGESTFS_REQUIRE_FUSE:-0}" = 1 ] && [ "$skipped" -gt 0 ]; then
	echo "error: $skipped test(s) skipped, but INGESTFS_REQUIRE_FUSE=1"
	status=1
fi
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
