#!/bin/sh
# Delivery rate of the storage module next to the machine's durable
# small-file create rate, measured in the same run (../shared/bench/fsync_bench.py).
#
#   bench/store_bench.sh [BUILD_DIR]     (default: _build/st-gcc, configured already)
#
# Env: N (messages per run, default 2000), REBUILD_N (files for the index
# rebuild, default 100000), BENCH_DIR (scratch directory on the file system
# to measure, default $BUILD_DIR/bench-store), FSYNC_BENCH.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/_build/st-gcc}
n=${N:-2000}
scratch=${BENCH_DIR:-$build/bench-store}
fsync_bench=${FSYNC_BENCH:-$top/../shared/bench/fsync_bench.py}

make -C "$build" bench/store_bench >/dev/null
bin="$build/bench/store_bench" # a libtool wrapper: runs against the build's libpetrel
mkdir -p "$scratch"

rate() { sed -n 's/^RESULT .*"\(files\|deliveries\)_per_s": \([0-9.]*\).*/\2/p'; }

raw() { # threads dirsync
    extra=""
    [ "$2" = yes ] && extra="--dirsync"
    python3 "$fsync_bench" --dir "$scratch" -n "$n" -s 4096 --threads "$1" $extra | rate
}

store() { # threads mode [extra]
    d="$scratch/store.$$"
    rm -rf "$d"
    mkdir -p "$d"
    mode=""
    [ "$2" = one ] && mode="--one-account"
    shift 2
    "$bin" --dir "$d" --threads "$t" -n "$n" $mode "$@" 2>/dev/null | rate
    rm -rf "$d"
}

printf '%-44s %12s\n' "4 KB, $n per run" "per second"
for t in 1 8; do
    printf '%-44s %12s\n' "raw fsync'd create, $t thread(s)" "$(raw $t no)"
    printf '%-44s %12s\n' "raw fsync'd create + dir fsync, $t thread(s)" "$(raw $t yes)"
    printf '%-44s %12s\n' "store deliver, $t thread(s), own accounts" "$(store $t acc)"
    printf '%-44s %12s\n' "store deliver, $t thread(s), one account" "$(store $t one)"
    printf '%-44s %12s\n' "  same, index_sync=normal" "$(store $t one --index-sync normal)"
done

# Rebuilding a lost index from REBUILD_N files (default 100000): must stay
# n log n (seconds for 100k files, not a minute).
rn=${REBUILD_N:-100000}
d="$scratch/rebuild.$$"
rm -rf "$d"
mkdir -p "$d"
printf '%-44s %12s\n' "index rebuild, $rn files (files/s)" \
    "$("$bin" --dir "$d" --rebuild -n "$rn" --size 512 --no-fsync 2>/dev/null | rate)"
rm -rf "$d"
