"""Training-step time per torch thread count, OpenMP waiting actively or passively: why the default matters
when other jobs share the cores (1-8 s per batch with all cores on a shared 2-core machine).

    python bench/bench_threads.py [--seconds 6] [--threads 1 2]

Each setting runs in its own process (OMP_WAIT_POLICY is read once, at start-up) and prints the mean and
worst time of a TC-Net-sized training step on MFCC-shaped batches (32 x 26 x 63). Run it once on a quiet
machine and once with another job busy on the same cores; state the machine and its load with the figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

STEP = """
import sys, time, torch
torch.set_num_threads({threads})
m = torch.nn.Sequential(torch.nn.Conv1d(26, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.Conv1d(64, 64, 5, padding=2),
                        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(64, 4))
opt = torch.optim.SGD(m.parameters(), 0.01)
x, y = torch.randn(32, 26, 63), torch.randint(0, 4, (32,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
for _ in range(5):
    step()
t, n, worst = time.perf_counter(), 0, 0.0
while time.perf_counter() - t < {seconds}:
    t0 = time.perf_counter(); step(); n += 1; worst = max(worst, time.perf_counter() - t0)
print(f"{{1000 * (time.perf_counter() - t) / n:.1f}} {{1000 * worst:.0f}}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="timed seconds per setting")
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, len(os.sched_getaffinity(0))}),
                    help="torch thread counts to time")
    args = ap.parse_args()
    print(f"{len(os.sched_getaffinity(0))} usable cores, load average {os.getloadavg()[0]:.1f} at start")
    print(f"{'threads':>7}  {'OMP_WAIT_POLICY':<15}  {'ms/step':>8}  {'worst ms':>8}")
    for threads in args.threads:
        for policy in ("(default)", "PASSIVE"):
            env = dict(os.environ)
            env.pop("OMP_WAIT_POLICY", None)
            if policy != "(default)":
                env["OMP_WAIT_POLICY"] = policy
            code = STEP.format(threads=threads, seconds=args.seconds)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            mean, worst = out.stdout.split()
            print(f"{threads:>7}  {policy:<15}  {mean:>8}  {worst:>8}", flush=True)
            time.sleep(0.5)


if __name__ == "__main__":
    main()
