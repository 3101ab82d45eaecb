#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ for a bounded time (FUZZ_SECONDS each,
# default 20) and fails on the first finding. Part of the test suite; the
# corpus grows under fuzz/corpus/ between runs on one machine and is not
# committed. cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP lets the
# machine's one stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-20}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coffer-target}/fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cd fuzz
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  echo "fuzzing $target for ${seconds} s"
  log="$(mktemp)"
  status=0
  cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|panicked|SUMMARY" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    echo "error: fuzz target $target failed (status $status; a finding is kept in fuzz/artifacts/$target)" >&2
    exit "$status"
  fi
  rm -f "$log"
done
