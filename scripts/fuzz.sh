#!/usr/bin/env bash
# libFuzzer targets of tests/fuzz/ (docs/development.md, "Fuzzing").
#
#   scripts/fuzz.sh [SECONDS]       build, then run every target SECONDS
#                                   (default 20) on a scratch copy of its
#                                   seed corpus; fails on any crash, leak,
#                                   contract violation or timeout
#   scripts/fuzz.sh --long SECONDS  the same, keeping the grown corpus in
#                                   $CP_FUZZ_BUILD/corpus/<target> across
#                                   runs (scripts/fuzz-long.sh)
#   scripts/fuzz.sh --seeds         regenerate tests/fuzz/corpus/<target>/
#                                   (valid inputs written by the targets)
#   scripts/fuzz.sh --build         build only
#
# Environment: CP_FUZZ_BUILD (build directory, default <repo>/build-fuzz),
# CP_FUZZ_JOBS (targets run at once, default 2), CP_FUZZ_TARGETS (a
# space-separated subset, e.g. "codec slot"), CP_FUZZ_CC (default clang).
# Exits 77 (ctest's skip) when clang with the libFuzzer runtime or MPI's
# compiler wrapper is not there. Never writes into the repository except
# with --seeds; needs no network.
set -u
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${CP_FUZZ_BUILD:-$repo/build-fuzz}
mkdir -p "$B" && B=$(cd "$B" && pwd)
CC=${CP_FUZZ_CC:-clang}
JOBS=${CP_FUZZ_JOBS:-2}
FLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"

mode=short secs=20
case "${1:-}" in
--long) mode=long secs=${2:-3600} ;;
--seeds) mode=seeds ;;
--build) mode=build ;;
"") ;;
*) secs=$1 ;;
esac
case "$secs" in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] | --long SECONDS | --seeds | --build" >&2; exit 2 ;;
esac

skip() { echo "fuzz: skipped: $*"; exit 77; }

# ---- can we fuzz here? ----
command -v "$CC" >/dev/null || skip "no $CC"
command -v mpicc >/dev/null || skip "no mpicc (MPI's flags)"
command -v cmake >/dev/null || skip "no cmake"
probe=$B/probe
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
"$CC" $FLAGS -fsanitize=fuzzer "$probe.c" -o "$probe" >"$probe.log" 2>&1 ||
    skip "$CC cannot build a libFuzzer target (libclang-rt-dev missing?): $(head -n 3 "$probe.log")"
"$probe" -runs=1 >"$probe.log" 2>&1 || skip "a libFuzzer target does not run: $(tail -n 3 "$probe.log")"

# ---- build: the library (cp_core) with coverage, then one binary a target ----
build() {
    cmake -S "$repo" -B "$B/lib" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Fuzz \
        "-DCMAKE_C_FLAGS=$FLAGS -fsanitize=fuzzer-no-link" \
        -DCOMMPRESS_CUDA=OFF -DCOMMPRESS_TESTS=OFF >"$B/cmake.log" 2>&1 ||
        { cat "$B/cmake.log"; echo "fuzz: cmake failed" >&2; return 1; }
    cmake --build "$B/lib" --target cp_core_static -j "$JOBS" >"$B/build.log" 2>&1 ||
        { tail -n 40 "$B/build.log"; echo "fuzz: library build failed" >&2; return 1; }
    local src t
    for src in "$repo"/tests/fuzz/fuzz_*.c; do
        t=$(basename "$src" .c)
        t=${t#fuzz_}
        "$CC" $FLAGS -fsanitize=fuzzer -std=gnu11 -Wall -Wextra -I"$repo" \
            $(mpicc --showme:compile) "$src" "$B/lib/libcp_core_static.a" \
            $(mpicc --showme:link) -lm -lpthread -o "$B/fuzz_$t" ||
            { echo "fuzz: cannot build fuzz_$t" >&2; return 1; }
    done
}
build || exit 1
[ "$mode" = build ] && exit 0

targets=${CP_FUZZ_TARGETS:-$(cd "$repo/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}

if [ "$mode" = seeds ]; then
    for t in $targets; do
        d=$repo/tests/fuzz/corpus/$t
        mkdir -p "$d"
        CP_FUZZ_WRITE_SEEDS=$d "$B/fuzz_$t" >/dev/null 2>&1 ||
            { echo "fuzz: fuzz_$t could not write its seeds" >&2; exit 1; }
        echo "fuzz: $(ls "$d" | wc -l) seeds in tests/fuzz/corpus/$t"
    done
    exit 0
fi

# ---- run ----
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# One target: its corpus, then libFuzzer for $secs seconds; result in
# $B/logs/<target>.{log,rc,secs}. A crash input lands in $B/artifacts/.
run_one() {
    local t=$1 corpus start rc
    if [ "$mode" = long ]; then
        corpus=$B/corpus/$t
        mkdir -p "$corpus"
    else
        corpus=$B/run/$t
        rm -rf "$corpus" && mkdir -p "$corpus"
    fi
    # Seeds (and regression inputs) from the repository, never back to it.
    [ -d "$repo/tests/fuzz/corpus/$t" ] && cp -n "$repo/tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null
    mkdir -p "$B/artifacts/$t"
    start=$(date +%s)
    # libFuzzer stops itself after -max_total_time; timeout is the net
    # under a hang outside an input (-timeout covers one input).
    timeout -k 10 $((secs + 120)) "$B/fuzz_$t" -max_total_time="$secs" \
        -print_final_stats=1 -timeout=60 -rss_limit_mb=4096 -max_len=8192 \
        -artifact_prefix="$B/artifacts/$t/" "$corpus" >"$B/logs/$t.log" 2>&1
    rc=$?
    echo $(($(date +%s) - start)) >"$B/logs/$t.secs"
    echo $rc >"$B/logs/$t.rc"
}

rm -rf "$B/logs" && mkdir -p "$B/logs" "$B/stats"
running=0
for t in $targets; do
    [ -x "$B/fuzz_$t" ] || { echo "fuzz: no target fuzz_$t" >&2; exit 1; }
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait

fail=0
printf '%-16s | %12s | %7s | %s\n' target executions seconds result
for t in $targets; do
    rc=$(cat "$B/logs/$t.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$B/logs/$t.log" | tail -n 1)
    s=$(cat "$B/logs/$t.secs" 2>/dev/null || echo 0)
    if [ "$rc" = 0 ] && [ -n "$execs" ]; then
        result=ok
        if [ "$mode" = long ]; then
            total=$(($(cat "$B/stats/$t.total" 2>/dev/null || echo 0) + execs))
            echo "$total" >"$B/stats/$t.total"
            result="ok (total $total)"
        fi
    else
        fail=1
        case "$rc" in
        124 | 137) result="HUNG (killed after $s s)" ;;
        *) result="FAILED (rc $rc)" ;;
        esac
        grep -q 'ERROR: libFuzzer: timeout' "$B/logs/$t.log" && result="TIMEOUT (one input > 60 s)"
        grep -q 'LeakSanitizer: detected memory leaks' "$B/logs/$t.log" && result="LEAK"
    fi
    printf '%-16s | %12s | %7s | %s\n' "$t" "${execs:-?}" "$s" "$result"
done
if [ "$fail" != 0 ]; then
    for t in $targets; do
        [ "$(cat "$B/logs/$t.rc" 2>/dev/null)" = 0 ] && continue
        echo "---- fuzz_$t ($B/logs/$t.log) ----"
        grep -v '^#\|^"\|^INFO\|NEW_FUNC' "$B/logs/$t.log" | tail -n 40
        ls "$B/artifacts/$t"/* 2>/dev/null | sed 's/^/input: /'
    done
    echo "fuzz: FAILED (reproduce: $B/fuzz_<target> <input>)"
    exit 1
fi
echo "fuzz: all targets passed"
