#!/usr/bin/env python3
"""The openb default trace replayed through the four policies of `gpool sim replay` at several
loads, on the whole cluster and on a quarter of its nodes, with gpool's ratios to static.

usage: bench/replay.py [--gpool build/gpool] [--loads 100,200,400,800] [--fractions 1,0.25,0.1]
"""
import argparse
import json
import subprocess
import time


def run(gpool, load, fraction):
    out = subprocess.run([gpool, "sim", "replay", "--jobs", "default", "--policy", "all",
                          "--load", str(load), "--node-fraction", str(fraction), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return {p["policy"]: p for p in json.loads(out)["policies"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpool", default="build/gpool")
    ap.add_argument("--loads", default="100,200,400,800")
    ap.add_argument("--fractions", default="1,0.25,0.1")
    a = ap.parse_args()
    t0 = time.time()
    print("| nodes | load | policy | alloc (busy) | used (busy) | goodput (busy) | delay mean | "
          "delay p95 | Jain | preempt | swaps | lost GPU-h | owner slowdown | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for f in a.fractions.split(","):
        for load in a.loads.split(","):
            r = run(a.gpool, load, f)
            for name, p in r.items():
                sat = " sat." if p["saturated"] else ""
                print(f"| {f} | {load} | {name} | {p['allocated_ratio']:.3f} ({p['allocated_ratio_busy']:.3f}{sat}) "
                      f"| {p['used_ratio']:.4f} ({p['used_ratio_busy']:.4f}) "
                      f"| {p['goodput']:.3f} ({p['goodput_busy']:.3f}) | {p['queue_delay_mean_s']:.0f} s "
                      f"| {p['queue_delay_p95_s']:.0f} s | {p['jain']:.3f} | {p['preemptions']} | {p['swaps']} "
                      f"| {p['work_lost']:.1f} | {100 * p['owner_slowdown']:.1f}% | {p['seconds']:.1f} |")
            s, g = r["static"], r["gpool"]
            print(f"| {f} | {load} | gpool / static | | x{g['used_ratio_busy'] / max(s['used_ratio_busy'], 1e-9):.2f} "
                  f"| | x{g['goodput_busy'] / max(s['goodput_busy'], 1e-9):.2f} | "
                  f"x{g['queue_delay_mean_s'] / max(s['queue_delay_mean_s'], 1e-9):.2f} | | | | | | | |")
    print(f"\nwall time: {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
