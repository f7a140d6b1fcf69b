#!/usr/bin/env python3
"""Event streams held by `gpool server`: opens N streams (GET /api/v1/events) at once, then
submits a job, and prints how long the streams took to open, the server's threads and resident
memory with them open, and how long after the submission every stream had the job's event.

usage: bench/events.py [--gpool build/gpool] [--streams 1000,10000]
"""
import argparse
import http.client
import os
import selectors
import shutil
import socket
import tempfile
import time

from submit import request, start_server


def pump(sel, bufs, want, seconds):
    """Reads the streams until each has `want` or the time is up; how many have it."""
    deadline = time.time() + seconds
    while time.time() < deadline and sum(want in b for b in bufs.values()) < len(bufs):
        for key, _ in sel.select(0.2):
            try:
                data = key.fileobj.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(key.fileobj)
            bufs[key.fileobj] += data
    return sum(want in b for b in bufs.values())


def server_figures(pid):
    status = open(f"/proc/{pid}/status").read()
    rss = int(status.split("VmRSS:")[1].split()[0]) // 1024
    return len(os.listdir(f"/proc/{pid}/task")), rss


def one(gpool, n):
    tmp = tempfile.mkdtemp()
    proc, port, token = start_server(gpool, tmp)
    sel, bufs = selectors.DefaultSelector(), {}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        request(conn, token, "PUT", "/api/v1/projects/bench", {"deserved_gpus": 8})
        threads_before, _ = server_figures(proc.pid)
        t0 = time.time()
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: gpool\r\n"
                      f"Authorization: Bearer {token}\r\n\r\n".encode())
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            bufs[s] = b""
        opened = pump(sel, bufs, b": connected", 30)
        took = time.time() - t0
        threads, rss = server_figures(proc.pid)
        t0 = time.time()
        request(conn, token, "POST", "/api/v1/jobs", {"project": "bench", "command": ["true"]})
        got = pump(sel, bufs, b"event: job", 30)
        print(f"{n} streams: {opened} open in {took:.2f} s; server threads {threads_before} "
              f"before, {threads} with them; RSS {rss} MiB; {got} had the job's event "
              f"{(time.time() - t0) * 1000:.0f} ms after the submission was sent")
    finally:
        for s in bufs:
            s.close()
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpool", default="build/gpool")
    ap.add_argument("--streams", default="1000,10000")
    a = ap.parse_args()
    for n in a.streams.split(","):
        one(os.path.abspath(a.gpool), int(n))


if __name__ == "__main__":
    main()
