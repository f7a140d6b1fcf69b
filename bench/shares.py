#!/usr/bin/env python3
"""Share accuracy of libgpool-cuda: two saturating gpool-burn jobs on one GPU with shares s and
1 - s, for kernels of several lengths.  A burn kernel spins for its set time, so a job's kernel
count times the kernel length is its GPU time.  Prints, per kernel length and share, the share
of the two jobs' GPU time the first got, its error in points, and how busy the GPU was.
Works on simgpu (LD_LIBRARY_PATH at its build folder) and on a real GPU.

  bench/shares.py --burn build/src/burn/gpool-burn --lib build/src/cuda/libgpool-cuda.so \\
      --region-set build/tests/region-set --uuid GPU-... [--seconds 10] \\
      [--kernels 0.05,1,10] [--shares 0.1,0.3,0.5,0.7,0.9]
"""
import argparse
import os
import re
import subprocess
import tempfile


def burn(args, job, kernel_ms, regions):
    env = dict(os.environ, GPOOL_JOB_ID=job, GPOOL_REGION_DIR=regions, LD_PRELOAD=args.lib)
    return subprocess.Popen([args.burn, "--memory", "1MiB", "--seconds", str(args.seconds),
                             "--kernel-ms", str(kernel_ms), "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kernels(proc):
    out = proc.communicate()[0]
    m = re.search(r"done: [0-9.]+ s, (\d+) kernels", out)
    if m is None:
        raise SystemExit("gpool-burn failed: " + out[-400:])
    return int(m.group(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--burn", required=True)
    p.add_argument("--lib", required=True)
    p.add_argument("--region-set", required=True)
    p.add_argument("--uuid", required=True)
    p.add_argument("--total", type=int, default=80 << 30)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--kernels", default="0.05,1,10")
    p.add_argument("--shares", default="0.1,0.3,0.5,0.7,0.9")
    args = p.parse_args()
    regions = tempfile.mkdtemp(prefix="gpool-shares-")
    print(f"{args.seconds:g} s windows; share of the two jobs' GPU time the first job got")
    print(f"{'kernel_ms':>9} {'share':>6} {'got':>6} {'error':>6} {'gpu_busy':>8}")
    worst = 0.0
    for k in [float(x) for x in args.kernels.split(",")]:
        for s in [float(x) for x in args.shares.split(",")]:
            tag = f"{k:g}-{s:g}"
            for job, share in ((f"a{tag}", s), (f"b{tag}", 1 - s)):
                subprocess.run([args.region_set, regions, args.uuid, str(args.total), job, "0",
                                str(round(share * 1000)), "1000"], check=True)
            pa, pb = burn(args, f"a{tag}", k, regions), burn(args, f"b{tag}", k, regions)
            a, b = kernels(pa), kernels(pb)
            got = a / (a + b) if a + b else 0
            busy = (a + b) * k / 1000 / args.seconds
            worst = max(worst, abs(got - s) * 100)
            print(f"{k:9g} {s:6.2f} {got:6.3f} {100 * (got - s):+6.1f} {busy:8.1%}", flush=True)
    print(f"largest error: {worst:.1f} points")


if __name__ == "__main__":
    main()
