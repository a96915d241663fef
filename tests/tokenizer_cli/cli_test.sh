#!/usr/bin/env bash
# Checks deepmoe tokenize/detokenize on the fixture tokenizers (ids from vocab-tests/chktxt_vectors.json).
# usage: cli_test.sh DEEPMOE_BINARY TOKENIZERS_DIR
set -euo pipefail
bin=$1
dir=$2
fails=0
expect() {  # expect NAME WANTED GOT
  if [ "$2" != "$3" ]; then
    echo "FAIL $1: wanted [$2] got [$3]"
    fails=$((fails + 1))
  fi
}

got=$(printf 'Hello world' | "$bin" tokenize --model "$dir/deepseek-v3")
expect "tokenize deepseek-v3" "[19923, 2058]" "$got"
got=$(printf 'Hello world' | "$bin" tokenize --model "$dir/deepseek-v3" --add-special)
expect "tokenize --add-special" "[0, 19923, 2058]" "$got"
got=$(printf '<|im_start|>user\n3333' | "$bin" tokenize -m "$dir/qwen3")
expect "tokenize qwen3 special text" "[151644, 872, 198, 18, 18, 18, 18]" "$got"
got=$(printf '[0, 19923, 2058]' | "$bin" detokenize --model "$dir/deepseek-v3")
expect "detokenize" "<｜begin▁of▁sentence｜>Hello world" "$got"
got=$(printf '[0, 19923, 2058]' | "$bin" detokenize --model "$dir/deepseek-v3" --skip-special)
expect "detokenize --skip-special" "Hello world" "$got"
text=$'Tabs\tand\nnewlines, emoji 🦙, 我想在apple工作'
got=$(printf '%s' "$text" | "$bin" tokenize -m "$dir/r1-distill-qwen" | "$bin" detokenize -m "$dir/r1-distill-qwen")
expect "round trip" "$text" "$got"
# Invalid UTF-8 is replaced by U+FFFD, not an error.
got=$(printf 'a\xffb' | "$bin" tokenize -m "$dir/qwen3" | "$bin" detokenize -m "$dir/qwen3")
expect "invalid UTF-8" $'a\uFFFDb' "$got"

# Errors: one line, exit code 1.
set +e
err=$(printf '[1, "x"]' | "$bin" detokenize -m "$dir/qwen3" 2>&1 >/dev/null); rc=$?
expect "bad id list exit code" 1 "$rc"
expect "bad id list message" "deepmoe detokenize: stdin: element 1 is not an integer" "$err"
err=$(printf '[999999999]' | "$bin" detokenize -m "$dir/qwen3" 2>&1 >/dev/null); rc=$?
expect "out-of-range id exit code" 1 "$rc"
err=$(printf 'x' | "$bin" tokenize -m /nonexistent 2>&1 >/dev/null); rc=$?
expect "missing model exit code" 1 "$rc"
expect "missing model message" "deepmoe tokenize: /nonexistent: no tokenizer.json in this directory" "$err"
"$bin" tokenize --help > /dev/null; rc=$?
expect "--help exit code" 0 "$rc"
set -e

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "tokenizer cli: all checks passed"
