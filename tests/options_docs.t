#!/usr/bin/env python3
"""One table of options (src/options.c): every option --help lists (the
help is made from that table) is described in ingestfs(1), named in
ingestfs.conf(5) and offered by the bash completion, and nothing those
name is missing from it."""
import os
import re
import subprocess

from mountlib import BIN, Tap

t = Tap()
src = os.environ.get("INGESTFS_SRCDIR", os.path.join(os.path.dirname(__file__), ".."))


def read(rel):
    with open(os.path.join(src, rel)) as f:
        return f.read()


r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30)
t.eq(r.returncode, 0, "--help exits 0", r.stderr)
options = re.findall(r"^  ([a-z_]+)(?:=\S+)? {2,}", r.stdout.split("options (-o):", 1)[1], re.M)
t.ok(len(options) >= 20, "--help lists the options (%d)" % len(options), options)

man1 = read("man/ingestfs.1")
described = set(re.findall(r"^\.It Cm ([a-z_]+)", man1, re.M))
t.eq(sorted(set(options) - described), [], "ingestfs(1) describes every option")

man5 = read("man/ingestfs.conf.5")
settings = man5.split(".Sh SETTINGS", 1)[1].split(".Sh", 1)[0]
named = set(re.findall(r"\b([a-z][a-z_]+)\b", settings))
t.eq(sorted(set(options) - named), [], "ingestfs.conf(5) names every option as a setting")

completion = read("contrib/ingestfs.bash-completion")
offered = set(re.findall(r"([a-z_]+)=?", re.search(r'opts="([^"]*)"', completion).group(1)))
t.eq(sorted(set(options) - offered), [], "the bash completion offers every option")
t.eq(sorted(offered - set(options) - {"allow_other"}), [],
     "and nothing that is not one (but allow_other, for FUSE)")
t.done()
