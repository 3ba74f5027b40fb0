"""Benchmark the three models side by side for each feature kind of a 2 s segment.

For every feature kind (mel 128x201, mfcc 26x63, spectrogram 400x197) and model it prints:
parameters, multiply-adds per segment (torch.utils.flop_counter; MACs = FLOPs / 2, counting
convolutions and matrix products only), latency per segment at batch 1, throughput at batch 64,
and peak memory. CPU always; the same on GPU when torch.cuda.is_available().
Each (model, kind, device) runs in a fresh subprocess so that peak resident memory (CPU) is that
configuration's own. Where batch 64 would take longer than --budget seconds (GLAM on spectrograms
needs ~82 G MACs per segment), throughput is measured at the largest batch that fits the budget,
and the batch used is printed. It also checks that LANCET is cheaper than GLAM in parameters and
MACs on every feature kind.

    python bench/bench_models.py                 # everything
    python bench/bench_models.py --kinds mfcc --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lancet.features.params import FEATURE_SHAPES, has_frames_axis  # noqa: E402
from lancet.models import MODELS, build_model, count_parameters  # noqa: E402


def static_costs(name: str, kind: str, n_classes: int = 4) -> tuple[int, int]:
    """(parameters, MACs per segment) from a model built on the meta device (no memory, no time)."""
    f, t = FEATURE_SHAPES[kind]
    with torch.device("meta"):
        model = build_model(name, n_classes, f, t).eval()
        x = torch.empty(1, 1, f, t)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return count_parameters(model), counter.get_total_flops() // 2


def _proc_status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB; None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0; else no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _rss_mb() -> float:
    """Current resident set size, MiB (falls back to the peak from getrusage)."""
    now = _proc_status_mb("VmRSS")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    """Peak resident set size since the last :func:`_reset_peak_rss`, MiB."""
    peak = _proc_status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_runs(fn, device: str, min_runs: int, budget_s: float) -> float:
    """Median seconds of ``fn()`` over at least ``min_runs`` runs (fewer if over budget), after warm-up."""
    def once() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = once()  # warm-up (allocations, kernel selection)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_runs and (not times or time.perf_counter() < deadline):
        times.append(once())
    return statistics.median(times) if times else first


def measure(name: str, kind: str, device: str, threads: int, batch: int, budget_s: float, runs: int) -> dict:
    """Latency, throughput and peak memory of one model on one feature kind and device."""
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    f, t = FEATURE_SHAPES[kind]
    rss_start = _rss_mb()
    model = build_model(name, 4, f, t).to(device).eval()
    model_mb = torch.cuda.memory_allocated() / 2**20 if device == "cuda" else _rss_mb() - rss_start
    x1 = torch.randn(1, 1, f, t, device=device)

    def peak_start() -> float:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated() / 2**20
        before = _rss_mb()
        _reset_peak_rss()
        return before

    def peak_extra(before: float) -> float:
        """Memory above what was held before the timed runs (activations, workspaces)."""
        if device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20 - before
        return max(0.0, _peak_rss_mb() - before)

    with torch.inference_mode():
        before = peak_start()
        latency = _time_runs(lambda: model(x1), device, runs, budget_s)
        extra_b1 = peak_extra(before)
        used_batch = batch
        if latency * batch > budget_s:  # too slow for the full batch within the budget
            used_batch = max(1, min(batch, int(budget_s / max(latency, 1e-9))))
        xb = torch.randn(used_batch, 1, f, t, device=device)
        before = peak_start()
        batch_time = _time_runs(lambda: model(xb), device, max(1, runs // 4), budget_s)
        extra_bn = peak_extra(before)
    return {
        "model": name, "kind": kind, "device": device, "threads": threads,
        "latency_ms": latency * 1e3, "throughput_seg_s": used_batch / batch_time, "throughput_batch": used_batch,
        "extra_mb_b1": extra_b1, "extra_mb_bn": extra_bn,
        "rss_before_model_mb": rss_start, "model_mb": model_mb,
    }


def _child(queue: mp.Queue, *args: object) -> None:
    try:
        queue.put(measure(*args))
    except Exception as exc:  # report, don't hang the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def measure_isolated(*args: object) -> dict:
    """Run :func:`measure` in a fresh process (spawn) so its peak RSS is its own."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # (features x frames) kinds and the models over them; the heads over an upstream: bench/bench_ssl.py --costs
    frame_kinds = [k for k in FEATURE_SHAPES if has_frames_axis(k)]
    frame_models = [m for m, entry in MODELS.items() if has_frames_axis(entry.input_kind)]
    ap.add_argument("--kinds", nargs="+", default=frame_kinds, choices=frame_kinds)
    ap.add_argument("--models", nargs="+", default=frame_models, choices=frame_models)
    ap.add_argument("--batch", type=int, default=64, help="batch size for throughput (default 64)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads (default 1: these models are small, and one thread is steady on a busy machine)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs for batch-1 latency (default 20)")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per timing loop (default 20)")
    ap.add_argument("--no-cpu", action="store_true", help="skip CPU timings")
    ap.add_argument("--json", type=Path, help="also write all figures to this JSON file")
    args = ap.parse_args()

    devices = ([] if args.no_cpu else ["cpu"]) + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}"
          + (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"))

    static = {(m, k): static_costs(m, k) for k in args.kinds for m in args.models}
    print("\n== Cost per 2 s segment (batch 1) ==")
    print(f"{'kind':<12} {'shape':>8} " + "".join(f"{m + ' params':>16}{m + ' MMACs':>14}" for m in args.models))
    for k in args.kinds:
        f, t = FEATURE_SHAPES[k]
        row = "".join(f"{static[(m, k)][0]:>16,}{static[(m, k)][1] / 1e6:>14,.1f}" for m in args.models)
        print(f"{k:<12} {f'{f}x{t}':>8} {row}")
    if "LANCET" in args.models and "GLAM" in args.models:
        for k in args.kinds:
            (pl, ml), (pg, mg) = static[("LANCET", k)], static[("GLAM", k)]
            assert pl < pg and ml < mg, f"LANCET is not cheaper than GLAM on {k}"
            print(f"LANCET vs GLAM on {k}: {pg / pl:,.1f}x fewer parameters, {mg / ml:,.1f}x fewer MACs")

    results = []
    for device in devices:
        print(f"\n== {device.upper()}: latency per segment (batch 1), throughput, peak memory ==")
        mem = ("GPU MiB: model / peak extra b1 / bN" if device == "cuda"
               else "RSS MiB: model / peak extra b1 / bN")
        print(f"{'kind':<12} {'model':<7} {'latency ms':>11} {'segments/s':>11} {'at batch':>9}  {mem}")
        for k in args.kinds:
            for m in args.models:
                r = measure_isolated(m, k, device, args.threads, args.batch, args.budget, args.runs)
                if "error" in r:
                    print(f"{k:<12} {m:<7} failed: {r['error']}")
                    continue
                r["params"], r["macs"] = static[(m, k)]
                results.append(r)
                print(f"{k:<12} {m:<7} {r['latency_ms']:>11.2f} {r['throughput_seg_s']:>11.1f} "
                      f"{r['throughput_batch']:>9}  {r['model_mb']:,.1f} / {r['extra_mb_b1']:,.1f} / "
                      f"{r['extra_mb_bn']:,.1f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"static": {f"{m}/{k}": v for (m, k), v in static.items()},
                                         "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
