#!/bin/sh
# Build the libFuzzer targets (tests/fuzz) with clang and run each for SECONDS (default 60) from
# its seed corpus (tests/fuzz/corpus/TARGET), after the inputs that once broke it
# (tests/fuzz/regress/TARGET, each run once).  Installs clang and its fuzzer runtime from Debian
# when missing (as root).  Exit 1 when a target crashes: the input is kept in BUILD/artifacts.
# usage: scripts/fuzz.sh [SECONDS] [BUILD]   (default build-fuzz)
set -u
seconds=${1:-60}
build=${2:-build-fuzz}
src=$(cd "$(dirname "$0")/.." && pwd)
targets="request jobfile"

runtime() { clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null | grep -q /; }
if ! command -v clang >/dev/null 2>&1 || ! runtime; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "fuzz: clang and its fuzzer runtime are missing: apt-get install clang libclang-rt-dev" >&2
        exit 1
    fi
    echo "fuzz: installing clang libclang-rt-dev"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang \
        libclang-rt-dev >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null; } || exit 1
fi
if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" "$src" -Dfuzz=true -Dtests=false >/dev/null || exit 1
fi
# shellcheck disable=SC2086
ninja -C "$build" $(for t in $targets; do printf 'tests/fuzz/fuzz-%s ' "$t"; done) >/dev/null ||
    { ninja -C "$build"; exit 1; }

status=0
mkdir -p "$build/artifacts"
for t in $targets; do
    exe="$build/tests/fuzz/fuzz-$t"
    regress="$src/tests/fuzz/regress/$t"
    if [ -d "$regress" ] && [ -n "$(ls -A "$regress")" ]; then
        if "$exe" "$regress"/* >"$build/fuzz-$t-regress.log" 2>&1; then
            echo "fuzz-$t: $(ls "$regress" | wc -l) regression input(s) pass"
        else
            echo "fuzz-$t: a regression input fails:" >&2
            tail -30 "$build/fuzz-$t-regress.log" >&2
            status=1
        fi
    fi
    # New inputs go to a scratch corpus; the seeds in the tree stay as they are.
    work="$build/corpus-$t"
    mkdir -p "$work"
    if "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -dict="$src/tests/fuzz/json.dict" -artifact_prefix="$build/artifacts/$t-" \
        -print_final_stats=1 "$work" "$src/tests/fuzz/corpus/$t" >"$build/fuzz-$t.log" 2>&1; then
        echo "fuzz-$t: $seconds s, no crash ($(grep -o 'stat::number_of_executed_units: *[0-9]*' \
            "$build/fuzz-$t.log" | grep -o '[0-9]*$') inputs run; corpus $(ls "$work" | wc -l))"
    else
        echo "fuzz-$t: crashed; the input is in $build/artifacts:" >&2
        grep -A30 -E '^==[0-9]+==|fuzz_[a-z]+: ' "$build/fuzz-$t.log" | head -40 >&2
        status=1
    fi
done
exit $status
