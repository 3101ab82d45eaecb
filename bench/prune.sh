#!/usr/bin/env bash
# Prune: Coffer against `restic forget --prune` on the same history.
#
#   bench/prune.sh
#
# Builds a history of DAYS daily backups of a generated tree (bench/dataset.py
# at SCALE), each day after `dataset.py mutate` (about 5% of the files
# changed), in a Coffer vault and a restic repository. Then both keep the
# last KEEP points and reclaim the space of the rest:
#   restic: one `forget --keep-last KEEP --prune`;
#   coffer: `prune` three times, as its two-phase design needs (soft delete;
#           purge and condemn; delete after the grace period), with the
#           soft-delete period at one day, the grace at 0 s and each run
#           judging a later day (`--now`).
# For each run: wall time, CPU time and peak memory; vault sizes before and
# after; Coffer's totals against restic's, as ratios.
#
# Settings (environment): SCALE=0.25, DAYS=10, KEEP=3,
# BENCH_DIR=/var/tmp/coffer-bench (scratch; needs about 3x the dataset).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(dirname "$here")"
SCALE="${SCALE:-0.25}"
DAYS="${DAYS:-10}"
KEEP="${KEEP:-3}"
BENCH_DIR="${BENCH_DIR:-/var/tmp/coffer-bench}"
work="$BENCH_DIR/prune"
log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

command -v restic >/dev/null || { log "installing restic"; apt-get install -y -qq restic >/dev/null; }
log "building coffer (release)"
(cd "$repo_root" && cargo build --release -q -p coffer-cli)
COFFER="${CARGO_TARGET_DIR:-$repo_root/target}/release/coffer"

rm -rf "$work"
mkdir -p "$work"
src="$work/src"
log "generating the tree (scale $SCALE)"
python3 "$here/dataset.py" generate "$src" --scale "$SCALE" >/dev/null

export RESTIC_PASSWORD=bench-password
COFFER_KEY="$("$COFFER" key generate 2>/dev/null)"
export COFFER_KEY
vault="$work/coffer" repo="$work/restic"
"$COFFER" vault init --location "$vault" >/dev/null
restic init --repository-version 2 -r "$repo" -q

log "building a history of $DAYS days"
for day in $(seq 1 "$DAYS"); do
    [ "$day" -gt 1 ] && python3 "$here/dataset.py" mutate "$src" --seed "$day" >/dev/null 2>&1
    stamp=$(printf '2026-01-%02dT22:00:00Z' "$day")
    "$COFFER" backup --vault "$vault" --item tree --time "$stamp" "$src" >/dev/null
    restic -r "$repo" backup -q --time "$(printf '2026-01-%02d 22:00:00' "$day")" "$src" >/dev/null
done
"$COFFER" policy create Bench --vault "$vault" --keep-last "$KEEP" >/dev/null
"$COFFER" policy assign Bench tree --vault "$vault" >/dev/null
"$COFFER" vault set --vault "$vault" --soft-delete-days 1 >/dev/null

size() { du -sb "$1" | cut -f1; }
coffer_before=$(size "$vault") restic_before=$(size "$repo")

results="$work/results.tsv"
: > "$results"
timed() { # name -- command…
    local name=$1; shift 2
    sync; (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null || true
    /usr/bin/time -o "$work/time.out" -f "%e %U %S %M" "$@" >"$work/last-$name.log" 2>&1
    read -r wall user sys rss < "$work/time.out"
    printf '%s\t%s\t%s\t%s\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" "$rss" >> "$results"
}

log "restic forget --prune"
timed restic -- restic -r "$repo" forget --keep-last "$KEEP" --prune
log "coffer prune (three runs)"
timed coffer-1 -- "$COFFER" prune --vault "$vault" --grace 0s --now 2026-02-01T00:00:00Z
timed coffer-2 -- "$COFFER" prune --vault "$vault" --grace 0s --now 2026-02-03T00:00:00Z
timed coffer-3 -- "$COFFER" prune --vault "$vault" --grace 0s --now 2026-02-05T00:00:00Z

coffer_after=$(size "$vault") restic_after=$(size "$repo")
"$COFFER" check --vault "$vault" --read-data >/dev/null
restic -r "$repo" check -q >/dev/null

python3 - "$results" "$coffer_before" "$coffer_after" "$restic_before" "$restic_after" <<'EOF'
import sys
rows = [l.split('\t') for l in open(sys.argv[1]).read().split('\n') if l]
cb, ca, rb, ra = (int(x) for x in sys.argv[2:6])
print('| run | wall (s) | CPU (s) | peak memory (MB) |')
print('|---|---|---|---|')
for name, wall, cpu, rss in rows:
    print(f'| {name} | {float(wall):.2f} | {float(cpu):.2f} | {int(rss)/1000:.0f} |')
r = next(r for r in rows if r[0] == 'restic')
c = [r for r in rows if r[0].startswith('coffer')]
cw = sum(float(x[1]) for x in c); cc = sum(float(x[2]) for x in c); cm = max(int(x[3]) for x in c)
print()
print(f'coffer, three runs: {cw:.2f} s wall, {cc:.2f} s CPU, peak {cm/1000:.0f} MB')
print(f'ratios coffer/restic: wall {cw/float(r[1]):.2f}, CPU {cc/float(r[2]):.2f}, peak memory {cm/int(r[3]):.2f}')
print(f'vault size: coffer {cb/1e6:.0f} -> {ca/1e6:.0f} MB, restic {rb/1e6:.0f} -> {ra/1e6:.0f} MB')
EOF
