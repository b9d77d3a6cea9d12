#!/bin/sh
# The load figures of benchmarks/README.md ("Loading official checkpoints") on a machine with a GPU and ~40 GB of
# RAM and disk: official-size random-weight priors built there, loaded on the CPU and on CUDA in fresh processes.
# Results: one JSON line each, also appended to ${OUT:-.}/load_results.jsonl.
set -u
OUT=${OUT:-.}
W=${W:-/tmp/jb_load}
export PYTHONUNBUFFERED=1 JUKEBOX_BRIDGE_MMAP_CACHE=$W/mmap
PY=${PY:-python3}
B="$PY benchmarks/bench_load.py"
R=$OUT/load_results.jsonl
step() { echo "== $*" >&2; "$@" 2>&1 | tee -a "$R"; }
step $B build --kind 1b_lyrics --out "$W/1b"
step $B measure "$W/1b/prior_level_2.pth.tar" --touch
step $B measure "$W/1b/prior_level_2.pth.tar" --device cuda --touch
step $B build --kind 1b_lyrics --legacy --out "$W/1b_legacy"
step $B measure "$W/1b_legacy/prior_level_2.pth.tar"   # first start: converts to the mapped cache
step $B measure "$W/1b_legacy/prior_level_2.pth.tar"   # later starts: map the cache
rm -rf "$W/1b" "$W/1b_legacy" "$W/mmap"
step $B build --kind 5b --out "$W/5b"
step $B measure "$W/5b/prior_level_2.pth.tar" --touch
step $B measure "$W/5b/prior_level_2.pth.tar" --device cuda --touch
rm -rf "$W"
