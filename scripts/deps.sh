#!/bin/sh
# Install the Debian packages gpool needs to build and test, when any is missing.  postgresql is
# for the tests of the PostgreSQL store: each starts a private cluster of its own (tests/with_pg.sh).
set -eu
pkgs="gcc libc6-dev make meson ninja-build pkg-config python3 curl libcmocka-dev libjansson-dev libcsv-dev
      libmicrohttpd-dev libsqlite3-dev libpq-dev libgnutls28-dev libcurl4-openssl-dev postgresql"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# promtool (Debian's prometheus) checks the server's /metrics in the tests; without it that one
# check is skipped, so it is installed when it can be and its absence stops nothing.
tools=""
command -v promtool >/dev/null 2>&1 || tools="prometheus"
if [ -z "$missing" ]; then
    if [ -n "$tools" ] && [ "$(id -u)" -eq 0 ]; then
        echo "gpool: installing $tools for the tests"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $tools ||
            echo "gpool: $tools could not be installed; the /metrics check with promtool is skipped" >&2
    fi
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "gpool: missing Debian packages:$missing" >&2
    echo "gpool: run 'make deps' as root, or: apt-get install$missing" >&2
    exit 1
fi
echo "gpool: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
if [ -n "$tools" ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $tools ||
        echo "gpool: $tools could not be installed; the /metrics check with promtool is skipped" >&2
fi
