#!/usr/bin/env bash
# Compare Coffer with restic, borg and (when installed) rustic on the same data,
# in the same run, and print medians and Coffer's ratio to each peer.
#
#   bench/compare.sh [DATASET]
#
# Without DATASET a reproducible tree is generated (bench/dataset.py) once and
# reused. The tree is copied to a scratch source for every run, because the
# "5% changed" step edits it.
#
# Settings (environment):
#   RUNS=3                 runs per tool; the report takes the median
#   TOOLS="coffer restic borg rustic"   (also: coffer-wo, Coffer backing up with
#                          a write-only credential; restore and check use the vault key)
#   BENCH_DIR=/var/tmp/coffer-bench   scratch space (needs about 4x the dataset)
#   COLD=1                 drop the page cache before every timed step (needs root;
#                          skipped with a warning otherwise)
#   SCALE=1                size of the generated dataset (1 = about 2.3 GB)
#   RESULTS=FILE           raw measurements (TSV), default $BENCH_DIR/results.tsv
#                          (the previous one is moved to FILE.prev)
#
# Peers run at their default settings with encryption and zstd: restic with
# repository version 2 (compression auto), borg with repokey-blake2 and zstd,3,
# rustic as it comes.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo_root="$(dirname "$here")"
RUNS="${RUNS:-3}"
TOOLS="${TOOLS:-coffer restic borg rustic}"
BENCH_DIR="${BENCH_DIR:-/var/tmp/coffer-bench}"
COLD="${COLD:-1}"
SCALE="${SCALE:-1}"
RESULTS="${RESULTS:-$BENCH_DIR/results.tsv}"
mkdir -p "$BENCH_DIR"

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------
log "building coffer (release)"
(cd "$repo_root" && cargo build --release -q -p coffer-cli)
target_dir="$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
COFFER="$target_dir/release/coffer"

need_pkgs=()
command -v restic >/dev/null || need_pkgs+=(restic)
command -v borg >/dev/null || need_pkgs+=(borgbackup)
[ -x /usr/bin/time ] || need_pkgs+=(time)
command -v diff >/dev/null || need_pkgs+=(diffutils)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
active=()
for t in $TOOLS; do
    case $t in
        coffer|coffer-wo) active+=("$t") ;;
        rustic)
            if command -v rustic >/dev/null; then active+=(rustic)
            else log "rustic not installed; skipping it (cargo install rustic-rs --no-default-features --locked)"; fi ;;
        *) command -v "$t" >/dev/null && active+=("$t") ;;
    esac
done

# --- dataset -----------------------------------------------------------------
if [ $# -ge 1 ]; then
    dataset="$(cd "$1" && pwd)"
else
    dataset="$BENCH_DIR/dataset-s$SCALE"
    if [ ! -e "$dataset/.complete" ]; then
        log "generating the dataset (scale $SCALE) in $dataset"
        rm -rf "$dataset"
        python3 "$here/dataset.py" generate "$dataset" --scale "$SCALE"
        touch "$dataset/.complete"
    fi
fi
src="$BENCH_DIR/src"   # every tool backs up this same path

can_drop=0
if [ "$COLD" = 1 ]; then
    if (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then can_drop=1
    else log "cannot drop the page cache (not root?); measuring with a warm cache"; fi
fi
drop_caches() { sync; [ $can_drop = 1 ] && echo 3 > /proc/sys/vm/drop_caches; true; }

export RESTIC_PASSWORD=bench-password RUSTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password
export BORG_BASE_DIR="$BENCH_DIR/borg-base" RESTIC_CACHE_DIR="$BENCH_DIR/cache/restic"
export COFFER_CACHE_DIR="$BENCH_DIR/cache/coffer" BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export XDG_CACHE_HOME="$BENCH_DIR/cache/xdg"   # rustic's cache

# Each invocation starts its own results: medians must not mix runs made
# with different builds or machine states. The previous file is kept.
[ -f "$RESULTS" ] && mv "$RESULTS" "$RESULTS.prev"
printf 'run\ttool\tstep\twall_s\tuser_s\tsys_s\tmaxrss_kb\trepo_bytes\n' > "$RESULTS"

# measure RUN TOOL STEP REPO -- COMMAND...   (runs COMMAND from the current directory)
measure() {
    local run=$1 tool=$2 step=$3 repo=$4; shift 5
    local tf="$BENCH_DIR/time.out" out="$BENCH_DIR/last-$tool-$step.log"
    drop_caches
    if ! /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$out" 2>&1; then
        # Exit code 3 from coffer means "partial": not acceptable on this data.
        echo "FAILED: $tool $step (see $out)" >&2; tail -5 "$out" >&2; exit 1
    fi
    local size=0
    [ -n "$repo" ] && size=$(du -sb "$repo" | cut -f1)
    read -r wall user sys rss < "$tf"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$tool" "$step" "$wall" "$user" "$sys" "$rss" "$size" >> "$RESULTS"
    printf '   %-7s %-9s %7.2fs wall %7.2fs cpu %7d MB rss\n' "$tool" "$step" "$wall" \
        "$(echo "$user + $sys" | bc)" "$((rss / 1024))" >&2
}

repo_of() { echo "$BENCH_DIR/repo-$1"; }

tool_init() {
    local run=$1 t=$2 r; r=$(repo_of "$t"); rm -rf "$r"
    case $t in
        coffer|coffer-wo)
                "$COFFER" key generate > "$BENCH_DIR/key-$t" 2>/dev/null
                measure "$run" "$t" init "$r" -- "$COFFER" --key-file "$BENCH_DIR/key-$t" vault init --location "$r"
                # The backups of coffer-wo use a write-only credential, as a host would.
                if [ "$t" = coffer-wo ]; then
                    "$COFFER" --key-file "$BENCH_DIR/key-$t" key add --write-only --name bench --vault "$r" \
                        > "$BENCH_DIR/writer-$t" 2>/dev/null
                fi ;;
        restic) measure "$run" "$t" init "$r" -- restic init --repository-version 2 -r "$r" ;;
        borg)   measure "$run" "$t" init "$r" -- borg init -e repokey-blake2 "$r" ;;
        rustic) measure "$run" "$t" init "$r" -- rustic -r "$r" init ;;
    esac
}

tool_backup() {
    local run=$1 t=$2 step=$3 r; r=$(repo_of "$t")
    case $t in
        coffer) measure "$run" "$t" "$step" "$r" -- "$COFFER" --key-file "$BENCH_DIR/key-$t" backup --vault "$r" "$src" ;;
        coffer-wo) measure "$run" "$t" "$step" "$r" -- "$COFFER" --key-file "$BENCH_DIR/writer-$t" backup --vault "$r" "$src" ;;
        restic) measure "$run" "$t" "$step" "$r" -- restic -r "$r" backup "$src" ;;
        borg)   measure "$run" "$t" "$step" "$r" -- borg create --compression zstd,3 "$r::$step" "$src" ;;
        rustic) measure "$run" "$t" "$step" "$r" -- rustic -r "$r" backup "$src" ;;
    esac
}

tool_restore() {
    local run=$1 t=$2 r dest; r=$(repo_of "$t"); dest="$BENCH_DIR/restore-$t"
    rm -rf "$dest"; mkdir -p "$dest"
    case $t in
        coffer|coffer-wo) measure "$run" "$t" restore "" -- "$COFFER" --key-file "$BENCH_DIR/key-$t" restore --vault "$r" latest --target "$dest" ;;
        restic) measure "$run" "$t" restore "" -- restic -r "$r" restore latest --target "$dest" ;;
        borg)   (cd "$dest" && measure "$run" "$t" restore "" -- borg extract "$r::changed") ;;
        rustic) measure "$run" "$t" restore "" -- rustic -r "$r" restore latest "$dest" ;;
    esac
    local got="$dest$src"
    [ -d "$got" ] || got="$dest"
    if ! diff -r --no-dereference -q "$src" "$got" > "$BENCH_DIR/diff-$t.txt" 2>&1; then
        echo "RESTORE MISMATCH: $t (see $BENCH_DIR/diff-$t.txt)" >&2; exit 1
    fi
    local torture; torture="$(dirname "$repo_root")/shared/torture_tree.py"
    # Coffer must bring back every piece of metadata, not just the bytes.
    if [[ "$t" == coffer* ]] && [ -f "$torture" ] && ! python3 "$torture" compare "$src" "$got" > "$BENCH_DIR/meta-$t.txt" 2>&1; then
        echo "RESTORE METADATA MISMATCH: coffer (see $BENCH_DIR/meta-$t.txt)" >&2; exit 1
    fi
    rm -rf "$dest"
}

tool_check() {
    local run=$1 t=$2 r; r=$(repo_of "$t")
    case $t in
        coffer|coffer-wo) measure "$run" "$t" check "$r" -- "$COFFER" --key-file "$BENCH_DIR/key-$t" check --vault "$r" --read-data ;;
        restic) measure "$run" "$t" check "$r" -- restic -r "$r" check --read-data ;;
        borg)   measure "$run" "$t" check "$r" -- borg check --verify-data "$r" ;;
        rustic) measure "$run" "$t" check "$r" -- rustic -r "$r" check --read-data ;;
    esac
}

baselines() {
    local run=$1 dest="$BENCH_DIR/cp-baseline"
    measure "$run" machine read "" -- sh -c "cd '$src' && tar -cf - . | cat > /dev/null"
    measure "$run" machine stat "" -- find "$src" -printf '%s %T@ %C@ %i\n' -fprint /dev/null
    rm -rf "$dest"; mkdir -p "$dest"
    # Two parallel cp -a over alternating halves of the top-level entries, by size.
    measure "$run" machine copy "" -- python3 "$here/parcopy.py" "$src" "$dest"
    rm -rf "$dest"
}

log "tools: ${active[*]}; dataset: $dataset ($(du -sh "$dataset" | cut -f1)); results: $RESULTS"
for run in $(seq 1 "$RUNS"); do
    log "run $run/$RUNS: fresh copy of the dataset"
    rm -rf "$src"; cp -a "$dataset" "$src"; rm -f "$src/.complete"
    baselines "$run"
    for t in "${active[@]}"; do
        tool_init "$run" "$t"
        tool_backup "$run" "$t" first
        tool_backup "$run" "$t" unchanged
    done
    python3 "$here/dataset.py" mutate "$src" --seed $((run + 100))
    for t in "${active[@]}"; do
        tool_backup "$run" "$t" changed
        tool_restore "$run" "$t"
        tool_check "$run" "$t"
        rm -rf "$(repo_of "$t")"
    done
    rm -rf "$BENCH_DIR/cache" "$BENCH_DIR/borg-base"
done
rm -rf "$src"
python3 "$here/report.py" "$RESULTS"
