#!/bin/bash
# bench/borrow-gpu.sh's figures on a simulated GPU from the build tree (build/, or $BUILD).
# Usage: bench/borrow.sh [WAKES] [SIZES_GIB] [BORROWER_KERNEL_MS]
#   defaults: 50 wakes, sizes "0.25 0.5 1 2", borrower kernels "1 10"; the GPU's memory is
#   twice the largest size plus 1 GiB, its host link SIMGPU_HOST_LINK_GBPS (default 25).
set -u
cd "$(dirname "$0")/.."
BUILD=$(realpath "${BUILD:-build}")
export BUILD
sizes=${2:-0.25 0.5 1 2}
largest=$(echo "$sizes" | tr ' ' '\n' | sort -g | tail -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LD_LIBRARY_PATH="$BUILD/src/simgpu" SIMGPU_STATE="$tmp/state" SIMGPU_COUNT=1
export SIMGPU_MEMORY="$(awk -v s="$largest" 'BEGIN { printf "%d", (2 * s + 1) * 1024 }')MiB"
echo "simgpu: $SIMGPU_MEMORY, host link ${SIMGPU_HOST_LINK_GBPS:-25} GB/s each way"
bench/borrow-gpu.sh "${1:-50}" "$sizes" "${3:-1 10}"
