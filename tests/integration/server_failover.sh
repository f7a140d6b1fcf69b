#!/bin/sh
# Two servers on one PostgreSQL store (tests/with_pg.sh gives GPOOL_TEST_PG): one leads, the other
# stands by and answers 503 with the leader's URL. Jobs are submitted in a loop while the leader is
# killed with SIGKILL: the standby takes over and every acknowledged job is in the store. Then the
# split brain: the new leader is stopped (SIGSTOP), a third server takes over, and the stopped one,
# continued, writes nothing (its fencing epoch is stale) and exits. TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
    [ $failed -ne 0 ] && tail -n 40 "$tmp"/server-*.log >&2
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/tap.sh"

store=$GPOOL_TEST_PG
export HOME="$tmp"
psql -q "$store" -c 'SET client_min_messages = warning' -c 'DROP SCHEMA IF EXISTS public CASCADE' \
    -c 'CREATE SCHEMA public'
GPOOL_TOKEN=$("$gpool" server init --store "$store" --admin ana --unix-user nobody)
export GPOOL_TOKEN
sql() { psql -tA "$store" -c "$1"; }

# start NAME: a server on a free port; its URL in $url_NAME, its pid in $pid_NAME.
start() {
    port=$(free_port)
    "$gpool" server --listen "127.0.0.1:$port" --store "$store" --log-dir "$tmp/logs" \
        2>>"$tmp/server-$1.log" &
    eval "pid_$1=$!; url_$1=http://127.0.0.1:$port"
    pids="$pids $!"
    for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/api/v1/status" >/dev/null && break; sleep 0.1; done
}
# status URL: the HTTP status of GET /api/v1/status there (000 when nothing answers).
status() { curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -H "Authorization: Bearer $GPOOL_TOKEN" "$1/api/v1/status"; }
# post URL NAME: submits a job named NAME there; its id on stdout when it is acknowledged (201).
post() {
    code=$(curl -s -o "$tmp/post" -w '%{http_code}' -H "Authorization: Bearer $GPOOL_TOKEN" \
        --data "{\"name\":\"$2\",\"project\":\"p\",\"command\":[\"true\"]}" "$1/api/v1/jobs")
    [ "$code" = 201 ] && python3 -c "import json; print(json.load(open('$tmp/post'))['id'])"
}

start a
check "the first server leads" [ "$(status "$url_a")" = 200 ]
GPOOL_SERVER=$url_a "$gpool" projects set p --deserved 1 >/dev/null
start b
check "the second stands by: 503" [ "$(status "$url_b")" = 503 ]
check "its answer says so and names the leader" grep -q "\"code\":\"standby\".*\"leader\":\"$url_a\"" "$tmp/body"
check "with Retry-After and X-Gpool-Leader" sh -c "grep -qi '^retry-after: 1' '$tmp/headers' && grep -qi '^x-gpool-leader: $url_a' '$tmp/headers'"

# --- kill -9 of the leader while jobs are submitted ---------------------------------------------
# gpool submit with both servers' URLs: it tries the one that cannot be reached or stands by,
# then the other. An acknowledged job's id goes to acked; a submission that failed is tried again.
submit_loop() {
    i=0
    while [ "$i" -lt 60 ]; do
        id=$(GPOOL_SERVER="$url_a,$url_b" "$gpool" submit --project p --name "job-$i" -- true 2>/dev/null) ||
            { sleep 0.1; continue; }
        echo "$id" >>"$tmp/acked"
        i=$((i + 1))
    done
}
submit_loop &
loop=$!
for _ in $(seq 300); do [ "$(cat "$tmp/acked" 2>/dev/null | wc -l)" -ge 20 ] && break; sleep 0.05; done
kill -9 "$pid_a"
wait "$loop"
check "60 jobs acknowledged across the failover" sh -c "[ \$(wc -l <'$tmp/acked') -eq 60 ]"
check "the standby took over" [ "$(status "$url_b")" = 200 ]
missing=0
for id in $(cat "$tmp/acked"); do
    [ "$(sql "SELECT count(*) FROM jobs WHERE id = $id")" = 1 ] || missing=$((missing + 1))
done
check "every acknowledged job is in the store ($missing missing)" [ "$missing" -eq 0 ]
listed() { curl -s -H "Authorization: Bearer $GPOOL_TOKEN" "$1/api/v1/jobs?limit=1000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))'; }
# A submission whose answer was lost with the leader may have been stored: tried again, it is two.
check "and the new leader lists them" [ "$(listed "$url_b")" -ge 60 ]
check "the epoch went up with the new leader" [ "$(sql 'SELECT epoch FROM leader')" = 2 ]
# The new leader schedules the queue it found: a node joins it, and the first job the old
# leader acknowledged is placed there.
curl -s -o /dev/null -H "Authorization: Bearer $GPOOL_TOKEN" \
    --data '{"name":"fo1","cpu_milli":32000,"mem_mib":65536,"gpus":[{"uuid":"GPU-f1","model":"H100","memory_bytes":85899345920}]}' \
    "$url_b/api/v1/agent/register"
first=$(head -n 1 "$tmp/acked")
placed() { [ "$(sql "SELECT state || ' ' || node FROM jobs WHERE id = $first")" = "assigned fo1" ]; }
eventually "the new leader places a job the old one acknowledged" placed

# --- split brain: the leader stopped, another takes over, the stopped one continued ------------
start c
check "a server brought back stands by" [ "$(status "$url_c")" = 503 ]
kill -STOP "$pid_b"
# The stopped leader's lock connection is idle: the database ends its session within seconds.
leads() { [ "$(status "$1")" = 200 ]; }
eventually "the stopped leader's lock lapses and the third server leads" leads "$url_c"
check "the epoch went up again" [ "$(sql 'SELECT epoch FROM leader')" = 3 ]
id=$(post "$url_c" after-takeover)
check "the new leader acknowledges jobs" [ -n "$id" ]
before=$(sql "SELECT count(*) FROM jobs")
kill -CONT "$pid_b"
stale=$(post "$url_b" from-stale-leader)
check "the continued old leader acknowledges nothing" [ -z "$stale" ]
check "and has written nothing" [ "$(sql "SELECT count(*) FROM jobs WHERE name = 'from-stale-leader'")" = 0 ]
wait "$pid_b"
rc=$?
check "it exits with status 1" [ "$rc" -eq 1 ]
check "saying it no longer leads" grep -q "no longer leads the store" "$tmp/server-b.log"
check "the store has what the leaders acknowledged, no more" [ "$(sql "SELECT count(*) FROM jobs")" = "$before" ]
check "the leader row names the third server" [ "$(sql 'SELECT url FROM leader')" = "$url_c" ]
start d
check "a client given a standby's URL and the leader's reaches the leader" sh -c \
    "GPOOL_SERVER='$url_d,$url_c' '$gpool' submit --project p --name via-list -- true >/dev/null"
check "and one given a dead server's URL first too" sh -c \
    "GPOOL_SERVER='$url_a,$url_c' '$gpool' describe $id >/dev/null"
kill "$pid_c"
wait "$pid_c"
check "the leader stops cleanly on SIGTERM" [ $? -eq 0 ]
eventually "the standby takes over from a leader that stopped" leads "$url_d"
echo "1..$n"
[ "$failed" -eq 0 ]
