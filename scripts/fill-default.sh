#!/bin/sh
# `make fill`: the FGD experiment on the openb default trace, every placement policy, with the
# table and a plot.
set -u
gpool=${1:-build/gpool}
out=${GPOOL_OUT:-out}
if ! nodes=$("$gpool" sim fill --help >/dev/null && ls "${GPOOL_TRACES:-../shared/traces}/openb/openb_node_list_gpu_node.csv" 2>/dev/null); then
    cat >&2 <<MSG
gpool: the openb traces were not found in ${GPOOL_TRACES:-../shared/traces}.
Get them from https://github.com/alibaba/clusterdata (folder cluster-trace-gpu-v2023:
openb_node_list_gpu_node.csv and openb_pod_list_*.csv), put them in <traces>/openb/,
and run again with GPOOL_TRACES=<traces> make fill.
MSG
    exit 1
fi
mkdir -p "$out"
exec "$gpool" sim fill --nodes "$nodes" --pods default --policy all --seeds 42..51 \
    --plot "$out/fill-default.svg"
