#!/bin/sh
# libgpool-cuda's figures on a machine with an NVIDIA GPU, built with gcc alone: the cost it adds
# per launch and per allocation (three rounds, plain and preloaded, alternating), the share
# accuracy table of bench/shares.py, and swap times against bytes (bench/swap.sh).
# Usage: bench/preload-gpu.sh [OUTDIR] [SECONDS_PER_RUN] [SWAP_SIZES_GIB]
# With BUILD_ONLY=1 it builds the tools into OUTDIR and stops (BUILD=OUTDIR bench/borrow-gpu.sh
# runs from them).
set -eu
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d)}
secs=${2:-10}
swap_sizes=${3:-1 4 16}
mkdir -p "$out"
cflags="-O2 -std=gnu11 -D_GNU_SOURCE -Isrc"
# shellcheck disable=SC2086
gcc $cflags -fPIC -shared -fvisibility=hidden src/cuda/hooks.c src/cuda/gpus.c src/cuda/pace.c src/cuda/swap.c \
    src/cuda/region.c -Wl,--version-script=src/cuda/exports.map -Wl,-z,nodelete -ldl -lpthread \
    -o "$out/libgpool-cuda.so"
# shellcheck disable=SC2086
gcc $cflags src/burn/burn.c src/burn/burn_cuda.c src/burn/burn_ptx.c src/common/units.c -ldl -lm \
    -o "$out/gpool-burn"
# shellcheck disable=SC2086
gcc $cflags tests/cuda/region_set.c src/cuda/region.c -lpthread -o "$out/region-set"
# shellcheck disable=SC2086
gcc $cflags bench/preload_bench.c -ldl -o "$out/bench-preload"
# shellcheck disable=SC2086
gcc $cflags tests/cuda/swap_tool.c src/agent/swap.c src/agent/nvml.c src/cuda/region.c -ldl -lpthread -o "$out/swap-tool"
# shellcheck disable=SC2086
gcc $cflags bench/borrow_bench.c src/burn/burn_cuda.c src/burn/burn_ptx.c src/cuda/region.c -ldl -lpthread \
    -o "$out/gpool-bench-borrow"
if [ -n "${BUILD_ONLY:-}" ]; then
    echo "built in $out"
    exit 0
fi
uuid=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
export GPOOL_REGION_DIR="$out/regions"
mkdir -p "$GPOOL_REGION_DIR"
"$out/region-set" "$GPOOL_REGION_DIR" "$uuid" 0 bench 0 1000 1000
for round in 1 2 3; do
    printf 'round %s plain:     ' $round; "$out/bench-preload" 200000 20000
    printf 'round %s preloaded: ' $round
    GPOOL_JOB_ID=bench LD_PRELOAD="$out/libgpool-cuda.so" "$out/bench-preload" 200000 20000
done
python3 bench/shares.py --burn "$out/gpool-burn" --lib "$out/libgpool-cuda.so" \
    --region-set "$out/region-set" --uuid "$uuid" --seconds "$secs"
BUILD="$out" bench/swap.sh "$swap_sizes"
