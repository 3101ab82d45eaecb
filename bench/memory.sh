#!/usr/bin/env bash
# Peak memory must not grow with the data: back up and restore a 100 GB sparse
# disk image and a large incompressible file, and print peak RSS for each.
#
#   bench/memory.sh            BIG_GB=20 (size of the incompressible file)
#
# The incompressible file and its restored copy go under BIG_DIR (default
# BENCH_DIR), the vault under BENCH_DIR. The file is a keystream that can be
# made again, so it is deleted before the restore and the restored copy is
# compared with a fresh run of the generator: BIG_GB of space under BIG_DIR
# and BIG_GB under BENCH_DIR (2 x BIG_GB when both are the same disk). With
# BIG_DIR on a tmpfs, a 20 GB run fits a machine with 24 GB of memory and
# 32 GB of free disk.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(dirname "$here")"
BENCH_DIR="${BENCH_DIR:-/var/tmp/coffer-bench}/memory"
BIG_GB="${BIG_GB:-20}"
BIG_DIR="${BIG_DIR:-$BENCH_DIR}/coffer-memory-big"
mkdir -p "$BENCH_DIR" "$BIG_DIR"
trap 'rm -rf "$BENCH_DIR" "$BIG_DIR"' EXIT

(cd "$repo_root" && cargo build --release -q -p coffer-cli)
target_dir="$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
COFFER="$target_dir/release/coffer"
export COFFER_KEY; COFFER_KEY="$("$COFFER" key generate 2>/dev/null)"
export COFFER_CACHE_DIR="$BENCH_DIR/cache"

measure() {
    local label=$1; shift
    /usr/bin/time -f '%e %M' -o "$BENCH_DIR/t" "$@" >/dev/null
    read -r wall rss < "$BENCH_DIR/t"
    printf '| %s | %.1f | %d |\n' "$label" "$wall" $((rss / 1024))
}

printf '| step | wall s | peak RSS MB |\n|---|---|---|\n'

# A 100 GB sparse image with data islands every 10 GB.
sparse="$BENCH_DIR/src-sparse/disk.img"
mkdir -p "$(dirname "$sparse")"
truncate -s 100G "$sparse"
for i in $(seq 0 9); do
    head -c 4M /dev/urandom | dd of="$sparse" bs=1M seek=$((i * 10240)) conv=notrunc status=none
done
"$COFFER" vault init --location "$BENCH_DIR/vault-sparse" >/dev/null
measure "backup, 100 GB sparse image" "$COFFER" backup --vault "$BENCH_DIR/vault-sparse" "$(dirname "$sparse")"
measure "restore, 100 GB sparse image" "$COFFER" restore --vault "$BENCH_DIR/vault-sparse" latest --target "$BENCH_DIR/out-sparse"
cmp "$sparse" "$BENCH_DIR/out-sparse$sparse"
rm -rf "$BENCH_DIR/out-sparse" "$BENCH_DIR/vault-sparse" "$(dirname "$sparse")"

# An incompressible file of BIG_GB gigabytes.
big="$BIG_DIR/src-big/random.bin"
mkdir -p "$(dirname "$big")"
# An AES-CTR keystream: incompressible, fast, and the same on every run, so
# the restore can be compared with it without keeping the source.
keystream() {
    openssl enc -aes-128-ctr -pass pass:coffer -nosalt -pbkdf2 < <(head -c "${BIG_GB}G" /dev/zero) 2>/dev/null
}
keystream > "$big"
"$COFFER" vault init --location "$BENCH_DIR/vault-big" >/dev/null
measure "backup, ${BIG_GB} GB incompressible file" "$COFFER" backup --vault "$BENCH_DIR/vault-big" "$(dirname "$big")"
measure "check --read-data, ${BIG_GB} GB" "$COFFER" check --vault "$BENCH_DIR/vault-big" --read-data
rm -f "$big"
measure "restore, ${BIG_GB} GB incompressible file" "$COFFER" restore --vault "$BENCH_DIR/vault-big" latest --target "$BIG_DIR/out-big"
cmp <(keystream) "$BIG_DIR/out-big$big"
echo "restores verified byte-exact" >&2
