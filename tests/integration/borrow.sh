#!/bin/bash
# Borrowers on simulated GPUs: a job marked a borrower runs while the GPU's owner is idle, stops
# launching when the owner launches again (its kernel time stands still in simgpu's own books),
# resumes when the owner idles or dies, and is swapped out by the library when the owner's
# allocation within its own cap finds the GPU full; after the swap in its data verifies.  A
# borrower the library cannot swap, or a job that is no borrower, keeps its memory and the
# owner's allocation fails at once.  TAP.
set -u
gpool=$1 simgpu_dir=$2 lib_dir=$3 probe=$4 burn=$5 stat=$6
lib="$lib_dir/libgpool-cuda.so"
tmp=$(mktemp -d)
. "$(dirname "$0")/cuda_common.sh"

fresh_gpu 2GiB
"$gpool" region set --gpu "$uuid" --job A --memory 1GiB
"$gpool" region set --gpu "$uuid" --job B --borrower yes
# jobf JOB KEY / procf PID KEY: a field of gpool region show -o json
jobf() {
    "$gpool" region show -o json | python3 -c 'import json, sys
for j in json.load(sys.stdin)[0]["jobs"]:
    if j["job"] == sys.argv[1]: print(str(j.get(sys.argv[2], "")).lower())' "$1" "$2"
}
procf() {
    "$gpool" region show -o json | python3 -c 'import json, sys
for p in json.load(sys.stdin)[0]["processes"]:
    if p["pid"] == int(sys.argv[1]): print(str(p.get(sys.argv[2], "")).lower())' "$1" "$2"
}
check "region set --borrower yes marks the job, a new job is no borrower" \
    '[ "$(jobf B borrower)" = true ] && [ "$(jobf A borrower)" = false ]'
"$gpool" region show -o json >"$tmp/before"
"$gpool" region set --gpu "$uuid" --job B --borrower maybe >"$tmp/out" 2>"$tmp/err"
rc=$?
"$gpool" region show -o json >"$tmp/after"
check "region set --borrower maybe: exit 2 with a message, nothing changed" \
    '[ $rc -eq 2 ] && grep -q "expected yes or no" "$tmp/err" && cmp -s "$tmp/before" "$tmp/after"'

# in_job JOB CMD...: becomes CMD, a process of JOB with the library preloaded
in_job() { local job=$1; shift; GPOOL_JOB_ID=$job LD_PRELOAD="$lib" exec "$@"; }
# owner_burn SECONDS: the owner's burn, small kernels of 5 ms; sets $a
owner_burn() {
    (in_job A "$burn" --memory 8MiB --seconds "$1" --kernel-ms 5 --check-every 100 -q) >"$tmp/a" 2>&1 &
    a=$!
    pids+=("$a")
}
kernels() { sed -n 's/.*verified after \([0-9]*\) kernels.*/\1/p' "$1"; }
# grows PID: the process's kernel time in simgpu's books grows within 5 s
grows() {
    local b0
    b0=$(busy "$1")
    for _ in $(seq 50); do [ "$(busy "$1")" != "$b0" ] && return 0; sleep 0.1; done
    return 1
}
wait_busy() { for _ in $(seq 100); do [ -n "$(busy "$1")" ] && [ "$(busy "$1")" != 0 ] && return 0; sleep 0.05; done; return 1; }

owner_burn 3
wait $a
alone=$(kernels "$tmp/a")

# The borrower: swappable by the library, holding 16 MiB it verifies.
(GPOOL_SWAP=library in_job B "$burn" --memory 16MiB --seconds 25 --kernel-ms 5 -q) >"$tmp/b" 2>&1 &
b=$!
pids+=("$b")
wait_busy $b
check "while the owner is idle the borrower runs" 'grows $b'
i1=$(busy $b) j1=$(jobf B launches)
sleep 1
i2=$(busy $b) j2=$(jobf B launches)

mono() { python3 -c 'import time; print(time.monotonic_ns())'; }
y0=$(jobf B yields) t0=$(mono)
owner_burn 3
wait_busy $a
sleep 0.3
b1=$(busy $b) l1=$(jobf B launches)
sleep 1
b2=$(busy $b)
a_running=$(kill -0 $a 2>/dev/null && echo yes)
l2=$(jobf B launches)
# A second in which the owner launches, against a second in which it idles: the borrower's kernel
# time and launches (without yielding, simgpu's time slicing would give it about half).  Not zero:
# an owner starved of the CPU for 50 ms on a loaded machine is idle, and the borrower may run.
check "while the owner launches, the borrower's kernel time nearly stands still (simgpu: +$((b2 - b1)) ns, +$((i2 - i1)) ns while the owner idled)" \
    '[ "$a_running" = yes ] && [ $(((b2 - b1) * 10)) -le $((i2 - i1)) ]'
check "  ... and so does its launch count in the region (+$((l2 - l1)), +$((j2 - j1)) while the owner idled)" \
    '[ $(((l2 - l1) * 10)) -le $((j2 - j1)) ]'
wait $a
beside=$(kernels "$tmp/a")
check "the owner beside the yielding borrower runs as alone (kernels in 3 s: $beside beside, $alone alone)" \
    '[ -n "$beside" ] && [ -n "$alone" ] && [ $((beside * 4)) -ge $((alone * 3)) ]'
woke=$(jobf A woke_at_ns) yielded=$(jobf B yielded_at_ns) drained=$(jobf B drained_at_ns)
# (The owner's woke_at is its last wake: one of its launches may wait for more than 50 ms behind
# the borrower's, and then it wakes again, while the borrower, still yielding, does not stop again.)
check "the owner woke and the borrower yielded during the owner's run, and drained after it yielded" \
    '[ "$(jobf B yields)" -gt "$y0" ] && [ "$woke" -ge "$t0" ] && [ "$yielded" -ge "$t0" ] && [ "$drained" -ge "$yielded" ]'
check "once the owner is idle again the borrower resumes" 'grows $b'

y0=$(jobf B yields)
owner_burn 20
wait_busy $a
for _ in $(seq 50); do [ "$(jobf B yields)" != "$y0" ] && break; sleep 0.1; done
y1=$(jobf B yields)
kill -9 $a; wait $a 2>/dev/null
check "an owner killed while it launches: the borrower, which had yielded, resumes" \
    '[ "$y1" -gt "$y0" ] && grows $b'

# Memory back to the owner.
(GPOOL_SWAP=library in_job B "$probe" alloc 1536MiB hold) >"$tmp/hold" 2>&1 &
h=$!
pids+=("$h")
for _ in $(seq 100); do grep -q holding "$tmp/hold" && break; sleep 0.05; done
(in_job A "$probe" alloc 1026MiB) >"$tmp/out" 2>"$tmp/err"
check "an owner's allocation past its own cap is refused, and the borrowers keep their memory" \
    'grep -qx "alloc 1026MiB CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out" && [ "$(stat_mem $h)" = 1610612736 ] && [ "$(jobf B reclaims)" = 0 ]'
(in_job A "$probe" alloc 1GiB hold) >"$tmp/owner" 2>&1 &
o=$!
pids+=("$o")
for _ in $(seq 600); do grep -q holding "$tmp/owner" && break; sleep 0.05; done
check "the owner's allocation within its cap that finds the GPU full succeeds" \
    'grep -qx "alloc 1GiB CUDA_SUCCESS" "$tmp/owner" && [ "$(stat_mem $o)" = 1073741824 ]'
check "  ... the borrower's processes were swapped out for it, and say so in the region" \
    '[ "$(procf $h swapped_out)" = true ] && [ "$(procf $b swapped_out)" = true ] && [ "$(procf $h reclaimed)" = true ] && [ "$(stat_mem $h)" != 1610612736 ]'
check "  ... the borrower's job shows the reclaim, after its yields" \
    '[ "$(jobf B reclaims)" = 1 ] && [ "$(jobf B reclaimed_at_ns)" -gt "$(jobf B yielded_at_ns)" ] && [ "$(jobf B reclaimed_bytes)" -ge 1610612736 ]'
"$gpool" swap in --pid $h >"$tmp/out" 2>"$tmp/err"
check "while the owner holds the memory the borrower cannot be swapped back in" \
    '[ $? -eq 1 ] && [ "$(procf $h swapped_out)" = true ]'
kill -9 $o; wait $o 2>/dev/null
"$gpool" swap in --pid $h >"$tmp/out" 2>"$tmp/err" && "$gpool" swap in --pid $b >>"$tmp/out" 2>>"$tmp/err"
check "once the owner has freed it, gpool swap in --pid brings both processes back" \
    'grep -q "swapped in pid $h via library" "$tmp/out" && grep -q "swapped in pid $b via library" "$tmp/out" && [ "$(stat_mem $h)" = 1610612736 ] && [ "$(procf $h reclaimed)" = false ]'
kill -9 $h; wait $h 2>/dev/null
wait $b
rc=$?
check "the borrower finishes and every byte it held verifies (exit $rc)" \
    '[ $rc -eq 0 ] && grep -q "data ok: all 16.0 MiB verified" "$tmp/b"'

# Memory the library cannot take back: the owner's allocation fails at once, nothing changes.
"$gpool" region set --gpu "$uuid" --job C --borrower yes
"$gpool" region set --gpu "$uuid" --job D
for job in C D; do
    if [ $job = C ]; then what="a borrower without the library's swap path"; env=(); else
        what="a job that is no borrower"; env=(GPOOL_SWAP=library); fi
    (env "${env[@]}" GPOOL_JOB_ID=$job LD_PRELOAD="$lib" "$probe" alloc 1536MiB hold) >"$tmp/hold" 2>&1 &
    h=$!
    pids+=("$h")
    for _ in $(seq 100); do grep -q holding "$tmp/hold" && break; sleep 0.05; done
    (in_job A timeout 60 "$probe" alloc 1GiB) >"$tmp/out" 2>"$tmp/err"
    check "$what keeps its memory: the owner's allocation fails cleanly" \
        'grep -qx "alloc 1GiB CUDA_ERROR_OUT_OF_MEMORY" "$tmp/out" && [ "$(stat_mem $h)" = 1610612736 ] && [ "$(procf $h swapped_out)" = false ]'
    kill -9 $h; wait $h 2>/dev/null
done

echo "1..$n"
[ "$failed" -eq 0 ]
