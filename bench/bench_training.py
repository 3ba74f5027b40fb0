"""Training throughput (segments per second) of each model, side by side, on synthetic feature data.

For each feature shape (mel 128x201 and mfcc 26x63 by default) and each model it times the real
training step of lancet.training (batch gather from an in-RAM table, on-device normalisation, mixup,
autocast where enabled, RAdam step) and the evaluation forward pass, after warm-up steps. CPU always
(torch threads = --threads, default all cores); CUDA too when present (autocast bf16 if supported,
else fp16 with a grad scaler; pinned memory; non-blocking copies).

    python bench/bench_training.py                               # mel + mfcc, all models, CPU (+ CUDA)
    python bench/bench_training.py --kinds mfcc --steps 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lancet.models import FEATURE_SHAPES, MODELS, build_model, count_parameters  # noqa: E402
from lancet.training.data import SegmentTable, batch_indices, iter_batches  # noqa: E402
from lancet.training.evaluate import predict_segments  # noqa: E402
from lancet.training.loop import make_optimizer, resolve_amp, train_step, TrainSettings  # noqa: E402


def synthetic_table(n: int, shape: tuple[int, int], seed: int = 0) -> SegmentTable:
    rng = np.random.default_rng(seed)
    f, t = shape
    x = rng.normal(0, 1, (n, f, t)).astype(np.float32)
    labels = rng.integers(0, 4, n).astype(np.int64)
    lengths = np.where(rng.random(n) < 0.2, rng.integers(t // 4, t, n), t).astype(np.int64)
    return SegmentTable([x], np.zeros(n, np.int32), np.arange(n), labels, lengths, np.arange(n),
                        [("clean", str(i)) for i in range(n)], ["clean"])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_one(name: str, kind: str, device: torch.device, amp: str, batch: int, steps: int, warmup: int,
              workers: int) -> dict:
    shape = FEATURE_SHAPES[kind]
    torch.manual_seed(0)
    model = build_model(name, 4, *shape).to(device)
    amp_dtype = resolve_amp(amp, device)
    settings = TrainSettings(batch_size=batch)
    optimizer, _ = make_optimizer(model, settings)
    scaler = torch.amp.GradScaler("cuda", enabled=(device.type == "cuda" and amp_dtype == torch.float16))
    table = synthetic_table(batch * (steps + warmup), shape)
    mean = torch.zeros(shape[0], 1, device=device)
    std = torch.ones(shape[0], 1, device=device)
    rng = np.random.default_rng(0)
    batches = batch_indices(len(table), batch, True, rng)
    model.train()
    t0 = None
    for i, b in enumerate(iter_batches(table, batches, workers=workers, pin=device.type == "cuda")):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        train_step(model, optimizer, scaler, b, mean, std, 4, 0.5, rng, device, amp_dtype)
    sync(device)
    train_sps = steps * batch / (time.perf_counter() - t0)
    eval_n = min(len(table), max(4 * batch, 256))
    eval_table = synthetic_table(eval_n, shape, 1)
    predict_segments(model, eval_table, mean, std, device, 2 * batch, amp_dtype, workers)  # warm-up
    sync(device)
    t1 = time.perf_counter()
    predict_segments(model, eval_table, mean, std, device, 2 * batch, amp_dtype, workers)
    sync(device)
    eval_sps = eval_n / (time.perf_counter() - t1)
    return {"model": name, "kind": kind, "shape": list(shape), "device": device.type,
            "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else "off", "batch": batch,
            "params": count_parameters(model), "train_segments_per_s": train_sps, "eval_segments_per_s": eval_sps}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", nargs="+", default=["mel", "mfcc"], choices=list(FEATURE_SHAPES))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=8, help="timed training steps (CPU); CUDA uses 5x as many")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--workers", type=int, default=2, help="batch-prefetch threads")
    p.add_argument("--no-cuda", action="store_true")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    devices = [(torch.device("cpu"), "off")]
    if torch.cuda.is_available() and not args.no_cuda:
        torch.backends.cudnn.benchmark = True
        devices.append((torch.device("cuda"), "auto"))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {threads} CPU thread(s)"
          + (f", {torch.cuda.get_device_name(0)}" if len(devices) > 1 else ", no CUDA"), flush=True)
    results = []
    for device, amp in devices:
        steps = args.steps * (5 if device.type == "cuda" else 1)
        for kind in args.kinds:
            row = [f"{device.type:4s} {kind:11s}"]
            for name in args.models:
                r = bench_one(name, kind, device, amp, args.batch, steps, args.warmup, args.workers)
                results.append(r)
                row.append(f"{name} train {r['train_segments_per_s']:8.1f}/s eval {r['eval_segments_per_s']:8.1f}/s")
            print(" | ".join(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
