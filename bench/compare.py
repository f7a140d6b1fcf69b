#!/usr/bin/env python3
"""Two placement policies on the same pods and seeds: the paired difference at 100% arrival.

For each pod list, runs `gpool sim fill` for policy A and policy B over the same seeds and prints
both means of unallocated GPU % at 100% arrived demand, the mean of the per-seed differences
(B - A), its standard error, and whether B is lower by more than two standard errors.

    bench/compare.py [--gpool build/gpool] [--a fgd] [--b gpool] [--seeds 42..51] LIST...

A LIST is a pod list file or a short name (default, gpushare40, ...).
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile


def per_seed(gpool, nodes, pods, policy, seeds):
    fd, path = tempfile.mkstemp(suffix=".csv")
    os.close(fd)
    try:
        cmd = [gpool, "sim", "fill", "--pods", pods, "--policy", policy, "--seeds", seeds,
               "--csv", path]
        if nodes:
            cmd += ["--nodes", nodes]
        subprocess.run(cmd, check=True, capture_output=True)
        with open(path, newline="") as f:
            return {int(r["seed"]): float(r["unallocated_pct"])
                    for r in csv.DictReader(f) if r["arrive_pct"] == "100"}
    finally:
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpool", default="build/gpool")
    ap.add_argument("--nodes", default="")
    ap.add_argument("--a", default="fgd")
    ap.add_argument("--b", default="gpool")
    ap.add_argument("--seeds", default="42..51")
    ap.add_argument("lists", nargs="+")
    o = ap.parse_args()
    print(f"{'pod list':<28} {o.a:>8} {o.b:>8} {'diff':>8} {'se':>6}  verdict")
    wins = 0
    for pods in o.lists:
        a = per_seed(o.gpool, o.nodes, pods, o.a, o.seeds)
        b = per_seed(o.gpool, o.nodes, pods, o.b, o.seeds)
        d = [b[s] - a[s] for s in sorted(a)]
        mean = statistics.mean(d)
        se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
        lower = mean < -2 * se
        wins += lower
        verdict = f"{o.b} lower" if lower else ("no significant difference" if abs(mean) <= 2 * se
                                               else f"{o.b} higher")
        print(f"{os.path.basename(pods):<28} {statistics.mean(a.values()):>8.2f} "
              f"{statistics.mean(b.values()):>8.2f} {mean:>+8.3f} {se:>6.3f}  {verdict}")
    print(f"{o.b} lower by more than two standard errors on {wins} of {len(o.lists)} pod lists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
