#!/bin/sh
# The agent side of `gpool server`, driven by curl as an agent would: a node registers, jobs are
# assigned to its GPUs, the agent's long-poll is answered when assignments change, the agent's
# reports move jobs along, cordoned nodes take nothing new, and a silent node's jobs go back to
# the queue. TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
pid=""
beat=""
cleanup() { [ -n "$beat" ] && kill "$beat" 2>/dev/null; [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; [ $failed -ne 0 ] && cat "$tmp/server.log" >&2; rm -rf "$tmp"; }
trap cleanup EXIT
. "$(dirname "$0")/tap.sh"

serve --node-timeout 2
"$gpool" projects set p --deserved 4 >/dev/null
"$gpool" users add agent1 --unix-user root --role agent >/dev/null
token_for() { GPOOL_TOKEN=$ADMIN "$gpool" token create --user "$1"; }
AGENT=$(token_for agent1)
field() { python3 -c "import json,sys; d=json.load(open('$tmp/body')); print($1)"; }
node='{"name":"n1","cpu_milli":32000,"mem_mib":65536,"gpus":[{"uuid":"GPU-a","model":"H100","memory_bytes":85899345920},{"uuid":"GPU-b","model":"H100","memory_bytes":85899345920}]}'

USER=$ADMIN
"$gpool" users add dora --unix-user nobody >/dev/null
DORA=$(token_for dora)
expect "a user's token on the agent endpoints is refused" 403 "agent tokens" "$DORA" POST /api/v1/agent/register "$node"
expect "an agent's token on the user endpoints is refused" 403 "agent endpoints only" "$AGENT" GET /api/v1/jobs
expect "a node without GPUs list is refused" 400 'cpu_milli' "$AGENT" POST /api/v1/agent/register '{"name":"n1","cpu_milli":1,"mem_mib":1}'
expect "a GPU without memory is refused" 400 'gpus[0]' "$AGENT" POST /api/v1/agent/register '{"name":"n1","cpu_milli":1,"mem_mib":1,"gpus":[{"uuid":"x","model":"m","memory_bytes":0}]}'
expect "a node registers" 200 '"name":"n1"' "$AGENT" POST /api/v1/agent/register "$node"
# The agent's heartbeat, every half second, until the silence test.
( while true; do curl -s -o /dev/null -X POST -H "Authorization: Bearer $AGENT" --data '{"name":"n1"}' "$GPOOL_SERVER/api/v1/agent/heartbeat"; sleep 0.5; done ) &
beat=$!
expect "the node is listed, ready, with its GPUs" 200 '"state":"ready"' "$USER" GET /api/v1/nodes
check "  ... two GPUs" [ "$(field 'len(d["nodes"][0]["gpus"])')" = 2 ]

expect "assignments, none yet" 200 '"jobs":[]' "$AGENT" GET "/api/v1/agent/assignments?node=n1"
gen=$(field 'd["generation"]')
# A long-poll waits; a submission answers it with the new assignment.
curl -s -H "Authorization: Bearer $AGENT" "$GPOOL_SERVER/api/v1/agent/assignments?node=n1&since=$gen&wait=60" >"$tmp/poll" &
poller=$!
sleep 0.3
j1=$("$gpool" submit --project p --gpu 0.5 --name half -- echo hi)
wait "$poller"
check "the waiting long-poll is answered with the new job" python3 -c "
import json; d = json.load(open('$tmp/poll'))
assert d['generation'] > $gen and [j['id'] for j in d['jobs']] == [$j1], d
j = d['jobs'][0]; assert j['gpus'] == '0' and j['unix_user'] == 'nobody' and j['uid'] == 65534 and j['spec']['command'] == ['echo', 'hi'], j"
check "the job shows as assigned to n1" sh -c "'$gpool' describe $j1 -o json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[\"state\"]==\"assigned\" and j[\"node\"]==\"n1\"'"
expect "a long-poll with nothing new waits out its time and answers the same" 200 "\"id\":$j1" "$AGENT" GET "/api/v1/agent/assignments?node=n1&since=$(field 'd["generation"]')&wait=1"
# A change on one node answers that node's long-poll only: another node's agent keeps waiting.
expect "a second node registers" 200 '"name":"n2"' "$AGENT" POST /api/v1/agent/register '{"name":"n2","cpu_milli":32000,"mem_mib":65536,"gpus":[{"uuid":"GPU-c","model":"H100","memory_bytes":85899345920}]}'
expect "and is cordoned, to take nothing" 200 '"state":"cordoned"' "$USER" POST /api/v1/nodes/n2/cordon
expect "n2's assignments" 200 '"jobs":[]' "$AGENT" GET "/api/v1/agent/assignments?node=n2"
curl -s -H "Authorization: Bearer $AGENT" "$GPOOL_SERVER/api/v1/agent/assignments?node=n2&since=$(field 'd["generation"]')&wait=60" >"$tmp/poll2" &
poller2=$!
expect "n1's assignments" 200 "\"id\":$j1" "$AGENT" GET "/api/v1/agent/assignments?node=n1"
curl -s -H "Authorization: Bearer $AGENT" "$GPOOL_SERVER/api/v1/agent/assignments?node=n1&since=$(field 'd["generation"]')&wait=60" >"$tmp/poll" &
poller=$!
sleep 0.3
jx=$("$gpool" submit --project p --gpu 0.5 --name other -- true)
wait "$poller"
check "n1's long-poll is answered with its new job" grep -q "\"id\":$jx" "$tmp/poll"
check "n2's long-poll still waits: nothing changed there" kill -0 "$poller2"
"$gpool" cancel "$jx" >/dev/null
kill "$poller2"
wait "$poller2" 2>/dev/null
check "  ... and has had no answer" [ ! -s "$tmp/poll2" ]
expect "the agent reports it running" 200 '{}' "$AGENT" POST /api/v1/agent/status "{\"node\":\"n1\",\"job\":$j1,\"state\":\"running\"}"
expect "a report from another node is a conflict" 409 conflict "$AGENT" POST /api/v1/agent/status "{\"node\":\"n2\",\"job\":$j1,\"state\":\"failed\"}"
expect "a bad report is refused" 400 invalid_field "$AGENT" POST /api/v1/agent/status "{\"node\":\"n1\",\"job\":$j1,\"state\":\"exploded\"}"
j2=$("$gpool" submit --project p --gpus 2 -- big)
eventually "a job that needs both GPUs waits while one is shared" sh -c "'$gpool' describe $j2 | grep -q 'no node has 2 whole GPUs free'"
expect "the agent reports the first one done" 200 '{}' "$AGENT" POST /api/v1/agent/status "{\"node\":\"n1\",\"job\":$j1,\"state\":\"succeeded\",\"exit_code\":0}"
eventually "then the big one is assigned both GPUs" sh -c "'$gpool' describe $j2 -o json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[\"state\"]==\"assigned\" and j[\"gpus\"]==\"0,1\", j'"
check "the first one ended with its exit code" sh -c "'$gpool' describe $j1 -o json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[\"state\"]==\"succeeded\" and j[\"exit_code\"]==0'"
"$gpool" cancel "$j2" >/dev/null
expect "a cancelled job leaves the node's assignments" 200 '"jobs":[]' "$AGENT" GET "/api/v1/agent/assignments?node=n1"

# Cordon: nothing new lands; uncordon: it does.
expect "cordon is for admins" 403 forbidden "$DORA" POST /api/v1/nodes/n1/cordon
expect "cordon" 200 '"state":"cordoned"' "$USER" POST /api/v1/nodes/n1/cordon
j3=$("$gpool" submit --project p --gpu 0.5 -- x)
sleep 0.5
check "a cordoned node takes no new job" sh -c "'$gpool' describe $j3 -o json | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"state\"]==\"pending\"'"
expect "uncordon" 200 '"state":"ready"' "$USER" POST /api/v1/nodes/n1/uncordon
eventually "after uncordon it lands" sh -c "'$gpool' describe $j3 -o json | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"state\"]==\"assigned\"'"
expect "an unknown node action" 404 "no node action" "$USER" POST /api/v1/nodes/n1/reboot
expect "an unknown node" 404 "no node 'n9'" "$USER" POST /api/v1/nodes/n9/cordon

# Silence: with a 2 s node timeout and no heartbeat, the job goes back to the queue.
expect "a heartbeat from an unknown node" 404 "register first" "$AGENT" POST /api/v1/agent/heartbeat '{"name":"n9"}'
kill "$beat"
wait "$beat" 2>/dev/null
sleep 2
eventually "a silent node's jobs are queued again, with the reason" sh -c "'$gpool' describe $j3 -o json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[\"state\"]==\"pending\" and j[\"node\"]==\"\", j'"
expect "the node heartbeats again" 200 '{}' "$AGENT" POST /api/v1/agent/heartbeat '{"name":"n1"}'
eventually "and the job is placed again" sh -c "'$gpool' describe $j3 -o json | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"state\"]==\"assigned\"'"

# The queue a server finds when it starts is its to schedule: jobs submitted before a restart
# are placed after it, and one cancelled meanwhile is not.
"$gpool" cancel "$j3" >/dev/null
expect "cordon n1 before the restart" 200 '"state":"cordoned"' "$USER" POST /api/v1/nodes/n1/cordon
ja=$("$gpool" submit --project p --gpu 0.5 --name before-restart -- x)
jb=$("$gpool" submit --project p --gpu 0.5 --name cancelled-before-restart -- x)
jc=$("$gpool" submit --project p --gpu 0.5 --name also-before-restart -- x)
"$gpool" cancel "$jb" >/dev/null
kill "$pid"
wait "$pid" 2>/dev/null
"$gpool" server --listen "127.0.0.1:$port" --store "$store" --log-dir "$tmp/logs" --node-timeout 2 \
    2>>"$tmp/server.log" &
pid=$!
for _ in $(seq 50); do curl -s "$GPOOL_SERVER/api/v1/status" >/dev/null && break; sleep 0.1; done
( while true; do curl -s -o /dev/null -X POST -H "Authorization: Bearer $AGENT" --data '{"name":"n1"}' "$GPOOL_SERVER/api/v1/agent/heartbeat"; sleep 0.5; done ) &
beat=$!
expect "after the restart, uncordon n1" 200 '"state":"ready"' "$USER" POST /api/v1/nodes/n1/uncordon
assigned() { "$gpool" describe "$1" -o json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["state"]=="assigned", j'; }
eventually "the restarted server places a job submitted before it started" assigned "$ja"
eventually "  ... and the other one" assigned "$jc"
check "the job cancelled before the restart stays cancelled, never placed" sh -c "'$gpool' describe $jb -o json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[\"state\"]==\"cancelled\" and j[\"runs\"]==[], j'"

# A burst: 40 quarter-GPU jobs onto a node of 16 GPUs, every other one cancelled as soon as it is
# acknowledged, while the passes run.  Each job left is placed once, no cancelled job holds a
# GPU, and the GPUs hold exactly the jobs assigned.
"$gpool" cancel "$ja" >/dev/null
"$gpool" cancel "$jc" >/dev/null
expect "cordon n1" 200 '"state":"cordoned"' "$USER" POST /api/v1/nodes/n1/cordon
gpus16=$(python3 -c "import json; print(json.dumps([{'uuid': f'GPU-w{i}', 'model': 'H100', 'memory_bytes': 85899345920} for i in range(16)]))")
expect "a node of 16 GPUs registers" 200 '"name":"wide"' "$AGENT" POST /api/v1/agent/register "{\"name\":\"wide\",\"cpu_milli\":256000,\"mem_mib\":1048576,\"gpus\":$gpus16}"
( while true; do curl -s -o /dev/null -X POST -H "Authorization: Bearer $AGENT" --data '{"name":"wide"}' "$GPOOL_SERVER/api/v1/agent/heartbeat"; sleep 0.5; done ) &
beat2=$!
: >"$tmp/kept"
: >"$tmp/cancelled"
for i in $(seq 20); do
    "$gpool" submit --project p --gpu 0.25 --cpu 1 --memory 1GiB --name "kept-$i" -- x >>"$tmp/kept"
    c=$("$gpool" submit --project p --gpu 0.25 --cpu 1 --memory 1GiB --name "gone-$i" -- x)
    "$gpool" cancel "$c" >/dev/null
    echo "$c" >>"$tmp/cancelled"
done
burst() {
    python3 - "$GPOOL_SERVER" "$ADMIN" "$tmp/kept" "$tmp/cancelled" <<'PY'
import json, sys, urllib.request
server, token, kept, cancelled = sys.argv[1:]
def get(path):
    req = urllib.request.Request(server + "/api/v1" + path, headers={"Authorization": "Bearer " + token})
    return json.load(urllib.request.urlopen(req))
kept = [int(x) for x in open(kept).read().split()]
cancelled = [int(x) for x in open(cancelled).read().split()]
for i in kept:
    j = get(f"/jobs/{i}")
    assert j["state"] == "assigned" and j["node"] == "wide" and j["attempts"] == 1, j
for i in cancelled:
    j = get(f"/jobs/{i}")
    assert j["state"] == "cancelled" and all(r["ended_ms"] for r in j["runs"]), j
wide = [n for n in get("/nodes")["nodes"] if n["name"] == "wide"][0]
held = sorted(x for g in wide["gpus"] for x in g["jobs"])
assert held == sorted(kept), (held, kept)
assert abs(sum(g["allocated"] for g in wide["gpus"]) - 0.25 * len(kept)) < 1e-6, wide
PY
}
eventually "every job left of the burst is placed once, and the GPUs hold exactly them" burst
for i in $(cat "$tmp/kept"); do "$gpool" cancel "$i" >/dev/null; done

# Many agents' reports at once, and the server killed with SIGKILL while they come: every report
# it acknowledged is in the store when it restarts.  80 jobs of 0.05 GPU on "wide"; 16 threads
# report each running, then succeeded, each on a connection of its own; the server is killed once
# 40 reports have been acknowledged.
reports() {
    python3 - "$GPOOL_SERVER" "$ADMIN" "$AGENT" "$1" "$tmp/acked-reports" <<'PY'
import json, os, signal, sys, threading, time, urllib.error, urllib.request
server, admin, agent, pid, out = sys.argv[1:]
def call(token, method, path, body=None):
    req = urllib.request.Request(server + "/api/v1" + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=30) as f:
            return f.status, json.load(f)
    except urllib.error.HTTPError as e:
        return e.code, None
ids = [call(admin, "POST", "/jobs", {"project": "p", "gpu": 0.05, "command": ["x"],
                                     "name": f"report-{i}"})[1]["id"] for i in range(80)]
for _ in range(300):
    if all(call(admin, "GET", f"/jobs/{i}")[1]["state"] == "assigned" for i in ids):
        break
    time.sleep(0.1)
else:
    sys.exit("the 80 jobs were not all placed")
acked, lock, unsent = [], threading.Lock(), list(ids)
def agent_thread():
    while True:
        with lock:
            if not unsent:
                return
            job = unsent.pop()
        for state in ("running", "succeeded"):
            try:
                status, _ = call(agent, "POST", "/agent/status",
                                 {"node": "wide", "job": job, "state": state, "exit_code": 0})
            except OSError:
                return  # the server is gone
            assert status == 200, (job, state, status)
            with lock:
                acked.append((job, state))
threads = [threading.Thread(target=agent_thread) for _ in range(16)]
for t in threads:
    t.start()
while len(acked) < 40 and any(t.is_alive() for t in threads):
    time.sleep(0.001)
os.kill(int(pid), signal.SIGKILL)
for t in threads:
    t.join()
with open(out, "w") as f:
    for job, state in acked:
        print(job, state, file=f)
with open(out + ".left", "w") as f:
    print(unsent[0], file=f)  # a job no report was sent for: still assigned on wide
PY
}
check "16 threads report 80 jobs, the server killed with SIGKILL meanwhile" reports "$pid"
wait "$pid" 2>/dev/null
acked=$(grep -c . "$tmp/acked-reports")
check "reports were acknowledged before the kill ($acked)" [ "$acked" -ge 40 ]
"$gpool" server --listen "127.0.0.1:$port" --store "$store" --log-dir "$tmp/logs" --node-timeout 2 \
    2>>"$tmp/server.log" &
pid=$!
for _ in $(seq 50); do curl -s "$GPOOL_SERVER/api/v1/status" >/dev/null && break; sleep 0.1; done
kept_reports() {
    python3 - "$GPOOL_SERVER" "$ADMIN" "$tmp/acked-reports" <<'PY'
import json, sys, urllib.request
server, token, acked = sys.argv[1:]
for line in open(acked):
    job, state = line.split()
    req = urllib.request.Request(f"{server}/api/v1/jobs/{job}", headers={"Authorization": "Bearer " + token})
    j = json.load(urllib.request.urlopen(req))
    assert j["state"] in ((state,) if state == "succeeded" else ("running", "succeeded")), (line, j)
PY
}
check "every acknowledged report is in the store after the restart" kept_reports
done_job=$(awk '$2 == "succeeded" { print $1; exit }' "$tmp/acked-reports")
expect "a report for a job that has ended is a conflict" 409 "has ended" "$AGENT" POST /api/v1/agent/status "{\"node\":\"wide\",\"job\":$done_job,\"state\":\"running\"}"
left=$(cat "$tmp/acked-reports.left")
expect "a report for a job that is not on that node is a conflict" 409 "not assigned to that node" "$AGENT" POST /api/v1/agent/status "{\"node\":\"n1\",\"job\":$left,\"state\":\"failed\",\"exit_code\":1}"
expect "  ... and from its node it is taken" 200 '{}' "$AGENT" POST /api/v1/agent/status "{\"node\":\"wide\",\"job\":$left,\"state\":\"running\"}"
kill "$beat2"

kill "$pid"
wait "$pid" 2>/dev/null
pid=""
echo "1..$n"
[ $failed -eq 0 ]
