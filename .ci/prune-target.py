#!/usr/bin/env python3
"""Keeps a reused target directory from filling the disk.

Every build of a test or bench binary with changed code links a new executable
(`name-HASH`, about 0.5 GB with debug info) beside the old ones, which cargo never
removes: a day of builds filled this machine's disk. Of each name only the two newest
are kept (two, because one crate's tests may be built with two feature sets); an
executable removed that is still wanted is only linked again.
"""
import collections
import os
import sys

deps = sys.argv[1]
if not os.path.isdir(deps):
    sys.exit(0)
by_name = collections.defaultdict(list)
for entry in os.scandir(deps):
    name, dash, _hash = entry.name.rpartition("-")
    if not dash or "." in entry.name or not entry.is_file() or not os.access(entry.path, os.X_OK):
        continue
    by_name[name].append((entry.stat().st_mtime, entry.path))
freed = 0
for files in by_name.values():
    for _, path in sorted(files)[:-2]:
        freed += os.path.getsize(path)
        os.remove(path)
print(f"prune-target: {freed / 2**30:.1f} GiB of superseded executables removed from {deps}")
