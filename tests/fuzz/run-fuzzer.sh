#!/bin/sh
# make check: run one harness (named by the .fz file) over its corpus, then
# mutate for FUZZ_SECONDS (default 3).  Prints TAP.
name=$(basename "$1" .fz)
here=$(dirname "$0")
FUZZ_SECONDS=${FUZZ_SECONDS:-3} exec "./tests/fuzz/fuzz_$name" "$INGESTFS_SRCDIR/tests/fuzz/corpus/$name"
