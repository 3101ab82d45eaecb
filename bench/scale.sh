#!/usr/bin/env bash
# How Coffer's backup time and memory grow with the number of files.
#
#   bench/scale.sh [COUNTS...]      default: 100000 300000 1000000
#
# For each count, a tree of that many small files (0-4 KiB, 1,000 per
# directory; bench/dataset.py smallfiles) is generated once under BENCH_DIR,
# then backed up into a new vault twice (first backup and unchanged backup)
# and restored into an empty directory, with the page cache dropped before
# each step (when running as root). Prints wall time, CPU time and peak RSS
# per step, and the per-file cost, so linear growth shows as a constant
# per-file column.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(dirname "$here")"
BENCH_DIR="${BENCH_DIR:-/var/tmp/coffer-bench}"
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100000 300000 1000000)
mkdir -p "$BENCH_DIR"

(cd "$repo_root" && cargo build --release -q -p coffer-cli)
target_dir="$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
COFFER="$target_dir/release/coffer"
export COFFER_KEY; COFFER_KEY="$("$COFFER" key generate 2>/dev/null)"
export COFFER_CACHE_DIR="$BENCH_DIR/cache/scale"

drop_caches() { sync; (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null || true; }

printf '| files | step | wall s | cpu s | peak RSS MB | µs per file | RSS bytes per file |\n|---|---|---|---|---|---|---|\n'
for n in "${counts[@]}"; do
    tree="$BENCH_DIR/small-$n"
    if [ ! -e "$tree/.complete" ]; then
        rm -rf "$tree"
        python3 "$here/dataset.py" smallfiles "$tree" "$n"
        touch "$tree/.complete"
    fi
    vault="$BENCH_DIR/scale-vault"
    rm -rf "$vault" "$COFFER_CACHE_DIR"
    "$COFFER" vault init --location "$vault" >/dev/null
    restored="$BENCH_DIR/scale-restore"
    for step in first unchanged restore; do
        rm -rf "$restored"
        drop_caches
        if [ "$step" = restore ]; then
            /usr/bin/time -f '%e %U %S %M' -o "$BENCH_DIR/scale.time" \
                "$COFFER" restore --vault "$vault" latest --target "$restored" >/dev/null
        else
            /usr/bin/time -f '%e %U %S %M' -o "$BENCH_DIR/scale.time" \
                "$COFFER" backup --vault "$vault" "$tree" >/dev/null
        fi
        read -r wall user sys rss < "$BENCH_DIR/scale.time"
        python3 - "$n" "$step" "$wall" "$user" "$sys" "$rss" <<'EOF'
import sys
n, step, wall, user, sys_, rss = sys.argv[1:]
n = int(n); wall = float(wall); cpu = float(user) + float(sys_); rss_kb = int(rss)
print(f"| {n:,} | {step} | {wall:.2f} | {cpu:.2f} | {rss_kb / 1024:.0f} | {wall / n * 1e6:.1f} | {rss_kb * 1024 / n:.0f} |")
EOF
    done
    rm -rf "$vault" "$COFFER_CACHE_DIR" "$restored"
done
