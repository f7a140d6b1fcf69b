#!/bin/sh
# Runs gpool-burn on a machine with an NVIDIA GPU and reports what it saw. Needs only gcc (nvcc
# and nvidia-smi are used when present); takes about two minutes. Usage:
#   scripts/gpu-check.sh [OUTDIR]
# It builds gpool-burn with a bare gcc, assembles its PTX with ptxas, checks gpool's CUDA
# prototypes against the toolkit's cuda.h, then runs: a full-duty burn, a half-duty burn, and two
# burns sharing one GPU. The report goes to stdout and OUTDIR/gpu-check.txt.
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

section "full duty: 1 GiB, kernels of 10 ms, 20 s"
w=$(watch_gpu "$out/smi-full.txt")
step "gpool-burn at 100% duty verifies its data" "$out/gpool-burn" --memory 1GiB --seconds 20 --kernel-ms 10
[ -n "$w" ] && kill "$w" 2>/dev/null
tail -2 "$report"
summary "$out/smi-full.txt"

section "half duty: 1 GiB, kernels of 10 ms, 20 s"
w=$(watch_gpu "$out/smi-half.txt")
step "gpool-burn at 50% duty verifies its data" "$out/gpool-burn" --memory 1GiB --seconds 20 --kernel-ms 10 --duty 50
[ -n "$w" ] && kill "$w" 2>/dev/null
summary "$out/smi-half.txt"

section "two processes on one GPU: 2 GiB each, kernels of 10 ms, 20 s"
w=$(watch_gpu "$out/smi-two.txt")
"$out/gpool-burn" --memory 2GiB --seconds 20 --kernel-ms 10 -q >"$out/two-a.txt" 2>&1 &
a=$!
"$out/gpool-burn" --memory 2GiB --seconds 20 --kernel-ms 10 -q >"$out/two-b.txt" 2>&1
rb=$?
wait $a
ra=$?
[ -n "$w" ] && kill "$w" 2>/dev/null
cat "$out/two-a.txt" "$out/two-b.txt" | tee -a "$report"
if [ $ra -eq 0 ] && [ $rb -eq 0 ]; then say "ok: both verify their data"; else say "FAILED: exit codes $ra and $rb"; failed=$((failed + 1)); fi
summary "$out/smi-two.txt"

section "result"
say "$failed failed"
[ $failed -eq 0 ]
