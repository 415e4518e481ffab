#!/usr/bin/env bash
# Runs every fuzz target for a short while (FUZZ_SECONDS each, default 30).
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
for target in $(cargo +nightly fuzz list); do
  echo "== ${target} (${seconds}s)"
  cargo +nightly fuzz run "${target}" -- -max_total_time="${seconds}" 2>&1 \
    | grep -E '^(Done|==|INFO: -max_total_time)|panicked|ERROR' || true
  if [ -n "$(ls -A "fuzz/artifacts/${target}" 2>/dev/null)" ]; then
    echo "findings for ${target} in fuzz/artifacts/${target}" >&2
    exit 1
  fi
done
