#!/bin/sh
# `gpool agent` with a server, on simulated GPUs: it registers the GPUs NVML shows, runs jobs as
# their Unix user with their GPUs, reports how they end, stops what is cancelled, and adopts the
# jobs of a previous agent. Run as root (workloads run as nobody). TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
chmod 755 "$tmp"
. "$(dirname "$0")/tap.sh"
for_workloads "$tmp/lib" "$2/libcuda.so.1" "$2/libnvidia-ml.so.1" "$5/libgpool-cuda.so"
for_workloads "$tmp" "$3" "$4"
probe="$tmp/cuda-probe"
simgpu="$tmp/lib"
burn="$tmp/gpool-burn"
spid=""
apid=""
cleanup() { [ -n "$apid" ] && kill "$apid" 2>/dev/null; [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
    [ -n "${cgroot:-}" ] && { for d in "$cgroot"/job-*; do [ -d "$d" ] && echo 1 >"$d/cgroup.kill" && rmdir "$d"; done; rmdir "$cgroot"; } 2>/dev/null
    [ $failed -ne 0 ] && cat "$tmp/server.log" "$tmp/agent.log" "$tmp"/state/jobs/*/stderr >&2; pkill -f "$tmp/state" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
EVENTUALLY_TRIES=200
need_root_and_nobody

port=$(free_port)
export GPOOL_SERVER="http://127.0.0.1:$port" HOME="$tmp"
export LD_LIBRARY_PATH="$simgpu" SIMGPU_STATE="$tmp/simgpu" SIMGPU_COUNT=2 SIMGPU_MEMORY=8GiB
GPOOL_TOKEN=$("$gpool" server init --store "sqlite:$tmp/gpool.db" --admin ana --unix-user nobody)
export GPOOL_TOKEN
"$gpool" server --listen "127.0.0.1:$port" --store "sqlite:$tmp/gpool.db" --node-timeout 10 --min-runtime 1 2>>"$tmp/server.log" &
spid=$!
for _ in $(seq 50); do curl -s "$GPOOL_SERVER/api/v1/status" >/dev/null && break; sleep 0.1; done
"$gpool" projects set p --deserved 2 >/dev/null
"$gpool" users add agent1 --unix-user root --role agent >/dev/null
"$gpool" token create --user agent1 >"$tmp/token"
chmod 600 "$tmp/token"

"$gpool" agent --server "$GPOOL_SERVER" >/dev/null 2>"$tmp/err"
check "the agent needs a token file (exit 2)" sh -c "[ $? -eq 2 ] && grep -q 'token-file' '$tmp/err'"
"$gpool" agent --server "$GPOOL_SERVER" --token-file "$tmp/none" --state-dir "$tmp/state" >/dev/null 2>"$tmp/err"
check "a missing token file is a clear failure (exit 1)" sh -c "[ $? -eq 1 ] && grep -q '$tmp/none' '$tmp/err'"
"$gpool" agent --server "$GPOOL_SERVER" --token-file "$tmp/token" --env "1BAD=x" >/dev/null 2>"$tmp/err"
check "a bad --env is refused (exit 2) with a message" sh -c "[ $? -eq 2 ] && grep -q 'expected NAME=VALUE' '$tmp/err'"

# Workloads' cgroups go in a fresh directory of the cgroup v2 hierarchy, when there is a
# writable one; otherwise the agent uses process groups (checked below either way).
cgmnt=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
cgroot=""
if [ -n "$cgmnt" ] && mkdir "$cgmnt/gpool-test-$$" 2>/dev/null; then cgroot="$cgmnt/gpool-test-$$"; fi
cgargs="--cgroup-root ${cgroot:-none}"
start_agent() {
    # shellcheck disable=SC2086
    "$gpool" agent --server "$GPOOL_SERVER" --token-file "$tmp/token" --name n1 \
        --state-dir "$tmp/state" --heartbeat 1 --cuda-lib "$tmp/lib/libgpool-cuda.so" $cgargs \
        2>>"$tmp/agent.log" &
    apid=$!
}
start_agent
eventually "the agent registers the simulated GPUs" sh -c "'$gpool' list >/dev/null && curl -s -H 'Authorization: Bearer $GPOOL_TOKEN' $GPOOL_SERVER/api/v1/nodes | python3 -c 'import json,sys; n=json.load(sys.stdin)[\"nodes\"]; assert n[0][\"name\"]==\"n1\" and len(n[0][\"gpus\"])==2 and n[0][\"gpus\"][0][\"memory_bytes\"]==8*2**30 and n[0][\"gpus\"][0][\"uuid\"].startswith(\"GPU-\")'"

# A job's state and exit code, for the retried checks (a script: they run in sh -c).
cat >"$tmp/st" <<SH
#!/bin/sh
"$gpool" describe "\$1" -o json | python3 -c "import json,sys; j=json.load(sys.stdin); print(j['state'], j['exit_code'])"
SH
chmod +x "$tmp/st"
st="$tmp/st"
j1=$("$gpool" submit --project p --gpu 0.5 -e GREETING=hello -- sh -c 'echo "$GREETING from $(id -un) on GPU $CUDA_VISIBLE_DEVICES"; exit 3')
eventually "a job that exits 3 is reported failed with its exit code" sh -c "[ \"\$($st $j1)\" = 'failed 3' ]"
uuid0=$(curl -s -H "Authorization: Bearer $GPOOL_TOKEN" "$GPOOL_SERVER/api/v1/nodes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nodes"][0]["gpus"][0]["uuid"])')
check "it ran as the submitter's account, with its environment and its GPU (by UUID)" grep -qx "hello from nobody on GPU $uuid0" "$tmp/state/jobs/$j1/stdout"
j2=$("$gpool" submit --project p --gpus 1 -- "$burn" --memory 64MiB --iterations 20 --kernel-ms 1 -q)
eventually "gpool-burn runs on a simulated GPU through the agent and succeeds" sh -c "[ \"\$($st $j2)\" = 'succeeded 0' ]"
check "  ... and verified its data" grep -q "data ok: all 64.0 MiB verified" "$tmp/state/jobs/$j2/stdout"

j3=$("$gpool" submit --project p --gpu 0.25 -- sleep 300)
eventually "a long job is reported running" sh -c "[ \"\$($st $j3)\" = 'running 0' ]"
wpid=$(cat "$tmp/state/jobs/$j3/workload")
check "its workload runs as nobody" sh -c "[ \"\$(ps -o user= -p $wpid)\" = nobody ]"
"$gpool" cancel "$j3" >/dev/null
eventually "cancel stops the workload" sh -c "! kill -0 $wpid"
check "  ... and the job stays cancelled" sh -c "[ \"\$($st $j3)\" = 'cancelled 0' ]"

# Fractions are enforced: the library is preloaded with the job's cap, and the agent stops a job
# that gets past it without the library.
j5=$("$gpool" submit --project p --gpu 0.25 -- "$probe" info alloc 2GiB alloc 1)
eventually "a quarter-GPU job runs with the library" sh -c "[ \"\$($st $j5)\" = 'succeeded 0' ]"
check "  ... and sees a quarter of the GPU's memory as its total, and no more" sh -c \
    "grep -qx 'info CUDA_SUCCESS free=2147483648 total=2147483648' '$tmp/state/jobs/$j5/stdout' &&
     grep -qx 'alloc 1 CUDA_ERROR_OUT_OF_MEMORY' '$tmp/state/jobs/$j5/stdout'"
check "  ... and its cap was taken off the GPU when it ended" sh -c \
    "! '$gpool' region show --dir '$tmp/state/regions' -o json | grep -q '\"job\": \"$j5\"'"
j9=$("$gpool" submit --project p --gpus 1 -- "$probe" alloc 1GiB hold)
eventually "the heartbeat carries what NVML measures: the server sees the job's 1 GiB on its GPU" sh -c \
    "curl -s -H 'Authorization: Bearer $GPOOL_TOKEN' $GPOOL_SERVER/api/v1/nodes | python3 -c 'import json,sys; g=json.load(sys.stdin)[\"nodes\"][0][\"gpus\"]; assert any(x.get(\"memory_used_bytes\", 0) >= 2**30 for x in g)'"
"$gpool" cancel "$j9" >/dev/null
j6=$("$gpool" submit --project p --gpu 0.25 -- env -u LD_PRELOAD "$probe" alloc 3GiB hold)
eventually "a job that holds more than its cap without the library is stopped and failed" \
    sh -c "[ \"\$($st $j6 | cut -d' ' -f1)\" = failed ]"
check "  ... and its log says why" grep -q "over its cap of 2.00 GiB: stopped" "$tmp/state/jobs/$j6/stderr"

# A restart of the agent: the job keeps running and the new agent reports its end.
j4=$("$gpool" submit --project p --gpu 0.25 -- sleep 6)
eventually "a job runs" sh -c "[ \"\$($st $j4)\" = 'running 0' ]"
kill "$apid"
wait "$apid" 2>/dev/null
wpid=$(cat "$tmp/state/jobs/$j4/workload")
check "the job outlives the agent" kill -0 "$wpid"
start_agent
eventually "a new agent adopts it and reports its end" sh -c "[ \"\$($st $j4)\" = 'succeeded 0' ]"
check "the agent said it adopted it" grep -q "adopted 1 running job" "$tmp/agent.log"

# Swapping a job through the server: its agent moves its GPU memory out and back; it finishes
# with all its data.
j10=$("$gpool" submit --project p --gpus 1 -- "$burn" --memory 1GiB --seconds 8 --kernel-ms 10 -q)
eventually "a burn holding 1 GiB runs" sh -c "[ \"\$($st $j10)\" = 'running 0' ] && grep -q . '$tmp/state/jobs/$j10/workload'"
sleep 1
"$gpool" swap in "$j10" >/dev/null 2>"$tmp/err"
check "swapping in a job that is not swapped out is refused" sh -c "[ $? -ne 0 ] && grep -q 'swapped' '$tmp/err'"
"$gpool" swap out 99999 >/dev/null 2>"$tmp/err"
check "swapping an unknown job is refused" sh -c "[ $? -ne 0 ] && grep -q 'no job' '$tmp/err'"
"$gpool" swap out "$j10" >/dev/null
eventually "gpool swap out JOB: the job shows swapped" sh -c "[ \"\$($st $j10)\" = 'swapped 0' ]"
check "  ... with where its memory went: 1 GiB in host memory on n1" sh -c \
    "'$gpool' describe $j10 -o json | python3 -c 'import json,sys; s=json.load(sys.stdin)[\"swap\"]; assert s[\"node\"]==\"n1\" and s[\"bytes\"]>=2**30 and s[\"via\"] in (\"driver\",\"library\")'"
"$gpool" swap in "$j10" >/dev/null
eventually "gpool swap in JOB: it runs again" sh -c "[ \"\$($st $j10 | cut -d' ' -f1)\" != swapped ]"
eventually "  ... and finishes with every byte verified" sh -c "[ \"\$($st $j10)\" = 'succeeded 0' ] && grep -q 'data ok: all 1024.0 MiB verified' '$tmp/state/jobs/$j10/stdout'"

# A job preempted and placed on the same node again runs again there, its first run kept aside.
j7=$("$gpool" submit --project p --gpus 2 --priority train -- sh -c 'echo run; sleep 6')
eventually "a train job holding both GPUs runs" sh -c "[ \"\$($st $j7)\" = 'running 0' ]"
j8=$("$gpool" submit --project p --gpus 2 --priority inference -- sleep 1)
eventually "an inference job preempts it and succeeds" sh -c "[ \"\$($st $j8)\" = 'succeeded 0' ]"
check "  ... while the train job had not finished" sh -c "[ \"\$($st $j7)\" != 'succeeded 0' ]"
eventually "the preempted job is placed on the node again, runs again and succeeds" \
    sh -c "[ \"\$($st $j7)\" = 'succeeded 0' ]"
check "  ... its first run's files are kept beside the second's" \
    sh -c "ls -d '$tmp/state/jobs/$j7'.run-* >/dev/null && grep -qx run '$tmp/state/jobs/$j7/stdout'"

# Cancel kills all a workload started, even what left its process group and session.
escape() { # job id: runs a workload that starts a daemon in a session of its own
    j=$("$gpool" submit --project p --gpus 1 -- sh -c 'setsid sleep 301 </dev/null >/dev/null 2>&1 & echo $!; exec sleep 300')
    for _ in $(seq 100); do [ -s "$tmp/state/jobs/$j/stdout" ] && [ -s "$tmp/state/jobs/$j/workload" ] && break; sleep 0.1; done
    daemon=$(head -1 "$tmp/state/jobs/$j/stdout")
    wpid=$(cat "$tmp/state/jobs/$j/workload")
}
for mode in cgroup process-group; do
    if [ $mode = process-group ]; then
        kill "$apid"; wait "$apid" 2>/dev/null
        cgargs="--cgroup-root none"
        start_agent
    elif [ -z "$cgroot" ]; then
        ok "# SKIP no writable cgroup v2 hierarchy here"
        continue
    fi
    escape
    if [ $mode = cgroup ]; then
        check "[$mode] the workload and its daemon run in the job's cgroup" sh -c \
            "grep -q 'gpool-test-$$/job-$j\$' /proc/$wpid/cgroup && grep -q 'gpool-test-$$/job-$j\$' /proc/$daemon/cgroup"
    fi
    "$gpool" cancel "$j" >/dev/null
    eventually "[$mode] cancel stops the workload and the daemon it left behind" sh -c "! kill -0 $wpid && ! kill -0 $daemon"
    if [ $mode = cgroup ]; then
        eventually "[$mode] the job's cgroup is removed" sh -c "[ ! -d '$cgroot/job-$j' ]"
    fi
done
check "the agent said how it controls workloads" grep -q "workloads in" "$tmp/agent.log"

kill "$apid"
wait "$apid" 2>/dev/null
apid=""
echo "1..$n"
[ $failed -eq 0 ]
