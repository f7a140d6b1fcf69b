#!/bin/sh
# `gpool dev`: one command gives a working pool on simulated GPUs; Ctrl-C (SIGTERM) stops it. TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
chmod 755 "$tmp"
dpid=""
n=0
failed=0
cleanup() { [ -n "$dpid" ] && kill "$dpid" 2>/dev/null; sleep 0.5; [ $failed -ne 0 ] && cat "$tmp/out" "$tmp/dev/dev.log" >&2; rm -rf "$tmp"; }
trap cleanup EXIT
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { desc=$1; shift; if "$@"; then ok "$desc"; else not_ok "$desc"; fi; }
if [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1; then
    echo "1..0 # SKIP needs root and the nobody account"
    exit 0
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$gpool" dev --gpus 3 --gpu-memory 8GiB --listen "127.0.0.1:$port" --dir "$tmp/dev" >"$tmp/out" 2>&1 &
dpid=$!
for _ in $(seq 100); do grep -q '^export GPOOL_SERVER' "$tmp/out" && break; sleep 0.1; done
check "it prints what to export" grep -q "^export GPOOL_SERVER=http://127.0.0.1:$port GPOOL_TOKEN=gp_" "$tmp/out"
eval "$(grep '^export' "$tmp/out")"
HOME=$tmp
export HOME
for _ in $(seq 100); do
    curl -s -H "Authorization: Bearer $GPOOL_TOKEN" "$GPOOL_SERVER/api/v1/nodes" | grep -q dev-node && break
    sleep 0.1
done
check "its agent registered the simulated GPUs" sh -c "curl -s -H 'Authorization: Bearer $GPOOL_TOKEN' '$GPOOL_SERVER/api/v1/nodes' | python3 -c 'import json,sys; n=json.load(sys.stdin)[\"nodes\"]; assert len(n)==1 and len(n[0][\"gpus\"])==3'"
id=$("$gpool" submit --project default --gpu 0.5 -- sh -c 'echo ran on $CUDA_VISIBLE_DEVICES')
for _ in $(seq 150); do "$gpool" describe "$id" | grep -q '^state *succeeded' && break; sleep 0.1; done
check "a job submitted to it runs and succeeds" sh -c "'$gpool' describe $id | grep -q '^state *succeeded'"
check "its output is in the agent's job directory (its GPU named by UUID)" grep -qx "ran on GPU-[0-9a-f-]*" "$tmp/dev/agent/jobs/$id/stdout"
kill "$dpid"
wait "$dpid"
rc=$?
dpid=""
check "SIGTERM stops it cleanly (exit 0)" [ "$rc" -eq 0 ]
check "and the server is gone" sh -c "! curl -s -m 2 '$GPOOL_SERVER/api/v1/status' >/dev/null"
echo "1..$n"
[ $failed -eq 0 ]
