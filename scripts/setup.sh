#!/usr/bin/env bash
# Installs what deepmoe needs to build and test on Debian 12 (bookworm): the Debian packages below, and the npm
# packages that the peer tests use (tests/peer/node_modules). Safe to run again; installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: compiler, CMake, Ninja, pkg-config, GoogleTest, Google Benchmark.
# Libraries: nlohmann-json3-dev (JSON), libpcre2-dev (tokenizer regexes), libutf8proc-dev (Unicode normalization),
#   libcpp-httplib-dev (HTTP server), libcli11-dev (command-line parsing).
# Tests: python3-jinja2 (chat-template peer), python3-numpy (reference scripts), nodejs + npm (tokenizer and
#   OpenAI-client peers), chromium (the server's web page, driven by npm playwright-core in tests/server_e2e).
PACKAGES=(g++ cmake ninja-build pkg-config libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libcpp-httplib-dev libcli11-dev
  python3-jinja2 python3-numpy nodejs npm chromium)

# A package counts as present when dpkg has it, or, for the tools below, when the command is already there (e.g.
# Node.js from another source, whose npm is bundled and conflicts with Debian's npm package).
declare -A PROVIDES=([nodejs]=node [npm]=npm [chromium]=chromium [g++]=g++ [cmake]=cmake [ninja-build]=ninja)
missing=()
for p in "${PACKAGES[@]}"; do
  if [ -n "${PROVIDES[$p]:-}" ] && command -v "${PROVIDES[$p]}" >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${DM_SKIP_NPM:-0}" != 1 ] && [ -f tests/peer/package.json ]; then
  if [ ! -d tests/peer/node_modules ] || [ tests/peer/package.json -nt tests/peer/node_modules ]; then
    echo "setup: installing npm packages for the peer tests"
    # --ignore-scripts: onnxruntime's install script downloads a binary; the tokenizers don't need it.
    (cd tests/peer && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
    touch tests/peer/node_modules
  fi
fi
