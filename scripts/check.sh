#!/bin/sh
# Build and run every test twice: plain, then under AddressSanitizer and UndefinedBehaviorSanitizer
# (the slow suite, which replays whole traces, runs in the plain build only), then each libFuzzer
# target for 20 s (scripts/fuzz.sh). Ends with one line, "N passed, N failed", counting every test
# case of both builds.
set -u
plain=${1:-build}
asan=${2:-build-asan}
status=0
logs=""
extra_passed=0 # what is not a Meson test: the fuzz run; a build that fails is a failure
extra_failed=0

run_build() {
    dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || return 1
    fi
    ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
    return 0
}

# Chromium, Node.js and playwright-core for the dashboard's browser tests.
"$(dirname "$0")/web-deps.sh"
if run_build "$plain"; then
    meson test -C "$plain" --print-errorlogs --num-processes 2 || status=1
    logs="$logs $plain/meson-logs/testlog.json"
else
    echo "check: the plain build failed" >&2
    status=1
    extra_failed=$((extra_failed + 1))
fi
if run_build "$asan" -Db_sanitize=address,undefined -Db_lundef=false; then
    # The preload library (never sanitized) comes before the runtime in the programs it is
    # preloaded into: the runtime's link-order check would refuse them.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:verify_asan_link_order=0 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        meson test -C "$asan" --print-errorlogs --num-processes 2 --no-suite slow || status=1
    logs="$logs $asan/meson-logs/testlog.json"
else
    echo "check: the sanitizer build failed" >&2
    status=1
    extra_failed=$((extra_failed + 1))
fi
# The libFuzzer targets, briefly (make fuzz runs them longer); a crash fails the check.
# A crash counts as a failed case in the last line; a clean run as a passed one.
if "$(dirname "$0")/fuzz.sh" 20; then
    extra_passed=$((extra_passed + 1))
else
    echo "check: a fuzz target crashed" >&2
    status=1
    extra_failed=$((extra_failed + 1))
fi
python3 "$(dirname "$0")/test-summary.py" --also "$extra_passed" "$extra_failed" $logs
summary=$?
[ $status -eq 0 ] && [ $summary -eq 0 ]
