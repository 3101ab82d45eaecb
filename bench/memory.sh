#!/usr/bin/env bash
# Peak memory must not grow with the data: back up and restore a 100 GB sparse
# disk image and a large incompressible file, and print peak RSS for each.
#
#   bench/memory.sh            BIG_GB=20 (size of the incompressible file)
#
# Needs about 3 x BIG_GB of free space under BENCH_DIR (file, vault and the
# restored copy, which is verified byte for byte and then deleted).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(dirname "$here")"
BENCH_DIR="${BENCH_DIR:-/var/tmp/coffer-bench}/memory"
BIG_GB="${BIG_GB:-20}"
mkdir -p "$BENCH_DIR"
trap 'rm -rf "$BENCH_DIR"' EXIT

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
big="$BENCH_DIR/src-big/random.bin"
mkdir -p "$(dirname "$big")"
# AES-CTR keystream from openssl is faster than /dev/urandom; either is incompressible.
if command -v openssl >/dev/null; then
    openssl enc -aes-128-ctr -pass pass:coffer -nosalt -pbkdf2 < <(head -c "${BIG_GB}G" /dev/zero) > "$big" 2>/dev/null
else
    head -c "${BIG_GB}G" /dev/urandom > "$big"
fi
"$COFFER" vault init --location "$BENCH_DIR/vault-big" >/dev/null
measure "backup, ${BIG_GB} GB incompressible file" "$COFFER" backup --vault "$BENCH_DIR/vault-big" "$(dirname "$big")"
measure "check --read-data, ${BIG_GB} GB" "$COFFER" check --vault "$BENCH_DIR/vault-big" --read-data
measure "restore, ${BIG_GB} GB incompressible file" "$COFFER" restore --vault "$BENCH_DIR/vault-big" latest --target "$BENCH_DIR/out-big"
cmp "$big" "$BENCH_DIR/out-big$big"
echo "restores verified byte-exact" >&2
