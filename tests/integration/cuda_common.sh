# Sourced by the tests of libgpool-cuda and of swapping: TAP helpers, a fresh simulated GPU and
# its region, and the processes to kill at the end. Expects $tmp to be set by the caller.
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { if eval "$2"; then ok "$1"; else not_ok "$1: $(head -c 600 "$tmp/out" "$tmp/err" 2>/dev/null | tr '\n' '|')"; fi; }
# fresh_gpu MEMORY: one simulated GPU of that size, its region made by gpool region init
fresh_gpu() {
    export SIMGPU_STATE="$tmp/state" SIMGPU_MEMORY=$1 SIMGPU_COUNT=1 LD_LIBRARY_PATH="$simgpu_dir"
    export GPOOL_REGION_DIR="$tmp/regions"
    mkdir -p "$GPOOL_REGION_DIR"
    "$gpool" region init >"$tmp/out" 2>"$tmp/err"
    uuid=$(basename "$(head -1 "$tmp/out")")
}
# Memory and kernel time simgpu's books give a process.
stat_mem() { "$stat" | awk -v p="$1" '$1 == "proc" && $2 == p { sub(/mem=/, "", $5); print $5 }'; }
busy() { "$stat" | awk -v p="$1" '$1 == "proc" && $2 == p { sub(/busy_ns=/, "", $6); print $6 }'; }
