#!/bin/bash
# Job swapping on simulated GPUs, both ways: through the driver's checkpoint API and through
# libgpool-cuda inside the process.  A gpool-burn holding GPU memory is swapped out, another
# process takes the freed memory, the burn is swapped back in at the same addresses and verifies
# every byte.  Refusals (no host memory to spare, memory the library cannot move, not a CUDA
# process, device memory taken) change nothing.  TAP.
set -u
gpool=$1 simgpu_dir=$2 lib_dir=$3 probe=$4 burn=$5 stat=$6
lib="$lib_dir/libgpool-cuda.so"
tmp=$(mktemp -d)
. "$(dirname "$0")/cuda_common.sh"
fresh_gpu 2GiB
"$gpool" region set --gpu "$uuid" --job job
in_job() { GPOOL_JOB_ID=job LD_PRELOAD="$lib" exec "$@"; }
swap() { "$gpool" swap "$@" >"$tmp/out" 2>"$tmp/err"; }
# burn_start [env...]: a burn holding 1 GiB for 4 s of its own time; sets $b
burn_start() {
    env "$@" "$burn" --memory 1GiB --seconds 4 --kernel-ms 10 -q >"$tmp/burn" 2>&1 &
    b=$!
    pids+=("$b")
    for _ in $(seq 100); do [ "$(stat_mem $b)" = 1073741824 ] && break; sleep 0.05; done
}

for via in driver library; do
    if [ $via = driver ]; then burn_start; else burn_start GPOOL_SWAP=library GPOOL_JOB_ID=job LD_PRELOAD="$lib"; fi
    swap out --pid $b --via $via
    check "[$via] a burn holding 1 GiB is swapped out" \
        'grep -q "swapped out pid $b via $via: 1.00 GiB" "$tmp/out" && [ -z "$(stat_mem $b)" -o "$(stat_mem $b)" = 0 ]'
    "$probe" alloc 1536MiB hold >"$tmp/hold" 2>&1 &
    hp=$!
    pids+=("$hp")
    for _ in $(seq 100); do grep -q holding "$tmp/hold" && break; sleep 0.05; done
    check "[$via] another process allocates the freed GPU memory" 'grep -qx "alloc 1536MiB CUDA_SUCCESS" "$tmp/hold"'
    swap in --pid $b --via $via
    check "[$via] swapping in while that memory is taken is refused, the burn stays out" \
        '[ -s "$tmp/err" ] && grep -qi "memory" "$tmp/err" && [ -z "$(stat_mem $b)" -o "$(stat_mem $b)" = 0 ]'
    kill -9 $hp; wait $hp 2>/dev/null
    swap in --pid $b --via $via
    check "[$via] once it is free the burn is swapped back in" 'grep -q "swapped in pid $b via $via" "$tmp/out"'
    wait $b
    rc=$?
    check "[$via] the burn finishes and every byte at its unchanged addresses verifies (exit $rc)" \
        '[ $rc -eq 0 ] && grep -q "data ok: all 1024.0 MiB verified" "$tmp/burn"'
done

burn_start GPOOL_SWAP=library GPOOL_JOB_ID=job LD_PRELOAD="$lib"
swap in --pid $b --via library
check "swapping in a process that is not swapped out is refused" \
    '[ $? -eq 1 ] && grep -q "already swapped in" "$tmp/err"'
wait $b

burn_start
swap out --pid $b --host-reserve 100TiB
check "a swap out that would overrun the host's memory is refused" \
    '[ $? -ne 0 ] && grep -q "refused: the swap needs 1.00 GiB of host memory" "$tmp/err"'
check "  ... and the process keeps its GPU memory" '[ "$(stat_mem $b)" = 1073741824 ]'
wait $b
check "  ... and finishes unharmed" '[ $? -eq 0 ]'

(in_job "$probe" managed 64MiB hold) >"$tmp/hold" 2>&1 &
hp=$!
pids+=("$hp")
for _ in $(seq 100); do grep -q holding "$tmp/hold" && break; sleep 0.05; done
GPOOL_SWAP=library swap out --pid $hp --via library
check "a process without the swap path cannot be swapped by the library, and is told why" \
    '[ $? -ne 0 ] && grep -q "does not allocate through libgpool-cuda" "$tmp/err"'
kill -9 $hp; wait $hp 2>/dev/null
(GPOOL_SWAP=library in_job "$probe" managed 64MiB hold) >"$tmp/hold" 2>&1 &
hp=$!
pids+=("$hp")
for _ in $(seq 100); do grep -q holding "$tmp/hold" && break; sleep 0.05; done
swap out --pid $hp --via library
check "managed memory is refused by the library's swap, with the reason" \
    '[ $? -ne 0 ] && grep -q "managed memory" "$tmp/err"'
kill -9 $hp; wait $hp 2>/dev/null

sleep 30 &
sp=$!
pids+=("$sp")
swap out --pid $sp
check "a process that is not a CUDA program cannot be swapped" '[ $? -eq 1 ] && grep -q "cannot swap" "$tmp/err"'
for bad in "sideways --pid $sp" "out" "out --pid x" "out --pid $sp --via teleport" "out --pid $sp --timeout 0"; do
    # shellcheck disable=SC2086
    "$gpool" swap $bad >"$tmp/out" 2>"$tmp/err"
    check "gpool swap $bad: exit 2 with a message" '[ $? -eq 2 ] && [ -s "$tmp/err" ]'
done

echo "1..$n"
[ "$failed" -eq 0 ]
