#!/bin/sh
# The server in production: /metrics (checked by promtool when it is installed, and against what
# the API says), walltime limits, retries, job history and usage, with a node driven through the
# agent API by curl; and bad input on each of these, which changes nothing. TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
pid=""
beat=""
cleanup() { [ -n "$beat" ] && kill "$beat" 2>/dev/null; [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; [ $failed -ne 0 ] && cat "$tmp/server.log" >&2; rm -rf "$tmp"; }
trap cleanup EXIT
. "$(dirname "$0")/tap.sh"

serve
"$gpool" projects set p --deserved 3 >/dev/null
"$gpool" projects set q --deserved 1 >/dev/null
"$gpool" users add agent1 --unix-user root --role agent >/dev/null
"$gpool" users add dora --unix-user nobody >/dev/null
"$gpool" projects add-member q dora >/dev/null
AGENT=$("$gpool" token create --user agent1)
DORA=$("$gpool" token create --user dora)
job() { "$gpool" describe "$1" -o json | python3 -c "import json,sys; j=json.load(sys.stdin); $2"; }
report() { call "$AGENT" POST /api/v1/agent/status "{\"node\":\"n1\",\"job\":$1,\"state\":\"$2\",\"exit_code\":${3:-0}}" >/dev/null; }
count_jobs() { call "$ADMIN" GET "/api/v1/jobs?limit=1000" >/dev/null; python3 -c "import json; print(len(json.load(open('$tmp/body'))['jobs']))"; }

gpu() { printf '{"uuid":"GPU-%s","model":"H100","memory_bytes":85899345920}' "$1"; }
expect "a node of four GPUs registers" 200 '"name":"n1"' "$AGENT" POST /api/v1/agent/register \
    "{\"name\":\"n1\",\"cpu_milli\":64000,\"mem_mib\":262144,\"gpus\":[$(gpu a),$(gpu b),$(gpu c),$(gpu d)]}"
# A node whose name needs escaping in the exposition; it has no GPUs.
expect "a node with a quote and a backslash in its name registers" 200 name "$AGENT" POST /api/v1/agent/register \
    '{"name":"odd\"node\\x","cpu_milli":1000,"mem_mib":1024,"gpus":[]}'
# The agent's heartbeat measures every GPU fully busy, twice a second.
busy='[{"index":0,"utilization_pct":100},{"index":1,"utilization_pct":100},{"index":2,"utilization_pct":100},{"index":3,"utilization_pct":100,"memory_used_bytes":1073741824}]'
( while true; do curl -s -o /dev/null -X POST -H "Authorization: Bearer $AGENT" --data "{\"name\":\"n1\",\"gpus\":$busy}" "$GPOOL_SERVER/api/v1/agent/heartbeat"; sleep 0.5; done ) &
beat=$!

# --- bad input on the new fields and flags changes nothing -----------------------------------
before=$(count_jobs)
expect "walltime_seconds 0 is refused" 400 '"field":"walltime_seconds"' "$ADMIN" POST /api/v1/jobs '{"project":"p","command":["x"],"walltime_seconds":0}'
expect "walltime_seconds as text is refused" 400 '"field":"walltime_seconds"' "$ADMIN" POST /api/v1/jobs '{"project":"p","command":["x"],"walltime_seconds":"2h"}'
expect "walltime_seconds past a year is refused" 400 '"field":"walltime_seconds"' "$ADMIN" POST /api/v1/jobs '{"project":"p","command":["x"],"walltime_seconds":99999999}'
expect "retries below 0 is refused" 400 '"field":"retries"' "$ADMIN" POST /api/v1/jobs '{"project":"p","command":["x"],"retries":-1}'
expect "retries of 1.5 is refused" 400 '"field":"retries"' "$ADMIN" POST /api/v1/jobs '{"project":"p","command":["x"],"retries":1.5}'
expect "retries over 100 is refused" 400 '"field":"retries"' "$ADMIN" POST /api/v1/jobs '{"project":"p","command":["x"],"retries":101}'
"$gpool" submit --project p --walltime 2x -- x >/dev/null 2>"$tmp/err"
check "gpool submit --walltime 2x: exit 2 before sending" sh -c "[ $? -eq 2 ] && grep -q 'expected a duration' '$tmp/err'"
"$gpool" submit --project p --walltime 0 -- x >/dev/null 2>"$tmp/err"
check "gpool submit --walltime 0: the server's refusal, exit 2" sh -c "[ $? -eq 2 ] && grep -q 'field walltime_seconds' '$tmp/err'"
"$gpool" submit --project p --retries -2 -- x >/dev/null 2>"$tmp/err"
check "gpool submit --retries -2: the server's refusal, exit 2" sh -c "[ $? -eq 2 ] && grep -q 'field retries' '$tmp/err'"
expect "an unknown state in a list of states" 400 '"field":"state"' "$ADMIN" GET "/api/v1/jobs?state=succeeded,done"
expect "an empty state in a list of states" 400 '"field":"state"' "$ADMIN" GET "/api/v1/jobs?state=succeeded,,failed"
expect "a since that is no time" 400 '"field":"since"' "$ADMIN" GET "/api/v1/jobs?since=yesterday"
expect "usage by something else" 400 '"field":"by"' "$ADMIN" GET "/api/v1/usage?by=team"
expect "usage since that is no time" 400 '"field":"since"' "$ADMIN" GET "/api/v1/usage?since=-5"
expect "usage until that is no time" 400 '"field":"until"' "$ADMIN" GET "/api/v1/usage?until=1e9"
expect "usage since after until" 400 'before until' "$ADMIN" GET "/api/v1/usage?since=2000&until=1000"
"$gpool" list --since lastweek >/dev/null 2>"$tmp/err"
check "gpool list --since lastweek: exit 2" sh -c "[ $? -eq 2 ] && grep -q 'expected a duration ago' '$tmp/err'"
"$gpool" usage --by team >/dev/null 2>"$tmp/err"
check "gpool usage --by team: the server's refusal, exit 2" sh -c "[ $? -eq 2 ] && grep -q 'field by' '$tmp/err'"
check "none of them changed anything" [ "$(count_jobs)" = "$before" ]

# --- jobs in several states ------------------------------------------------------------------
ok1=$("$gpool" submit --project p --gpus 1 --name ok -- true)
flaky=$("$gpool" submit --project p --gpus 1 --name flaky --retries 1 -- false)
eventually "both are placed" job "$flaky" "assert j['state']=='assigned' and j['attempts']==1, j"
report "$ok1" running; report "$ok1" succeeded 0
report "$flaky" running; report "$flaky" failed 3
check "a failed run with a retry left is queued again" job "$flaky" "assert j['failures']==1 and 'retry 1 of 1' in j['reason'] and j['state'] in ('pending','assigned'), j"
eventually "and placed again, its second attempt" job "$flaky" "assert j['state']=='assigned' and j['attempts']==2, j"
report "$flaky" running; report "$flaky" failed 4
check "the second failure is final: failed, exit code 4, two runs kept" job "$flaky" "assert j['state']=='failed' and j['exit_code']==4 and [r['outcome'] for r in j['runs']]==['failed','failed'] and j['finished_ms']>0, j"
short=$("$gpool" submit --project p --gpu 0.5 --name short --walltime 2 --retries 3 -- sleep 100)
eventually "a job with a walltime is placed" job "$short" "assert j['state']=='assigned', j"
report "$short" running
EVENTUALLY_TRIES=60 eventually "past its walltime it is stopped and fails, not retried" job "$short" "assert j['state']=='failed' and j['reason'].startswith('walltime exceeded') and j['attempts']==1, j"
expect "and it leaves its node's assignments" 200 '"jobs":[' "$AGENT" GET "/api/v1/agent/assignments?node=n1"
check "  ... (not among them)" python3 -c "import json; assert $short not in [j['id'] for j in json.load(open('$tmp/body'))['jobs']]"
long=$("$gpool" submit --project p --gpus 2 --name long -- sleep 1000)
half=$(GPOOL_TOKEN=$DORA "$gpool" submit --project q --gpu 0.5 --name half -- sleep 1000)
# Cancelled while it waits: more GPUs than the node has, so that no pass places it first.
gone=$("$gpool" submit --project p --gpus 8 --name gone -- x)
"$gpool" cancel "$gone" >/dev/null
big=$("$gpool" submit --project p --gpus 8 --name big -- x)
both_placed() { job "$long" "assert j['state']=='assigned'" && job "$half" "assert j['state']=='assigned'"; }
eventually "the long jobs are placed" both_placed
report "$long" running; report "$half" running
sleep 1.2 # heartbeats measure the running jobs

# --- history ---------------------------------------------------------------------------------
check "gpool list --state succeeded,failed --since 1h lists the ended jobs, with their tries" sh -c "
    '$gpool' list --state succeeded,failed --since 1h >'$tmp/list' &&
    grep -Eq '^$ok1 +ok +p +ana +succeeded .* 1  ' '$tmp/list' && grep -Eq '^$flaky +flaky +p +ana +failed .* 2  failed with exit code 4' '$tmp/list' &&
    [ \$(grep -c . '$tmp/list') = 4 ]"
check "--until before they were submitted lists none of them" sh -c "'$gpool' list --until 2000-01-01 -o json | python3 -c 'import json,sys; assert json.load(sys.stdin)[\"jobs\"]==[]'"
check "describe shows attempts and each run" sh -c "'$gpool' describe $flaky | grep -Eq '^attempts +2$' && '$gpool' describe $flaky | grep -q '\"outcome\":\"failed\"'"

# --- metrics ---------------------------------------------------------------------------------
expect "/metrics without a token is 401" 401 unauthorized "" GET /metrics
expect "/metrics with a user's token is 403" 403 "admin" "$DORA" GET /metrics
got=$(curl -s -o "$tmp/metrics" -w '%{http_code} %{content_type}' -H "Authorization: Bearer $ADMIN" "$GPOOL_SERVER/metrics")
check "/metrics with an admin's token is Prometheus text" [ "$got" = "200 text/plain; version=0.0.4; charset=utf-8" ]
if command -v promtool >/dev/null 2>&1; then
    check "promtool check metrics passes on the live output" sh -c "promtool check metrics <'$tmp/metrics' >'$tmp/promtool' 2>&1 || { cat '$tmp/promtool' >&2; false; }"
else
    ok "promtool check metrics # SKIP promtool is not installed (Debian package prometheus; scripts/deps.sh installs it as root)"
fi
call "$ADMIN" GET /api/v1/projects >/dev/null; cp "$tmp/body" "$tmp/projects"
call "$ADMIN" GET /api/v1/nodes >/dev/null; cp "$tmp/body" "$tmp/nodes"
call "$ADMIN" GET "/api/v1/jobs?limit=1000" >/dev/null; cp "$tmp/body" "$tmp/jobs"
cat >"$tmp/parse.py" <<'PY'
import json, re, sys
# Parses the exposition into {(name, frozenset(labels)): value}; a line that does not parse fails.
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
def unescape(v):
    return re.sub(r'\\(.)', lambda m: '\n' if m.group(1) == 'n' else m.group(1), v)
samples = {}
for line in open(sys.argv[1]):
    line = line.rstrip('\n')
    if not line or line.startswith('#'):
        continue
    m = line_re.match(line)
    assert m, line
    labels = {k: unescape(v) for k, v in label_re.findall(m.group(2) or '')}
    samples[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
def get(name, **labels):
    return samples[(name, frozenset(labels.items()))]
def series(name):
    return {k[1]: v for k, v in samples.items() if k[0] == name}
PY
mcheck() { python3 -c "exec(open('$tmp/parse.py').read().replace('sys.argv[1]', repr('$tmp/metrics')))
projects = {p['name']: p for p in json.load(open('$tmp/projects'))['projects']}
nodes = json.load(open('$tmp/nodes'))['nodes']
jobs = json.load(open('$tmp/jobs'))['jobs']
$1"; }
check "a project's allocated GPUs match GET /projects (p: 2, q: 0.5)" mcheck "
for n, p in projects.items(): assert abs(get('gpool_project_allocated_gpus', project=n) - p['allocated_gpus']) < 1e-9, n
assert projects['p']['allocated_gpus'] == 2 and projects['q']['allocated_gpus'] == 0.5, projects"
check "deserved and fair share match GET /projects" mcheck "
for n, p in projects.items():
    assert get('gpool_project_deserved_gpus', project=n) == p['deserved_gpus']
    assert abs(get('gpool_project_fair_share_gpus', project=n) - p['fair_share_gpus']) < 1e-9"
check "projects use what their running jobs' GPUs measure (all busy: p 2, q's half GPU alone 1)" mcheck "
assert get('gpool_project_used_gpus', project='p') == 2 and get('gpool_project_used_gpus', project='q') == 1, series('gpool_project_used_gpus')"
check "each GPU's allocated milli matches GET /nodes" mcheck "
for g in nodes[0]['gpus']:
    assert get('gpool_gpu_allocated_milli', node='n1', gpu=str(g['index']), uuid=g['uuid'], model='H100') == round(g['allocated'] * 1000)
    assert get('gpool_gpu_borrowed_milli', node='n1', gpu=str(g['index']), uuid=g['uuid'], model='H100') == 0
assert sum(series('gpool_gpu_allocated_milli').values()) == 2500"
check "each GPU's measured use, and none for what was not measured" mcheck "
assert get('gpool_gpu_utilization_ratio', node='n1', gpu='0', uuid='GPU-a', model='H100') == 1
assert len(series('gpool_gpu_memory_used_bytes')) == 1 and get('gpool_gpu_memory_used_bytes', node='n1', gpu='3', uuid='GPU-d', model='H100') == 2**30"
check "the odd node's name comes back whole through the label escapes" mcheck "
assert get('gpool_node_up', node='odd\"node\\\\x') == 1 and get('gpool_node_up', node='n1') == 1, series('gpool_node_up')"
check "jobs by state match GET /jobs" mcheck "
for st in ('pending','assigned','running','swapped','succeeded','failed','cancelled'):
    assert get('gpool_jobs', state=st) == sum(j['state'] == st for j in jobs), st"
check "the scheduler's cycle histogram: cumulative buckets, +Inf equal to the count" mcheck "
b = sorted((float(dict(k)['le']), v) for k, v in series('gpool_scheduler_cycle_seconds_bucket').items())
assert b[-1][0] == float('inf') and b[-1][1] == get('gpool_scheduler_cycle_seconds_count') > 0
assert all(x[1] <= y[1] for x, y in zip(b, b[1:])) and get('gpool_scheduler_cycle_seconds_sum') > 0"
check "the request histogram counts by method, route and status (the 400s above among them)" mcheck "
assert get('gpool_http_request_duration_seconds_count', method='POST', route='/api/v1/jobs', status='400') == 8
assert get('gpool_http_request_duration_seconds_count', method='GET', route='/api/v1/jobs/{id}', status='200') >= 10
assert get('gpool_http_request_duration_seconds_bucket', method='GET', route='/metrics', status='401', le='+Inf') == 1"

# --- usage -----------------------------------------------------------------------------------
kill "$beat"; wait "$beat" 2>/dev/null; beat=""
now=$(python3 -c 'import time; print(int(time.time() * 1000))')
expect "usage by project" 200 '"by":"project"' "$ADMIN" GET "/api/v1/usage?until=$now"
cp "$tmp/body" "$tmp/usage"
check "allocated GPU-hours are each run's GPUs times its time in the period" python3 -c "
import json, subprocess
u = {r['project']: r for r in json.load(open('$tmp/usage'))['rows']}
want = {}
for i in ($ok1, $flaky, $short, $long, $half):
    j = json.loads(subprocess.check_output(['$gpool', 'describe', str(i), '-o', 'json']))
    for r in j['runs']:
        end = r['ended_ms'] or $now
        want[j['project']] = want.get(j['project'], 0) + r['allocated_gpus'] * max(0, min(end, $now) - r['started_ms']) / 3600e3
for p in ('p', 'q'):
    assert abs(u[p]['allocated_gpu_hours'] - want[p]) < 1e-6, (p, u[p], want[p])
assert u['p']['jobs'] == 4 and u['q']['jobs'] == 1, u"
check "used and measured GPU-hours come from the heartbeats (all GPUs busy: q's half GPU, alone on one, used twice what it was given)" python3 -c "
import json
u = {r['project']: r for r in json.load(open('$tmp/usage'))['rows']}
for p in ('p', 'q'):
    assert 0 < u[p]['measured_gpu_hours'] <= u[p]['allocated_gpu_hours'], u[p]
    assert u[p]['used_gpu_hours'] >= u[p]['measured_gpu_hours'], u[p]
assert abs(u['q']['used_gpu_hours'] - 2 * u['q']['measured_gpu_hours']) < 0.01 * u['q']['used_gpu_hours'], u['q']"
expect "a period before any job has nothing" 200 '"rows":[]' "$ADMIN" GET "/api/v1/usage?since=1000&until=2000"
TOKEN_AS_DORA=$DORA
check "a user's usage by user is their own row only" sh -c "GPOOL_TOKEN=$TOKEN_AS_DORA '$gpool' usage --by user --since 1h -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert [r[\"user\"] for r in d[\"rows\"]]==[\"dora\"] and d[\"rows\"][0][\"jobs\"]==1, d'"
check "gpool usage prints a table by project" sh -c "'$gpool' usage --since 1d | grep -Eq '^p +[0-9.]+ +[0-9.]+ +[0-9.]+ +4$'"
check "gpool usage --until a date before it all is empty" sh -c "[ \$('$gpool' usage --since 1999-12-01 --until 2000-01-01T00:00 | grep -c .) = 1 ]"

kill "$pid"
wait "$pid" 2>/dev/null
pid=""
echo "1..$n"
[ $failed -eq 0 ]
