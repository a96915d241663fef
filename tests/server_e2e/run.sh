#!/usr/bin/env bash
# Runs server_e2e.mjs with node's test runner: run.sh DEEPMOE TEST_DATA NODE_MODULES WORK_DIR.
# Exit 77 (skipped) when node or the npm `openai` package is missing, unless CI=true (then it is a failure).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
missing() {
  echo "server_e2e: $1" >&2
  if [ "${CI:-}" = "true" ]; then echo "server_e2e: CI=true, so this is a failure" >&2; exit 1; fi
  echo "server_e2e: skipped (run 'cd tests/peer && npm install --ignore-scripts' to enable)" >&2
  exit 77
}
command -v node > /dev/null || missing "node is not installed"
[ -f "$3/openai/package.json" ] || missing "$3/openai is not installed"
mkdir -p "$4"
DEEPMOE="$1" DM_TEST_DATA="$2" DM_NODE_MODULES="$3" DM_WORK="$4" exec node --test-reporter=spec "$here/server_e2e.mjs"
