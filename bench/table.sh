#!/usr/bin/env bash
# The performance table of docs/performance.md: makes the random-weight models (once) and runs
# `deepmoe bench -p 512 -n 128 -r 5` on each, 2 threads, then 1 thread for the Q4_0 files.
# Usage: bench/table.sh [DIR]   (models go to DIR, default bench-models/; ~27 GB of files, V2-Lite Q8_0 ~10 min)
set -euo pipefail
cd "$(dirname "$0")/.."
dm=build/deepmoe
[ -x "$dm" ] || { echo "table.sh: $dm not found: build it first (scripts/build.sh)" >&2; exit 1; }
dir=${1:-bench-models}
cfg=tests/data/fixtures/configs
mkdir -p "$dir"
make_model() {  # OUT CONFIG SYNTH-ARGS...
  local out=$1 config=$2
  shift 2
  [ -e "$dir/$out" ] || "$dm" synth --config "$cfg/$config" "$@" --out "$dir/$out"
}
make_model q15-q4_0.gguf deepseek-r1-distill-qwen-1.5b-resaved --format gguf --type q4_0
make_model q15-q8_0.gguf deepseek-r1-distill-qwen-1.5b-resaved --format gguf --type q8_0
make_model q15-bf16 deepseek-r1-distill-qwen-1.5b-resaved --dtype bf16
make_model v2l-q4_0.gguf deepseek-v2-lite --format gguf --type q4_0
make_model v2l-q8_0.gguf deepseek-v2-lite --format gguf --type q8_0
for run in "q15-q4_0.gguf 2" "q15-q8_0.gguf 2" "q15-bf16 2" "v2l-q4_0.gguf 2" "v2l-q8_0.gguf 2" \
           "q15-q4_0.gguf 1" "v2l-q4_0.gguf 1"; do
  set -- $run
  echo "=== $1, $2 thread(s), $(date -u +%FT%TZ)"
  "$dm" bench -m "$dir/$1" -p 512 -n 128 -r 5 -t "$2" 2>&1 | grep -vE '^(loading|note)'
done
