#!/bin/sh
# `gpool sim fill` end to end, as a user runs it: exit codes, error messages that name the file,
# line and column, nothing written on bad input, and the shape of every output. TAP output.
set -u
gpool=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { desc=$1; shift; if "$@"; then ok "$desc"; else not_ok "$desc"; fi; }

# A small cluster: two 8-GPU nodes of model A, two 2-GPU nodes of model B, one 4-GPU node.
cat >"$tmp/nodes.csv" <<'CSV'
sn,cpu_milli,memory_mib,gpu,model
n1,96000,393216,8,A
n2,96000,393216,8,A
n3,32000,131072,2,B
n4,32000,131072,2,B
n5,64000,262144,4,A
CSV
# Pods of every kind: whole, shares, multi-GPU, CPU-only, model constrained.
{
    echo "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos"
    i=0
    for spec in "1,1000," "1,500," "1,250," "2,1000," "0,0," "1,300,B" "1,700,A|B" "4,1000,A"; do
        for k in 1 2 3; do
            i=$((i + 1))
            echo "p$i,4000,8192,$spec,LS"
        done
    done
} >"$tmp/pods.csv"

expect_fail() { # desc, expected text, args...
    desc=$1 text=$2
    shift 2
    "$gpool" sim fill "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$text" "$tmp/err"; then
        ok "$desc"
    else
        not_ok "$desc (exit $rc, stderr: $(head -c 300 "$tmp/err"))"
    fi
}

check "--help exits 0 and shows the usage" sh -c "'$gpool' sim fill --help | grep -q 'usage: gpool sim fill'"
check "gpool --help lists sim fill" sh -c "'$gpool' --help | grep -q 'sim fill'"
expect_fail "--pods is required" "--pods FILE is required" --policy fgd --nodes "$tmp/nodes.csv"
expect_fail "--policy is required" "--policy NAME is required" --pods "$tmp/pods.csv" --nodes "$tmp/nodes.csv"
expect_fail "an unknown policy is refused" "unknown policy 'nosuch'" --policy nosuch --pods "$tmp/pods.csv" --nodes "$tmp/nodes.csv"
expect_fail "a bad seed range is refused" "--seeds" --policy fgd --seeds 9..3 --pods "$tmp/pods.csv" --nodes "$tmp/nodes.csv"
expect_fail "a bad inflate is refused" "--inflate" --policy fgd --inflate -1 --pods "$tmp/pods.csv" --nodes "$tmp/nodes.csv"
expect_fail "a missing pod list is named" "'nosuch.csv' not found" --policy fgd --pods nosuch.csv --nodes "$tmp/nodes.csv"

# Bad traces: each gets file:line, the column, exit code 2, and no output file.
bad() { # desc, expected text, file content
    printf '%s\n' "$3" >"$tmp/bad.csv"
    rm -f "$tmp/never.csv"
    expect_fail "$1" "$2" --policy bestfit --pods "$tmp/bad.csv" --nodes "$tmp/nodes.csv" --csv "$tmp/never.csv"
    check "$1: nothing written" test ! -e "$tmp/never.csv"
}
bad "missing required column" "bad.csv:1: missing required column 'gpu_milli'" "name,cpu_milli,memory_mib,num_gpu
p1,1000,1024,1"
bad "negative value" "bad.csv:3: column 'cpu_milli': -5 is negative" "name,cpu_milli,memory_mib,num_gpu,gpu_milli
p1,1000,1024,1,1000
p2,-5,1024,1,1000"
bad "non-numeric value" "bad.csv:2: column 'memory_mib': 'lots' is not a whole number" "name,cpu_milli,memory_mib,num_gpu,gpu_milli
p1,1000,lots,1,1000"
bad "gpu_milli over 1000" "bad.csv:2: column 'gpu_milli': 1001 is over 1000" "name,cpu_milli,memory_mib,num_gpu,gpu_milli
p1,1000,1024,1,1001"
bad "GPU pod with gpu_milli 0" "bad.csv:2: column 'gpu_milli': 0 on a GPU pod" "name,cpu_milli,memory_mib,num_gpu,gpu_milli
p1,1000,1024,2,0"
bad "CPU-only pod with a share" "bad.csv:2: column 'gpu_milli': 500 on a pod with num_gpu 0" "name,cpu_milli,memory_mib,num_gpu,gpu_milli
p1,1000,1024,0,500"
: >"$tmp/empty.csv"
expect_fail "empty file" "empty.csv:1: empty file" --policy fgd --pods "$tmp/empty.csv" --nodes "$tmp/nodes.csv"
printf 'sn,cpu_milli,memory_mib,gpu,model\nn1,1000,1024,1,A\nn1,1000,1024,1,A\n' >"$tmp/dup.csv"
expect_fail "duplicate node" "dup.csv:3: column 'sn': duplicate node 'n1'" --policy fgd --pods "$tmp/pods.csv" --nodes "$tmp/dup.csv"

# Good runs.
"$gpool" sim fill --nodes "$tmp/nodes.csv" --pods "$tmp/pods.csv" --policy fgd --seeds 1..4 --json >"$tmp/a.json" 2>"$tmp/err"
check "--json exits 0" test $? -eq 0
check "--json has every field and a 131-point curve" python3 - "$tmp/a.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
need = ["policy", "seeds", "pods_arrived", "pods_failed", "unallocated_gpu_pct_at_arrive_100", "curve"]
assert all(k in o for k in need), o.keys()
assert o["policy"] == "fgd" and o["seeds"] == [1, 2, 3, 4]
assert len(o["curve"]) == 131 and o["curve"][100]["arrive_pct"] == 100
u = o["unallocated_gpu_pct_at_arrive_100"]
assert abs(u - (100 - o["curve"][100]["alloc_pct"])) < 1e-6
assert all(0 <= p["alloc_pct"] <= 100 and p["frag_pct"] >= 0 for p in o["curve"])
PY
"$gpool" sim fill --nodes "$tmp/nodes.csv" --pods "$tmp/pods.csv" --policy fgd --seeds 1..4 --json >"$tmp/b.json" --jobs 1
same_json() { python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for o in (a, b):
    o.pop("seconds_per_seed")  # wall time, the one field allowed to differ
assert a == b
PY
}
check "the same seeds give the same result (and threads change nothing)" same_json "$tmp/a.json" "$tmp/b.json"
"$gpool" sim fill --nodes "$tmp/nodes.csv" --pods "$tmp/pods.csv" --policy fgd --seed 3 --json >"$tmp/c.json"
check "--seed N runs that one seed" python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['seeds'] == [3]" "$tmp/c.json"
"$gpool" sim fill --nodes "$tmp/nodes.csv" --pods "$tmp/pods.csv" --policy all --seeds 5..6 \
    --csv "$tmp/curves.csv" --plot "$tmp/plot.svg" >"$tmp/table" 2>"$tmp/err"
check "--policy all exits 0" test $? -eq 0
for p in random dotprod clustering packing bestfit fgd gpool offline-ffd; do
    check "the table has a row for $p" grep -q "^$p " "$tmp/table"
done
check "the table names the plot" grep -q "plot: $tmp/plot.svg" "$tmp/table"
check "--csv has a header and 131 rows per policy and seed" \
    sh -c "head -1 '$tmp/curves.csv' | grep -q '^policy,seed,arrive_pct,alloc_pct' && test \$(wc -l <'$tmp/curves.csv') -eq $((1 + 8 * 2 * 131))"
check "--plot draws one line per policy" sh -c "test \$(grep -c '<polyline' '$tmp/plot.svg') -eq 8"
check "--plot is well-formed XML" python3 -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$tmp/plot.svg"
cp "$tmp/pods.csv" "$tmp/a&b<c>.csv"
"$gpool" sim fill --nodes "$tmp/nodes.csv" --pods "$tmp/a&b<c>.csv" --policy bestfit --seeds 1..2 --plot "$tmp/odd.svg" >/dev/null
check "--plot stays well-formed XML whatever the file is called" python3 -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$tmp/odd.svg"
"$gpool" sim fill --nodes "$tmp/nodes.csv" --pods "$tmp/pods.csv" --policy bestfit --csv /nonexistent/dir/x.csv >/dev/null 2>"$tmp/err"
rc=$?
check "an unwritable --csv is refused before running" sh -c "test $rc -eq 2 && grep -q '/nonexistent/dir/x.csv' '$tmp/err'"

echo "1..$n"
[ $failed -eq 0 ]
