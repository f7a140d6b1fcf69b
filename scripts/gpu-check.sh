#!/bin/sh
# Runs gpool's GPU-facing parts on a machine with an NVIDIA GPU and reports what it saw. Needs
# only gcc (nvcc and nvidia-smi are used when present); takes about three minutes. Usage:
#   scripts/gpu-check.sh [OUTDIR]
# It builds gpool-burn and libgpool-cuda with a bare gcc, assembles the burn's PTX with ptxas,
# checks gpool's CUDA prototypes against the toolkit's cuda.h, then runs: burns at full and half
# duty and two burns sharing one GPU; libgpool-cuda's memory cap through each allocation path,
# from a driver-API program and from a CUDA-runtime program; compute shares and limits; the cost
# of the library per call; and a swap out and in through the driver's checkpoint API.  A driver
# that answers CUDA_ERROR_NOT_SUPPORTED is reported as such, not as a failure.  The report goes
# to stdout and OUTDIR/gpu-check.txt.
set -u
cd "$(dirname "$0")/.." || exit 2
out=${1:-${OUT:-$(mktemp -d)}}
mkdir -p "$out"
report="$out/gpu-check.txt"
: >"$report"
cuda=${CUDA_HOME:-/usr/local/cuda}
failed=0

say() { echo "$*" | tee -a "$report"; }
section() { say ""; say "== $*"; }
step() { # desc, command...
    desc=$1
    shift
    if "$@" >>"$report" 2>&1; then say "ok: $desc"; else say "FAILED: $desc"; failed=$((failed + 1)); fi
}

section "machine"
say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi -L | tee -a "$report"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv | tee -a "$report"
else
    say "no nvidia-smi"
fi

section "build"
step "gpool-burn builds with gcc alone" gcc -O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc \
    src/burn/burn.c src/burn/burn_cuda.c src/burn/burn_ptx.c src/common/units.c \
    -ldl -lm -o "$out/gpool-burn"
[ -x "$out/gpool-burn" ] || { say "cannot continue without gpool-burn"; exit 1; }
cflags="-O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc"
# shellcheck disable=SC2086
step "libgpool-cuda builds with gcc alone" gcc $cflags -fPIC -shared -fvisibility=hidden \
    src/cuda/hooks.c src/cuda/gpus.c src/cuda/pace.c src/cuda/swap.c src/cuda/region.c \
    -Wl,--version-script=src/cuda/exports.map -Wl,-z,nodelete -ldl -lpthread -o "$out/libgpool-cuda.so"
# shellcheck disable=SC2086
step "the probes build with gcc alone" sh -c "gcc $cflags tests/cuda/cuda_probe.c src/common/units.c -ldl -o $out/cuda-probe &&
    gcc $cflags tests/cuda/region_set.c src/cuda/region.c -lpthread -o $out/region-set &&
    gcc $cflags tests/cuda/ckpt_probe.c -ldl -o $out/ckpt-probe &&
    gcc $cflags bench/preload_bench.c -ldl -o $out/bench-preload"
"$out/gpool-burn" --print-ptx >"$out/burn.ptx"
if [ -x "$cuda/bin/ptxas" ]; then
    arch=sm_90
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
    [ -n "$cap" ] && arch=sm_$cap
    step "the kernel's PTX assembles for $arch" "$cuda/bin/ptxas" -arch="$arch" "$out/burn.ptx" -o "$out/burn.cubin"
else
    say "no ptxas under $cuda: PTX assembly not checked"
fi
if [ -f "$cuda/include/cuda.h" ]; then
    step "gpool's CUDA prototypes agree with $cuda/include/cuda.h" \
        gcc -std=gnu11 -D_GNU_SOURCE -Werror -Isrc -Itests/unit -idirafter "$cuda/include" \
        -c tests/unit/cuda_decl_cuda.c -o "$out/cuda_decl_cuda.o"
fi

watch_gpu() { # file: samples utilization and memory every 500 ms until killed
    command -v nvidia-smi >/dev/null || return 0
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -lms 500 >"$1" 2>&1 &
    echo $!
}
summary() { # file
    [ -s "$1" ] || return 0
    awk -F', ' '{ u += $1; n++; if ($2 + 0 > m) m = $2 + 0 } END { if (n) printf "nvidia-smi: mean utilization %.0f%% over %d samples, peak memory %d MiB\n", u / n, n, m }' "$1" | tee -a "$report"
}

section "full duty: 1 GiB, kernels of 10 ms, 8 s"
w=$(watch_gpu "$out/smi-full.txt")
step "gpool-burn at 100% duty verifies its data" "$out/gpool-burn" --memory 1GiB --seconds 8 --kernel-ms 10
[ -n "$w" ] && kill "$w" 2>/dev/null
tail -2 "$report"
summary "$out/smi-full.txt"

section "half duty: 1 GiB, kernels of 10 ms, 8 s"
w=$(watch_gpu "$out/smi-half.txt")
step "gpool-burn at 50% duty verifies its data" "$out/gpool-burn" --memory 1GiB --seconds 8 --kernel-ms 10 --duty 50
[ -n "$w" ] && kill "$w" 2>/dev/null
summary "$out/smi-half.txt"

section "two processes on one GPU: 2 GiB each, kernels of 10 ms, 8 s"
w=$(watch_gpu "$out/smi-two.txt")
"$out/gpool-burn" --memory 2GiB --seconds 8 --kernel-ms 10 -q >"$out/two-a.txt" 2>&1 &
a=$!
"$out/gpool-burn" --memory 2GiB --seconds 8 --kernel-ms 10 -q >"$out/two-b.txt" 2>&1
rb=$?
wait $a
ra=$?
[ -n "$w" ] && kill "$w" 2>/dev/null
cat "$out/two-a.txt" "$out/two-b.txt" | tee -a "$report"
if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then say "ok: both verify their data"; else say "FAILED: exit codes $ra and $rb"; failed=$((failed + 1)); fi
summary "$out/smi-two.txt"

section "libgpool-cuda: memory caps (cap 1 GiB, context memory not counted here)"
uuid=$(nvidia-smi --query-gpu=uuid --format=csv,noheader 2>/dev/null | head -1)
total=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
total=$((${total:-0} * 1048576))
export GPOOL_REGION_DIR="$out/regions"
mkdir -p "$GPOOL_REGION_DIR"
G=1073741824
for j in cap:$G:1000:1000 paths:67108864:1000:1000 lo:0:300:1000 hi:0:700:1000 lone:0:300:1000 capped:0:300:500; do
    name=${j%%:*} rest=${j#*:}
    cap=${rest%%:*} rest=${rest#*:}
    share=${rest%%:*} limit=${rest#*:}
    "$out/region-set" "$GPOOL_REGION_DIR" "$uuid" "$total" "$name" "$cap" "$share" "$limit" >>"$report" 2>&1
done
pre() { job=$1; shift; GPOOL_JOB_ID=$job LD_PRELOAD="$out/libgpool-cuda.so" "$@"; }
expect() { # desc, pattern, file
    if grep -q "$2" "$3"; then say "ok: $1"; else say "FAILED: $1"; failed=$((failed + 1)); fi
}
for via in dlsym procaddr; do
    pre cap "$out/cuda-probe" --via $via alloc 1GiB alloc 1 info nvml >"$out/cap-$via.txt" 2>&1
    cat "$out/cap-$via.txt" >>"$report"
    expect "[$via] the whole cap allocates" "^alloc 1GiB CUDA_SUCCESS" "$out/cap-$via.txt"
    expect "[$via] one byte more is CUDA_ERROR_OUT_OF_MEMORY" "^alloc 1 CUDA_ERROR_OUT_OF_MEMORY" "$out/cap-$via.txt"
    expect "[$via] cuMemGetInfo's total is the cap" "^info CUDA_SUCCESS free=0 total=$G" "$out/cap-$via.txt"
    expect "[$via] NVML's total is the cap" "^nvml total=$G used=$G" "$out/cap-$via.txt"
done
pre paths "$out/cuda-probe" managed 32MiB async 30MiB alloc 4MiB alloc 2MiB >"$out/paths.txt" 2>&1
pre paths "$out/cuda-probe" create 64MiB create 2MiB release 0 create 2MiB >>"$out/paths.txt" 2>&1
pre paths "$out/cuda-probe" pitch 1000 16384 alloc 64MiB >>"$out/paths.txt" 2>&1
cat "$out/paths.txt" >>"$report"
expect "managed + stream-ordered allocations count against the cap" "^alloc 4MiB CUDA_ERROR_OUT_OF_MEMORY" "$out/paths.txt"
expect "cuMemCreate counts against the cap" "^create 2MiB CUDA_ERROR_OUT_OF_MEMORY" "$out/paths.txt"
expect "a pitched allocation counts against the cap" "^alloc 64MiB CUDA_ERROR_OUT_OF_MEMORY" "$out/paths.txt"
if [ -x "$cuda/bin/nvcc" ]; then
    if "$cuda/bin/nvcc" -O2 -o "$out/runtime-probe" tests/cuda/runtime_probe.cu >>"$report" 2>&1; then
        say "ok: the CUDA-runtime probe builds with nvcc"
        pre cap "$out/runtime-probe" >"$out/runtime.txt" 2>&1
        say "runtime-probe exit $?"
        tee -a "$report" <"$out/runtime.txt"
        expect "[cudart] cudaMemGetInfo's total is the cap" "total=$G " "$out/runtime.txt"
        expect "[cudart] cudaMalloc stops at the cap" "cudaMalloc stops with cudaErrorMemoryAllocation" "$out/runtime.txt"
        expect "[cudart] kernels run right under the library" "kernel result: right" "$out/runtime.txt"
    else
        say "FAILED: nvcc could not build the runtime probe"; failed=$((failed + 1))
    fi
else
    say "no nvcc: the CUDA-runtime program is not checked"
fi

section "libgpool-cuda: compute shares (kernels of 5 ms, 8 s; kernel counts are GPU time)"
kernels() { awk '/done:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^kernels/) print $i }' "$1"; }
"$out/gpool-burn" --memory 64MiB --seconds 8 --kernel-ms 5 -q >"$out/base-a.txt" 2>&1 &
a=$!
"$out/gpool-burn" --memory 64MiB --seconds 8 --kernel-ms 5 -q >"$out/base-b.txt" 2>&1
wait $a
say "without the library: $(kernels "$out/base-a.txt") and $(kernels "$out/base-b.txt") kernels"
pre lo "$out/gpool-burn" --memory 64MiB --seconds 8 --kernel-ms 5 -q >"$out/lo.txt" 2>&1 &
a=$!
pre hi "$out/gpool-burn" --memory 64MiB --seconds 8 --kernel-ms 5 -q >"$out/hi.txt" 2>&1
wait $a
lo=$(kernels "$out/lo.txt") hi=$(kernels "$out/hi.txt")
say "shares 0.3 / 0.7: $lo and $hi kernels (ratio $(awk -v a="$lo" -v b="$hi" 'BEGIN { if (a > 0) printf "%.2f", b / a }'))"
if awk -v a="$lo" -v b="$hi" 'BEGIN { exit !(a > 0 && b >= 1.5 * a) }'; then
    say "ok: the 0.7 job gets at least 1.5x the GPU time of the 0.3 job"
else
    say "FAILED: shares"; failed=$((failed + 1))
fi
pre lone "$out/gpool-burn" --memory 64MiB --seconds 5 --kernel-ms 5 -q >"$out/lone.txt" 2>&1
say "a lone 0.3 job: $(grep done: "$out/lone.txt")"
pre capped "$out/gpool-burn" --memory 64MiB --seconds 5 --kernel-ms 5 -q >"$out/capped.txt" 2>&1
say "a lone job with limit 0.5: $(grep done: "$out/capped.txt")"

section "libgpool-cuda: cost per call (empty kernels, 2 MiB allocations)"
"$out/bench-preload" 200000 20000 2>&1 | sed 's/^/plain:     /' | tee -a "$report"
pre lone "$out/bench-preload" 200000 20000 2>&1 | sed 's/^/preloaded: /' | tee -a "$report"

section "swap through the driver's checkpoint API: 4 GiB burn, swapped out for 1 s"
"$out/gpool-burn" --memory 4GiB --seconds 12 --kernel-ms 10 -q >"$out/ckpt-burn.txt" 2>&1 &
a=$!
sleep 4
"$out/ckpt-probe" $a 1 2>&1 | tee -a "$report"
wait $a
rc=$?
tee -a "$report" <"$out/ckpt-burn.txt"
if [ $rc -eq 0 ]; then say "ok: the swapped burn verified all its data (exit 0)"; else say "FAILED: the swapped burn exited $rc"; failed=$((failed + 1)); fi
CUDA_VISIBLE_DEVICES=0 "$out/gpool-burn" --memory 1GiB --seconds 8 --kernel-ms 10 -q >"$out/ckpt-cvd.txt" 2>&1 &
a=$!
sleep 3
say "with CUDA_VISIBLE_DEVICES=0:"
"$out/ckpt-probe" $a 0.5 2>&1 | tee -a "$report"
wait $a
rc=$?
tee -a "$report" <"$out/ckpt-cvd.txt"
if [ $rc -eq 0 ]; then say "ok: the swapped burn (CUDA_VISIBLE_DEVICES=0) verified its data"; else say "FAILED: it exited $rc"; failed=$((failed + 1)); fi

section "result"
say "$failed failed"
[ $failed -eq 0 ]
