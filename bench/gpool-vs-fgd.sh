#!/bin/sh
# gpool against fgd, paired over seeds 42..51, on every openb pod list and on five more lists
# resampled from `default` (fixed seeds, so the lists are the same on every run):
# more sharing pods, only sharing pods, more multi-GPU pods, more model constraints, more
# CPU-only pods. Prints bench/compare.py's table.
set -eu
gpool=${1:-build/gpool}
traces=${GPOOL_TRACES:-../shared/traces}
openb=$traces/openb
out=${GPOOL_OUT:-out}/resampled
here=$(dirname "$0")
mkdir -p "$out"
src=$openb/openb_pod_list_default.csv
nodes=$openb/openb_node_list_gpu_node.csv
for spec in sharing=60 sharing=100 multigpu=50 gpuspec=40 cpu=30; do
    "$here/resample.py" "$src" "$out/$(echo "$spec" | tr -d =).csv" "$spec" 2026 "$nodes"
done
exec "$here/compare.py" --gpool "$gpool" --nodes "$nodes" \
    default gpushare40 gpushare80 gpuspec20 multigpu30 cpu100 \
    "$out/sharing60.csv" "$out/sharing100.csv" "$out/multigpu50.csv" "$out/gpuspec40.csv" "$out/cpu30.csv"
