# Sourced by the integration tests: TAP output, and a server to test against. check DESC CMD... runs CMD; eventually DESC CMD...
# retries it every 0.1 s, up to $EVENTUALLY_TRIES times (default 150: 15 s), for what a server or
# an agent does soon.
n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { desc=$1; shift; if "$@"; then ok "$desc"; else not_ok "$desc"; fi; }
eventually() {
    desc=$1
    shift
    for _ in $(seq "${EVENTUALLY_TRIES:-150}"); do "$@" 2>/dev/null && { ok "$desc"; return; }; sleep 0.1; done
    not_ok "$desc"
}
# Tests that run workloads as nobody: skipped (TAP plan 0) unless root with that account.
need_root_and_nobody() {
    if [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1; then
        echo "1..0 # SKIP needs root and the nobody account"
        exit 0
    fi
}
# need_test_users NAME...: root, and these accounts (system accounts without a home or a shell,
# created when missing: workloads run as them); skipped (TAP plan 0) otherwise.
need_test_users() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "1..0 # SKIP needs root (workloads run as test accounts it creates)"
        exit 0
    fi
    for u in "$@"; do
        id "$u" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "gpool tests" "$u" || {
            echo "1..0 # SKIP could not create the test account $u (useradd)"
            exit 0
        }
    done
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# test_store: a new, empty store's URL: SQLite in $tmp, or with GPOOL_TEST_STORE=postgresql the
# database of GPOOL_TEST_PG (tests/with_pg.sh), emptied.
test_store() {
    if [ "${GPOOL_TEST_STORE:-sqlite}" = postgresql ]; then
        psql -q "$GPOOL_TEST_PG" -c 'SET client_min_messages = warning' \
            -c 'DROP SCHEMA IF EXISTS public CASCADE' -c 'CREATE SCHEMA public' >&2 || return 1
        echo "$GPOOL_TEST_PG"
    else
        echo "sqlite:$tmp/gpool.db"
    fi
}
# serve [OPTION...]: a server on a free port with a new store (test_store; its log in
# $tmp/server.log), its pid in $pid and its first admin's token in $ADMIN; GPOOL_SERVER,
# GPOOL_TOKEN and HOME are set.
serve() {
    port=$(free_port)
    store=$(test_store)
    export GPOOL_SERVER="http://127.0.0.1:$port" HOME="$tmp"
    ADMIN=$("$gpool" server init --store "$store" --admin ana --unix-user nobody)
    "$gpool" server --listen "127.0.0.1:$port" --store "$store" --log-dir "$tmp/logs" "$@" \
        2>>"$tmp/server.log" &
    pid=$!
    for _ in $(seq 50); do curl -s "$GPOOL_SERVER/api/v1/status" >/dev/null && break; sleep 0.1; done
    export GPOOL_TOKEN="$ADMIN"
}
# call TOKEN METHOD PATH [BODY]: the HTTP status; the body in $tmp/body, the headers in $tmp/headers.
call() {
    curl -s -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' -X "$2" \
        ${1:+-H "Authorization: Bearer $1"} ${4:+--data-binary "$4"} "$GPOOL_SERVER$3"
}
# expect DESC STATUS TEXT TOKEN METHOD PATH [BODY]: the answer has that status and holds TEXT.
expect() {
    desc=$1 want=$2 text=$3
    shift 3
    got=$(call "$@")
    if [ "$got" = "$want" ] && grep -qF -- "$text" "$tmp/body"; then ok "$desc"; else
        not_ok "$desc (HTTP $got: $(head -c 300 "$tmp/body"))"; fi
}
# for_workloads DIR FILE...: copies of the files in DIR that any account can read (workloads run
# as accounts that may not reach the build tree: a CI clone under a private directory).
for_workloads() { d=$1; shift; mkdir -p "$d"; cp -L "$@" "$d/"; chmod -R a+rX "$d"; }
