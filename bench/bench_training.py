"""Training throughput (segments/s) of the trainer's real loop beside the bare model step.

For each device, model and batch size it times, after warm-up steps:

* ``bare``   — forward, loss, backward and RAdam step on one batch already on the device (the model's
  own cost: the ceiling of any loop);
* ``loop``   — the plain reference loop of lancet.training.fit (batch gather from the in-RAM table,
  by prefetch threads on CUDA; copy, normalisation and mixup on the device; the same step):
  ``--compile off``;
* ``before`` — the same loop as the previous version ran it (per-parameter RAdam, not ``foreach``;
  prefetch threads on the CPU too), for the "no slower than before" check;
* ``fast``   — lancet.training.compiled (``--compile on``): segments resident on the device, the epoch's
  randomness drawn up front, forward+loss and optimizer step compiled (CUDA: CUDA graphs). On CPU
  only with ``--fast`` (compiling takes minutes per model on 2 cores).

CPU always (torch threads = --threads); CUDA too when present (autocast bf16 where supported).

    python bench/bench_training.py --threads 2                      # LANCET + TC-Net on mel, batch 32 and 256
    python bench/bench_training.py --models TCNet --kind mfcc --fast --json out.json
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
import torch.nn.functional as F  # noqa: E402

from lancet.features.params import FEATURE_SHAPES, has_frames_axis  # noqa: E402
from lancet.models import build_model  # noqa: E402
from lancet.training.data import SegmentTable, batch_indices, iter_batches, one_hot  # noqa: E402
from lancet.core.device import autocast_context, resolve_amp  # noqa: E402
from lancet.training.config import TrainSettings  # noqa: E402
from lancet.training.fit import make_optimizer, prefetch_workers, train_step  # noqa: E402
from lancet.training.compiled import FastTrainer, draw_epoch  # noqa: E402


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


def _setup(name: str, shape, device, batch: int, foreach: bool = True, tensor_lr: bool = False):
    torch.manual_seed(0)
    model = build_model(name, 4, *shape).to(device).train()
    optimizer, _ = make_optimizer(model, TrainSettings(batch_size=batch), tensor_lr=tensor_lr)
    if not foreach:
        for g in optimizer.param_groups:
            g["foreach"] = False
    return model, optimizer


def bare_runner(name, shape, device, amp_dtype, batch, workers):
    """Steps of the bare model on one batch already on the device."""
    model, optimizer = _setup(name, shape, device, batch)
    x = torch.randn(batch, 1, *shape, device=device)
    lengths = torch.full((batch,), shape[1], device=device)
    targets = one_hot(torch.randint(0, 4, (batch,), device=device), 4)

    def run(steps: int) -> None:
        for _ in range(steps):
            with autocast_context(device, amp_dtype):
                logits = model(x, lengths=lengths)
            loss = F.cross_entropy(logits.float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return run


def loop_runner(name, shape, device, amp_dtype, batch, workers, before=False):
    """Steps of the plain loop: batches from an in-RAM table through ``train_step``. ``before``: as the
    previous version ran it (per-parameter RAdam; prefetch threads on the CPU too)."""
    model, optimizer = _setup(name, shape, device, batch, foreach=not before)
    scaler = torch.amp.GradScaler("cuda", enabled=(device.type == "cuda" and amp_dtype == torch.float16))
    table = synthetic_table(batch * 16, shape)
    mean, std = torch.zeros(shape[0], 1, device=device), torch.ones(shape[0], 1, device=device)
    rng = np.random.default_rng(0)

    def batches():
        while True:  # epoch after epoch, as the trainer does
            yield from iter_batches(table, batch_indices(len(table), batch, True, rng),
                                    workers=workers if before else prefetch_workers(workers, table, device),
                                    pin=device.type == "cuda")
    it = batches()

    def run(steps: int) -> None:
        for _ in range(steps):
            train_step(model, optimizer, scaler, next(it), mean, std, 4, 0.5, rng, device, amp_dtype)
    return run


def fast_runner(name, shape, device, amp_dtype, batch, workers):
    """Epochs of the fast path (lancet.training.compiled): ``run(steps)`` trains one epoch of ``steps`` batches."""
    model, optimizer = _setup(name, shape, device, batch, tensor_lr=True)
    made: dict[int, tuple] = {}
    mean, std = torch.zeros(shape[0], 1, device=device), torch.ones(shape[0], 1, device=device)
    rng = np.random.default_rng(0)

    def run(steps: int) -> None:
        if steps not in made:
            train, val = synthetic_table(batch * steps, shape), synthetic_table(batch, shape, 1)
            made[steps] = (train, FastTrainer(model, optimizer, train, val, mean, std, 4, None, device, amp_dtype,
                                              batch, 0.5, 2 * batch, workers, 0.0, backend="inductor"))
        train, fast = made[steps]
        total, _ = fast.train_epoch(draw_epoch(len(train), batch, 0.5, rng))
        float(total)  # the epoch's one sync
    return run


def timed(run, steps: int, batch: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    run(steps)
    sync(device)
    return steps * batch / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", default="mel", choices=[k for k in FEATURE_SHAPES if has_frames_axis(k)])
    p.add_argument("--models", nargs="+", default=["LANCET", "TCNet"])
    p.add_argument("--batches", nargs="+", type=int, default=[32, 256])
    p.add_argument("--steps", type=int, default=3, help="timed steps per round on CPU; CUDA uses 10x as many")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per variant, interleaved; the best is kept")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--workers", type=int, default=2, help="batch-prefetch threads of the loop")
    p.add_argument("--fast", action="store_true", help="also time the compiled fast path on CPU (slow to compile)")
    p.add_argument("--no-before", action="store_true", help="skip the previous version's optimizer")
    p.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"],
                   help="where to time (cuda only when present)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    devices = [torch.device("cpu")] if "cpu" in args.devices else []
    if torch.cuda.is_available() and "cuda" in args.devices:
        torch.backends.cudnn.benchmark = True
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {threads} CPU thread(s)"
          + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no CUDA"), flush=True)
    shape = FEATURE_SHAPES[args.kind]
    results = []
    print(f"{'device':6s} {'model':7s} {'batch':>5s} {'bare/s':>9s} {'loop/s':>9s} {'loop%':>6s} {'before/s':>9s} "
          f"{'fast/s':>9s} {'fast%':>6s} {'compile s':>9s}", flush=True)
    for device in devices:
        amp_dtype = resolve_amp("auto", device)
        steps = args.steps * (10 if device.type == "cuda" else 1)
        warmup = args.warmup * (5 if device.type == "cuda" else 1)
        for name in args.models:
            for batch in args.batches:
                r = {"device": device.type, "model": name, "kind": args.kind, "batch": batch, "threads": threads,
                     "amp": str(amp_dtype).removeprefix("torch.") if amp_dtype else "off"}
                runners = {"bare": bare_runner(name, shape, device, amp_dtype, batch, args.workers),
                           "loop": loop_runner(name, shape, device, amp_dtype, batch, args.workers)}
                if not args.no_before:
                    runners["before"] = loop_runner(name, shape, device, amp_dtype, batch, args.workers, before=True)
                if device.type == "cuda" or args.fast:
                    runners["fast"] = fast_runner(name, shape, device, amp_dtype, batch, args.workers)
                    t0 = time.perf_counter()
                    runners["fast"](steps)  # compiles (its first step runs eagerly, the rest compiled)
                    r["compile_s"] = time.perf_counter() - t0
                for key, run in runners.items():
                    if key != "fast":
                        run(warmup)
                # Rounds alternate between the variants, so that a loaded machine slows all of them
                # alike; the best round of each is kept.
                for _ in range(args.rounds):
                    for key, run in runners.items():
                        r[key] = max(r.get(key, 0.0), timed(run, steps, batch, device))
                results.append(r)
                fmt = lambda k: f"{r[k]:9.1f}" if k in r else f"{'-':>9s}"  # noqa: E731
                pct = lambda k: f"{100 * r[k] / r['bare']:5.0f}%" if k in r else f"{'-':>6s}"  # noqa: E731
                print(f"{device.type:6s} {name:7s} {batch:5d} {fmt('bare')} {fmt('loop')} {pct('loop')} {fmt('before')} "
                      f"{fmt('fast')} {pct('fast')} {fmt('compile_s')}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
