#!/usr/bin/env python3
"""Jobs through `gpool dev`: real agents and processes on simulated GPUs.

usage:
  bench/dev.py latency    [--jobs 200] [--gpool build/gpool] [-- GPOOL-DEV-FLAGS...]
  bench/dev.py throughput [--jobs 2000] [--command 'sleep 1'] [--clients 4] [--slurm]
                          [--slurm-sched PARAMS] [--no-gpool] [-- GPOOL-DEV-FLAGS...]

latency: jobs submitted one at a time through the API (`date +%s.%N`, one GPU each); each
  workload prints when it started.  Prints p50 and p99 of submission to the workload's start, and
  of its parts from the job's timeline: submitted to assigned (the scheduler), assigned to the
  workload's start (the agent).  `gpool dev` runs with `--gpus 4` (and its default nodes).
throughput: --jobs single-GPU jobs of --command submitted at once through the API with --clients
  keep-alive connections; jobs per second from the first submission to the last job's end.
  `gpool dev` runs with `--nodes 2 --gpus 4` (8 GPUs).  With --slurm, the same jobs through the local Slurm peer
  (../shared/peers/slurm, one node of 8 GPUs: `sbatch --gres=gpu:1 -o /dev/null --wrap CMD`,
  --clients sbatch processes at once), after gpool's run; --slurm-sched sets Slurm's
  SchedulerParameters (e.g. batch_sched_delay=0).  --no-gpool runs Slurm's side alone.
Flags after `--` go to `gpool dev` (e.g. `-- --nodes 2 --gpus 4`) and replace its default --gpus.
"""
import argparse
import concurrent.futures as cf
import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse

from benchlib import free_port


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else float("nan")


class Dev:
    """`gpool dev` in a fresh directory, with its server's URL and admin token."""

    def __init__(self, gpool, flags):
        self.dir = tempfile.mkdtemp(prefix="gpool-devbench-")
        os.chmod(self.dir, 0o755)  # the workloads' account keeps its files here, in reach
        self.port = free_port()
        self.proc = subprocess.Popen([gpool, "dev", "--gpu-memory", "80GiB", "--listen",
                                      f"127.0.0.1:{self.port}", "--dir", self.dir, *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            m = re.search(r"export GPOOL_SERVER=(\S+) GPOOL_TOKEN=(\S+)", line)
            if m:
                self.url, self.token = m.groups()
                break
        else:
            raise SystemExit(f"gpool dev did not start; see {self.dir}/dev.log")
        self.local = threading.local()

    def conn(self):
        if not hasattr(self.local, "c"):
            self.local.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return self.local.c

    def call(self, method, path, body=None):
        c = self.conn()
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Authorization": f"Bearer {self.token}",
                           "Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        ctype = r.getheader("Content-Type") or ""
        return r.status, json.loads(data) if "json" in ctype and data else data

    def gpus(self):
        _, out = self.call("GET", "/api/v1/nodes")
        return sum(len(n["gpus"]) for n in out["nodes"] if n["alive"])

    def metric(self, name, labels):
        _, text = self.call("GET", "/metrics")
        for line in text.decode().splitlines():
            if line.startswith(name + "{" + labels + "}"):
                return float(line.split()[-1])
        return 0.0

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_gpus(dev, want):
    for _ in range(600):
        if dev.gpus() >= want:
            return
        time.sleep(0.1)
    raise SystemExit(f"the agents of gpool dev did not register {want} GPUs")


def workload_start(dev, jid):
    """The time the workload printed, from its stdout in the agent's state directory."""
    for path in glob.glob(f"{dev.dir}/**/jobs/{jid}/stdout", recursive=True):
        text = open(path).read().strip()
        if text:
            return float(text)
    return None


def bench_latency(a, flags):
    dev = Dev(os.path.abspath(a.gpool), flags or ["--gpus", "4"])
    try:
        wait_gpus(dev, 1)
        total, sched, agent = [], [], []
        for i in range(a.jobs):
            t0 = time.time()
            status, out = dev.call("POST", "/api/v1/jobs",
                                   {"project": "default", "name": f"lat{i}",
                                    "command": ["date", "+%s.%N"], "gpus": 1})
            if status != 201:
                raise SystemExit(f"submit: HTTP {status} {out}")
            deadline = time.time() + 30
            while (started := workload_start(dev, out["id"])) is None:
                if time.time() > deadline:
                    raise SystemExit(f"job {out['id']} did not start within 30 s")
                time.sleep(0.02)
            total.append((started - t0) * 1000)
            _, tl = dev.call("GET", f"/api/v1/jobs/{out['id']}/timeline")
            at = {s["state"]: s["at_ms"] for s in tl["states"]}
            if "assigned" in at and "pending" in at:
                sched.append(at["assigned"] - at["pending"])
                agent.append(started * 1000 - at["assigned"])
        print(f"{len(total)} jobs one at a time on gpool dev {' '.join(flags or ['--gpus', '4'])}:")
        for name, v in (("submission to the workload running", total),
                        ("  submitted to assigned (scheduler)", sched),
                        ("  assigned to the workload running (agent)", agent)):
            print(f"{name}: p50 {pct(v, 50):.0f} ms, p99 {pct(v, 99):.0f} ms, max {max(v):.0f} ms")
    finally:
        dev.stop()


def gpool_throughput(a, flags):
    dev = Dev(os.path.abspath(a.gpool), flags or ["--nodes", "2", "--gpus", "4"])
    try:
        wait_gpus(dev, 1)
        time.sleep(1)
        gpus = dev.gpus()
        spec = {"project": "default", "command": a.command.split(), "gpus": 1}
        t0 = time.time()

        def one(i):
            status, out = dev.call("POST", "/api/v1/jobs", dict(spec, name=f"t{i}"))
            assert status == 201, (status, out)
        with cf.ThreadPoolExecutor(a.clients) as ex:
            list(ex.map(one, range(a.jobs)))
        t_sub = time.time()
        while True:
            done = sum(dev.metric("gpool_jobs", f'state="{s}"') for s in ("succeeded", "failed"))
            if done >= a.jobs:
                break
            time.sleep(1)
        ends, failed, after = [], 0, None
        while True:
            _, out = dev.call("GET", "/api/v1/jobs?state=succeeded,failed&limit=1000" +
                              (f"&after={after}" if after else ""))
            ends += [j["finished_ms"] / 1000 for j in out["jobs"]]
            failed += sum(j["state"] == "failed" for j in out["jobs"])
            if not (after := out["next"]):
                break
        span = max(ends) - t0
        print(f"gpool dev {' '.join(flags or ['--nodes', '2', '--gpus', '4'])} ({gpus} GPUs): {a.jobs} x "
              f"`{a.command}` submitted in {t_sub - t0:.1f} s ({a.clients} API clients); last "
              f"ended {span:.1f} s after the first submission => {a.jobs / span:.2f} jobs/s "
              f"({failed} failed)")
    finally:
        dev.stop()


def slurm_throughput(a):
    peer = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                         "shared", "peers", "slurm"))
    env = dict(os.environ, SLURM_PEER_RESTART="1", SLURM_PEER_CLEAN="1")
    if a.slurm_sched:
        env["SLURM_PEER_SCHED"] = a.slurm_sched
    setup = subprocess.run([os.path.join(peer, "setup.sh")], env=env, capture_output=True,
                           text=True)
    if setup.returncode != 0:
        print(f"Slurm did not start ({peer}/setup.sh exit {setup.returncode}):\n"
              f"{setup.stdout[-2000:]}{setup.stderr[-2000:]}")
        return
    pdir = os.environ.get("SLURM_PEER_DIR", "/tmp/slurm-peer")
    env = dict(os.environ, SLURM_CONF=f"{pdir}/etc/slurm.conf")
    log = f"{pdir}/log/slurmctld.log"
    try:
        base = sum(1 for _ in open(log, errors="replace"))
        t0 = time.time()

        def one(i):
            subprocess.run(["sbatch", "--parsable", "--gres=gpu:1", "-t", "15", "-J", f"b{i}",
                            "-o", "/dev/null", "--wrap", a.command], env=env, check=True,
                           capture_output=True)
        with cf.ThreadPoolExecutor(a.clients) as ex:
            list(ex.map(one, range(a.jobs)))
        t_sub = time.time()
        done_re = re.compile(r"^\[([^\]]+)\] _job_complete: JobId=\d+ done")
        last = None
        while True:
            lines = open(log, errors="replace").readlines()[base:]
            done = [m.group(1) for m in map(done_re.match, lines) if m]
            if len(done) >= a.jobs:
                last = done[-1]
                break
            time.sleep(1)
        end = time.mktime(time.strptime(last.split(".")[0], "%Y-%m-%dT%H:%M:%S")) + \
            float("0." + last.split(".")[1])
        span = end - t0
        sched = subprocess.run(["scontrol", "show", "config"], env=env, capture_output=True,
                               text=True).stdout
        params = re.search(r"SchedulerParameters\s*=\s*(.*)", sched)
        print(f"Slurm {subprocess.run(['sbatch', '-V'], env=env, capture_output=True, text=True).stdout.strip()} "
              f"(SchedulerParameters {params.group(1).strip() if params else '?'}), 1 node x 8 GPUs: "
              f"{a.jobs} x `{a.command}` submitted in {t_sub - t0:.1f} s ({a.clients} sbatch at "
              f"once); last ended {span:.1f} s after the first submission => "
              f"{a.jobs / span:.2f} jobs/s")
    finally:
        subprocess.run([os.path.join(peer, "stop.sh")], capture_output=True)


def main():
    argv = os.sys.argv[1:]
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["latency", "throughput"])
    ap.add_argument("--gpool", default="build/gpool")
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--command", default="sleep 1")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--slurm", action="store_true")
    ap.add_argument("--slurm-sched", default="")
    ap.add_argument("--no-gpool", action="store_true")
    a = ap.parse_args(argv)
    print(f"({os.cpu_count()} cores, load average "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])} at the start)", flush=True)
    if a.mode == "latency":
        a.jobs = a.jobs or 200
        bench_latency(a, flags)
        return
    a.jobs = a.jobs or 2000
    if not a.no_gpool:
        gpool_throughput(a, flags)
    if a.slurm:
        slurm_throughput(a)


if __name__ == "__main__":
    main()
