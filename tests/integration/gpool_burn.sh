#!/bin/sh
# gpool-burn on simulated GPUs, as a user runs it: it verifies its data and says so, it notices
# corrupted device memory, it refuses bad options, and it fails clearly without a driver. TAP.
set -u
burn=$1
simgpu_dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }

export SIMGPU_STATE="$tmp/state" SIMGPU_MEMORY=2GiB LD_LIBRARY_PATH="$simgpu_dir"

run() { # expected exit, args...
    want=$1
    shift
    "$burn" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ $rc -eq "$want" ]
}

if run 0 --memory 64MiB --iterations 20 --kernel-ms 2 --check-every 0.01 &&
    grep -q "20 kernels, busy" "$tmp/out" &&
    grep -q "data ok: all 64.0 MiB verified after 20 kernels" "$tmp/out"; then
    ok "a clean run verifies all its memory and exits 0"
else
    not_ok "a clean run (exit $rc): $(cat "$tmp/out" "$tmp/err" | head -c 400)"
fi

if run 0 --memory 8MiB --seconds 0.5 --kernel-ms 5 --duty 50 -q &&
    awk '/done:/ { sub(/%,.*/, ""); sub(/.*busy /, ""); exit !($1 > 30 && $1 < 70) }' "$tmp/out"; then
    ok "a 50% duty cycle keeps the GPU busy about half the time"
else
    not_ok "duty cycle (exit $rc): $(cat "$tmp/out" "$tmp/err" | head -c 400)"
fi

if SIMGPU_FAULT_FLIP_AFTER=3 run 1 --memory 16MiB --iterations 10 --kernel-ms 1 &&
    grep -q "data mismatch at word" "$tmp/err"; then
    ok "a bit flipped in device memory is detected (exit 1)"
else
    not_ok "corruption not detected (exit $rc): $(cat "$tmp/out" "$tmp/err" | head -c 400)"
fi

if run 3 --memory 4GiB --iterations 1 && grep -q "CUDA_ERROR_OUT_OF_MEMORY" "$tmp/err"; then
    ok "more memory than the GPU has is a clear CUDA error (exit 3)"
else
    not_ok "out of memory (exit $rc): $(head -c 300 "$tmp/err")"
fi

for bad in "--memory lots" "--duty 0" "--duty 150" "--seconds -1" "--iterations 1.5" "--device x" "extra"; do
    # shellcheck disable=SC2086
    if run 2 $bad && [ -s "$tmp/err" ] && [ ! -s "$tmp/out" ]; then
        ok "bad usage '$bad' exits 2 with a message"
    else
        not_ok "bad usage '$bad' (exit $rc)"
    fi
done

if run 0 --print-ptx && grep -q "^.entry gpool_burn_step\|.visible .entry gpool_burn_step" "$tmp/out"; then
    ok "--print-ptx prints the kernel"
else
    not_ok "--print-ptx (exit $rc)"
fi

if LD_LIBRARY_PATH="$tmp" run 3 --iterations 1 && grep -q "cannot load the CUDA driver" "$tmp/err"; then
    ok "without a driver it says so (exit 3)"
elif ldconfig -p 2>/dev/null | grep -q "libcuda.so.1 "; then
    ok "# SKIP a real driver is installed on this machine"
else
    not_ok "without a driver (exit $rc): $(head -c 300 "$tmp/err")"
fi

echo "1..$n"
[ $failed -eq 0 ]
