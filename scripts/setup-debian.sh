#!/bin/sh
# Install what ingestfs needs to build, test and run on Debian 12.
# The one list of packages: the README and .ci/run both call this.
set -eu
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
	build-essential autoconf automake pkg-config \
	libfuse3-dev fuse3 libcurl4-openssl-dev libcjson-dev libsqlite3-dev \
	python3 attr rsync ca-certificates openssl curl valgrind \
	libglib2.0-bin libarchive-tools zip unzip
