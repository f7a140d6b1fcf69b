#!/usr/bin/env python3
"""Simulated agents: one process emulating many nodes against `gpool server`, and the benches
that use it.

Each simulated node does what `gpool agent` does over the API, with an agent-role token:
registers its GPUs, sends a heartbeat every H seconds (the nodes' heartbeats spread evenly over
H) with what it "measures" of each GPU and job, long-polls its assignments (`wait` 1 s, as the
agent does), reports each assigned job `running`, and when the job's run is over sends the end of
its logs (a line of stdout, then the end of both streams, as the agent ships them) and reports it
`succeeded`.  A job's run is its command: `sleep N` runs N seconds, `sleep infinity` until it is
no longer assigned (cancelled, preempted), anything else ends at once.  A job no longer assigned
is dropped without a report, as the agent stops it.

usage:
  bench/agents.py heartbeat [--nodes 1000] [--gpus 8] [--heartbeat 5] [--seconds 60] [--jobs 0]
  bench/agents.py fill      [--nodes 500]  [--gpus 8] [--jobs 4000]
  bench/agents.py cycle     [--nodes 1250] [--gpus 8] [--pending 100000] [--perf]
  bench/agents.py run --server URL --token-file PATH [--nodes N] [--gpus G] [--heartbeat H]
common: [--gpool build/gpool] [--poll-wait 1] [--clients 16] [--prefix sim]

heartbeat: N nodes against a fresh server (SQLite store, durable), --jobs `sleep infinity`
  single-GPU jobs placed first; over --seconds: the server's CPU, heartbeat latency p50/p99/max,
  assignment polls per second, and how late the emulator's own timers ran (its lag).
fill: N nodes, then --jobs `sleep infinity` single-GPU jobs submitted through the API: time from
  the first submission until all are running, and the scheduler passes /metrics reports.
cycle: --pending jobs (whole GPUs, fractions, 2-replica gangs, 8 projects, every priority) wait
  in the store (400 submitted through the API, the rest copies of their rows written while the
  server is stopped: through the API each submission triggers a pass, whose cost grows with the
  queue), then N nodes join: the server's passes (/metrics) while it fills the GPUs and after,
  its memory, the heartbeats' latency from the join on, the emulator's lag, and the nodes the
  server holds silent at the end; --perf records the server with `perf record` and prints where the time goes.
run: the emulator alone, against a server you run; Ctrl-C stops it and prints its figures.
"""
import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

from benchlib import free_port

# ---- a small keep-alive HTTP/1.1 client on asyncio ------------------------------------------


class Http:
    def __init__(self, host, port, token):
        self.host, self.port, self.token = host, port, token
        self.r = self.w = None

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None

    async def _read(self):
        line = await self.r.readline()
        if not line:
            raise ConnectionError("closed")
        status = int(line.split()[1])
        length, chunked, close = 0, False, False
        while True:
            h = await self.r.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            k, v = k.strip().lower(), v.strip()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
            elif k == "connection" and v.lower() == "close":
                close = True
        if chunked:
            body = b""
            while True:
                n = int((await self.r.readline()).split(b";")[0], 16)
                if n == 0:
                    await self.r.readline()
                    break
                body += await self.r.readexactly(n)
                await self.r.readline()
        else:
            body = await self.r.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    async def request(self, method, path, body=None, raw=None, ctype="application/json"):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        head = (f"{method} {path} HTTP/1.1\r\nHost: gpool\r\nAuthorization: Bearer {self.token}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        for attempt in (0, 1):
            try:
                if self.w is None:
                    self.r, self.w = await asyncio.open_connection(self.host, self.port)
                self.w.write(head + data)
                return await self._read()
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                # An idle keep-alive connection the server closed: once more on a new one.
                self.close()
                if attempt:
                    raise

    async def json(self, method, path, body=None):
        status, data = await self.request(method, path, body)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


# ---- the simulated nodes --------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.hb_ms, self.hb_fail = [], 0
        self.polls, self.poll_fail = 0, 0
        self.status_ms, self.status_fail = [], 0
        self.running_at = {}  # job id -> when the server took its "running"
        self.succeeded_at = {}
        self.lag_ms = []  # how late the emulator's timers fire: its own load
        self.registered = 0


def duration(job):
    cmd = (job.get("spec") or {}).get("command") or []
    if len(cmd) == 2 and os.path.basename(cmd[0]) == "sleep":
        if cmd[1] == "infinity":
            return None
        try:
            return float(cmd[1])
        except ValueError:
            return 0.0
    return 0.0


class Node:
    def __init__(self, em, name):
        self.em, self.name = em, name
        self.hb = Http(em.host, em.port, em.token)
        self.poll = Http(em.host, em.port, em.token)
        self.ctl = Http(em.host, em.port, em.token)
        self.ctl_lock = asyncio.Lock()
        self.jobs = {}  # (id, placed_ms) -> (task, gpus)
        self.done = set()
        self.q = urllib.parse.quote(name)

    def description(self):
        return {"name": self.name, "cpu_milli": 224000, "mem_mib": 2 << 20,
                "gpus": [{"uuid": f"GPU-{self.name}-{g}", "model": "SIM-H100",
                          "memory_bytes": 80 << 30} for g in range(self.em.gpus)]}

    async def register(self):
        while True:
            try:
                status, _ = await self.ctl.json("POST", "/api/v1/agent/register",
                                                self.description())
                if status == 200:
                    self.em.stats.registered += 1
                    return
            except OSError:
                pass
            await asyncio.sleep(1)

    def telemetry(self):
        per = {g: [] for g in range(self.em.gpus)}
        for (jid, _), (_, gpus) in self.jobs.items():
            for g in gpus:
                if g in per:
                    per[g].append(jid)
        return [{"index": g, "memory_used_bytes": (8 << 30) * len(ids),
                 "utilization_pct": 100 if ids else 0,
                 "jobs": [{"id": j, "memory_used_bytes": 8 << 30,
                           "utilization_pct": 100 // len(ids)} for j in ids]}
                for g, ids in per.items()]

    async def heartbeats(self, offset):
        st, h = self.em.stats, self.em.heartbeat
        nxt = time.monotonic() + offset
        while not self.em.stopping:
            await asyncio.sleep(max(0, nxt - time.monotonic()))
            nxt += h
            t0 = time.monotonic()
            try:
                status, _ = await self.hb.json("POST", "/api/v1/agent/heartbeat",
                                               {"name": self.name, "gpus": self.telemetry()})
            except OSError:
                status = 0
            if status == 200:
                if self.em.measuring:
                    st.hb_ms.append((time.monotonic() - t0) * 1000)
            else:
                st.hb_fail += 1
                if status == 404:
                    await self.register()

    async def report(self, jid, state, code=0):
        st = self.em.stats
        async with self.ctl_lock:
            t0 = time.monotonic()
            try:
                status, _ = await self.ctl.json("POST", "/api/v1/agent/status",
                                                {"node": self.name, "job": jid, "rank": 0,
                                                 "state": state, "exit_code": code})
            except OSError:
                status = 0
            st.status_ms.append((time.monotonic() - t0) * 1000)
        if status != 200:
            st.status_fail += 1
        return status

    async def ship_end(self, jid):
        """The job's output, then the end of both streams, as the agent sends an ended job's."""
        line = f"job {jid} done on {self.name}\n".encode()
        async with self.ctl_lock:
            for stream, data in (("stdout", line), ("stderr", b"")):
                base = f"/api/v1/agent/logs?node={self.q}&job={jid}&stream={stream}"
                try:
                    if data:
                        await self.ctl.request("POST", f"{base}&offset=0", raw=data,
                                               ctype="application/octet-stream")
                    await self.ctl.request("POST", f"{base}&offset={len(data)}&end=1", raw=b"",
                                           ctype="application/octet-stream")
                except OSError:
                    pass

    async def run_job(self, key, job):
        jid = key[0]
        if await self.report(jid, "running") == 200:
            self.em.stats.running_at.setdefault(jid, time.monotonic())
        d = duration(job)
        if d is None:
            await asyncio.Event().wait()  # until it is no longer assigned
        await asyncio.sleep(d)
        if self.em.ship_logs:
            await self.ship_end(jid)
        if await self.report(jid, "succeeded") == 200:
            self.em.stats.succeeded_at[jid] = time.monotonic()
        self.done.add(key)
        self.jobs.pop(key, None)

    def reconcile(self, jobs):
        want = set()
        for j in jobs:
            key = (j["id"], j.get("placed_ms", 0))
            want.add(key)
            if key in self.jobs or key in self.done:
                continue
            gpus = [int(g) for g in re.split(r"[,;]", j.get("gpus") or "") if g.isdigit()]
            self.jobs[key] = (asyncio.ensure_future(self.run_job(key, j)), gpus)
        for key in list(self.jobs):
            if key not in want:
                task, _ = self.jobs.pop(key)
                task.cancel()
        self.done &= want

    async def polls(self):
        gen, st = -1, self.em.stats
        while not self.em.stopping:
            path = f"/api/v1/agent/assignments?node={self.q}"
            if gen >= 0:
                path += f"&since={gen}&wait={self.em.poll_wait}"
            try:
                status, out = await self.poll.json("GET", path)
            except OSError:
                status, out = 0, None
            st.polls += 1
            if status != 200 or out is None:
                st.poll_fail += 1
                await asyncio.sleep(1)
                continue
            gen = out["generation"]
            self.reconcile(out["jobs"])


class Emulator:
    def __init__(self, url, token, nodes, gpus, heartbeat, poll_wait=1, prefix="sim",
                 ship_logs=True):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port or 80
        self.token, self.gpus, self.heartbeat, self.poll_wait = token, gpus, heartbeat, poll_wait
        self.ship_logs = ship_logs
        self.nodes = [Node(self, f"{prefix}{i:05d}") for i in range(nodes)]
        self.stats = Stats()
        self.stopping = False
        self.measuring = False
        self.tasks = []

    async def lag(self):
        while not self.stopping:
            t0 = time.monotonic()
            await asyncio.sleep(0.1)
            if self.measuring:
                self.stats.lag_ms.append((time.monotonic() - t0 - 0.1) * 1000)

    async def start(self):
        """Registers every node (a few at a time, as agents starting), then starts them."""
        sem = asyncio.Semaphore(32)

        async def reg(n):
            async with sem:
                await n.register()
        await asyncio.gather(*(reg(n) for n in self.nodes))
        n = len(self.nodes)
        for i, node in enumerate(self.nodes):
            self.tasks.append(asyncio.ensure_future(node.heartbeats(self.heartbeat * i / n)))
            self.tasks.append(asyncio.ensure_future(node.polls()))
        self.tasks.append(asyncio.ensure_future(self.lag()))

    async def stop(self):
        self.stopping = True
        for t in self.tasks:
            t.cancel()
        for n in self.nodes:
            for task, _ in n.jobs.values():
                task.cancel()
            for c in (n.hb, n.poll, n.ctl):
                c.close()
        await asyncio.sleep(0)


# ---- the server under test ------------------------------------------------------------------


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    def __init__(self, gpool, extra=()):
        self.tmp = tempfile.mkdtemp(prefix="gpool-bench-")
        store = f"sqlite:{self.tmp}/gpool.db"
        self.admin = subprocess.run([gpool, "server", "init", "--store", store, "--admin", "bench",
                                     "--unix-user", "nobody"], check=True, capture_output=True,
                                    text=True).stdout.strip()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(f"{self.tmp}/server.log", "w")
        self.proc = subprocess.Popen([gpool, "server", "--listen", f"127.0.0.1:{self.port}",
                                      "--store", store, *extra], stderr=self.log)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu_s(self):
        f = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / self.ticks

    def memory_mib(self):
        s = open(f"/proc/{self.proc.pid}/status").read()
        get = lambda k: int(re.search(rf"{k}:\s+(\d+)", s).group(1)) // 1024
        return get("VmRSS"), get("VmHWM")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


async def agent_token(admin):
    for method, path, body in (("POST", "/api/v1/users",
                                {"name": "bench-agent", "unix_user": "root", "role": "agent"}),
                               ("POST", "/api/v1/users/bench-agent/tokens", None)):
        status, out = await admin.json(method, path, body)
        if status not in (200, 201):
            raise SystemExit(f"{method} {path}: HTTP {status} {out}")
    return out["token"]


async def metrics(admin):
    status, data = await admin.request("GET", "/metrics")
    out = {"buckets": {}}
    for line in data.decode().splitlines():
        m = re.match(r'gpool_scheduler_cycle_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            out["buckets"][m.group(1)] = float(m.group(2))
        m = re.match(r"gpool_scheduler_cycle_seconds_(sum|count) (\S+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def cycle_figures(before, after):
    """The passes between two scrapes: how many, their mean, and their spread by bucket."""
    n = after.get("count", 0) - before.get("count", 0)
    if n <= 0:
        return "no scheduler pass between the scrapes"
    mean = (after["sum"] - before.get("sum", 0)) / n * 1000
    bounds = sorted((float(k), k) for k in after["buckets"] if k != "+Inf")
    prev, spread = 0, []
    for _, k in bounds + [(float("inf"), "+Inf")]:
        cum = after["buckets"][k] - before["buckets"].get(k, 0)
        if cum - prev:
            spread.append(f"<= {k}s: {int(cum - prev)}")
        prev = cum
    return f"{int(n)} passes, mean {mean:.1f} ms ({', '.join(spread)})"


async def submit_many(admin_url, token, specs, clients):
    """Submits every spec through the API with `clients` keep-alive connections."""
    u = urllib.parse.urlparse(admin_url)
    it = iter(specs)
    ids = []

    async def worker():
        c = Http(u.hostname, u.port, token)
        for spec in it:
            status, out = await c.json("POST", "/api/v1/jobs", spec)
            if status != 201:
                raise SystemExit(f"submit: HTTP {status} {out}")
            ids.append(out["id"])
        c.close()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return ids


async def wait_for(cond, timeout, every=0.2):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            return False
        await asyncio.sleep(every)
    return True


def machine_note():
    load = open("/proc/loadavg").read().split()[:3]
    return f"{os.cpu_count()} cores, load average {' '.join(load)} at the start"


# ---- the benches ----------------------------------------------------------------------------


async def setup(a, nodes, extra=()):
    srv = Server(os.path.abspath(a.gpool), extra)
    admin = Http("127.0.0.1", srv.port, srv.admin)
    await admin.json("PUT", "/api/v1/projects/bench", {"deserved_gpus": nodes * a.gpus})
    em = Emulator(srv.url, await agent_token(admin), nodes, a.gpus, a.heartbeat, a.poll_wait,
                  a.prefix, not a.no_logs)
    t0 = time.monotonic()
    await em.start()
    print(f"{nodes} simulated nodes x {a.gpus} GPUs registered in {time.monotonic() - t0:.1f} s "
          f"({machine_note()})", flush=True)
    return srv, admin, em


def one_gpu(i, command=("sleep", "infinity")):
    return {"project": "bench", "name": f"b{i}", "command": list(command), "gpus": 1}


async def bench_heartbeat(a):
    srv, admin, em = await setup(a, a.nodes)
    try:
        if a.jobs:
            await submit_many(srv.url, srv.admin, [one_gpu(i) for i in range(a.jobs)], a.clients)
            await wait_for(lambda: len(em.stats.running_at) >= a.jobs, 600)
            print(f"{len(em.stats.running_at)} single-GPU jobs running", flush=True)
        await asyncio.sleep(a.heartbeat)  # every node's heartbeat has started
        st = em.stats
        cpu0, polls0, t0 = srv.cpu_s(), st.polls, time.monotonic()
        em.measuring = True
        await asyncio.sleep(a.seconds)
        em.measuring = False
        cpu1, polls1, t1 = srv.cpu_s(), st.polls, time.monotonic()
        rss, hwm = srv.memory_mib()
        secs = t1 - t0
        print(f"over {secs:.0f} s: {len(st.hb_ms)} heartbeats ({len(st.hb_ms) / secs:.0f}/s, "
              f"{st.hb_fail} failed), {(polls1 - polls0) / secs:.0f} assignment polls/s")
        print(f"server CPU {cpu1 - cpu0:.1f} s = {(cpu1 - cpu0) / secs * 100:.0f}% of one core; "
              f"RSS {rss} MiB")
        print(f"heartbeat latency p50 {pct(st.hb_ms, 50):.1f} ms, p99 {pct(st.hb_ms, 99):.1f} ms, "
              f"max {max(st.hb_ms, default=float('nan')):.1f} ms")
        print(f"emulator timer lag p50 {pct(st.lag_ms, 50):.1f} ms, p99 {pct(st.lag_ms, 99):.1f} ms "
              f"(how late its own timers ran: client-side delay inside the latencies)")
    finally:
        await em.stop()
        srv.stop()


async def bench_fill(a):
    srv, admin, em = await setup(a, a.nodes)
    try:
        st = em.stats
        m0, cpu0 = await metrics(admin), srv.cpu_s()
        em.measuring = True
        t0 = time.monotonic()
        await submit_many(srv.url, srv.admin, [one_gpu(i) for i in range(a.jobs)], a.clients)
        t_sub = time.monotonic()
        ok = await wait_for(lambda: len(st.running_at) >= a.jobs, 1800, 0.05)
        t_all = max(st.running_at.values()) if st.running_at else time.monotonic()
        m1, cpu1 = await metrics(admin), srv.cpu_s()
        print(f"{a.jobs} submitted through the API in {t_sub - t0:.1f} s "
              f"({a.jobs / (t_sub - t0):.0f}/s, {a.clients} clients)")
        print(f"{'all' if ok else 'NOT all'} {len(st.running_at)} running "
              f"{t_all - t0:.1f} s after the first submission "
              f"(first running after {min(st.running_at.values(), default=t0) - t0:.2f} s)")
        print(f"scheduler: {cycle_figures(m0, m1)}")
        print(f"server CPU {cpu1 - cpu0:.1f} s over the fill; RSS {srv.memory_mib()[0]} MiB; "
              f"status reports p50 {pct(st.status_ms, 50):.1f} ms, p99 {pct(st.status_ms, 99):.1f} ms; "
              f"heartbeats p99 {pct(st.hb_ms, 99):.1f} ms")
    finally:
        await em.stop()
        srv.stop()


def mixed_job(rng, i):
    """As gpool-bench-cycle's pending jobs: half fractions, half 1, 2 or 4 whole GPUs, a tenth
    2-replica gangs, in 8 projects, every priority."""
    spec = {"project": f"p{rng.randrange(8)}", "name": f"q{i}", "command": ["sleep", "infinity"],
            "priority": rng.choice(["train", "build", "interactive", "inference"])}
    kind = rng.randrange(10)
    if kind < 5:
        spec["gpu"] = rng.choice([0.25, 0.5])
    else:
        spec["gpus"] = rng.choice([1, 2, 4])
    if kind == 9:
        spec["replicas"] = 2
    return spec


def fill_store(db, n, rng):
    """Adds n pending jobs to a stopped server's store, each a copy of a job submitted through the
    API (its row as the API wrote it)."""
    import sqlite3
    c = sqlite3.connect(db)
    rows = c.execute("SELECT project, user_id, spec FROM jobs").fetchall()
    now = int(time.time() * 1000)
    copies = (rng.choice(rows) for _ in range(n))
    c.executemany("INSERT INTO jobs (name, project, user_id, state, submitted_ms, spec) "
                  "VALUES (?, ?, ?, 'pending', ?, ?)",
                  ((f"q{i}", project, user, now + i, spec)
                   for i, (project, user, spec) in enumerate(copies)))
    c.commit()
    total = c.execute("SELECT count(*) FROM jobs WHERE state = 'pending'").fetchone()[0]
    c.close()
    return total


async def bench_cycle(a):
    """The pending jobs go into the store before the nodes join: through the API each submission
    triggers a pass, whose cost grows with the queue."""
    gpool = os.path.abspath(a.gpool)
    srv = Server(gpool)
    admin = Http("127.0.0.1", srv.port, srv.admin)
    gpus = a.nodes * a.gpus
    for p in range(8):
        await admin.json("PUT", f"/api/v1/projects/p{p}", {"deserved_gpus": gpus // 8})
    token = await agent_token(admin)
    rng = random.Random(7)
    await submit_many(srv.url, srv.admin, [mixed_job(rng, i) for i in range(400)], a.clients)
    admin.close()
    srv.proc.terminate()
    srv.proc.wait()
    t0 = time.monotonic()
    pending = fill_store(f"{srv.tmp}/gpool.db", a.pending - 400, rng)
    print(f"{pending} pending jobs in the store ({time.monotonic() - t0:.1f} s; 400 submitted "
          f"through the API, the rest copies of their rows) ({machine_note()})", flush=True)
    srv.log = open(f"{srv.tmp}/server.log", "a")
    srv.proc = subprocess.Popen([gpool, "server", "--listen", f"127.0.0.1:{srv.port}", "--store",
                                 f"sqlite:{srv.tmp}/gpool.db"], stderr=srv.log)
    em = Emulator(srv.url, token, a.nodes, a.gpus, a.heartbeat, a.poll_wait, a.prefix,
                  not a.no_logs)
    try:
        # Up (a loaded machine starts it slowly), then 3 s of passes with no node.
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", srv.port), 1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(3)
        admin = Http("127.0.0.1", srv.port, srv.admin)
        m0 = await metrics(admin)
        print(f"server with {pending} pending and no node: RSS {srv.memory_mib()[0]} MiB, "
              f"scheduler {cycle_figures({'buckets': {}}, m0)}", flush=True)
        st = em.stats
        t0 = time.monotonic()
        em.measuring = True  # heartbeats from the first node's join on
        await em.start()
        print(f"{a.nodes} nodes x {a.gpus} GPUs registered in {time.monotonic() - t0:.1f} s",
              flush=True)
        t0 = time.monotonic()
        await wait_for(lambda: sum(len(n.jobs) for n in em.nodes) > 0, 600)
        first = time.monotonic() - t0
        m1 = await metrics(admin)
        await asyncio.sleep(10)
        held = sum(len(n.jobs) for n in em.nodes)
        print(f"first placements {first:.1f} s after the nodes joined; "
              f"{held} jobs running 10 s later; scheduler up to then: {cycle_figures(m0, m1)}",
              flush=True)
        m0, cpu0, t0 = await metrics(admin), srv.cpu_s(), time.monotonic()
        perf = None
        if a.perf:
            perf = subprocess.Popen(["perf", "record", "--call-graph", "dwarf,16384", "-o",
                                     f"{srv.tmp}/perf.data", "-p", str(srv.proc.pid), "--",
                                     "sleep", str(min(a.seconds, 5))],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(a.seconds)
        em.measuring = False
        m1, cpu1, t1 = await metrics(admin), srv.cpu_s(), time.monotonic()
        rss, hwm = srv.memory_mib()
        _, out = await admin.json("GET", "/api/v1/jobs?state=pending&limit=1")
        print(f"then over {t1 - t0:.0f} s, {sum(len(n.jobs) for n in em.nodes)} running: "
              f"scheduler {cycle_figures(m0, m1)}")
        _, nodes = await admin.json("GET", "/api/v1/nodes")
        silent = sum(1 for n in nodes["nodes"] if not n["alive"])
        print(f"server memory: RSS {rss} MiB, peak {hwm} MiB; CPU "
              f"{(cpu1 - cpu0) / (t1 - t0) * 100:.0f}% of one core")
        print(f"from the nodes' join on: heartbeat p50 {pct(st.hb_ms, 50):.0f} ms, p99 "
              f"{pct(st.hb_ms, 99):.0f} ms; emulator timer lag p50 {pct(st.lag_ms, 50):.0f} ms, "
              f"p99 {pct(st.lag_ms, 99):.0f} ms; nodes the server holds silent: {silent}")
        if perf is not None:
            perf.wait()
            rep = subprocess.run(["perf", "report", "-i", f"{srv.tmp}/perf.data", "--children",
                                  "--stdio", "--sort", "symbol", "-g", "none",
                                  "--percent-limit", "3"], capture_output=True, text=True).stdout
            print("perf over 5 s (time in each function and what it calls; over 3%):")
            print("\n".join(line for line in rep.splitlines()
                            if "%" in line and not line.startswith("#") and "0x0" not in line))
    finally:
        await em.stop()
        srv.stop()


async def run_only(a):
    token = open(a.token_file).read().strip()
    em = Emulator(a.server, token, a.nodes, a.gpus, a.heartbeat, a.poll_wait, a.prefix,
                  not a.no_logs)
    await em.start()
    em.measuring = True
    print(f"{a.nodes} nodes registered; Ctrl-C stops", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    st = em.stats
    print(f"heartbeats {len(st.hb_ms)}, p50 {pct(st.hb_ms, 50):.1f} ms, "
          f"p99 {pct(st.hb_ms, 99):.1f} ms; jobs run {len(st.running_at)}, "
          f"succeeded {len(st.succeeded_at)}")
    await em.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["heartbeat", "fill", "cycle", "run"])
    ap.add_argument("--gpool", default="build/gpool")
    ap.add_argument("--nodes", type=int)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--heartbeat", type=float, default=5)
    ap.add_argument("--poll-wait", type=int, default=1)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--pending", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--prefix", default="sim")
    ap.add_argument("--no-logs", action="store_true", help="send no log ends before a success")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--server")
    ap.add_argument("--token-file")
    a = ap.parse_args()
    defaults = {"heartbeat": (1000, 0, 60), "fill": (500, 4000, 0), "cycle": (1250, 0, 20),
                "run": (10, 0, 0)}[a.mode]
    a.nodes = a.nodes if a.nodes is not None else defaults[0]
    a.jobs = a.jobs if a.jobs is not None else defaults[1]
    a.seconds = a.seconds if a.seconds is not None else defaults[2]
    if a.mode == "run" and (a.server is None or a.token_file is None):
        ap.error("run needs --server and --token-file (an agent's token)")
    raise_fd_limit()
    fn = {"heartbeat": bench_heartbeat, "fill": bench_fill, "cycle": bench_cycle,
          "run": run_only}[a.mode]
    asyncio.run(fn(a))


if __name__ == "__main__":
    main()
