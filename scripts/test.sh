#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then checks formatting,
# lints, and runs every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
# A build folder shared across runs keeps repeated runs fast; a fresh machine
# simply starts it empty.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/coffer-target}"

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need python3 || missing+=(python3)
need setpriv || missing+=(util-linux)
need script || missing+=(bsdutils)
need diff || missing+=(diffutils)
# Disk items: qemu-img, qemu-io and qemu-nbd (qemu-utils) and, for qcow2
# images, qemu-storage-daemon (qemu-system-common on Debian 12).
need qemu-img || missing+=(qemu-utils)
need qemu-storage-daemon || missing+=(qemu-system-common)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi
need cargo-nextest || cargo install cargo-nextest --locked
# Real storage servers for the location tests (S3, Azure Blob, GCS, SFTP,
# WebDAV); see the script.
./scripts/install-test-servers.sh
if [ ! -f ../shared/torture_tree.py ]; then
  echo "error: ../shared/torture_tree.py is missing (the shared folder must sit beside the repository)" >&2
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --no-fail-fast
# The decoders of what is read back from a vault, fuzzed for a bounded time.
./scripts/fuzz.sh
