"""Throughput of SSL upstream extraction (the per-layer means of lancet.ssl.stats), as seconds of audio per second.

For the CPU (1 thread and every usable core) and, where present, the GPU (float32 and bf16/fp16 autocast), with
batches sorted by length against batches in the given order, on the same utterances (lengths drawn
uniformly between --min-s and --max-s, IEMOCAP's are 1-35 s with a mean near 4.5 s). Also prints the
upstream's parameters and multiply-adds per second of audio (torch.utils.flop_counter on the meta device:
matrix products and convolutions only, MACs = FLOPs / 2) at two utterance lengths, since attention grows
with the square of the length. Nothing is downloaded:

    python bench/bench_ssl.py                                   # a tiny random WavLM (2 layers x 32)
    python bench/bench_ssl.py --arch hubert --size base         # random weights, a base model's sizes
    python bench/bench_ssl.py --costs                           # parameters and MACs at the published sizes
    python bench/bench_ssl.py --upstream microsoft/wavlm-base-plus  # a checkpoint in the local cache or a folder
    python bench/bench_ssl.py --size base --devices cuda --utterances 256   # the GPU part of bench/gpu_check.sh
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from lancet.core.device import resolve_amp, resolve_device  # noqa: E402
from lancet.core.errors import run_cli  # noqa: E402
from lancet.core.workers import available_cpus  # noqa: E402
from lancet.ssl import TINY_ARCHS, extract_layer_means, load_upstream, plan_batches, save_tiny_upstream  # noqa: E402
from lancet.ssl.stats import BATCH_SECONDS  # noqa: E402
from lancet.ssl.upstream import transformers_module  # noqa: E402

SR = 16_000
#: The published sizes: base (wav2vec 2.0 Base, HuBERT Base, WavLM Base/Base+: 12 x 768, group-norm CNN) and
#: large (wav2vec 2.0 Large-lv60, HuBERT Large, WavLM Large: 24 x 1024, layer-norm CNN, pre-LN transformer)
_CNN = dict(conv_dim=(512,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
            num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16)
SIZES: dict[str, dict] = {
    "tiny": {},
    "base": dict(_CNN, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(_CNN, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                  feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", help="checkpoint folder or hub name (local cache only); default a tiny random one")
    p.add_argument("--arch", default="wavlm", choices=sorted(TINY_ARCHS), help="architecture of the random upstream")
    p.add_argument("--size", default="tiny", choices=tuple(SIZES),
                   help="random upstream's sizes: tiny (40 k parameters), base (94 M), large (315 M)")
    p.add_argument("--costs", action="store_true",
                   help="only print parameters and MACs of every architecture at the base and large sizes")
    p.add_argument("--utterances", type=int, default=32)
    p.add_argument("--min-s", type=float, default=1.0)
    p.add_argument("--max-s", type=float, default=8.0)
    p.add_argument("--threads", type=int, nargs="*", default=None, help="CPU thread counts (default: 1 and all usable cores)")
    p.add_argument("--batch-seconds", type=float, default=None, help="padded seconds per batch (default per device)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per setting (the best is kept)")
    p.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=None,
                   help="default: cpu, and cuda where present")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


def costs(config, seconds: float) -> tuple[int, float]:
    """(parameters, MACs per second of audio for one utterance of ``seconds``) of a model built on the meta device."""
    with torch.device("meta"):
        model = transformers_module().AutoModel.from_config(config).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, int(seconds * SR), device="meta"), output_hidden_states=True)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 2 / seconds


def print_costs() -> None:
    """Parameters and MACs per second of audio of the three architectures at the published sizes (no weights)."""
    tf = transformers_module()
    print(f"{'architecture':22} {'parameters':>12} {'G MACs/s audio, 2 s':>20} {'8 s':>6}")
    for size in ("base", "large"):
        for arch, config_class in sorted(TINY_ARCHS.items()):
            config = getattr(tf, config_class)(**SIZES[size])
            params, short = costs(config, 2.0)
            _, long = costs(config, 8.0)
            print(f"{arch + ' ' + size:22} {params:12,} {short / 1e9:20.2f} {long / 1e9:6.2f}")


def padded_fraction(lengths: list[int], max_samples: int, sort: bool) -> float:
    padded = sum(max(lengths[i] for i in b) * len(b) for b in plan_batches(lengths, max_samples, 64, sort))
    return 1 - sum(lengths) / padded


def time_extraction(upstream, waves, repeats: int, **options) -> float:
    """Best wall time of ``repeats`` extractions (after one warm-up run)."""
    extract_layer_means(upstream, waves[:4], **options)
    times = []
    for _ in range(repeats):
        if upstream.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        extract_layer_means(upstream, waves, **options)
        if upstream.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.costs:
        print_costs()
        return 0
    tmp = None
    if args.upstream:
        upstream, label = load_upstream(args.upstream), args.upstream
    else:
        tmp = tempfile.TemporaryDirectory()
        folder = save_tiny_upstream(Path(tmp.name) / args.arch, args.arch, **SIZES[args.size])
        upstream = load_upstream(folder)
        label = f"random {args.arch} ({args.size})"
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(int(rng.uniform(args.min_s, args.max_s) * SR)).astype(np.float32) * 0.1
             for _ in range(args.utterances)]
    lengths = [len(w) for w in waves]
    audio_s = sum(lengths) / SR

    params, macs_short = costs(upstream.model.config, 2.0)
    _, macs_long = costs(upstream.model.config, 8.0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {platform.machine()}, {available_cpus()} CPUs, load average {load:.1f}, "
          f"transformers {transformers_module().__version__}")
    print(f"upstream: {label}: {upstream.n_layers} hidden states x {upstream.hidden_size}, "
          f"{params:,} parameters, {macs_short / 1e6:,.1f} M MACs per second of audio for a 2 s utterance, "
          f"{macs_long / 1e6:,.1f} M for an 8 s one; "
          f"CNN {'per frame (layer norm)' if upstream.cnn_per_frame else 'per utterance (group norm)'}")
    print(f"{args.utterances} utterances, {audio_s:.1f} s of audio ({args.min_s:g}-{args.max_s:g} s each)\n")

    rows = []
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    settings = []
    if "cpu" in devices:
        settings += [("cpu", t, None) for t in (args.threads or sorted({1, available_cpus()}))]
    if "cuda" in devices:
        cuda = resolve_device("cuda")  # a one-line error without a GPU
        settings += [("cuda", None, None), ("cuda", None, resolve_amp("auto", cuda))]
    header = f"{'device':6} {'threads':>7} {'precision':>9} {'batches':>9} {'padded %':>8} {'audio s/s':>10} {'x sorted':>8}"
    print(header)
    print("-" * len(header))
    for device, threads, amp in settings:
        upstream.to(device)
        seconds = args.batch_seconds or BATCH_SECONDS[device]
        speeds = {}
        for sort in (True, False):
            wall = time_extraction(upstream, waves, args.repeats, threads=threads, amp=amp,
                                   batch_seconds=seconds, sort=sort)
            speeds[sort] = audio_s / wall
            row = {"device": device, "threads": threads, "precision": str(amp).removeprefix("torch.") if amp else "fp32",
                   "batches": "sorted" if sort else "unsorted", "batch_seconds": seconds,
                   "padded_fraction": padded_fraction(lengths, int(seconds * SR), sort), "audio_s_per_s": speeds[sort]}
            rows.append(row)
            print(f"{device:6} {threads or '-':>7} {row['precision']:>9} {row['batches']:>9} "
                  f"{100 * row['padded_fraction']:8.1f} {speeds[sort]:10.1f} {speeds[sort] / speeds[True]:8.2f}")
    upstream.to("cpu")
    if args.json:
        args.json.write_text(json.dumps({"upstream": label, "parameters": params, "macs_per_audio_s_2s": macs_short,
                                         "macs_per_audio_s_8s": macs_long, "audio_s": audio_s, "rows": rows,
                                         "load_average": load, "median_speed": statistics.median(r["audio_s_per_s"] for r in rows)},
                                        indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    run_cli(main)
