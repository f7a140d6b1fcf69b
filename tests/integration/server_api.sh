#!/bin/sh
# `gpool server` and the client commands against a real server on a free port: every endpoint and
# command, the errors a user gets (nothing changed), and the crash test: jobs acknowledged before a
# kill -9 are all there after a restart. TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { desc=$1; shift; if "$@"; then ok "$desc"; else not_ok "$desc"; fi; }

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
store="sqlite:$tmp/gpool.db"
export GPOOL_SERVER="http://127.0.0.1:$port" HOME="$tmp"
start() {
    "$gpool" server --listen "127.0.0.1:$port" --store "$store" 2>>"$tmp/server.log" &
    pid=$!
    for _ in $(seq 50); do curl -s "$GPOOL_SERVER/api/v1/status" >/dev/null && return 0; sleep 0.1; done
    return 1
}
api() { # method path [body] -> prints "STATUS BODY"
    curl -s -o "$tmp/body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer ${TOKEN:-}" \
        -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$GPOOL_SERVER$2"
}
expect() { # desc status code_or_text method path [body]
    desc=$1 want=$2 text=$3
    shift 3
    got=$(api "$@")
    if [ "$got" = "$want" ] && grep -qF -- "$text" "$tmp/body"; then ok "$desc"; else
        not_ok "$desc (HTTP $got: $(head -c 300 "$tmp/body"))"; fi
}

# --- init and start -------------------------------------------------------------------------
"$gpool" server init --store "$store" --admin root-admin --unix-user root >/dev/null 2>"$tmp/err"
check "init refuses root as the account workloads run as" sh -c "grep -q 'never run as root' '$tmp/err'"
"$gpool" server init --store "$store" --admin ana --unix-user nosuchaccount >/dev/null 2>"$tmp/err"
check "init refuses an unknown Unix account" sh -c "grep -q \"no Unix account 'nosuchaccount'\" '$tmp/err'"
TOKEN=$("$gpool" server init --store "$store" --admin ana --unix-user nobody)
check "init prints the first admin token" sh -c "echo '$TOKEN' | grep -Eq '^gp_[0-9a-f]{64}$'"
"$gpool" server init --store "$store" --admin bob --unix-user nobody >/dev/null 2>"$tmp/err"
check "init refuses a store that has users" sh -c "grep -q 'already has users' '$tmp/err'"
check "the server starts" start
export GPOOL_TOKEN="$TOKEN"

# --- authentication and the store --------------------------------------------------------------
TOKEN=bad expect "a bad token is 401" 401 unauthorized GET /api/v1/jobs
TOKEN= expect "no token is 401" 401 unauthorized GET /api/v1/jobs
expect "the running store is WAL with synchronous FULL" 200 '"journal_mode":"wal","synchronous":"full"' GET /api/v1/status

# --- projects and users ----------------------------------------------------------------------
check "projects set creates a project" sh -c "'$gpool' projects set vision --deserved 4 --limit 8 --weight 2 >/dev/null"
check "projects lists it" sh -c "'$gpool' projects | grep -Eq '^vision +4.00 +8.00 +2'"
expect "an unknown project field is refused" 400 unknown_field PUT /api/v1/projects/x '{"deservd_gpus": 1}'
expect "a negative quota is refused" 400 deserved_gpus PUT /api/v1/projects/x '{"deserved_gpus": -1}'
expect "an unknown parent is refused" 404 "no parent project 'dept'" PUT /api/v1/projects/x '{"parent": "dept"}'
expect "a department" 200 '"name":"dept"' PUT /api/v1/projects/dept '{"deserved_gpus": 16, "parent": "vision"}'
expect "a cycle of departments is refused" 400 "cycle" PUT /api/v1/projects/vision '{"deserved_gpus": 4, "parent": "dept"}'
check "users add makes a user" sh -c "'$gpool' users add carl --unix-user nobody | grep -q carl"
"$gpool" users add carl --unix-user nobody >/dev/null 2>"$tmp/err"
check "a second user of the same name is refused" sh -c "grep -q \"user 'carl' exists\" '$tmp/err'"
expect "a user running as root is refused" 400 "never run as root" POST /api/v1/users '{"name":"r","unix_user":"root"}'
expect "an unknown role is refused" 400 "unknown role" POST /api/v1/users '{"name":"r","unix_user":"nobody","role":"king"}'
expect "a token for yourself" 201 '"token":"gp_' POST /api/v1/tokens
ADMIN=$TOKEN
TOKEN=$ADMIN api POST /api/v1/users '{"name":"dora","unix_user":"nobody","role":"user"}' >/dev/null
DORA=$(GPOOL_TOKEN=$ADMIN "$gpool" token create --user dora)
check "an admin makes a token for another user" sh -c "echo '$DORA' | grep -Eq '^gp_[0-9a-f]{64}$'"
TOKEN=$DORA expect "a user may not make tokens for others" 403 forbidden POST /api/v1/users/ana/tokens
expect "a token for an unknown user" 404 "no user 'zed'" POST /api/v1/users/zed/tokens
TOKEN=$DORA expect "a user may not change projects" 403 forbidden PUT /api/v1/projects/vision '{"deserved_gpus": 9}'
TOKEN=$DORA expect "a user may not submit to a project it is not a member of" 403 "not a member" POST /api/v1/jobs '{"project":"vision","command":["x"]}'
check "projects add-member" sh -c "'$gpool' projects add-member vision dora >/dev/null"
TOKEN=$DORA expect "a member may submit" 201 '"state":"pending"' POST /api/v1/jobs '{"project":"vision","command":["x"],"gpu":0.5}'

# --- jobs ------------------------------------------------------------------------------------
id=$("$gpool" submit --project vision --gpu 0.5 --gpu-limit 1 --cpu 2 --memory 8GiB --name t1 -e SEED=1 -- python train.py --epochs 3)
check "submit prints the job id" sh -c "echo '$id' | grep -Eq '^[0-9]+$'"
sleep 1.3
check "list shows it with a wait reason" sh -c "'$gpool' list | grep -E \"^$id +t1 +vision +ana +pending\" | grep -q 'no node has joined'"
check "describe shows the stored request" sh -c "'$gpool' describe $id -o json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j[\"spec\"][\"command\"]==[\"python\",\"train.py\",\"--epochs\",\"3\"] and j[\"spec\"][\"env\"]=={\"SEED\":\"1\"} and j[\"reason\"]'"
printf '{"project":"vision","command":["sleep","1"],"gpus":2,"priority":"interactive"}' >"$tmp/job.json"
check "submit -f job.json" sh -c "'$gpool' submit -f '$tmp/job.json' | grep -Eq '^[0-9]+$'"
n_before=$(api GET "/api/v1/jobs?limit=1000" >/dev/null; python3 -c "import json; print(len(json.load(open('$tmp/body'))['jobs']))")
printf '{"project": "vision",\n "command": ["x"],,}' >"$tmp/bad.json"
"$gpool" submit -f "$tmp/bad.json" >/dev/null 2>"$tmp/err"
check "a job file that is not JSON: exit 2, with its name and line" sh -c "[ $? -eq 2 ] && grep -q '$tmp/bad.json:2:' '$tmp/err'"
printf '{"project": "vision", "project": "other", "command": ["x"]}' >"$tmp/dup.json"
"$gpool" submit -f "$tmp/dup.json" >/dev/null 2>"$tmp/err"
check "a job file with a key twice: exit 2" sh -c "[ $? -eq 2 ] && grep -q 'duplicate' '$tmp/err'"
printf '[{"project": "vision", "command": ["x"]}]' >"$tmp/list.json"
"$gpool" submit -f "$tmp/list.json" >/dev/null 2>"$tmp/err"
check "a job file that is not one object: exit 2" sh -c "[ $? -eq 2 ] && grep -q 'one JSON object' '$tmp/err'"
"$gpool" submit -f "$tmp/none.json" >/dev/null 2>"$tmp/err"
check "a missing job file: exit 2" sh -c "[ $? -eq 2 ] && grep -q 'No such file' '$tmp/err'"
n_after=$(api GET "/api/v1/jobs?limit=1000" >/dev/null; python3 -c "import json; print(len(json.load(open('$tmp/body'))['jobs']))")
check "  ... none of them submitted anything" [ "$n_before" = "$n_after" ]
check "list filters by state and prints JSON" sh -c "'$gpool' list --state pending -o json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d[\"jobs\"])==3 and all(j[\"state\"]==\"pending\" for j in d[\"jobs\"])'"
TOKEN=$DORA expect "a user sees only its own jobs" 200 '"next":null' GET /api/v1/jobs
check "  ... exactly one" sh -c "python3 -c 'import json; d=json.load(open(\"$tmp/body\")); assert len(d[\"jobs\"])==1 and d[\"jobs\"][0][\"user\"]==\"dora\"'"
TOKEN=$DORA expect "another user's job is not found" 404 not_found GET "/api/v1/jobs/$id"
expect "pages: limit and next" 200 '"next":' GET "/api/v1/jobs?limit=1"
check "  ... next is the last id shown" sh -c "python3 -c 'import json; d=json.load(open(\"$tmp/body\")); assert d[\"next\"]==d[\"jobs\"][0][\"id\"] and len(d[\"jobs\"])==1'"
expect "a bad limit is refused" 400 limit GET "/api/v1/jobs?limit=0"
expect "an unknown state is refused" 400 "unknown state" GET "/api/v1/jobs?state=sleeping"
check "cancel" sh -c "'$gpool' cancel $id | grep -Eq '^state +cancelled'"
"$gpool" cancel "$id" >/dev/null 2>"$tmp/err"
check "cancelling an ended job is a conflict, exit 2" sh -c "[ $? -eq 2 ] && grep -q 'already ended' '$tmp/err'"
expect "cancel by DELETE" 200 cancelled DELETE "/api/v1/jobs/$((id + 1))"
expect "an unknown job is 404" 404 not_found GET /api/v1/jobs/99999
expect "an unknown endpoint is 404" 404 "no endpoint" GET /api/v1/nope
expect "nodes lists the pool's nodes" 200 '"nodes":[]' GET /api/v1/nodes

# --- bad jobs change nothing ---------------------------------------------------------------------
before=$(api GET "/api/v1/jobs?limit=1000" >/dev/null; python3 -c "import json; print(len(json.load(open('$tmp/body'))['jobs']))")
expect "bad JSON" 400 bad_json POST /api/v1/jobs '{"project": '
expect "an unknown field" 400 '"field":"gpuz"' POST /api/v1/jobs '{"project":"vision","command":["x"],"gpuz":1}'
expect "a wrong type" 400 '"field":"command"' POST /api/v1/jobs '{"project":"vision","command":"x"}'
expect "a fraction outside (0, 1]" 400 '"field":"gpu"' POST /api/v1/jobs '{"project":"vision","command":["x"],"gpu":1.5}'
expect "a zero fraction" 400 '"field":"gpu"' POST /api/v1/jobs '{"project":"vision","command":["x"],"gpu":0}'
expect "gpus and gpu together" 400 "give one of" POST /api/v1/jobs '{"project":"vision","command":["x"],"gpus":1,"gpu":0.5}'
expect "a limit below the fraction" 400 '"field":"gpu_limit"' POST /api/v1/jobs '{"project":"vision","command":["x"],"gpu":0.5,"gpu_limit":0.25}'
expect "a bad size" 400 '"field":"gpu_memory"' POST /api/v1/jobs '{"project":"vision","command":["x"],"gpu_memory":"lots"}'
expect "an unknown priority" 400 '"field":"priority"' POST /api/v1/jobs '{"project":"vision","command":["x"],"priority":"urgent"}'
expect "a duplicate key" 400 bad_json POST /api/v1/jobs '{"project":"vision","project":"x","command":["x"]}'
expect "an unknown project" 404 unknown_project POST /api/v1/jobs '{"project":"nope","command":["x"]}'
head -c 1100000 /dev/zero | tr '\0' 'a' >"$tmp/big"
got=$(curl -s -o "$tmp/body" -w '%{http_code}' -X POST -H "Authorization: Bearer $TOKEN" --data-binary @"$tmp/big" "$GPOOL_SERVER/api/v1/jobs")
check "a body over 1 MiB is 413" sh -c "[ '$got' = 413 ] && grep -q too_large '$tmp/body'"
after=$(api GET "/api/v1/jobs?limit=1000" >/dev/null; python3 -c "import json; print(len(json.load(open('$tmp/body'))['jobs']))")
check "none of them changed anything" [ "$before" = "$after" ]
"$gpool" submit --project vision --gpu abc -- x >/dev/null 2>"$tmp/err"
check "the CLI refuses a bad number before sending, exit 2" sh -c "[ $? -eq 2 ] && grep -q 'not a number' '$tmp/err'"
GPOOL_SERVER=http://127.0.0.1:1 "$gpool" list >/dev/null 2>"$tmp/err"
check "an unreachable server is exit 1 with a message" sh -c "[ $? -eq 1 ] && grep -q 'cannot reach' '$tmp/err'"
GPOOL_SERVER=https://127.0.0.1:1 "$gpool" list >/dev/null 2>"$tmp/err"
check "an https:// server goes through gpool-core's client: unreachable, exit 1" sh -c "[ $? -eq 1 ] && grep -q 'cannot reach https://127.0.0.1:1' '$tmp/err'"
GPOOL_CORE="$tmp/no-such-core" "$gpool" server --help >/dev/null 2>"$tmp/err"
check "without gpool-core, gpool server says what it cannot run, exit 1" sh -c "[ $? -eq 1 ] && grep -q 'cannot run $tmp/no-such-core' '$tmp/err'"
GPOOL_CORE="$tmp/no-such-core" "$gpool" list --project 'a b&c' -o json >"$tmp/out" 2>"$tmp/err"
check "client commands need no gpool-core (a project name escaped in the query)" sh -c "[ $? -eq 0 ] && grep -q '\"jobs\": \[\]' '$tmp/out'"
mkdir -p "$tmp/.config/gpool"
printf 'server = %s\ntoken = %s\n' "$GPOOL_SERVER" "$TOKEN" >"$tmp/.config/gpool/config"
check "the config file gives server and token" sh -c "env -u GPOOL_SERVER -u GPOOL_TOKEN '$gpool' list >/dev/null"

# --- crash test: kill -9 while submitting --------------------------------------------------------
: >"$tmp/acked"
( while true; do "$gpool" submit --project vision --gpu 0.25 -- x 2>/dev/null >>"$tmp/acked" || true; done ) &
loop=$!
sleep 2
kill -9 "$pid"
sleep 0.3
kill "$loop" 2>/dev/null
wait "$loop" 2>/dev/null
acked=$(grep -c . "$tmp/acked")
check "jobs were acknowledged before the kill ($acked)" [ "$acked" -gt 5 ]
check "the server restarts on the same store" start
missing=0
for i in $(cat "$tmp/acked"); do
    "$gpool" describe "$i" -o json >/dev/null 2>&1 || missing=$((missing + 1))
done
check "every acknowledged job is there after restart (missing: $missing)" [ "$missing" -eq 0 ]
check "the store is whole" sh -c "python3 -c \"import sqlite3; print(sqlite3.connect('$tmp/gpool.db').execute('PRAGMA integrity_check').fetchone()[0])\" | grep -qx ok"
kill "$pid"
wait "$pid" 2>/dev/null
pid=""
check "the server stops cleanly on SIGTERM" sh -c "grep -q 'stopping on signal 15' '$tmp/server.log'"

echo "1..$n"
[ $failed -eq 0 ]
