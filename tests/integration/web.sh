#!/bin/sh
# The web dashboard against `gpool dev` (a server and an agent on simulated GPUs): the embedded
# files and their headers (a strict Content-Security-Policy, ETags), bad paths and methods, the
# API the dashboard reads (a job's timeline, project shares, utilization, GPU shares) with who
# sees what; then the dashboard itself in Chromium, driven by Playwright (tests/web/dashboard.js),
# with a screenshot of each view kept in SCREENS. Run as root (workloads run as nobody). TAP.
# Arguments: gpool, the screenshots' directory.
set -u
gpool=$1
screens=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
chmod 755 "$tmp"
dpid=""
cleanup() {
    [ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid"
    [ $failed -ne 0 ] && cat "$tmp/out" "$tmp/dev/dev.log" >&2
    rm -rf "$tmp"
}
trap cleanup EXIT
. "$(dirname "$0")/tap.sh"
need_root_and_nobody

port=$(free_port)
"$gpool" dev --nodes 1 --gpus 2 --gpu-memory 8GiB --listen "127.0.0.1:$port" --dir "$tmp/dev" >"$tmp/out" 2>&1 &
dpid=$!
for _ in $(seq 100); do grep -q '^export GPOOL_SERVER' "$tmp/out" && break; sleep 0.1; done
eval "$(grep '^export' "$tmp/out")"
HOME=$tmp
export HOME
"$gpool" users add dora --unix-user nobody >/dev/null
"$gpool" projects add-member default dora >/dev/null
DORA=$("$gpool" token create --user dora)
S=$GPOOL_SERVER

get() { # [curl options] URL: the status; headers in $tmp/h, body in $tmp/b
    curl -s -D "$tmp/h" -o "$tmp/b" -w '%{http_code}' "$@"
}
hdr() { tr -d '\r' <"$tmp/h" | sed -n "s/^$1: *//Ip"; }
api() { # token path: the status; body in $tmp/b
    curl -s -o "$tmp/b" -w '%{http_code}' -H "Authorization: Bearer $1" "$S/api/v1$2"
}
# q TOKEN PATH EXPR: GET PATH as TOKEN's user, and EXPR (Python, on the answer d) holds.
cat >"$tmp/q.py" <<'PY'
import json, sys, urllib.request
server, token, path, expr = sys.argv[1:5]
req = urllib.request.Request(server + "/api/v1" + path, headers={"Authorization": "Bearer " + token})
d = json.load(urllib.request.urlopen(req))
sys.exit(0 if eval(expr, {"d": d}) else 1)
PY
q() { python3 "$tmp/q.py" "$S" "$@"; }

# --- the files ---------------------------------------------------------------------------------
check "/ is the dashboard's page, without a token" [ "$(get "$S/")" = 200 ]
check "  ... as HTML" sh -c "[ '$(hdr Content-Type)' = 'text/html; charset=utf-8' ] && grep -q '<main id=\"view\">' '$tmp/b'"
csp=$(hdr Content-Security-Policy)
check "  ... with a strict Content-Security-Policy (self only, nothing inline)" sh -c "
    echo \"$csp\" | grep -q \"default-src 'self'\" && echo \"$csp\" | grep -q \"script-src 'self'\" &&
    ! echo \"$csp\" | grep -q unsafe"
check "  ... and nosniff, no framing" sh -c "[ '$(hdr X-Content-Type-Options)' = nosniff ] && [ '$(hdr X-Frame-Options)' = DENY ]"
check "the page has no inline script or style" sh -c "
    ! grep -Eiq '<script>|<script [^>]*>[^<]|<style|style=| on[a-z]+=' '$tmp/b'"
etag=$(hdr ETag)
check "a file carries an ETag and is revalidated (no-cache)" sh -c "[ -n '$etag' ] && [ '$(hdr Cache-Control)' = no-cache ]"
check "  ... and is 304 when it has not changed" [ "$(get -H "If-None-Match: $etag" "$S/index.html")" = 304 ]
check "the scripts are JavaScript modules" sh -c "[ '$(get "$S/app.js")' = 200 ] && [ '$(hdr Content-Type)' = 'text/javascript; charset=utf-8' ]"
check "the styles are CSS" sh -c "[ '$(get "$S/style.css")' = 200 ] && [ '$(hdr Content-Type)' = 'text/css; charset=utf-8' ]"
ext=0
for f in index.html app.js api.js dom.js charts.js overview.js nodes.js projects.js jobs.js style.css; do
    get "$S/$f" >/dev/null
    grep -Eiq '(src|href)="(https?:)?//|@import|url\(' "$tmp/b" && ext=1
done
check "no file loads anything from elsewhere (no CDN, no external font)" [ $ext -eq 0 ]
check "HEAD answers the headers" sh -c "[ \"\$(curl -s -I -o /dev/null -w '%{http_code}' '$S/app.js')\" = 200 ]"
check "an unknown path is 404" [ "$(get "$S/nope.html")" = 404 ]
check "a path that climbs out is refused (400)" [ "$(get --path-as-is "$S/../../etc/passwd")" = 400 ]
check "  ... also when encoded" [ "$(get --path-as-is "$S/%2e%2e/%2e%2e/etc/passwd")" = 400 ]
check "  ... and nothing of it is served" sh -c "! grep -q root: '$tmp/b'"
check "POST to a file is 405, with Allow" sh -c "[ '$(get -X POST --data x "$S/index.html")' = 405 ] && [ '$(hdr Allow)' = 'GET, HEAD' ]"
check "DELETE is 405 too" [ "$(get -X DELETE "$S/")" = 405 ]
check "an unknown API path is still the API's JSON 404" sh -c "[ '$(get -H "Authorization: Bearer $GPOOL_TOKEN" "$S/api/v1/nope")' = 404 ] && grep -q not_found '$tmp/b'"

# --- what the dashboard reads --------------------------------------------------------------------
for _ in $(seq 100); do
    "$gpool" nodes | grep -q dev-node && break
    sleep 0.1
done
a=$("$gpool" submit --project default --gpu 0.5 --name admins -- sh -c 'sleep 6')
d=$(GPOOL_TOKEN=$DORA "$gpool" submit --project default --gpu 0.25 --name doras -- sh -c 'echo hi; sleep 1')
eventually "a job's timeline lists the states it entered" q "$DORA" "/jobs/$d/timeline" \
    "[s['state'] for s in d['states']] == ['pending', 'assigned', 'running', 'succeeded']"
check "  ... each with when, in order" q "$DORA" "/jobs/$d/timeline" \
    "all(s['at_ms'] > 0 for s in d['states']) and [s['at_ms'] for s in d['states']] == sorted(s['at_ms'] for s in d['states'])"
check "another user's job has no timeline for her (404)" sh -c "[ \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $DORA' '$S/api/v1/jobs/$a/timeline') = 404 ]"
check "  ... and an admin sees any" q "$GPOOL_TOKEN" "/jobs/$d/timeline" "d['id'] == $d"
check "a timeline needs a token" [ "$(curl -s -o /dev/null -w '%{http_code}' "$S/api/v1/jobs/$d/timeline")" = 401 ]
shares="[s for n in d['nodes'] for g in n['gpus'] for s in g['shares']]"
eventually "GPU shares name the caller's jobs, with their fraction" q "$GPOOL_TOKEN" /nodes \
    "any(s['job'] == $a and s['gpu'] == 0.5 and not s['swapped'] for s in $shares)"
check "  ... and leave another user's unnamed" q "$DORA" /nodes "$shares and all(s['job'] is None for s in $shares)"
check "project shares: deserved, fair share, allocated, used" q "$DORA" /shares \
    "[(p['name'], p['deserved_gpus'], p['allocated_gpus'], p['fair_share_gpus'] > 0, 'used_gpus' in p) for p in d['projects']] == [('default', 2, 0.5, True, True)]"
eventually "utilization: the node pool's GPUs and allocation, sampled" q "$DORA" "/utilization?hours=1" \
    "d['columns'][:3] == ['t_ms', 'gpus', 'allocated'] and len(d['pools']) == 1 and d['pools'][0]['samples'][-1][1] == 2"
check "  ... hours out of 1..6 is 400" sh -c "[ '$(api "$DORA" "/utilization?hours=7")' = 400 ] && grep -q invalid_field '$tmp/b'"

# --- the dashboard in a browser --------------------------------------------------------------------
skip=""
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    skip="no Chromium at ${CHROMIUM:-/usr/bin/chromium} (make check installs it as root: apt-get install chromium)"
elif ! command -v node >/dev/null 2>&1; then
    skip="no Node.js (apt-get install nodejs)"
elif [ ! -d "$root/node_modules/playwright-core" ]; then
    skip="playwright-core is not installed (npm ci in $root)"
fi
if [ -n "$skip" ]; then
    n=$((n + 1))
    echo "ok $n # SKIP the browser tests: $skip"
else
    rm -rf "$screens"
    mkdir -p "$screens"
    DORA_TOKEN=$DORA SCREENS=$screens timeout 240 node "$root/tests/web/dashboard.js" >"$tmp/web.out" 2>&1
    while IFS= read -r line; do
        case $line in
        "ok "*) ok "${line#ok }" ;;
        "not ok "*) not_ok "${line#not ok }" ;;
        *) echo "# $line" ;;
        esac
    done <"$tmp/web.out"
    check "the browser test ran to its end" grep -q 'another user' "$tmp/web.out"
    check "a screenshot of each view is kept in $screens" sh -c "for v in login overview nodes jobs job projects; do [ -s '$screens/'\$v.png ] || exit 1; done"
fi
echo "1..$n"
[ $failed -eq 0 ]
