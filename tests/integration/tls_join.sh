#!/bin/sh
# TLS and join tokens: a server on HTTPS with a certificate of a private CA made here (openssl);
# the CLI refuses it until told to trust the CA (--ca, GPOOL_CA, the config's ca line); an agent
# joins over HTTPS with a join token, keeps its own credential (mode 0600) and runs jobs; a revoked
# or unknown join token is refused with a clear error and changes nothing; the node that joined
# keeps working until its credential is revoked. Run as root (workloads run as nobody). TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
chmod 755 "$tmp"
. "$(dirname "$0")/tap.sh"
spid=""
apid=""
cleanup() { [ -n "$apid" ] && kill "$apid" 2>/dev/null; [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
    [ $failed -ne 0 ] && cat "$tmp/server.log" "$tmp"/agent*.log >&2; rm -rf "$tmp"; }
trap cleanup EXIT
need_root_and_nobody
for_workloads "$tmp/lib" "$2/libcuda.so.1" "$2/libnvidia-ml.so.1"
export LD_LIBRARY_PATH="$tmp/lib" SIMGPU_STATE="$tmp/simgpu" SIMGPU_COUNT=1 SIMGPU_MEMORY=8GiB

# --- a private CA, and the server's certificate from it ------------------------------------------
cd "$tmp" || exit 1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj /CN=gpool-test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
    -out server.csr -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 2 -extfile ext 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key \
    -out other.pem -days 2 -subj /CN=other-ca 2>/dev/null
cd - >/dev/null || exit 1

port=$(free_port)
store="sqlite:$tmp/gpool.db"
export HOME="$tmp" GPOOL_SERVER="https://127.0.0.1:$port"
GPOOL_TOKEN=$("$gpool" server init --store "$store" --admin ana --unix-user nobody)
export GPOOL_TOKEN

"$gpool" server --listen "127.0.0.1:$port" --store "$store" --tls-cert "$tmp/server.pem" >/dev/null 2>"$tmp/err"
check "--tls-cert without --tls-key is refused (exit 2)" sh -c "[ $? -eq 2 ] && grep -q 'go together' '$tmp/err'"
"$gpool" server --listen "127.0.0.1:$port" --store "$store" --tls-cert "$tmp/server.pem" --tls-key "$tmp/other.key" >/dev/null 2>"$tmp/err"
check "a key that is not the certificate's is refused before serving (exit 2)" sh -c "[ $? -eq 2 ] && grep -q 'do not match' '$tmp/err'"

"$gpool" server --listen "127.0.0.1:$port" --store "$store" --tls-cert "$tmp/server.pem" \
    --tls-key "$tmp/server.key" --node-timeout 5 2>>"$tmp/server.log" &
spid=$!
for _ in $(seq 50); do curl -s --cacert "$tmp/ca.pem" "$GPOOL_SERVER/api/v1/openapi.json" >/dev/null && break; sleep 0.1; done

# --- the CLI over HTTPS -------------------------------------------------------------------------
"$gpool" list >/dev/null 2>"$tmp/err"
check "the CLI refuses a server whose certificate it cannot verify (exit 1)" sh -c "[ $? -eq 1 ] && grep -qi 'certificate' '$tmp/err'"
GPOOL_CA="$tmp/other.pem" "$gpool" list >/dev/null 2>"$tmp/err"
check "  ... and one signed by another CA than the one it trusts" sh -c "[ $? -eq 1 ] && grep -qi 'certificate' '$tmp/err'"
check "gpool --ca FILE trusts the private CA" "$gpool" --ca "$tmp/ca.pem" projects set p --deserved 1
check "  ... and so does GPOOL_CA" sh -c "GPOOL_CA='$tmp/ca.pem' '$gpool' list | grep -q '^ID '"
mkdir -p "$tmp/.config/gpool"
printf 'server = %s\ntoken = %s\nca = %s\n' "$GPOOL_SERVER" "$GPOOL_TOKEN" "$tmp/ca.pem" >"$tmp/.config/gpool/config"
check "  ... and the config's ca line" sh -c "env -u GPOOL_SERVER -u GPOOL_TOKEN '$gpool' list | grep -q '^ID '"
export GPOOL_CA="$tmp/ca.pem"
got=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/status")
check "plain HTTP gets no answer from an HTTPS server" [ "$got" = 000 ]

# --- join tokens --------------------------------------------------------------------------------
"$gpool" users add dora --unix-user nobody >/dev/null
dora=$("$gpool" token create --user dora)
GPOOL_TOKEN=$dora "$gpool" nodes join-token create >/dev/null 2>"$tmp/err"
check "only an admin creates join tokens (exit 2, 403)" sh -c "[ $? -eq 2 ] && grep -q 'HTTP 403' '$tmp/err'"
"$gpool" nodes join-token create --expires soon >/dev/null 2>"$tmp/err"
check "a bad --expires is refused (exit 2)" sh -c "[ $? -eq 2 ] && grep -q 'expected a duration' '$tmp/err'"
"$gpool" nodes join-token create --expires 1h >"$tmp/join1"
"$gpool" nodes join-token create >"$tmp/join2"
chmod 600 "$tmp/join1" "$tmp/join2"
check "join tokens are listed, active, with no join yet" sh -c "'$gpool' nodes join-token list | grep -c ' active   0\$' | grep -qx 2"

start_agent() { # NAME STATE JOIN_TOKEN_FILE LOG
    "$gpool" agent --server "$GPOOL_SERVER" --ca "$tmp/ca.pem" --join-token-file "$3" --name "$1" \
        --state-dir "$2" --heartbeat 1 --cuda-lib none --cgroup-root none 2>>"$4" &
    apid=$!
}
start_agent n1 "$tmp/state1" "$tmp/join1" "$tmp/agent1.log"
eventually "an agent joins over HTTPS with a join token and registers its GPU" sh -c "'$gpool' nodes | grep -q '^n1 .*ready'"
check "  ... its credential is kept in its state directory, mode 0600" sh -c "[ \"\$(stat -c %a '$tmp/state1/credential')\" = 600 ]"
check "  ... and the join is counted" sh -c "'$gpool' nodes join-token list -o json | python3 -c 'import json,sys; t=json.load(sys.stdin)[\"join_tokens\"]; assert [x[\"joins\"] for x in t] == [1, 0]'"
cat >"$tmp/st" <<SH
#!/bin/sh
"$gpool" describe "\$1" -o json | python3 -c "import json,sys; j=json.load(sys.stdin); print(j['state'], j['exit_code'])"
SH
chmod +x "$tmp/st"
j1=$("$gpool" submit --project p --gpus 1 -- sh -c 'echo over tls')
eventually "the agent over HTTPS runs a job to success" sh -c "[ \"\$('$tmp/st' $j1)\" = 'succeeded 0' ]"
check "  ... with its output" grep -qx "over tls" "$tmp/state1/jobs/$j1/stdout"

"$gpool" nodes join-token revoke 1 >/dev/null
check "a revoked join token is listed as revoked" sh -c "'$gpool' nodes join-token list | grep -q '^1 .* revoked '"
"$gpool" nodes -o json >"$tmp/nodes.before"
"$gpool" nodes join-token list -o json >"$tmp/tokens.before"
"$gpool" agent --server "$GPOOL_SERVER" --ca "$tmp/ca.pem" --join-token-file "$tmp/join1" --name n2 \
    --state-dir "$tmp/state2" --cuda-lib none --cgroup-root none >/dev/null 2>"$tmp/err"
check "a new node with a revoked join token is refused (exit 1, says so)" sh -c "[ $? -eq 1 ] && grep -q 'join token was revoked' '$tmp/err'"
check "  ... and keeps no credential" [ ! -e "$tmp/state2/credential" ]
echo gp_0000000000000000000000000000000000000000000000000000000000000000 >"$tmp/bad"
"$gpool" agent --server "$GPOOL_SERVER" --ca "$tmp/ca.pem" --join-token-file "$tmp/bad" --name n3 \
    --state-dir "$tmp/state3" --cuda-lib none --cgroup-root none >/dev/null 2>"$tmp/err"
check "an unknown join token is refused (exit 1, says so)" sh -c "[ $? -eq 1 ] && grep -q 'not known to this server' '$tmp/err'"
"$gpool" nodes -o json >"$tmp/nodes.after"
"$gpool" nodes join-token list -o json >"$tmp/tokens.after"
check "  ... neither changed the nodes or the join tokens" sh -c "python3 -c 'import json,sys; a,b=(json.load(open(f))[\"nodes\"] for f in sys.argv[1:]); assert [n[\"name\"] for n in a] == [n[\"name\"] for n in b] == [\"n1\"]' '$tmp/nodes.before' '$tmp/nodes.after' && cmp -s '$tmp/tokens.before' '$tmp/tokens.after'"
got=$(curl -s -o "$tmp/body" -w '%{http_code}' --cacert "$tmp/ca.pem" -X POST -H "Authorization: Bearer $(cat "$tmp/join2")" --data-binary '{"name": "n 4"}' "$GPOOL_SERVER/api/v1/agent/join")
check "a join with a bad node name is 400 and uses nothing up" sh -c "[ $got = 400 ] && '$gpool' nodes join-token list | grep -q '^2 .* active   0\$'"

cred=$(cat "$tmp/state1/credential")
got=$(curl -s -o "$tmp/body" -w '%{http_code}' --cacert "$tmp/ca.pem" -X POST -H "Authorization: Bearer $cred" --data-binary '{"name": "n7", "cpu_milli": 1000, "mem_mib": 1024, "gpus": []}' "$GPOOL_SERVER/api/v1/agent/register")
check "a node's credential acts for no other node (403), and registers none" sh -c "[ $got = 403 ] && grep -q 'acts for no other node' '$tmp/body' && ! '$gpool' nodes | grep -q '^n7 '"
got=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$tmp/ca.pem" -H "Authorization: Bearer $cred" "$GPOOL_SERVER/api/v1/agent/assignments?node=n7")
check "  ... nor takes another node's assignments (403)" [ "$got" = 403 ]

kill "$apid"
wait "$apid" 2>/dev/null
rm "$tmp/join1"
start_agent n1 "$tmp/state1" "$tmp/join1" "$tmp/agent1.log"
j2=$("$gpool" submit --project p --gpus 1 -- sh -c 'echo again')
eventually "after its join token is revoked, the node that joined keeps working (restarted, on its credential)" sh -c "[ \"\$('$tmp/st' $j2)\" = 'succeeded 0' ]"
check "gpool nodes revoke ends the node's credential" sh -c "'$gpool' nodes revoke n1 | grep -qx 'n1 revoked'"
got=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$tmp/ca.pem" -X POST -H "Authorization: Bearer $cred" --data-binary '{"name": "n1", "gpus": []}' "$GPOOL_SERVER/api/v1/agent/heartbeat")
check "  ... its agent's requests are refused (401)" [ "$got" = 401 ]
"$gpool" nodes revoke n9 >/dev/null 2>"$tmp/err"
check "revoking a node that never joined is 404 (exit 2)" sh -c "[ $? -eq 2 ] && grep -q 'HTTP 404' '$tmp/err'"
echo "1..$n"
[ $failed -eq 0 ]
