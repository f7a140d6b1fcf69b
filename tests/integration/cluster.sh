#!/bin/sh
# Two nodes on simulated GPUs (two agents, two GPUs each): a gang across them whose replicas
# meet at rank 0's address, two half-GPU jobs sharing a GPU as NVML saw them, suspend and resume,
# an agent killed with SIGKILL while its job prints, and a node that stops for good: its jobs
# run elsewhere. Run as root: workloads run as the test accounts gpool-t-ana and gpool-t-bo, made
# when missing. TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
chmod 755 "$tmp"
. "$(dirname "$0")/tap.sh"
for_workloads "$tmp/lib" "$2/libcuda.so.1" "$2/libnvidia-ml.so.1" "$4/libgpool-cuda.so"
for_workloads "$tmp" "$3"
burn="$tmp/gpool-burn"
spid=""
a1=""
a2=""
cleanup() { for p in $a1 $a2; do kill "$p" 2>/dev/null; done; [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
    [ $failed -ne 0 ] && cat "$tmp/server.log" "$tmp"/agent-*.log >&2; pkill -f "$tmp/n" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
EVENTUALLY_TRIES=200
need_test_users gpool-t-ana gpool-t-bo

port=$(free_port)
export GPOOL_SERVER="http://127.0.0.1:$port" HOME="$tmp"
export LD_LIBRARY_PATH="$tmp/lib" SIMGPU_COUNT=2 SIMGPU_MEMORY=8GiB
GPOOL_TOKEN=$("$gpool" server init --store "sqlite:$tmp/gpool.db" --admin ana --unix-user gpool-t-ana)
export GPOOL_TOKEN
"$gpool" server --listen "127.0.0.1:$port" --store "sqlite:$tmp/gpool.db" --node-timeout 4 2>>"$tmp/server.log" &
spid=$!
for _ in $(seq 50); do curl -s "$GPOOL_SERVER/api/v1/status" >/dev/null && break; sleep 0.1; done
"$gpool" projects set p --deserved 4 >/dev/null
"$gpool" users add agents --unix-user root --role agent >/dev/null
"$gpool" users add bo --unix-user gpool-t-bo >/dev/null
"$gpool" projects add-member p bo >/dev/null
BO=$("$gpool" token create --user bo)
"$gpool" token create --user agents >"$tmp/token"
chmod 600 "$tmp/token"
start_agent() { # NAME: an agent with GPUs of its own (its own simgpu state)
    SIMGPU_STATE="$tmp/$1/simgpu" "$gpool" agent --server "$GPOOL_SERVER" --token-file "$tmp/token" \
        --name "$1" --address 127.0.0.1 --state-dir "$tmp/$1" --heartbeat 1 \
        --cuda-lib "$tmp/lib/libgpool-cuda.so" --cgroup-root none 2>>"$tmp/agent-$1.log" &
    eval "a${1#n}=\$!"
}
mkdir "$tmp/n1" "$tmp/n2"
start_agent n1
start_agent n2
api() { curl -s -H "Authorization: Bearer $GPOOL_TOKEN" "$GPOOL_SERVER/api/v1/$1"; }
eventually "two nodes of two GPUs register" sh -c "[ \"\$('$gpool' nodes -o json | python3 -c 'import json,sys; print(sum(len(n[\"gpus\"]) for n in json.load(sys.stdin)[\"nodes\"]))')\" = 4 ]"
cat >"$tmp/st" <<SH
#!/bin/sh
"$gpool" describe "\$1" -o json | python3 -c "import json,sys; j=json.load(sys.stdin); print(j['state'], j['exit_code'])"
SH
chmod +x "$tmp/st"
st="$tmp/st"
# A field of a job: field JOB "['node']" (a script, for the checks run in sh -c).
cat >"$tmp/field" <<SH
#!/bin/sh
"$gpool" describe "\$1" -o json | python3 -c "import json,sys; print(json.load(sys.stdin)\$2)"
SH
chmod +x "$tmp/field"
field="$tmp/field"
field() { "$field" "$@"; }

# A gang of two replicas of two GPUs each: one per node. Rank 1 reaches rank 0 at MASTER_ADDR and
# MASTER_PORT and sends it its rank; rank 0 prints what it heard.
cat >"$tmp/rendezvous.py" <<'PY'
import os, socket, sys, time
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
print("rank %s/%s gpool %s/%s local %s gpus %s" % (rank, world, os.environ["GPOOL_RANK"],
      os.environ["GPOOL_WORLD_SIZE"], os.environ["LOCAL_RANK"], os.environ["CUDA_VISIBLE_DEVICES"]), flush=True)
if rank == 0:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port)); s.listen(world); s.settimeout(60)
    heard = sorted(int(s.accept()[0].recv(16)) for _ in range(world - 1))
    print("heard", heard, flush=True)
else:
    for _ in range(300):
        try:
            c = socket.create_connection((addr, port), timeout=1); c.sendall(str(rank).encode()); break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(1)
PY
chmod a+r "$tmp/rendezvous.py"
g=$(GPOOL_TOKEN=$BO "$gpool" submit --project p --gpus 2 --replicas 2 -- sh -c 'id -un >&2; exec python3 "$0"' "$tmp/rendezvous.py")
eventually "a 2-replica gang of 2 GPUs each runs and succeeds" sh -c "[ \"\$($st $g)\" = 'succeeded 0' ]"
check "  ... one replica on each node" sh -c "[ \"\$($field $g \"['node']\")\" = 'n1 n2' ] || [ \"\$($field $g \"['node']\")\" = 'n2 n1' ]"
r0=$(ls -d "$tmp"/n*/jobs/"$g" | head -1)
r1=$(ls -d "$tmp"/n*/jobs/"$g".1 | head -1)
check "  ... each replica knew its rank, the world size and its local rank" sh -c \
    "grep -q '^rank 0/2 gpool 0/2 local 0 gpus GPU-' '$r0/stdout' && grep -q '^rank 1/2 gpool 1/2 local 0 gpus GPU-' '$r1/stdout'"
check "  ... and rank 1 reached rank 0 at MASTER_ADDR:MASTER_PORT" grep -qx "heard \[1\]" "$r0/stdout"
check "  ... rank 0's output is the job's log on the server" sh -c "'$gpool' logs $g | grep -qx 'heard \[1\]'"
check "  ... both replicas ran as bo's account, gpool-t-bo" sh -c "[ \"\$(cat '$r0/stderr' '$r1/stderr')\" = \"\$(printf 'gpool-t-bo\ngpool-t-bo')\" ]"
g2=$("$gpool" submit --project p --gpus 1 --replicas 2 -- sh -c 'exit $RANK')
eventually "a gang whose rank 1 fails has failed" sh -c "[ \"\$($st $g2)\" = 'failed 1' ]"
check "  ... its replicas ran as its submitter ana's account, gpool-t-ana" sh -c \
    "for f in '$tmp'/n*/jobs/$g2*/stdout; do [ \"\$(stat -c %U \"\$f\")\" = gpool-t-ana ] || exit 1; done"

# Two half-GPU jobs share one GPU beside whole-GPU work (placement keeps GPUs whole for it); NVML
# sees each one's memory, and the server shows it.  (The nodes here have this machine's few
# CPUs: the jobs ask for little CPU, so that GPUs, not CPUs, decide where they go.)
wh=$("$gpool" submit --project p --gpus 1 --cpu 0.2 -- sleep 60)
eventually "a whole-GPU job runs" sh -c "[ \"\$($st $wh)\" = 'running 0' ]"
h1=$("$gpool" submit --project p --gpu 0.5 --cpu 0.2 -- "$burn" --memory 1GiB --seconds 30 --kernel-ms 5 -q)
h2=$("$gpool" submit --project p --gpu 0.5 --cpu 0.2 -- "$burn" --memory 2GiB --seconds 30 --kernel-ms 5 -q)
eventually "two half-GPU jobs run" sh -c "[ \"\$($st $h1)\" = 'running 0' ] && [ \"\$($st $h2)\" = 'running 0' ]"
check "  ... on the same GPU of the same node" sh -c "[ \"\$($field $h1 \"['node']\")\$($field $h1 \"['gpus']\")\" = \"\$($field $h2 \"['node']\")\$($field $h2 \"['gpus']\")\" ]"
eventually "  ... each one's GPU memory and busy % as NVML measured them: 1 GiB and 2 GiB" sh -c \
    "'$gpool' describe $h1 -o json | python3 -c 'import json,sys; u=json.load(sys.stdin)[\"measured\"]; assert 2**30 <= u[\"memory_used_bytes\"] < 2*2**30 and u[\"utilization_pct\"] > 0' &&
     '$gpool' describe $h2 -o json | python3 -c 'import json,sys; u=json.load(sys.stdin)[\"measured\"]; assert 2*2**30 <= u[\"memory_used_bytes\"] < 3*2**30 and u[\"utilization_pct\"] > 0'"

"$gpool" cancel "$wh" >/dev/null

# Suspend and resume: the job stops where it is and goes on.
t=$("$gpool" submit --project p --gpus 1 -- sh -c 'for i in $(seq 40); do echo $i; sleep 0.1; done')
node=""
eventually "a ticking job runs" sh -c "[ \"\$($st $t)\" = 'running 0' ]"
node=$(field "$t" "['node']")
"$gpool" suspend "$t" >/dev/null
eventually "gpool suspend: the job is suspended" sh -c "[ \"\$($st $t)\" = 'suspended 0' ]"
before=$(wc -l <"$tmp/$node/jobs/$t/stdout")
sleep 1
check "  ... and prints nothing while suspended" sh -c "[ \$(wc -l <'$tmp/$node/jobs/$t/stdout') -eq $before ] && [ $before -lt 40 ]"
"$gpool" suspend "$t" >/dev/null 2>"$tmp/err"
check "  ... suspending it again is refused" sh -c "[ $? -ne 0 ] && grep -q 'running job' '$tmp/err'"
"$gpool" resume "$t" >/dev/null
eventually "gpool resume: it goes on and succeeds with all its output" sh -c "[ \"\$($st $t)\" = 'succeeded 0' ] && [ \$(wc -l <'$tmp/$node/jobs/$t/stdout') -eq 40 ]"
"$gpool" resume "$t" >/dev/null 2>"$tmp/err"
check "resuming a job that is not suspended is refused" sh -c "[ $? -ne 0 ] && grep -q 'suspended job' '$tmp/err'"

# An agent killed with SIGKILL while its job prints: the job goes on, the next agent adopts it,
# and the job's log on the server is whole.
k=$("$gpool" submit --project p --gpus 2 -- sh -c 'for i in $(seq 60); do echo line $i; sleep 0.1; done')
eventually "a job of two GPUs runs" sh -c "[ \"\$($st $k)\" = 'running 0' ]"
node=$(field "$k" "['node']")
apid=$(eval "echo \$a${node#n}")
kill -9 "$apid"
wait "$apid" 2>/dev/null
wpid=$(cat "$tmp/$node/jobs/$k/workload")
check "after kill -9 of its agent the job still runs" kill -0 "$wpid"
start_agent "$node"
eventually "a new agent adopts it and reports it succeeded" sh -c "[ \"\$($st $k)\" = 'succeeded 0' ]"
eventually "  ... and its log on the server has all 60 lines" sh -c "[ \"\$('$gpool' logs $k | grep -c '^line ')\" = 60 ] && '$gpool' logs $k | tail -1 | grep -qx 'line 60'"

# A node that stops for good: after the grace period its job is requeued and runs on the other.
w=$("$gpool" submit --project p --gpus 2 -- sh -c 'echo on $GPOOL_JOB_ID; sleep 4')
eventually "a job of two GPUs runs" sh -c "[ \"\$($st $w)\" = 'running 0' ]"
gone=$(field "$w" "['node']")
apid=$(eval "echo \$a${gone#n}")
kill "$apid"
wait "$apid" 2>/dev/null
pkill -9 -f "$tmp/$gone" 2>/dev/null
eventually "the node's agent is gone for good: the job is requeued and runs on the other node" \
    sh -c "[ \"\$($st $w)\" = 'succeeded 0' ] && [ \"\$($field $w \"['node']\")\" != '$gone' ]"
check "  ... the lost node is shown as not ready" sh -c "'$gpool' nodes -o json | python3 -c 'import json,sys; n=[x for x in json.load(sys.stdin)[\"nodes\"] if x[\"name\"]==\"$gone\"][0]; assert n[\"alive\"] is False'"

for p in $a1 $a2; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
a1=""
a2=""
echo "1..$n"
[ $failed -eq 0 ]
