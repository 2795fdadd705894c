#!/bin/sh
# Build ingestfs in _build/demo and run the demo (demo/run-demo.sh).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p _build/demo
cd _build/demo
[ -f Makefile ] || "$top/configure" -q
make -s -j"$(nproc 2>/dev/null || echo 2)" ingestfs
INGESTFS_BIN="$PWD/ingestfs" sh "$top/demo/run-demo.sh"
