#!/bin/sh
# What users watch, against a real server and agent on simulated GPUs: a job's output served by the
# server (`gpool logs`, -f until the job ends, the log endpoints and their errors, the cap, a
# restart), the event stream (Server-Sent Events, who sees what, Last-Event-ID, no thread per
# stream), browser sessions (the cookie exchange), `gpool nodes` and `gpool top`. Run as root
# (workloads run as nobody). TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
chmod 755 "$tmp"
. "$(dirname "$0")/tap.sh"
for_workloads "$tmp/lib" "$2/libcuda.so.1" "$2/libnvidia-ml.so.1"
spid=""
apid=""
streams=""
cleanup() {
    for p in $streams $apid; do kill "$p" 2>/dev/null; done
    [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
    [ $failed -ne 0 ] && cat "$tmp/server.log" "$tmp/agent.log" >&2
    # A workload still running (no exit file yet) is stopped with its process group.
    for d in "$tmp"/state/jobs/*; do
        [ -f "$d/workload" ] && [ ! -f "$d/exit" ] && kill -9 -"$(cat "$d/workload")" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
need_root_and_nobody

port=$(free_port)
export GPOOL_SERVER="http://127.0.0.1:$port" HOME="$tmp"
export LD_LIBRARY_PATH="$tmp/lib" SIMGPU_STATE="$tmp/simgpu" SIMGPU_COUNT=2 SIMGPU_MEMORY=8GiB
ADMIN=$("$gpool" server init --store "sqlite:$tmp/gpool.db" --admin ana --unix-user nobody)
export GPOOL_TOKEN="$ADMIN"
start_server() {
    "$gpool" server --listen "127.0.0.1:$port" --store "sqlite:$tmp/gpool.db" --node-timeout 3 \
        --log-limit 4KiB 2>>"$tmp/server.log" &
    spid=$!
    for _ in $(seq 50); do curl -s "$GPOOL_SERVER/api/v1/status" >/dev/null && return 0; sleep 0.1; done
    return 1
}
start_agent() {
    "$gpool" agent --server "$GPOOL_SERVER" --token-file "$tmp/token" --name n1 \
        --state-dir "$tmp/state" --heartbeat 1 --cuda-lib none 2>>"$tmp/agent.log" &
    apid=$!
}
start_server
"$gpool" projects set p --deserved 2 >/dev/null
"$gpool" users add agent1 --unix-user root --role agent >/dev/null
"$gpool" token create --user agent1 >"$tmp/token"
AGENT=$(cat "$tmp/token")
"$gpool" users add dora --unix-user nobody >/dev/null
"$gpool" projects add-member p dora >/dev/null
DORA=$("$gpool" token create --user dora)

header() { tr -d '\r' <"$tmp/headers" | sed -n "s/^$1: *//Ip"; }
# A job's state, for the retried checks (a script: they run in sh -c).
cat >"$tmp/st" <<SH
#!/bin/sh
"$gpool" describe "\$1" -o json | python3 -c "import json,sys; print(json.load(sys.stdin)['state'])"
SH
chmod +x "$tmp/st"
st="$tmp/st"
# The events of a stream, one a line: "job ID STATE", "node NAME STATE alive|silent", "resync".
cat >"$tmp/events.py" <<'PY'
import json, signal, sys
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
for block in open(sys.argv[1]).read().split("\n\n"):
    fields = dict(l.split(": ", 1) for l in block.split("\n") if ": " in l and not l.startswith(":"))
    kind, data = fields.get("event"), json.loads(fields.get("data", "{}"))
    if kind == "job":
        print("job", data["id"], data["state"])
    elif kind == "node":
        print("node", data["name"], data["state"], "alive" if data["alive"] else "silent")
    elif kind:
        print(kind)
PY
events() { python3 "$tmp/events.py" "$1"; }
stream() { # file [curl options]: an event stream kept open in the background
    out=$1
    shift
    curl -s -N "$@" "$GPOOL_SERVER/api/v1/events" >"$out" &
    streams="$streams $!"
    for _ in $(seq 50); do grep -q '^: connected' "$out" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}

# --- sessions: a token exchanged for a cookie ----------------------------------------------------
expect "a session starts from a bearer token" 201 '"user":"dora"' "$DORA" POST /api/v1/session
check "  ... its cookie is HttpOnly and SameSite=Strict" sh -c "grep -i '^Set-Cookie: gpool_session=gp_' '$tmp/headers' | grep 'HttpOnly' | grep -q 'SameSite=Strict'"
cookie=$(header Set-Cookie | sed 's/;.*//')
got=$(curl -s -o "$tmp/body" -w '%{http_code}' -b "$cookie" "$GPOOL_SERVER/api/v1/status")
check "the cookie authenticates a GET as its user" sh -c "[ $got = 200 ] && grep -q '\"user\":\"dora\"' '$tmp/body'"
got=$(curl -s -o "$tmp/body" -w '%{http_code}' -b "$cookie" -X POST --data '{"project":"p","command":["x"]}' "$GPOOL_SERVER/api/v1/jobs")
check "the cookie does not authenticate a POST (401, nothing submitted)" sh -c "[ $got = 401 ] && grep -q 'GET requests only' '$tmp/body' && '$gpool' list -o json | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"jobs\"] == []'"
got=$(curl -s -o "$tmp/body" -w '%{http_code}' -b "gpool_session=gp_forged" "$GPOOL_SERVER/api/v1/jobs")
check "a bad cookie is 401" sh -c "[ $got = 401 ] && grep -q 'unknown or has expired' '$tmp/body'"
expect "an agent token gets no session" 403 forbidden "$AGENT" POST /api/v1/session
expect "ending a session needs its cookie" 400 '"field":"gpool_session"' "$DORA" DELETE /api/v1/session
curl -s -X POST -H "Authorization: Bearer $DORA" -D "$tmp/headers" -o /dev/null "$GPOOL_SERVER/api/v1/session"
cookie2=$(header Set-Cookie | sed 's/;.*//')
got=$(curl -s -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' -b "$cookie2" -X DELETE "$GPOOL_SERVER/api/v1/session")
check "DELETE /session ends it and expires the cookie" sh -c "[ $got = 200 ] && grep -i '^Set-Cookie: gpool_session=;' '$tmp/headers' | grep -q 'Max-Age=0'"
got=$(curl -s -o "$tmp/body" -w '%{http_code}' -b "$cookie2" "$GPOOL_SERVER/api/v1/jobs")
check "  ... after which that cookie is refused" [ "$got" = 401 ]
got=$(curl -s -o /dev/null -w '%{http_code}' -b "$cookie" "$GPOOL_SERVER/api/v1/jobs")
check "  ... and the other session still works" [ "$got" = 200 ]

# --- event streams ---------------------------------------------------------------------------------
check "an admin's event stream opens" stream "$tmp/ev-admin" -H "Authorization: Bearer $ADMIN"
check "a user's event stream opens with the session cookie" stream "$tmp/ev-dora" -b "$cookie"
expect "an agent token gets no event stream" 403 forbidden "$AGENT" GET /api/v1/events
got=$(curl -s -o "$tmp/body" -w '%{http_code}' -b "gpool_session=gp_forged" "$GPOOL_SERVER/api/v1/events")
check "a bad cookie gets no event stream (401)" [ "$got" = 401 ]

start_agent
eventually "the node's registration is an event" sh -c "python3 '$tmp/events.py' '$tmp/ev-admin' | grep -qx 'node n1 ready alive'"

# --- logs --------------------------------------------------------------------------------------------
j1=$(GPOOL_TOKEN=$DORA "$gpool" submit --project p --gpu 0.5 -- sh -c 'echo first; echo oops >&2; sleep 2; echo second; echo again >&2')
GPOOL_TOKEN=$DORA "$gpool" logs -f "$j1" >"$tmp/follow" 2>"$tmp/follow.err"
rc=$?
now=$("$st" "$j1")
check "logs -f prints the output as it comes and stops when the job ends" sh -c "[ $rc -eq 0 ] && [ '$now' = succeeded ] && printf 'first\nsecond\n' | cmp -s - '$tmp/follow'"
GPOOL_TOKEN=$DORA "$gpool" logs --stderr "$j1" >"$tmp/stderr"
check "logs --stderr prints the job's stderr" sh -c "printf 'oops\nagain\n' | cmp -s - '$tmp/stderr'"
expect "the log from an offset" 200 "second" "$DORA" GET "/api/v1/jobs/$j1/logs?offset=6"
check "  ... is the rest, with the next offset and that the log is complete" sh -c "[ \"\$(cat '$tmp/body')\" = second ] && [ '$(header Gpool-Next-Offset)' = 13 ] && [ '$(header Gpool-Log-Size)' = 13 ] && [ '$(header Gpool-Log-Complete)' = true ]"
expect "a limit reads part of it" 200 "fir" "$DORA" GET "/api/v1/jobs/$j1/logs?limit=3"
check "  ... and says where to go on" sh -c "[ \"\$(cat '$tmp/body')\" = fir ] && [ '$(header Gpool-Next-Offset)' = 3 ]"
expect "an offset past the end is refused" 400 '"field":"offset"' "$DORA" GET "/api/v1/jobs/$j1/logs?offset=14"
check "  ... saying how long the log is" grep -q "past the end of the log (13 bytes)" "$tmp/body"
expect "a negative offset is refused" 400 '"field":"offset"' "$DORA" GET "/api/v1/jobs/$j1/logs?offset=-1"
expect "an unknown stream is refused" 400 '"field":"stream"' "$DORA" GET "/api/v1/jobs/$j1/logs?stream=stdin"
expect "a zero limit is refused" 400 '"field":"limit"' "$DORA" GET "/api/v1/jobs/$j1/logs?limit=0"
expect "the logs of an unknown job are 404" 404 not_found "$DORA" GET "/api/v1/jobs/99999/logs"
expect "an admin reads any job's log" 200 "first" "$ADMIN" GET "/api/v1/jobs/$j1/logs"
"$gpool" logs 99999 >/dev/null 2>"$tmp/err"
check "gpool logs of an unknown job: exit 2 and why" sh -c "[ $? -eq 2 ] && grep -q 'no job with that id' '$tmp/err'"
"$gpool" logs abc >/dev/null 2>"$tmp/err"
check "gpool logs of a bad id: exit 2" sh -c "[ $? -eq 2 ] && grep -q 'expected a job id' '$tmp/err'"
check "the job's events came in order: pending, assigned, running, succeeded" sh -c "python3 '$tmp/events.py' '$tmp/ev-admin' | grep '^job $j1 ' | uniq | tr '\n' ' ' | grep -qx 'job $j1 pending job $j1 assigned job $j1 running job $j1 succeeded '"
check "  ... and its owner saw them too" sh -c "python3 '$tmp/events.py' '$tmp/ev-dora' | grep -q '^job $j1 succeeded'"

j2=$("$gpool" submit --project p --gpu 0.5 -- sh -c 'trap "echo stopping; exit 0" TERM; echo hello; while true; do sleep 0.2; done')
eventually "a running job's log is there while it runs" sh -c "[ \"\$('$gpool' logs $j2)\" = hello ]"
call "$ADMIN" GET "/api/v1/jobs/$j2/logs" >/dev/null
check "  ... and is not complete" [ "$(header Gpool-Log-Complete)" = false ]
expect "another user's job's log is 404, as the job is" 404 not_found "$DORA" GET "/api/v1/jobs/$j2/logs"

# --- nodes and top, while j2 holds half of GPU 0 -------------------------------------------------------
"$gpool" nodes >"$tmp/nodes"
check "gpool nodes: the node, its state, GPUs, allocation and heartbeat" grep -Eq '^n1 +ready +2 x NVIDIA H100 80GB HBM3 \(simgpu\) +0\.50/2  [0-9]+s ago$' "$tmp/nodes"
check "gpool nodes -o json" sh -c "'$gpool' nodes -o json | python3 -c 'import json,sys; n=json.load(sys.stdin)[\"nodes\"][0]; assert n[\"alive\"] and n[\"allocated_gpus\"]==0.5 and n[\"gpus\"][0][\"jobs\"]==[$j2], n'"
"$gpool" top --once >"$tmp/top"
check "gpool top --once: a line per GPU with its allocation, what its agent measures, and jobs" sh -c "grep -Eq '^n1 +0  NVIDIA H100 80GB HBM3 \(simgpu\) +0\.50 +0\.00 +0\.00  4\.0/8\.0 GiB +[0-9.]+ +[0-9]+%  $j2\$' '$tmp/top' && grep -Eq '^n1 +1  .* 0\.00 +0\.00 +0\.00  0\.0/8\.0 GiB +[0-9.]+ +[0-9]+%  -\$' '$tmp/top'"
GPOOL_TOKEN=$DORA "$gpool" top --once >"$tmp/top"
check "  ... another user's job is counted, not named" grep -Eq '^n1 +0  .* 0\.50 +0\.00 +0\.00  4\.0/8\.0 GiB +[0-9.]+ +[0-9]+%  \+1$' "$tmp/top"
timeout -s INT 2.5 "$gpool" top >"$tmp/top-live" 2>&1
check "gpool top refreshes every second until interrupted" [ "$(grep -c '^NODE' "$tmp/top-live")" -ge 2 ]
check "nodes cordon" sh -c "[ \"\$('$gpool' nodes cordon n1)\" = 'n1 cordoned' ] && '$gpool' nodes | grep -Eq '^n1 +cordoned '"
eventually "  ... is an event every user sees" sh -c "python3 '$tmp/events.py' '$tmp/ev-dora' | grep -qx 'node n1 cordoned alive'"
check "nodes drain" sh -c "[ \"\$('$gpool' nodes drain n1)\" = 'n1 draining' ]"
check "nodes uncordon" sh -c "[ \"\$('$gpool' nodes uncordon n1)\" = 'n1 ready' ]"
GPOOL_TOKEN=$DORA "$gpool" nodes cordon n1 >/dev/null 2>"$tmp/err"
check "nodes cordon is for admins: exit 2 and why" sh -c "[ $? -eq 2 ] && grep -q 'needs the admin role' '$tmp/err' && '$gpool' nodes | grep -Eq '^n1 +ready '"
"$gpool" nodes cordon nosuch >/dev/null 2>"$tmp/err"
check "nodes cordon of an unknown node: exit 2" sh -c "[ $? -eq 2 ] && grep -q \"no node 'nosuch'\" '$tmp/err'"
"$gpool" nodes reboot n1 >/dev/null 2>"$tmp/err"
check "an unknown nodes action: usage, exit 2" sh -c "[ $? -eq 2 ] && grep -q 'usage: gpool nodes' '$tmp/err'"

# What a node measures reaches top (a second node, registered by hand and cordoned at once).
node2='{"name":"n2","cpu_milli":1000,"mem_mib":1024,"gpus":[{"uuid":"GPU-x","model":"L4","memory_bytes":25769803776}]}'
call "$AGENT" POST /api/v1/agent/register "$node2" >/dev/null
"$gpool" nodes cordon n2 >/dev/null
expect "a heartbeat with what the GPUs measure" 200 '{}' "$AGENT" POST /api/v1/agent/heartbeat '{"name":"n2","gpus":[{"index":0,"memory_used_bytes":2147483648,"utilization_pct":35}]}'
check "  ... shows in top as used and busy" sh -c "'$gpool' top --once | grep -Eq '^n2 +0  L4 +0\.00 +0\.00 +0\.00  0\.0/24\.0 GiB +2\.0 +35%  -\$'"
expect "a heartbeat measuring nonsense is refused" 400 '"field":"gpus"' "$AGENT" POST /api/v1/agent/heartbeat '{"name":"n2","gpus":[{"index":0,"utilization_pct":150}]}'
check "  ... and changes nothing" sh -c "'$gpool' top --once | grep -Eq '^n2 +0  L4 .* +2\.0 +35%'"

# Cancel: the follower gets the lines the job writes as it stops, then ends.
GPOOL_TOKEN=$ADMIN "$gpool" logs -f "$j2" >"$tmp/follow2" &
fpid=$!
sleep 0.5
"$gpool" cancel "$j2" >/dev/null
for _ in $(seq 100); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$fpid" 2>/dev/null && { kill "$fpid"; not_ok "logs -f ends after a cancel"; } || ok "logs -f ends after a cancel"
wait "$fpid" 2>/dev/null
check "  ... with what the job wrote while it stopped" sh -c "printf 'hello\nstopping\n' | cmp -s - '$tmp/follow2'"
check "a user's stream has its own jobs and not the others'" sh -c "python3 '$tmp/events.py' '$tmp/ev-dora' | grep -q '^job $j1 ' && ! python3 '$tmp/events.py' '$tmp/ev-dora' | grep -q '^job $j2 '"
check "  ... an admin's has both" sh -c "python3 '$tmp/events.py' '$tmp/ev-admin' | grep -q '^job $j2 cancelled'"

# The agent's side of logs: appends by offset.
expect "an append past the end is refused with the size the server has" 409 '"next":13' "$AGENT" POST "/api/v1/agent/logs?node=n1&job=$j1&stream=stdout&offset=20" 'late'
expect "an append of bytes the server has is harmless" 200 '"next":6' "$AGENT" POST "/api/v1/agent/logs?node=n1&job=$j1&stream=stdout&offset=0" 'first
'
check "  ... the log is unchanged" sh -c "GPOOL_TOKEN=$DORA '$gpool' logs $j1 | cmp -s - '$tmp/follow'"
expect "an append from another node is refused" 409 'does not run on node n2' "$AGENT" POST "/api/v1/agent/logs?node=n2&job=$j1&stream=stdout&offset=13" 'x'
expect "an append to an unknown job" 404 not_found "$AGENT" POST "/api/v1/agent/logs?node=n1&job=99999&stream=stdout&offset=0" 'x'
expect "an append without an offset" 400 '"field":"offset"' "$AGENT" POST "/api/v1/agent/logs?node=n1&job=$j1&stream=stdout" 'x'
expect "an append to an unknown stream" 400 '"field":"stream"' "$AGENT" POST "/api/v1/agent/logs?node=n1&job=$j1&stream=stdin&offset=0" 'x'
expect "a user may not append" 403 forbidden "$DORA" POST "/api/v1/agent/logs?node=n1&job=$j1&stream=stdout&offset=13" 'x'

# The cap: a log stops at --log-limit and says so.
j3=$("$gpool" submit --project p --gpu 0.5 -- sh -c 'head -c 10000 /dev/zero | tr "\0" x; echo; echo done >&2')
eventually "a loud job ends" sh -c "[ \"\$($st $j3)\" = succeeded ]"
"$gpool" logs "$j3" >"$tmp/capped"
check "its log keeps the first 4 KiB and says the rest was dropped" sh -c "[ \$(tr -cd x <'$tmp/capped' | wc -c) -eq 4096 ] && tail -n 1 '$tmp/capped' | grep -q 'reached its cap of 4096 bytes'"
check "  ... its stderr is whole" sh -c "[ \"\$('$gpool' logs --stderr $j3)\" = done ]"

# --- restarts, resumption, threads -----------------------------------------------------------------------
first=$(sed -n 's/^id: //p' "$tmp/ev-admin" | head -n 1)
curl -s -N --max-time 1 -H "Authorization: Bearer $ADMIN" -H "Last-Event-ID: $first" "$GPOOL_SERVER/api/v1/events" >"$tmp/ev-resume"
check "a stream with Last-Event-ID gets the events after it" sh -c "[ \"\$(sed -n 's/^id: //p' '$tmp/ev-resume' | head -n 1)\" = \"\$(sed -n 's/^id: //p' '$tmp/ev-admin' | sed -n 2p)\" ]"
threads=$(ls "/proc/$spid/task" | wc -l)
for i in $(seq 20); do stream "$tmp/ev-many-$i" -H "Authorization: Bearer $DORA" || break; done
many=$(ls "/proc/$spid/task" | wc -l)
check "20 more open streams hold no thread of the server ($threads threads before, $many after)" [ "$many" -eq "$threads" ]
expect "  ... and the server counts them" 200 '"event_streams":' "$ADMIN" GET /api/v1/status
check "  ... (at least 22)" python3 -c "import json; assert json.load(open('$tmp/body'))['event_streams'] >= 22"
j4=$(GPOOL_TOKEN=$DORA "$gpool" submit --project p --gpu 0.25 -- true)
eventually "  ... each of them gets the next event" sh -c "for i in \$(seq 20); do grep -q '\"id\":$j4,' '$tmp'/ev-many-\$i || exit 1; done"
eventually "  ... (which ends)" sh -c "[ \"\$($st $j4)\" = succeeded ]"

kill "$spid"
wait "$spid" 2>/dev/null
check "the server stops with streams open" grep -q 'stopping on signal 15' "$tmp/server.log"
check "  ... and the streams end" sh -c "sleep 0.5; for p in $streams; do kill -0 \$p 2>/dev/null && exit 1; done; exit 0"
streams=""
start_server
check "logs survive a restart of the server" sh -c "GPOOL_TOKEN=$DORA '$gpool' logs $j1 | cmp -s - '$tmp/follow'"
last=$(sed -n 's/^id: //p' "$tmp/ev-admin" | tail -n 1)
curl -s -N --max-time 1 -H "Authorization: Bearer $ADMIN" -H "Last-Event-ID: $last" "$GPOOL_SERVER/api/v1/events" >"$tmp/ev-after"
check "a stream resumed across the restart is told to resync" sh -c "python3 '$tmp/events.py' '$tmp/ev-after' | head -n 1 | grep -qx resync"

# A silent node is news, and so is its return.  A job cancelled meanwhile: its log is whole once
# its agent has had the node timeout to send the rest; the agent that comes back sends it anyway.
check "a stream after the restart" stream "$tmp/ev-restart" -H "Authorization: Bearer $ADMIN"
j5=$("$gpool" submit --project p --gpu 0.5 -- sh -c 'trap "echo stopping; exit 0" TERM; echo hello; while true; do sleep 0.2; done')
eventually "a job runs" sh -c "[ \"\$('$gpool' logs $j5)\" = hello ]"
kill "$apid"
wait "$apid" 2>/dev/null
apid=""
"$gpool" cancel "$j5" >/dev/null
call "$ADMIN" GET "/api/v1/jobs/$j5/logs" >/dev/null
check "the log of a job cancelled while its agent is away is not yet complete" [ "$(header Gpool-Log-Complete)" = false ]
eventually "a node whose agent stops is an event once it is silent" sh -c "python3 '$tmp/events.py' '$tmp/ev-restart' | grep -qx 'node n1 ready silent'"
check "  ... and gpool nodes says so" sh -c "'$gpool' nodes | grep -Eq '^n1 +ready,silent '"
eventually "the log is complete after the node timeout" sh -c "curl -s -D - -o /dev/null -H 'Authorization: Bearer $ADMIN' '$GPOOL_SERVER/api/v1/jobs/$j5/logs' | grep -qi '^Gpool-Log-Complete: true'"
start_agent
eventually "  ... and the node's return is an event" sh -c "python3 '$tmp/events.py' '$tmp/ev-restart' | grep -qx 'node n1 ready alive'"
eventually "the returning agent stops the cancelled job and sends what it wrote as it stopped" sh -c "[ \"\$('$gpool' logs $j5 | tr '\n' ' ')\" = 'hello stopping ' ]"

check "gpool --help names logs, nodes and top" sh -c "'$gpool' --help | grep -q '^  logs ' && '$gpool' --help | grep -q '^  nodes ' && '$gpool' --help | grep -q '^  top '"
echo "1..$n"
[ $failed -eq 0 ]
