# Sourced by the integration tests: TAP output. check DESC CMD... runs CMD; eventually DESC CMD...
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
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
