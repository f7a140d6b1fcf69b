#!/bin/sh
# `gpool dev`: one command gives a working pool of two nodes on simulated GPUs; workloads run as an
# account of its own (run as root) with gpool-burn on their PATH; Ctrl-C cancels what runs and
# stops it all; a second run goes on with the same store and token, --fresh starts over; two
# pools side by side keep their jobs apart; bad arguments change nothing. TAP. Run as root.
set -u
gpool=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    [ $failed -ne 0 ] && cat "$tmp"/out* "$tmp"/*/dev.log >&2
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/tap.sh"
if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP needs root (gpool dev creates its workloads' account)"
    exit 0
fi
HOME=$tmp
export HOME

# start NAME [OPTION...]: gpool dev in $tmp/NAME on a free port, output in $tmp/out-NAME; its pid
# in $dpid, and its GPOOL_SERVER and GPOOL_TOKEN exported.
start() {
    name=$1
    shift
    port=$(free_port)
    (cd "$tmp" && exec "$gpool" dev --gpus 2 --gpu-memory 8GiB --listen "127.0.0.1:$port" \
        --dir "$tmp/$name" "$@" >"$tmp/out-$name" 2>&1) &
    dpid=$!
    pids="$pids $dpid"
    for _ in $(seq 100); do grep -q '^export GPOOL_SERVER' "$tmp/out-$name" && break; sleep 0.1; done
    eval "$(grep '^export' "$tmp/out-$name")"
    for _ in $(seq 100); do
        [ "$("$gpool" nodes -o json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))' 2>/dev/null)" = 2 ] && break
        sleep 0.1
    done
}
# stop: Ctrl-C to the gpool dev started last; its exit status in $rc.
stop() {
    kill -INT "$dpid"
    wait "$dpid"
    rc=$?
    pids=$(echo "$pids" | sed "s/ $dpid\b//")
}
state() { "$gpool" describe "$1" | sed -n 's/^state *//p'; }

start a
check "it prints what to export" grep -q "^export GPOOL_SERVER=http://127.0.0.1:$port GPOOL_TOKEN=gp_" "$tmp/out-a"
check "  ... and that workloads run as its own account, gpool-dev" grep -q "workloads run as gpool-dev" "$tmp/out-a"
check "the account exists and is not root" sh -c "[ \$(id -u gpool-dev) -gt 0 ]"
check "two nodes register, each with its own simulated GPUs and 8 CPUs per GPU" sh -c "'$gpool' nodes -o json | python3 -c '
import json, sys
n = json.load(sys.stdin)[\"nodes\"]
uuids = {g[\"uuid\"] for x in n for g in x[\"gpus\"]}
assert sorted(x[\"name\"] for x in n) == [\"dev-node-1\", \"dev-node-2\"]
assert all(len(x[\"gpus\"]) == 2 for x in n) and len(uuids) == 4
assert all(x[\"cpu_milli\"] == 16000 for x in n), [x[\"cpu_milli\"] for x in n]'"
check "the project default deserves every GPU" sh -c "'$gpool' projects -o json | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)[\"projects\"] if p[\"name\"] == \"default\"]
assert p[0][\"deserved_gpus\"] == 4'"
token_a=$GPOOL_TOKEN
burn=$("$gpool" submit --project default --gpu 0.5 -- sh -c 'id -un; gpool-burn --seconds 1 --memory 256MiB -q && echo burned')
for _ in $(seq 200); do [ "$(state "$burn")" = succeeded ] && break; sleep 0.1; done
check "a job finds gpool-burn on its PATH and succeeds" [ "$(state "$burn")" = succeeded ]
"$gpool" logs "$burn" >"$tmp/burn.log"
check "  ... as gpool-dev, its output served by the server" sh -c "[ \"\$(head -n 1 '$tmp/burn.log')\" = gpool-dev ] && grep -q 'data ok' '$tmp/burn.log' && [ \"\$(tail -n 1 '$tmp/burn.log')\" = burned ]"
envjob=$("$gpool" submit --project default --gpu 0.5 -e PATH=/bin -e CUDA_VISIBLE_DEVICES=7 -e MINE=1 -- sh -c 'echo "$PATH $MINE $CUDA_VISIBLE_DEVICES"')
for _ in $(seq 200); do [ "$(state "$envjob")" = succeeded ] && break; sleep 0.1; done
check "a job's own PATH replaces the node's; its GPUs are the agent's to say" sh -c "'$gpool' logs $envjob | grep -qx '/bin 1 GPU-[0-9a-f-]*'"
long=$("$gpool" submit --project default --gpu 1 -- sh -c 'echo $$ >/tmp/gpool-dev-test-$GPOOL_JOB_ID; sleep 300')
eventually "a long job runs" sh -c "[ \"\$('$gpool' describe $long | sed -n 's/^state *//p')\" = running ]"
lpid=$(cat "/tmp/gpool-dev-test-$long" 2>/dev/null)
rm -f "/tmp/gpool-dev-test-$long"

# Two pools side by side number their jobs alike: one's cancel leaves the other's job alone.
start b --nodes 1
other=$("$gpool" submit --project default --gpu 1 -- true)
while [ "$other" -lt "$long" ]; do
    other=$("$gpool" submit --project default --gpu 1 -- sh -c 'echo $$ >/tmp/gpool-dev-test-b$GPOOL_JOB_ID; sleep 300')
done
eventually "a second pool beside it runs its own job" sh -c "[ \"\$('$gpool' describe $other | sed -n 's/^state *//p')\" = running ]"
opid=$(cat "/tmp/gpool-dev-test-b$other" 2>/dev/null)
rm -f "/tmp/gpool-dev-test-b$other"
"$gpool" cancel "$other" >/dev/null
eventually "  ... and cancels it" sh -c "[ -n '$opid' ] && ! kill -0 '$opid'"
sleep 3 # its agent's next passes clean up after it
check "the first pool's job of the same number still runs" sh -c "[ -n '$lpid' ] && kill -0 '$lpid'"
roots=$(cat "$tmp/a/dev.log" "$tmp/b/dev.log" | sed -n 's/^gpool agent: workloads in cgroups under //p')
if [ -z "$roots" ]; then
    ok "each agent has a cgroup root of its own # SKIP no writable cgroup v2 hierarchy here"
else
    check "each agent has a cgroup root of its own (3 agents, 3 roots)" sh -c "[ \$(echo '$roots' | sort -u | wc -l) -eq 3 ]"
fi
stop

dpid=$(echo "$pids" | awk '{ print $1 }')
stop
check "Ctrl-C stops it (exit 0)" [ "$rc" -eq 0 ]
check "  ... and cancels the job that ran, which is gone" sh -c "! kill -0 '$lpid' 2>/dev/null && grep -q 'cancelled 1 running job' '$tmp/out-a'"
sleep 1
check "  ... with nothing of the pool left running" sh -c "! pgrep -af '^$gpool .*$tmp/a/' >&2"

start a
check "a second run goes on with the same token" [ "$GPOOL_TOKEN" = "$token_a" ]
check "  ... and the same jobs" sh -c "[ \"\$('$gpool' describe $burn | sed -n 's/^state *//p')\" = succeeded ] && [ \"\$('$gpool' describe $long | sed -n 's/^state *//p')\" = cancelled ]"
stop
start a --fresh
check "--fresh starts over: a new token, no jobs" sh -c "[ '$GPOOL_TOKEN' != '$token_a' ] && [ \"\$('$gpool' list -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"jobs\"]))')\" = 0 ]"
stop

for bad in "--nodes 0" "--gpus 17" "--gpu-memory lots" "extra"; do
    # shellcheck disable=SC2086
    "$gpool" dev $bad --dir "$tmp/bad" >/dev/null 2>"$tmp/err"
    check "bad arguments ($bad): exit 2 with a message, nothing made" sh -c "[ $? -eq 2 ] && [ -s '$tmp/err' ] && [ ! -e '$tmp/bad' ]"
done
echo "1..$n"
[ $failed -eq 0 ]
