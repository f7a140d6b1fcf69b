#!/usr/bin/env python3
"""The six baselines of the FGD paper, reproduced on the Alibaba openb trace.

For the pod lists `default`, `gpushare80` and `multigpu30`, `gpool sim fill` must land within
0.5 points of the paper's published mean unallocated GPU % at 100% arrived demand (seeds 42..51;
42..81 for clustering and packing, whose seed-to-seed spread is about 0.5). TAP output; skipped
when the traces are not on this machine.
"""
import csv
import json
import os
import subprocess
import sys

TOLERANCE = 0.5
POLICIES = {"random": "01-Random", "dotprod": "02-DotProd", "clustering": "03-GpuClustering",
            "packing": "04-GpuPacking", "bestfit": "05-BestFit", "fgd": "06-FGD"}
WIDE_SPREAD = {"clustering", "packing"}
POD_LISTS = ["default", "gpushare80", "multigpu30"]


def traces_dir():
    env = os.environ.get("GPOOL_TRACES")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "traces"))


def published(path):
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["metric"] == "gpu_alloc_pct" and row["arrive_pct"] == "100":
                out[(row["workload"], row["policy"])] = 100.0 - float(row["mean_over_seeds"])
    return out


def main():
    gpool = sys.argv[1]
    openb = os.path.join(traces_dir(), "openb")
    ref_path = os.path.join(openb, "fgd_published_results.csv")
    if not os.path.exists(ref_path):
        print(f"1..0 # SKIP traces not found in {openb}")
        return 0
    ref = published(ref_path)
    n = failed = 0
    for pods in POD_LISTS:
        for policy, paper_name in POLICIES.items():
            seeds = "42..81" if policy in WIDE_SPREAD else "42..51"
            run = subprocess.run(
                [gpool, "sim", "fill", "--nodes", os.path.join(openb, "openb_node_list_gpu_node.csv"),
                 "--pods", os.path.join(openb, f"openb_pod_list_{pods}.csv"),
                 "--policy", policy, "--seeds", seeds, "--json"],
                capture_output=True, text=True)
            n += 1
            want = ref[(f"openb_pod_list_{pods}", paper_name)]
            if run.returncode != 0:
                failed += 1
                print(f"not ok {n} - {pods} {policy}: exit {run.returncode}: {run.stderr.strip()}")
                continue
            got = json.loads(run.stdout)["unallocated_gpu_pct_at_arrive_100"]
            verdict = "ok" if abs(got - want) <= TOLERANCE else "not ok"
            failed += verdict != "ok"
            print(f"{verdict} {n} - {pods} {policy}: {got:.2f}% unallocated, paper {want:.2f}%")
    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
