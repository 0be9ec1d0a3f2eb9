#!/bin/bash
# Petrel's full test run: installs what is missing, then
#   1. static checks (banned string functions, formatting),
#   2. a gcc build (-Werror): unit tests, install, integration tests,
#   3. a clang build with AddressSanitizer + UndefinedBehaviorSanitizer:
#      unit tests and integration tests again (any finding fails),
#   4. a short run of every libFuzzer target,
#   5. make distcheck.
# Environment: FUZZ_SECONDS (default 30 per target), JOBS (default: CPUs),
# SKIP_DISTCHECK=1 to leave out step 5 while iterating.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
build=$top/_build
logs=$build/logs
jobs=${JOBS:-$(nproc)}
fuzz_seconds=${FUZZ_SECONDS:-30}
PYTEST="/usr/bin/python3 -m pytest"
mkdir -p "$logs"

step() { printf '\n=== %s\n' "$*"; }
passed=0 # test cases passed, over every runner, for the closing line
# Run a command with its output in a log; show the end of it on failure.
run_logged() {
    local log=$logs/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 80 "$log"
        echo "FAILED: $* (full log: $log)" >&2
        exit 1
    fi
}

step "dependencies"
"$top/scripts/deps.sh"

step "static checks"
if grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets)[[:space:]]*\(' \
        --include='*.c' --include='*.h' core plugins-api contrib tests modules bench; then
    echo "unbounded string functions are banned (use petrel_strlcpy, snprintf, petrel_buf)" >&2
    exit 1
fi
clang-format --dry-run -Werror $(git ls-files '*.c' '*.h')
echo "ok"

step "autoreconf"
run_logged autoreconf autoreconf -fi

# build NAME CONFIGURE-ARGS...: configure, build, unit tests, install.
build_tree() {
    local name=$1
    shift
    local dir=$build/$name
    mkdir -p "$dir"
    (cd "$dir" && run_logged "$name-configure" "$top/configure" --prefix="$dir/inst" "$@")
    run_logged "$name-make" make -C "$dir" -j"$jobs"
    if ! make -C "$dir" -j"$jobs" check >"$logs/$name-check.log" 2>&1; then
        cat "$dir"/tests/unit/*.log "$dir"/modules/*/*.log 2>/dev/null | tail -n 80
        echo "FAILED: unit tests ($name)" >&2
        exit 1
    fi
    grep -E '^(PASS|FAIL|# )' "$logs/$name-check.log" || true
    local n
    n=$(cat "$dir"/tests/unit/*.log "$dir"/modules/*/test_*.log | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' |
        awk '{s += $1} END {print s + 0}')
    echo "$n unit test cases passed"
    passed=$((passed + n))
    run_logged "$name-install" make -C "$dir" install
}

integration() {
    local name=$1
    shift
    local dir=$build/$name
    # No path: pytest.ini's testpaths, tests/integration and every
    # modules/*/tests, from the top of the tree (the current directory).
    PETREL_PREFIX=$dir/inst PETREL_TEST_MODULES=$dir/tests/modules/.libs "$@" \
        $PYTEST -q -p no:cacheprovider | tee "$logs/$name-pytest.log"
    local n
    n=$(tail -n 1 "$logs/$name-pytest.log" | grep -oE '[0-9]+ passed' | cut -d' ' -f1)
    passed=$((passed + ${n:-0}))
}

step "gcc build, unit tests"
build_tree gcc CC=gcc
step "gcc build, integration tests"
integration gcc env

step "clang ASan+UBSan build, unit tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build_tree asan CC=clang --enable-sanitizers
step "clang ASan+UBSan build, integration tests"
integration asan env PETREL_MODULE_CFLAGS="-g -fsanitize=address,undefined"

step "fuzzing (${fuzz_seconds}s per target)"
mkdir -p "$build/fuzz"
(cd "$build/fuzz" && run_logged fuzz-configure "$top/configure" CC=clang --enable-fuzzers)
run_logged fuzz-make make -C "$build/fuzz" -j"$jobs" all-fuzzers
# Every target the Makefiles list, as DIR/fuzz_NAME (the core's in
# tests/fuzz, a module's in modules/<m>), seeded from DIR/corpus/NAME, with
# DIR/NAME.dict when there is one. A target without seeds is an error.
for path in $(make -s -C "$build/fuzz" print-fuzzers); do
    dir=$(dirname "$path")
    target=$(basename "$path")
    target=${target#fuzz_}
    seeds=$top/$dir/corpus/$target
    if ! ls "$seeds/"* >/dev/null 2>&1; then
        echo "FAILED: $path has no seed corpus in $dir/corpus/$target" >&2
        exit 1
    fi
    corpus=$build/fuzz/corpus-$target
    mkdir -p "$corpus"
    cp "$seeds/"* "$corpus/"
    dict=()
    [ -f "$top/$dir/$target.dict" ] && dict=(-dict="$top/$dir/$target.dict")
    if ! (cd "$build/fuzz" && "./$path" "${dict[@]}" \
            -max_total_time="$fuzz_seconds" -print_final_stats=1 "$corpus" \
            >"$logs/fuzz-$target.log" 2>&1); then
        tail -n 60 "$logs/fuzz-$target.log"
        echo "FAILED: $path found a problem (reproducer in $build/fuzz)" >&2
        exit 1
    fi
    echo "fuzz_$target: $(grep -oE 'number_of_executed_units: [0-9]+' "$logs/fuzz-$target.log" | cut -d' ' -f2) runs, no finding"
done

if [ "${SKIP_DISTCHECK:-0}" != 1 ]; then
    step "make distcheck"
    run_logged distcheck make -C "$build/gcc" -j"$jobs" distcheck
    echo "ok"
fi

step "all tests passed"
echo "petrel: $passed passed, 0 failed"
