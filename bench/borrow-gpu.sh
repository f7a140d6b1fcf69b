#!/bin/bash
# Borrowing on GPU 0, from built tools (it builds nothing): an owner job and a borrower job in a
# fresh region, libgpool-cuda preloaded into both.
#  (a) the owner idles and wakes WAKES times beside a borrower running gpool-burn (kernels of 1
#      and 10 ms): from the owner's first launch (woke_at) to the borrower no longer launching
#      (yielded_at) and to its kernels in flight being done (drained_at), p50 / p99 / max;
#  (b) for each size, a borrower (GPOOL_SWAP=library) holds it and the owner allocates what is
#      free plus half of it: the time of the owner's allocation call, which waits while the
#      library swaps the borrower out, beside the bytes over the host link.
# Usage: BUILD=DIR bench/borrow-gpu.sh [WAKES] [SIZES_GIB] [BORROWER_KERNEL_MS]
#   DIR holds libgpool-cuda.so, gpool-burn, region-set and gpool-bench-borrow, as
#   `BUILD_ONLY=1 bench/preload-gpu.sh DIR` builds them with gcc alone, or is a meson build tree
#   (bench/borrow.sh runs it so on simgpu).  Defaults: 50 wakes, sizes "1 4 16", kernels "1 10".
#   The host link: $LINK_GBPS, else SIMGPU_HOST_LINK_GBPS on simgpu, else measured (pinned).
set -u
: "${BUILD:?BUILD=DIR: the built tools (BUILD_ONLY=1 bench/preload-gpu.sh DIR)}"
wakes=${1:-50}
sizes=${2:-1 4 16}
kernels=${3:-1 10}
tool() {
    for p in "$BUILD/$1" "$BUILD/src/cuda/$1" "$BUILD/src/burn/$1" "$BUILD/tests/$1"; do
        [ -e "$p" ] && { echo "$p"; return; }
    done
    echo "bench/borrow-gpu.sh: no $1 under $BUILD" >&2
    exit 3
}
lib=$(tool libgpool-cuda.so) || exit 3
burn=$(tool gpool-burn) || exit 3
rset=$(tool region-set) || exit 3
bench=$(tool gpool-bench-borrow) || exit 3
tmp=$(mktemp -d)
bg=()
trap 'kill -9 "${bg[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
export GPOOL_REGION_DIR="$tmp/regions"
mkdir -p "$GPOOL_REGION_DIR"
uuid=$("$bench" uuid) || exit 3
"$rset" "$GPOOL_REGION_DIR" "$uuid" 0 owner 0 1000 1000 lender
"$rset" "$GPOOL_REGION_DIR" "$uuid" 0 borrower 0 1000 1000 borrower
# as JOB CMD...: becomes CMD, a process of JOB with the library preloaded (run it in a subshell)
as() { local job=$1; shift; GPOOL_JOB_ID=$job LD_PRELOAD="$lib" exec "$@"; }
echo "GPU 0: $uuid"

for k in $kernels; do
    echo "-- (a) beside a borrower running gpool-burn with kernels of $k ms"
    (as borrower "$burn" --memory 4MiB --seconds 100000 --kernel-ms "$k" -q) >"$tmp/burn" 2>&1 &
    bg+=($!)
    sleep 1
    (as owner "$bench" wake borrower "$wakes" 300 100 2)
    kill -9 "${bg[-1]}"
    wait "${bg[-1]}" 2>/dev/null
done

if [ -n "${LINK_GBPS:-}" ]; then
    link=$LINK_GBPS how="given"
elif [ -n "${SIMGPU_STATE:-}" ]; then
    link=${SIMGPU_HOST_LINK_GBPS:-25} how="simgpu's configured link"
else
    link=$("$bench" link 1024) how="measured, pinned, device to host"
fi
echo "-- (b) the owner's memory back: host link $link GB/s ($how)"
for s in $sizes; do
    mib=$(awk -v s="$s" 'BEGIN { printf "%d", s * 1024 }')
    (GPOOL_SWAP=library as borrower "$bench" hold "$mib") >"$tmp/hold" 2>&1 &
    bg+=($!)
    for _ in $(seq 600); do grep -q holding "$tmp/hold" && break; sleep 0.1; done
    if ! grep -q holding "$tmp/hold"; then
        echo "$s GiB: the borrower could not hold it: $(cat "$tmp/hold")"
    else
        (as owner "$bench" alloc borrower "$mib" "$link") 2>&1 | grep -v "^libgpool-cuda:"
    fi
    kill -9 "${bg[-1]}"
    wait "${bg[-1]}" 2>/dev/null
done
