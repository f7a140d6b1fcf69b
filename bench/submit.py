#!/usr/bin/env python3
"""Submissions per second to `gpool server`, durable (every job committed and synced before the
answer): through the CLI (a process per submit, as sbatch) and through the API with concurrent
clients.  Prints the store's synchronous setting as the server reports it.  With --slurm, runs
the same CLI test against sbatch of the local Slurm peer (../shared/peers/slurm).  --store URL
runs the server on that store (an empty PostgreSQL database: postgresql://...; default a new
SQLite file).

usage: bench/submit.py [--gpool build/gpool] [--store URL] [--cli N] [--api N] [--clients C]
                       [--slurm]
"""
import argparse
import concurrent.futures as cf
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from benchlib import free_port


def start_server(gpool, tmp, store):
    store = store or f"sqlite:{tmp}/gpool.db"
    token = subprocess.run([gpool, "server", "init", "--store", store, "--admin", "bench",
                            "--unix-user", "nobody"], check=True, capture_output=True,
                           text=True).stdout.strip()
    port = free_port()
    proc = subprocess.Popen([gpool, "server", "--listen", f"127.0.0.1:{port}", "--store", store,
                             "--log-dir", f"{tmp}/logs"], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port, token


def request(conn, token, method, path, body=None):
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    return r.status, json.loads(data)


def parallel(n, clients, fn):
    t0 = time.time()
    with cf.ThreadPoolExecutor(clients) as ex:
        list(ex.map(fn, range(n)))
    return n / (time.time() - t0)


def bench_cli(gpool, env, n, clients):
    cmd = [gpool, "submit", "--project", "bench", "--gpu", "0.5", "--", "true"]
    return parallel(n, clients, lambda i: subprocess.run(cmd, env=env, check=True,
                                                          capture_output=True))


def bench_api(port, token, n, clients):
    local = __import__("threading").local()

    def one(i):
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port)
        status, _ = request(local.conn, token, "POST", "/api/v1/jobs",
                            {"project": "bench", "command": ["true"], "gpu": 0.5})
        assert status == 201, status
    return parallel(n, clients, one)


def bench_slurm(n, clients):
    peer = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "peers", "slurm")
    subprocess.run([os.path.join(peer, "setup.sh")], check=True, capture_output=True)
    env = dict(os.environ)
    with open("/tmp/slurm-peer/env") as f:
        for line in f:
            if line.startswith("export "):
                k, v = line[7:].strip().split("=", 1)
                env[k] = v.strip("'\"")
    out = tempfile.mkdtemp()  # the jobs' slurm-N.out files go to the folder they came from
    try:
        return parallel(n, clients, lambda i: subprocess.run(
            ["sbatch", "--gres=gpu:1", "--wrap", "true"], env=env, check=True,
            capture_output=True, cwd=out))
    finally:
        subprocess.run([os.path.join(peer, "stop.sh")], capture_output=True)
        shutil.rmtree(out, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpool", default="build/gpool")
    ap.add_argument("--cli", type=int, default=1000)
    ap.add_argument("--api", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--slurm", action="store_true")
    ap.add_argument("--store", default=None)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    proc, port, token = start_server(os.path.abspath(a.gpool), tmp, a.store)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        request(conn, token, "PUT", "/api/v1/projects/bench", {"deserved_gpus": 8})
        _, status = request(conn, token, "GET", "/api/v1/status")
        print(f"store: {status['store']}")
        env = dict(os.environ, GPOOL_SERVER=f"http://127.0.0.1:{port}", GPOOL_TOKEN=token)
        print(f"CLI, a process per submit, {a.clients} clients: "
              f"{bench_cli(os.path.abspath(a.gpool), env, a.cli, a.clients):.0f} submits/s ({a.cli} jobs)")
        for c in (1, a.clients, 4 * a.clients):
            print(f"API, {c} keep-alive clients: {bench_api(port, token, a.api, c):.0f} submits/s "
                  f"({a.api} jobs)")
        t0 = time.time()
        status, job = request(conn, token, "POST", "/api/v1/jobs",
                              {"project": "bench", "command": ["true"], "gpu": 0.5})
        while True:
            _, j = request(conn, token, "GET", f"/api/v1/jobs/{job['id']}")
            if j["reason"]:
                break
            time.sleep(0.005)
        print(f"submit to first scheduling decision (its wait reason): "
              f"{(time.time() - t0) * 1000:.0f} ms")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp)
    if a.slurm:
        print(f"Slurm sbatch, {a.clients} clients: {bench_slurm(a.cli, a.clients):.0f} submits/s "
              f"({a.cli} jobs)")


if __name__ == "__main__":
    main()
