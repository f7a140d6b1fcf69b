#!/bin/sh
# What the dashboard's browser tests need: Debian's Chromium and Node.js, and playwright-core at
# the version package-lock.json pins (npm ci). Installs what is missing when run as root; when
# something cannot be had it says so, and the browser tests skip with that reason.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "gpool: the browser tests need$missing: run 'make check' as root, or apt-get install$missing" >&2
    else
        echo "gpool: installing$missing for the browser tests"
        export DEBIAN_FRONTEND=noninteractive
        # shellcheck disable=SC2086
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } ||
            echo "gpool: could not install$missing; the browser tests will be skipped" >&2
    fi
fi
lock="$root/node_modules/.package-lock.json"
if command -v npm >/dev/null 2>&1 && { [ ! -f "$lock" ] || [ "$root/package-lock.json" -nt "$lock" ]; }; then
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error) ||
        echo "gpool: npm ci failed; the browser tests will be skipped" >&2
fi
exit 0
