#!/usr/bin/env python3
"""The whole fill grid: every openb pod list x every policy x seeds, beside the FGD paper.

Prints, per pod list and policy, the mean unallocated GPU % at 100% arrived demand (with its
standard deviation over seeds), the paper's published mean, the difference, and the time per
seed; then the grid's wall time. Usage:

    bench/fill-grid.py [--gpool build/gpool] [--seeds 42..51] [--wide-seeds 42..81]
                       [--lists default,gpushare40,...] [--markdown]
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

PAPER = {"random": "01-Random", "dotprod": "02-DotProd", "clustering": "03-GpuClustering",
         "packing": "04-GpuPacking", "bestfit": "05-BestFit", "fgd": "06-FGD"}
LISTS = ["default", "gpushare40", "gpushare80", "gpuspec20", "multigpu30", "cpu100"]


def traces_dir():
    env = os.environ.get("GPOOL_TRACES")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "shared", "traces"))


def published(openb):
    out = {}
    path = os.path.join(openb, "fgd_published_results.csv")
    if not os.path.exists(path):
        return out
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["metric"] == "gpu_alloc_pct" and row["arrive_pct"] == "100":
                out[(row["workload"], row["policy"])] = 100.0 - float(row["mean_over_seeds"])
    return out


def policies(gpool):
    text = subprocess.run([gpool, "sim", "fill", "--help"], capture_output=True, text=True).stdout
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("--policy NAME"):
            words = line.split("NAME", 1)[1]
            while "or all" not in words and i + 1 < len(lines):
                i += 1
                words += " " + lines[i]
            return words.replace("or all", "").replace(",", " ").split()
    return list(PAPER)


def run(gpool, openb, pods, policy, seeds):
    cmd = [gpool, "sim", "fill", "--nodes", os.path.join(openb, "openb_node_list_gpu_node.csv"),
           "--pods", pods if os.path.exists(pods) else os.path.join(openb, f"openb_pod_list_{pods}.csv"),
           "--policy", policy, "--seeds", seeds, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpool", default="build/gpool")
    ap.add_argument("--seeds", default="42..51")
    ap.add_argument("--wide-seeds", default="42..51",
                    help="seeds for clustering and packing, whose spread is wider")
    ap.add_argument("--lists", default=",".join(LISTS))
    ap.add_argument("--policies", default="")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    openb = os.path.join(traces_dir(), "openb")
    ref = published(openb)
    names = a.policies.split(",") if a.policies else policies(a.gpool)
    t0 = time.monotonic()
    rows = []
    for pods in a.lists.split(","):
        for p in names:
            seeds = a.wide_seeds if p in ("clustering", "packing") else a.seeds
            o = run(a.gpool, openb, pods, p, seeds)
            want = ref.get((f"openb_pod_list_{os.path.basename(pods)}", PAPER.get(p, "")))
            rows.append((pods, p, len(o["seeds"]), o["unallocated_gpu_pct_at_arrive_100"],
                         o["unallocated_gpu_pct_sd"], want, o["seconds_per_seed"]))
    wall = time.monotonic() - t0
    if a.markdown:
        print("| pod list | policy | seeds | unallocated % | sd | paper | diff | s/seed |")
        print("|---|---|---|---|---|---|---|---|")
    else:
        print(f"{'pod list':<12} {'policy':<11} {'seeds':>5} {'unalloc%':>9} {'sd':>5} "
              f"{'paper':>7} {'diff':>6} {'s/seed':>7}")
    for pods, p, n, got, sd, want, sps in rows:
        paper = f"{want:.2f}" if want is not None else "-"
        diff = f"{got - want:+.2f}" if want is not None else "-"
        if a.markdown:
            print(f"| {pods} | {p} | {n} | {got:.2f} | {sd:.2f} | {paper} | {diff} | {sps:.3f} |")
        else:
            print(f"{pods:<12} {p:<11} {n:>5} {got:>9.2f} {sd:>5.2f} {paper:>7} {diff:>6} {sps:>7.3f}")
    print(f"grid wall time: {wall:.1f} s on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
