#!/usr/bin/env bash
# libFuzzer harnesses of the core's parsers (tests/fuzz/fuzz_*.cpp), built
# with clang++ -fsanitize=fuzzer,address,undefined, each run for SECONDS
# (default 60) from its committed seed corpus (tests/fuzz/corpus/NAME, left
# untouched: new inputs go to the build dir's corpus).
#
#   scripts/fuzz.sh [SECONDS] [NAME...]     # NAME: body, scram, ... (default: all)
#
# Environment: PG_FUZZ_DIR (build dir, default build/fuzz), PG_FUZZ_BUILD_ONLY=1,
# PG_FUZZ_RUNS=N (stop each harness after N executions; 10000000 for the long run).
# Fails when a harness finds anything; the input that did it is left in
# PG_FUZZ_DIR/artifacts/ (reproduce: PG_FUZZ_DIR/bin/fuzz_NAME FILE).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="${PG_FUZZ_DIR:-$ROOT/build/fuzz}"
SECONDS_EACH="${1:-60}"
shift || true

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
apt_install clang libfuzzer-14-dev libhiredis-dev libjansson-dev libssl-dev libargon2-dev

CXX=clang++
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
CXXFLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer "${SAN[@]}" -I"$ROOT/src/core" -I"$OUT/gen")
LIBS=(-ljansson -lcrypto -largon2)

mkdir -p "$OUT/obj" "$OUT/bin" "$OUT/gen" "$OUT/artifacts"
sh "$ROOT/scripts/embed-lua.sh" "$ROOT/src/lua" "$OUT/gen/pairguard_lua.h"

# The core, instrumented for coverage; rebuilt when a source or header is newer.
objs=()
for src in "$ROOT"/src/core/*.cpp; do
    obj="$OUT/obj/$(basename "$src" .cpp).o"
    objs+=("$obj")
    if [ ! -f "$obj" ] || [ -n "$(find "$ROOT/src/core" "$OUT/gen" -newer "$obj" -name '*.[ch]*' -print -quit)" ]; then
        $CXX "${CXXFLAGS[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
done

names=()
if [ $# -gt 0 ]; then
    names=("$@")
else
    for f in "$ROOT"/tests/fuzz/fuzz_*.cpp; do
        n=$(basename "$f" .cpp)
        names+=("${n#fuzz_}")
    done
fi

for n in "${names[@]}"; do
    src="$ROOT/tests/fuzz/fuzz_$n.cpp"
    bin="$OUT/bin/fuzz_$n"
    [ -f "$src" ] || { echo "fuzz.sh: no harness $src" >&2; exit 2; }
    if [ ! -x "$bin" ] || [ -n "$(find "$src" "$ROOT/tests/fuzz/fuzz_common.hpp" "${objs[@]}" -newer "$bin" -print -quit)" ]; then
        $CXX "${CXXFLAGS[@]}" -fsanitize=fuzzer -I"$ROOT/tests/fuzz" "$src" "${objs[@]}" "${LIBS[@]}" -o "$bin"
    fi
done
[ "${PG_FUZZ_BUILD_ONLY:-0}" = 1 ] && { echo "fuzz.sh: built ${names[*]} in $OUT/bin"; exit 0; }

# UBSan aborts (no recovery); ASan reports leaks too (the core owns its memory).
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0

status=0
summary="$OUT/summary.txt"
printf '%-12s %12s %10s %s\n' harness executions exec/s result > "$summary"
for n in "${names[@]}"; do
    corpus="$OUT/corpus/$n"
    seeds="$ROOT/tests/fuzz/corpus/$n"
    mkdir -p "$corpus" "$seeds"
    log="$OUT/fuzz_$n.log"
    echo "== fuzz_$n (${SECONDS_EACH}s)"
    rc=0
    # PG_FUZZ_RUNS=N: stop a harness after N executions (SECONDS stays the cap)
    "$OUT/bin/fuzz_$n" -max_total_time="$SECONDS_EACH" ${PG_FUZZ_RUNS:+-runs="$PG_FUZZ_RUNS"} -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/${n}-" "$corpus" "$seeds" > "$log" 2>&1 || rc=$?
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result="FOUND (rc $rc, see $log)"
        status=1
        grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$log" | head -8 || true
    fi
    printf '%-12s %12s %10s %s\n' "$n" "${runs:-?}" "${rate:-?}" "$result" | tee -a "$summary"
done
echo "fuzz.sh: summary in $summary"
cat "$summary"
exit $status
