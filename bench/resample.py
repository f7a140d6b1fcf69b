#!/usr/bin/env python3
"""Pod lists resampled from an openb pod list, to stress one feature at a time.

Like the FGD paper's variants of the default trace: draw pods (with replacement) from the
original list so that a chosen category carries a given share, keeping the number of pods.

    sharing=S    S% of GPU demand from sharing pods (num_gpu 1, gpu_milli < 1000)
    multigpu=M   M% of GPU demand from multi-GPU pods (num_gpu > 1)
    gpuspec=G    G% of GPU pods carry a GPU-model constraint: one model of the node list,
                 drawn in proportion to its GPUs on nodes with enough GPUs for the pod
    cpu=C        CPU-only pods are C% of all pods

Usage: bench/resample.py SOURCE.csv OUT.csv KIND=PERCENT SEED [NODES.csv]
(gpuspec needs NODES.csv.) The output has the columns the simulator reads; the same arguments
give the same file.
"""
import csv
import random
import sys

FIELDS = ["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec"]


def demand(p):
    return int(p["num_gpu"]) * int(p["gpu_milli"])


def categories(kind, pods):
    """(in category, out of category) for a kind."""
    if kind == "sharing":
        test = lambda p: int(p["num_gpu"]) == 1 and int(p["gpu_milli"]) < 1000
    elif kind == "multigpu":
        test = lambda p: int(p["num_gpu"]) > 1
    elif kind == "gpuspec":
        test = lambda p: demand(p) > 0
    elif kind == "cpu":
        test = lambda p: demand(p) == 0
    else:
        sys.exit(f"resample: unknown kind '{kind}' (sharing, multigpu, gpuspec or cpu)")
    inside = [p for p in pods if test(p)]
    outside = [p for p in pods if not test(p)]
    if kind == "gpuspec":
        outside = [p for p in outside if demand(p) > 0]
    return inside, outside


def draw_probability(kind, share, inside, outside):
    """Probability of drawing from `inside` so that it carries `share` of what is measured."""
    if kind in ("sharing", "multigpu"):
        d_in = sum(map(demand, inside)) / len(inside)
        d_out = sum(map(demand, outside)) / max(1, len(outside))
        # share = p d_in / (p d_in + (1 - p) d_out)
        return share * d_out / (d_in * (1 - share) + share * d_out) if share < 1 else 1.0
    return share


def model_picker(nodes_path, rng):
    """Draw a GPU model for a pod of n GPUs, in proportion to the GPUs that could host it."""
    with open(nodes_path, newline="") as f:
        nodes = [r for r in csv.DictReader(f) if int(r["gpu"]) > 0 and r.get("model")]

    def pick(num_gpu):
        weights = {}
        for r in nodes:
            if int(r["gpu"]) >= num_gpu:
                weights[r["model"]] = weights.get(r["model"], 0) + int(r["gpu"])
        models = sorted(weights)
        return rng.choices(models, [weights[m] for m in models])[0] if models else ""
    return pick


def main():
    if len(sys.argv) not in (5, 6) or "=" not in sys.argv[3]:
        sys.exit(__doc__)
    src, dst, spec, seed = sys.argv[1:5]
    kind, pct = spec.split("=")
    share = float(pct) / 100
    if not 0 <= share <= 1:
        sys.exit("resample: PERCENT must be 0..100")
    with open(src, newline="") as f:
        pods = list(csv.DictReader(f))
    rng = random.Random(int(seed))
    inside, outside = categories(kind, pods)
    n = len(pods)
    out = []
    if kind == "gpuspec":
        # Keep the CPU-only pods; among GPU pods, the constrained ones make `share`.
        cpu_only = [p for p in pods if demand(p) == 0]
        gpu_n = n - len(cpu_only)
        out = list(cpu_only)
        if len(sys.argv) != 6:
            sys.exit("resample: gpuspec needs the node list as a fifth argument")
        pick = model_picker(sys.argv[5], rng)
        gpu_pods = [p for p in pods if demand(p) > 0]
        for _ in range(gpu_n):
            p = dict(rng.choice(gpu_pods))
            p["gpu_spec"] = pick(int(p["num_gpu"])) if rng.random() < share else ""
            out.append(p)
    else:
        p_in = draw_probability(kind, share, inside, outside)
        for _ in range(n):
            out.append(rng.choice(inside if rng.random() < p_in else outside))
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for i, p in enumerate(out):
            row = dict(p)
            row["name"] = f"{kind}{pct}-pod-{i:05d}"
            row.setdefault("gpu_spec", "")
            w.writerow(row)


if __name__ == "__main__":
    main()
