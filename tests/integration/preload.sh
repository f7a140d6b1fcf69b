#!/bin/bash
# libgpool-cuda on simulated GPUs: memory caps over every allocation path and every way a program
# reaches the driver, compute shares and limits, robustness against dying processes and a broken
# region.  What happened is read from simgpu's own books (simgpu-stat), which share no code with
# the library.  TAP.
set -u
gpool=$1 simgpu_dir=$2 lib_dir=$3 probe=$4 probe_linked=$5 burn=$6 stat=$7
lib="$lib_dir/libgpool-cuda.so"
tmp=$(mktemp -d)
. "$(dirname "$0")/cuda_common.sh"
GiB=1073741824 MiB=1048576

fresh_gpu 8GiB
check "region init makes one region per simulated GPU" '[ "$(wc -l <"$tmp/out")" -eq 1 ]'

setjob() { "$gpool" region set --gpu "$uuid" --job "$@"; }
setjob capjob --memory 1GiB
# in_job JOB CMD...: becomes CMD, a process of JOB with the library preloaded (so that $! of
# "in_job ... &" is the program's own pid)
in_job() { local job=$1; shift; GPOOL_JOB_ID=$job LD_PRELOAD="$lib" exec "$@"; }
probe_run() { (in_job "$@") >"$tmp/out" 2>"$tmp/err"; }
# hold JOB ARGS...: a probe that does ARGS, then holds what it has until killed; sets $hp
hold() {
    in_job "$@" hold >"$tmp/hold" 2>&1 &
    hp=$!
    pids+=("$hp")
    for _ in $(seq 100); do grep -q holding "$tmp/hold" && break; sleep 0.05; done
}

# The cap is exact, by each way a program reaches the driver.
for via in dlsym procaddr linked; do
    if [ $via = linked ]; then p=("$probe_linked"); else p=("$probe" --via $via); fi
    probe_run capjob "${p[@]}" alloc 1GiB alloc 1 info
    check "[$via] the whole cap can be allocated, one byte more is CUDA_ERROR_OUT_OF_MEMORY" \
        'grep -qx "alloc 1GiB CUDA_SUCCESS" "$tmp/out" && grep -qx "alloc 1 CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out"'
    check "[$via] cuMemGetInfo shows the cap as the total and nothing free" \
        'grep -qx "info CUDA_SUCCESS free=0 total=$GiB" "$tmp/out"'
    probe_run capjob "${p[@]}" alloc 1073741825
    check "[$via] one allocation a byte over the cap is refused" \
        'grep -qx "alloc 1073741825 CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out"'
done
"$probe" alloc 1073741825 >"$tmp/out" 2>&1
check "without the library the same allocation succeeds (the cap is the library's doing)" \
    'grep -qx "alloc 1073741825 CUDA_SUCCESS" "$tmp/out"'
probe_run capjob "$probe" alloc 1GiB free 0 alloc 1GiB
check "freed memory is credited back" '[ "$(grep -c "CUDA_SUCCESS" "$tmp/out")" -eq 3 ]'

# simgpu's books agree with the cap.
hold capjob "$probe" alloc 1GiB alloc 1
check "simgpu holds exactly the cap for the capped process" \
    'grep -qx holding "$tmp/hold" && [ "$(stat_mem $hp)" = "$GiB" ]'
probe_run capjob "$probe" alloc 2MiB
check "a second process of the same job shares its cap" \
    'grep -qx "alloc 2MiB CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out"'
probe_run capjob "$probe" nvml
check "NVML reports the cap as the total and the job's use as used" \
    'grep -qx "nvml total=$GiB used=$GiB free=0" "$tmp/out"'
kill -9 $hp; wait $hp 2>/dev/null
probe_run capjob "$probe" alloc 1GiB
check "the memory of a killed process no longer counts against the cap" \
    'grep -qx "alloc 1GiB CUDA_SUCCESS" "$tmp/out"'

# Every allocation path counts.
setjob paths --memory 64MiB
probe_run paths "$probe" managed 32MiB async 30MiB alloc 4MiB alloc 2MiB
check "managed and stream-ordered allocations count (granularity included)" \
    'grep -qx "alloc 4MiB CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out" && grep -qx "alloc 2MiB CUDA_SUCCESS" "$tmp/out"'
probe_run paths "$probe" create 64MiB create 2MiB release 0 create 2MiB
check "cuMemCreate counts and cuMemRelease credits" \
    'grep -qx "create 2MiB CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out" && [ "$(tail -1 "$tmp/out")" = "create 2MiB CUDA_SUCCESS" ]'
probe_run paths "$probe" pitch 1000 32768 alloc 34MiB alloc 32MiB
check "pitched allocations count what the driver really took (rows of 1024 bytes)" \
    'grep -qx "alloc 34MiB CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out" && grep -qx "alloc 32MiB CUDA_SUCCESS" "$tmp/out"'
probe_run paths "$probe" --via procaddr async 64MiB async 1
check "stream-ordered allocations asked for per-thread-stream (_ptsz) count too" \
    'grep -qx "async 1 CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out"'

# Context memory counts against the cap.
rm -f "$SIMGPU_STATE"
SIMGPU_CONTEXT_MEMORY=100MiB "$gpool" region init --context-memory 100MiB >/dev/null 2>&1
SIMGPU_CONTEXT_MEMORY=100MiB hold capjob "$probe" alloc 924MiB alloc 1
check "the context's memory is part of the cap: simgpu holds the cap, no more" \
    'grep -qx "alloc 924MiB CUDA_SUCCESS" "$tmp/hold" && grep -qx "alloc 1 CUDA_ERROR_OUT_OF_MEMORY" "$tmp/hold" && [ "$(stat_mem $hp)" = "$GiB" ]'
kill -9 $hp; wait $hp 2>/dev/null
rm -f "$SIMGPU_STATE"
"$gpool" region init --context-memory 0 >/dev/null 2>&1

# Processes killed in the middle of allocating leave the region consistent.
setjob churn --memory 512MiB
for i in 1 2 3 4; do
    in_job churn "$probe" churn 100MiB >/dev/null 2>&1 &
    pids+=($!)
    cp[$i]=$!
done
sleep 1
kill -9 "${cp[@]}"; wait "${cp[@]}" 2>/dev/null
probe_run churn "$probe" alloc 512MiB
check "after 4 processes were killed mid-allocation, the next gets the whole cap" \
    'grep -qx "alloc 512MiB CUDA_SUCCESS" "$tmp/out"'
"$gpool" region show -o json >"$tmp/out" 2>"$tmp/err"
check "the region shows no dead process and nothing held by the job" \
    'python3 -c "import json,sys; g=json.load(open(sys.argv[1]))[0]; j=[x for x in g[\"jobs\"] if x[\"job\"]==\"churn\"][0]; sys.exit(0 if j[\"mem_used\"]==0 and not g[\"processes\"] else 1)" "$tmp/out"'

# Outside gpool, or with a broken region, the library passes through and says so once.
env -u GPOOL_REGION_DIR GPOOL_JOB_ID=capjob LD_PRELOAD="$lib" "$probe" alloc 2GiB >"$tmp/out" 2>"$tmp/err"
check "without a region directory nothing is enforced" \
    'grep -qx "alloc 2GiB CUDA_SUCCESS" "$tmp/out" && [ ! -s "$tmp/err" ]'
mkdir "$tmp/broken" && head -c 4096 /dev/zero >"$tmp/broken/$uuid"
GPOOL_REGION_DIR="$tmp/broken" probe_run capjob "$probe" alloc 2GiB alloc 2GiB
check "a broken region: calls pass through, one message on stderr, the program runs on" \
    '[ "$(grep -c CUDA_SUCCESS "$tmp/out")" -eq 2 ] && [ "$(grep -c "not enforced" "$tmp/err")" -eq 1 ]'
probe_run nosuchjob "$probe" alloc 2GiB
check "a job without a share of this GPU is not capped, and is told so" \
    'grep -qx "alloc 2GiB CUDA_SUCCESS" "$tmp/out" && grep -q "has no share" "$tmp/err"'

# Bad input to the region command changes nothing.
"$gpool" region show -o json >"$tmp/before"
for bad in "--share 0" "--share 1.5" "--limit x" "--memory lots" "--share 0.5 --limit 0.2"; do
    # shellcheck disable=SC2086
    "$gpool" region set --gpu "$uuid" --job capjob $bad >"$tmp/out" 2>"$tmp/err"
    rc=$?
    "$gpool" region show -o json >"$tmp/after"
    check "region set $bad: exit 2 with a message, nothing changed" \
        '[ $rc -eq 2 ] && [ -s "$tmp/err" ] && cmp -s "$tmp/before" "$tmp/after"'
done
"$gpool" region set --gpu GPU-nope --job x >"$tmp/out" 2>"$tmp/err"
check "region set on an unknown GPU is refused" '[ $? -eq 2 ] && grep -q "GPU-nope" "$tmp/err"'


# Compute shares, measured as simgpu's kernel time per process.
burn_in() { in_job "$1" "$burn" --memory 8MiB --seconds "$2" --kernel-ms 5 -q >/dev/null 2>&1 & }
setjob lo --share 0.3
setjob hi --share 0.7
burn_in lo 5; a=$!; burn_in hi 5; b=$!; pids+=($a $b)
sleep 1.5
a0=$(busy $a) b0=$(busy $b) t0=$(date +%s%N)
sleep 2.5
a1=$(busy $a) b1=$(busy $b) t1=$(date +%s%N)
wait $a $b
ratio=$(awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) 'BEGIN { printf "%.2f", (a > 0 ? b / a : 99) }')
echo "# shares 0.3/0.7: busy ${a0}->${a1} and ${b0}->${b1} ns, ratio $ratio"
check "with shares 0.3 and 0.7 on one GPU, the 0.7 job gets at least 1.5x the kernel time (got ${ratio}x)" \
    'awk -v r=$ratio "BEGIN { exit !(r >= 1.5) }"'
# lone_busy JOB: the share of 2 s of wall time a lone burn of JOB kept the GPU busy
lone_busy() {
    local a a0 a1 t0 t1
    burn_in "$1" 3.5; a=$!; pids+=($a)
    sleep 1
    a0=$(busy $a) t0=$(date +%s%N)
    sleep 2
    a1=$(busy $a) t1=$(date +%s%N)
    wait $a
    awk -v b=$((a1 - a0)) -v t=$((t1 - t0)) 'BEGIN { printf "%.2f", b / t }'
}
frac=$(lone_busy lo)
check "a lone 0.3 job uses the idle GPU: at least 80% busy (got $frac)" \
    'awk -v f=$frac "BEGIN { exit !(f >= 0.8) }"'
setjob one --share 0.5
setjob two --share 0.5
burn_in one 5; a=$!; burn_in two 5; b=$!; pids+=($a $b)
sleep 1
setjob one --share 0.2
setjob two --share 0.8
sleep 0.5
a0=$(busy $a) b0=$(busy $b)
sleep 2.5
a1=$(busy $a) b1=$(busy $b)
wait $a $b
ratio=$(awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) 'BEGIN { printf "%.2f", (a > 0 ? b / a : 99) }')
check "shares changed from 0.5/0.5 to 0.2/0.8 while the jobs run take effect (got ${ratio}x, want >= 2)" \
    'awk -v r=$ratio "BEGIN { exit !(r >= 2) }"'
setjob capped --share 0.3 --limit 0.5
frac=$(lone_busy capped)
check "a lone job with --limit 0.5 stays under its limit (got $frac)" \
    'awk -v f=$frac "BEGIN { exit !(f <= 0.6 && f > 0.2) }"'

echo "1..$n"
[ "$failed" -eq 0 ]
