#!/bin/sh
# Thin provisioning and job swapping, live, end to end: a server and one agent with one simulated
# GPU of 4 GiB.
#  1. An interactive owner holds the whole GPU and idles; a training job borrows it and makes
#     progress; the owner wakes: the borrower stops launching (the library's yield, after the
#     owner's first launch), the owner's allocation of most of the GPU's memory succeeds
#     because the library swaps the borrower out, the owner finishes, and the borrower is swapped
#     back in on the same GPU and finishes with every byte verified.
#  2. A project below its deserved quota needs the GPU a project above its quota holds: the
#     holder is swapped out (not stopped), the other runs, and the holder is swapped back in and
#     finishes with its data verified.
# Tests assert what happened and in what order.  Run as root (workloads run as gpool-t-ana).  TAP.
set -u
gpool=$1
tmp=$(mktemp -d)
chmod 755 "$tmp"
. "$(dirname "$0")/tap.sh"
for_workloads "$tmp/lib" "$2/libcuda.so.1" "$2/libnvidia-ml.so.1" "$4/libgpool-cuda.so"
for_workloads "$tmp" "$3"
burn="$tmp/gpool-burn"
spid=""
apid=""
cleanup() { [ -n "$apid" ] && kill "$apid" 2>/dev/null; [ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
    [ $failed -ne 0 ] && cat "$tmp/server.log" "$tmp/agent.log" >&2; pkill -f "$tmp/n1" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
EVENTUALLY_TRIES=600
need_test_users gpool-t-ana

port=$(free_port)
export GPOOL_SERVER="http://127.0.0.1:$port" HOME="$tmp"
export LD_LIBRARY_PATH="$tmp/lib" SIMGPU_COUNT=1 SIMGPU_MEMORY=4GiB
GPOOL_TOKEN=$("$gpool" server init --store "sqlite:$tmp/gpool.db" --admin ana --unix-user gpool-t-ana)
export GPOOL_TOKEN
"$gpool" server --listen "127.0.0.1:$port" --store "sqlite:$tmp/gpool.db" --node-timeout 10 \
    --idle-window 2 --min-runtime 0 2>>"$tmp/server.log" &
spid=$!
for _ in $(seq 50); do curl -s "$GPOOL_SERVER/api/v1/status" >/dev/null && break; sleep 0.1; done
"$gpool" projects set own --deserved 1 >/dev/null
"$gpool" projects set ml --deserved 0 >/dev/null
"$gpool" users add agents --unix-user root --role agent >/dev/null
"$gpool" token create --user agents >"$tmp/token"
chmod 600 "$tmp/token"
mkdir "$tmp/n1"
SIMGPU_STATE="$tmp/n1/simgpu" "$gpool" agent --server "$GPOOL_SERVER" --token-file "$tmp/token" \
    --name n1 --state-dir "$tmp/n1" --heartbeat 1 --cuda-lib "$tmp/lib/libgpool-cuda.so" \
    --cgroup-root none 2>>"$tmp/agent.log" &
apid=$!
eventually "a node of one GPU registers" sh -c "'$gpool' nodes | grep -q '^n1 '"

# A job's field (a Python expression on its JSON), its timeline's states, and when it entered one.
cat >"$tmp/field" <<SH
#!/bin/sh
"$gpool" describe "\$1" -o json | python3 -c "import json,sys; j=json.load(sys.stdin); print(\$2)"
SH
cat >"$tmp/states" <<SH
#!/bin/sh
curl -s -H "Authorization: Bearer \$GPOOL_TOKEN" "\$GPOOL_SERVER/api/v1/jobs/\$1/timeline" |
    python3 -c "import json,sys; print(' '.join(s['state'] for s in json.load(sys.stdin)['states']))"
SH
cat >"$tmp/entered" <<SH
#!/bin/sh
# entered JOB STATE [N]: when the job entered STATE the Nth time (1 by default), in ms
curl -s -H "Authorization: Bearer \$GPOOL_TOKEN" "\$GPOOL_SERVER/api/v1/jobs/\$1/timeline" |
    python3 -c "import json,sys; t=[s['at_ms'] for s in json.load(sys.stdin)['states'] if s['state']=='\$2']; print(t[\${3:-1}-1] if len(t) >= \${3:-1} else -1)"
SH
# The GPU's region as the library and the agent share it: a job's field there.
cat >"$tmp/region" <<SH
#!/bin/sh
GPOOL_REGION_DIR="$tmp/n1/regions" "$gpool" region show -o json | python3 -c "
import json, sys
doc = json.load(sys.stdin)
gpus = doc if isinstance(doc, list) else doc.get('gpus', [])
for g in gpus:
    for j in g.get('jobs', []):
        if str(j.get('job')) == '\$1':
            print(j.get('\$2', -1)); sys.exit(0)
print(-1)"
SH
chmod +x "$tmp/field" "$tmp/states" "$tmp/entered" "$tmp/region"
field="$tmp/field" states="$tmp/states" entered="$tmp/entered" region="$tmp/region"

# ---- 1. borrowing ----------------------------------------------------------------------------
# The owner idles 20 s, then launches (a short burn), then takes nearly all of the GPU's memory.
o=$("$gpool" submit --project own --priority interactive --gpus 1 -- sh -c \
    "sleep 20; '$burn' --memory 64MiB --seconds 2 -q && '$burn' --memory 3800MiB --iterations 2 -q")
eventually "the owner (interactive, a whole GPU) runs" sh -c "[ \"\$('$field' $o \"j['state']\")\" = running ]"
eventually "  ... and is idle once its window has passed" sh -c "[ \"\$('$field' $o \"j.get('idle_since_ms', 0) > 0\")\" = True ]"
b=$("$gpool" submit --project ml --priority train --gpu 0.5 -- "$burn" --memory 512MiB \
    --iterations 200 --kernel-ms 10 -q)
eventually "a training job borrows the idle GPU" sh -c "[ \"\$('$field' $b \"j['state'], j.get('borrowed')\")\" = 'running True' ]"
check "  ... the API marks it borrowed on the GPU, and the owner keeps its allocation" sh -c \
    "'$gpool' nodes -o json | python3 -c \"import json,sys; g=json.load(sys.stdin)['nodes'][0]['gpus'][0]; sys.exit(0 if g['borrowed'] == 0.5 and g['allocated'] == 1.0 else 1)\""
check "  ... gpool top shows it borrowed" sh -c "'$gpool' top --once | grep -Eq '^n1 +0 .* 1\.00 +0\.50 +0\.00 .*${b}b'"
eventually "  ... the region marks it a borrower" sh -c "[ \"\$('$region' $b borrower)\" = True ]"
eventually "  ... and it makes progress while the owner idles" sh -c \
    "[ \"\$('$region' $b launches)\" -gt 0 ] && [ \"\$('$region' $o woke_at_ns)\" -le 0 ]"
eventually "the owner wakes: the borrower yields" sh -c "[ \"\$('$region' $b yielded_at_ns)\" -gt 0 ]"
woke=$("$region" $o woke_at_ns)
yielded=$("$region" $b yielded_at_ns)
check "  ... after the owner's first launch ($woke <= $yielded)" [ "$woke" -gt 0 -a "$yielded" -ge "$woke" ]
eventually "the owner needs the memory: the borrower is swapped out" sh -c \
    "[ \"\$('$field' $b \"j['state'], j['swap'].get('why')\")\" = 'swapped its lender needed its GPU memory' ]"
eventually "the owner finishes, its allocation of 3800 MiB (with the borrower's 512 MiB, more than the GPU has) served" sh -c "[ \"\$('$field' $o \"j['state'], j['exit_code']\")\" = 'succeeded 0' ]"
eventually "the borrower is swapped back in, no longer borrowed, and finishes" sh -c \
    "[ \"\$('$field' $b \"j['state'], j['exit_code'], j.get('borrowed', False)\")\" = 'succeeded 0 False' ]"
check "  ... every byte of its data verified" sh -c "'$gpool' logs $b | grep -q 'data ok'"
check "  ... it ran, was swapped out, ran again and succeeded" \
    sh -c "[ \"\$('$states' $b)\" = 'pending assigned running swapped running succeeded' ]"
check "  ... swapped back in only after the owner ended" \
    sh -c "[ \"\$('$entered' $o succeeded)\" -le \"\$('$entered' $b running 2)\" ]"
check "the owner ran once, start to end" sh -c "[ \"\$('$states' $o)\" = 'pending assigned running succeeded' ]"

# ---- 2. swapping by quota ---------------------------------------------------------------------
m=$("$gpool" submit --project ml --priority train --gpus 1 -- "$burn" --memory 512MiB \
    --iterations 150 --kernel-ms 10 -q)
eventually "a job of a project above its quota runs on the free GPU" sh -c "[ \"\$('$field' $m \"j['state']\")\" = running ]"
sleep 1
h=$("$gpool" submit --project own --priority train --gpus 1 -- "$burn" --memory 512MiB --iterations 20 -q)
eventually "a project below its quota wants the GPU: the holder is swapped out, not stopped" sh -c \
    "[ \"\$('$field' $m \"j['state'], j['swap'].get('why')\")\" = 'swapped to make room for job $h' ]"
eventually "  ... and the job it made room for runs and finishes" sh -c "[ \"\$('$field' $h \"j['state'], j['exit_code']\")\" = 'succeeded 0' ]"
check "  ... having started after the swap out" sh -c "[ \"\$('$entered' $m swapped)\" -le \"\$('$entered' $h running)\" ]"
eventually "the swapped job comes back and finishes" sh -c "[ \"\$('$field' $m \"j['state'], j['exit_code']\")\" = 'succeeded 0' ]"
check "  ... with every byte of its data verified" sh -c "'$gpool' logs $m | grep -q 'data ok'"
check "  ... it was swapped, never stopped: one attempt" sh -c \
    "[ \"\$('$states' $m)\" = 'pending assigned running swapped running succeeded' ] && [ \"\$('$field' $m \"j['attempts']\")\" = 1 ]"
check "  ... swapped back in after the other ended" sh -c "[ \"\$('$entered' $h succeeded)\" -le \"\$('$entered' $m running 2)\" ]"
kill "$apid" 2>/dev/null; wait "$apid" 2>/dev/null
apid=""
echo "1..$n"
[ $failed -eq 0 ]
