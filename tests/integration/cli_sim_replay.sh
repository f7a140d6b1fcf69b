#!/bin/sh
# `gpool sim replay` end to end on small hand-made traces: exit codes and messages on bad input,
# the figures a user reads, and the differences between policies that the experiment is about.
set -u
gpool=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() { desc=$1; shift; if "$@"; then ok "$desc"; else not_ok "$desc"; fi; }

# One node of 2 GPUs; eight pods asking for half a GPU each, an hour long, arriving a minute apart.
printf 'sn,cpu_milli,memory_mib,gpu,model\nn1,64000,262144,2,A10\n' >"$tmp/nodes.csv"
{
    echo "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time"
    for i in 0 1 2 3 4 5 6 7; do
        echo "p$i,1000,1024,1,500,,BE,Running,$((i * 60)),$((i * 60 + 3600)),$((i * 60))"
    done
    echo "never,1000,1024,1,500,,BE,Pending,100,200,"
} >"$tmp/pods.csv"
# Usage: busy 50% then idle, memory 2 GiB.
{
    echo "value,timestamp_anon,container_ip"
    for m in 0 1 2 3 4 5 6 7 8 9; do echo "$(( m < 5 ? 50 : 0 )).0,$((1000 + m * 60)).0,podA"; done
} >"$tmp/duty.csv"
{
    echo "timestamp_anon,value,container_ip"
    for m in 0 1 2 3 4 5 6 7 8 9; do echo "$((1000 + m * 60)).0,2147483648.0,podA"; done
} >"$tmp/pod_gpu_memory_used_bytes_anon.csv"
cp "$tmp/duty.csv" "$tmp/pod_gpu_duty_cycle_anon.csv"

replay() { "$gpool" sim replay --nodes "$tmp/nodes.csv" --jobs "$tmp/pods.csv" \
    --usage "$tmp/pod_gpu_duty_cycle_anon.csv" "$@"; }

expect_fail() { # desc, expected text, args...
    desc=$1 text=$2
    shift 2
    replay "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$text" "$tmp/err" && [ ! -s "$tmp/out" ]; then
        ok "$desc"
    else
        not_ok "$desc (exit $rc, stderr: $(head -c 300 "$tmp/err"))"
    fi
}

check "--help exits 0 and shows the usage" sh -c "'$gpool' sim replay --help | grep -q 'usage: gpool sim replay'"
check "gpool --help lists sim replay" sh -c "'$gpool' --help | grep -q 'sim replay'"
expect_fail "--policy is required" "--policy NAME is required"
expect_fail "an unknown policy is refused" "unknown policy 'fifo'" --policy fifo
expect_fail "a bad load is refused" "--load" --policy gpool --load 0
expect_fail "a bad node fraction is refused" "--node-fraction" --policy gpool --node-fraction 2
expect_fail "an unwritable csv is refused before running" "cannot write" --policy gpool --csv /nonexistent/x.csv
printf 'name,deserved_pct\na,60\nb,50\n' >"$tmp/projects.csv"
expect_fail "projects deserving over 100% are refused with file and line" "projects.csv:3: column 'deserved_pct'" --policy gpool --projects "$tmp/projects.csv"
printf 'name,deserved_pct\na,60\na,10\n' >"$tmp/projects.csv"
expect_fail "a duplicate project is refused" "duplicate project 'a'" --policy gpool --projects "$tmp/projects.csv"
sed 's/,BE,Running,0,/,XX,Running,0,/' "$tmp/pods.csv" >"$tmp/badqos.csv"
"$gpool" sim replay --nodes "$tmp/nodes.csv" --jobs "$tmp/badqos.csv" --usage "$tmp/pod_gpu_duty_cycle_anon.csv" --policy gpool >"$tmp/out" 2>"$tmp/err"
check "an unknown qos is refused with file, line and column" sh -c "[ $? -eq 2 ] && grep -q \"badqos.csv:2: column 'qos'\" '$tmp/err'"
cut -d, -f1-7 "$tmp/pods.csv" >"$tmp/notimes.csv"
"$gpool" sim replay --nodes "$tmp/nodes.csv" --jobs "$tmp/notimes.csv" --usage "$tmp/pod_gpu_duty_cycle_anon.csv" --policy gpool >"$tmp/out" 2>"$tmp/err"
check "a pod list without times is refused" sh -c "[ $? -eq 2 ] && grep -q 'creation_time' '$tmp/err'"
printf 'value,timestamp_anon,container_ip\nlots,1.0,x\n' >"$tmp/pod_gpu_duty_cycle_anon.csv.bad"
expect_fail "a bad usage file is refused" "not a number" --policy gpool --usage "$tmp/pod_gpu_duty_cycle_anon.csv.bad"

# The figures.
if replay --policy all --json >"$tmp/all.json" 2>"$tmp/err"; then ok "--policy all runs"; else not_ok "--policy all ($(cat "$tmp/err"))"; fi
field() { python3 -c "import json,sys; d=json.load(open('$tmp/all.json')); print(next(p['$2'] for p in d['policies'] if p['policy']=='$1'))"; }
check "every policy reports every figure" python3 -c "
import json; d = json.load(open('$tmp/all.json'))
keys = {'policy','load','jobs','skipped','never_started','window_hours','allocated_ratio','used_ratio','goodput',
        'queue_delay_mean_s','queue_delay_p95_s','completion_mean_s','completion_p95_s','jain','preemptions',
        'swaps','moves','work_lost','owner_slowdown','owners','saturated','seconds','busy_window_hours',
        'allocated_ratio_busy','used_ratio_busy','goodput_busy'}
assert [p['policy'] for p in d['policies']] == ['static','slurm-like','kai-like','gpool']
for p in d['policies']:
    assert keys <= set(p), keys - set(p)
    assert 0 <= p['allocated_ratio'] <= 1.0001 and 0 <= p['used_ratio'] <= p['allocated_ratio'] + 1e-9
    assert 0 < p['jain'] <= 1.0001
"
check "the pod never scheduled in the trace is skipped and counted" sh -c "[ \"$(field static skipped)\" = 1 ] && [ \"$(field static jobs)\" = 8 ]"
check "static gives each half-GPU pod a whole GPU: two at a time, so pods wait" python3 -c "
import json; d = {p['policy']: p for p in json.load(open('$tmp/all.json'))['policies']}
assert d['static']['queue_delay_mean_s'] > 1000, d['static']
assert d['static']['preemptions'] == 0 and d['static']['swaps'] == 0"
check "fractions run four at a time: less waiting and more work done than static" python3 -c "
import json; d = {p['policy']: p for p in json.load(open('$tmp/all.json'))['policies']}
for p in ('kai-like', 'gpool'):
    assert d[p]['queue_delay_mean_s'] < d['static']['queue_delay_mean_s'], (p, d[p])
    assert d[p]['goodput'] > d['static']['goodput'], (p, d[p])"
check "kai-like never swaps" sh -c "[ \"$(field kai-like swaps)\" = 0 ]"

replay --policy gpool --json --seed 7 >"$tmp/a.json" && replay --policy gpool --json --seed 7 >"$tmp/b.json"
check "the same seed gives the same figures" python3 -c "
import json; a = json.load(open('$tmp/a.json')); b = json.load(open('$tmp/b.json'))
a.pop('seconds'); b.pop('seconds'); assert a == b"

replay --policy all --load 2 --csv "$tmp/curve.csv" --plot "$tmp/plot.svg" >"$tmp/table" 2>"$tmp/err"
check "the table names every policy and the load" sh -c "grep -q 'at load 2' '$tmp/table' && grep -c '^static\|^slurm-like\|^kai-like\|^gpool' '$tmp/table' | grep -q 4"
check "the csv holds every policy's curve" sh -c "head -1 '$tmp/curve.csv' | grep -q 'policy,load,hours,allocated_gpus,used_gpus' && cut -d, -f1 '$tmp/curve.csv' | sort -u | grep -c . | grep -q 5"
check "the plot is an SVG" python3 -c "import xml.dom.minidom as m; m.parse('$tmp/plot.svg')"

echo "1..$n"
[ $failed -eq 0 ]
