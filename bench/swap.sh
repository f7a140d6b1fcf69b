#!/bin/bash
# Swap-out and swap-in time against bytes: a gpool-burn holding SIZE is swapped out and back in
# (through the driver's checkpoint API, then through libgpool-cuda), and verifies its data after.
# On simgpu (LD_LIBRARY_PATH at its build folder) copies take SIMGPU_HOST_LINK_GBPS; on a real
# GPU the host link is measured first (pinned copies) and each swap is shown as a share of it.
#   bench/swap.sh [SIZES_GIB]          with a build tree (build/gpool swap), default "0.25 1 4"
#   BUILD=DIR bench/swap.sh ...        with gcc-built tools in DIR (bench/preload-gpu.sh does it)
set -u
cd "$(dirname "$0")/.."
sizes=${1:-0.25 1 4}
if [ -n "${BUILD:-}" ]; then
    burn="$BUILD/gpool-burn" lib="$BUILD/libgpool-cuda.so" swap=("$BUILD/swap-tool")
    "$BUILD/swap-tool" link 2048
else
    burn=build/src/burn/gpool-burn lib=build/src/cuda/libgpool-cuda.so swap=(build/gpool swap)
    echo "simgpu host link: ${SIMGPU_HOST_LINK_GBPS:-25} GB/s each way (configured)"
fi
export GPOOL_REGION_DIR=${GPOOL_REGION_DIR:-$(mktemp -d)}
if [ -n "${BUILD:-}" ]; then
    "$BUILD/region-set" "$GPOOL_REGION_DIR" "$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)" 0 bench 0 1000 1000
else
    build/gpool region init >/dev/null && build/gpool region set --gpu 0 --job bench
fi
printf '%-6s %-8s %8s %9s %9s %8s %9s %9s %s\n' GiB via out_s out_GB/s copy_GB/s in_s in_GB/s copy_GB/s data
for s in $sizes; do
    mib=$(awk -v s="$s" 'BEGIN { printf "%d", s * 1024 }')
    for via in driver library; do
        env_args=()
        [ $via = library ] && env_args=(GPOOL_SWAP=library GPOOL_JOB_ID=bench LD_PRELOAD="$lib")
        env "${env_args[@]}" "$burn" --memory "${mib}MiB" --seconds "$(awk -v s="$s" 'BEGIN { print 3 + s }')" \
            --kernel-ms 10 -q >/tmp/gpool-swap-burn.txt 2>&1 &
        b=$!
        sleep "$(awk -v s="$s" 'BEGIN { print 1 + s * 0.4 }')"
        if [ -n "${BUILD:-}" ]; then args=("$b" $via); else args=(--pid "$b" --via $via); fi
        o=$("${swap[@]}" out "${args[@]}" 2>&1)
        i=$("${swap[@]}" in "${args[@]}" 2>&1)
        wait $b
        rc=$?
        field() { echo "$1" | sed -n 's/.* in \([0-9.]*\) s (\([0-9.]*\) GB\/s[;)].*/\'"$2"'/p'; }
        copy() { echo "$1" | sed -n 's/.*copying [0-9.]* s, \([0-9.]*\) GB\/s.*/\1/p'; }
        printf '%-6s %-8s %8s %9s %9s %8s %9s %9s %s\n' "$s" $via "$(field "$o" 1)" "$(field "$o" 2)" \
            "$(copy "$o")" "$(field "$i" 1)" "$(field "$i" 2)" "$(copy "$i")" \
            "$([ $rc -eq 0 ] && echo verified || echo FAILED)"
        [ -z "$(field "$o" 1)" ] && echo "  $o $i"
    done
done
