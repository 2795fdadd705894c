#!/bin/sh
# Coverage-guided fuzzing with libFuzzer (clang), SECONDS per harness:
#   scripts/fuzz.sh [SECONDS] [layout|reply|config|journal|annot|dataset ...]
# Without clang's libFuzzer it falls back to the standalone driver of
# `make check` (random mutations).  New inputs go to _build/fuzz/corpus-NAME.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
names=${*:-layout reply config journal annot dataset}
out="$top/_build/fuzz"
mkdir -p "$out"
cflags=$(pkg-config --cflags libcjson fuse3 libcurl sqlite3)
libs="$(pkg-config --libs libcjson fuse3 libcurl sqlite3) -lm"
# Every module but main.c: the harnesses call a few, which call others.
srcs=$(ls "$top"/src/*.c | grep -v "/main\.c$" | tr '\n' ' ')
printf '#define PACKAGE_NAME "ingestfs"\n#define PACKAGE_VERSION "fuzz"\n#define _GNU_SOURCE 1\n' > "$out/config.h"
if command -v clang >/dev/null && echo 'int LLVMFuzzerTestOneInput(const char*d,long n){return 0;}' |
	clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
	mode=libfuzzer
else
	mode=driver
fi
for n in $names; do
	bin="$out/fuzz_$n"
	mkdir -p "$out/corpus-$n"
	cp -n "$top/tests/fuzz/corpus/$n/"* "$out/corpus-$n/" 2>/dev/null || true
	if [ $mode = libfuzzer ]; then
		clang -g -O1 -fsanitize=fuzzer,address,undefined -I"$out" -I"$top/src" -I"$top/tests/fuzz" $cflags \
			"$top/tests/fuzz/fuzz_$n.c" $srcs $libs -lpthread -o "$bin"
		"$bin" -max_total_time="$secs" -max_len=65536 "$out/corpus-$n" "$top/tests/fuzz/corpus/$n"
	else
		cc -g -O1 -fsanitize=address,undefined -I"$out" -I"$top/src" -I"$top/tests/fuzz" $cflags \
			"$top/tests/fuzz/fuzz_$n.c" "$top/tests/fuzz/driver.c" $srcs $libs -lpthread -o "$bin"
		FUZZ_SECONDS="$secs" "$bin" "$top/tests/fuzz/corpus/$n"
	fi
done
