"""The self-supervised path end to end on one device: extraction into a store, a probe epoch, a fine-tuning epoch.

A random upstream (nothing downloaded: ``--size tiny`` 2 layers x 32, ``base`` a base model's 12 x 768) on a
synthetic corpus in the pipeline's format (5 sessions x 2 speakers, 4 classes, utterances of --min-s to --max-s
seconds, clean and white noise at 0 dB): ``extract_ssl_features`` into a store (seconds of audio per second), the
stored statistics of a few utterances against the same upstream in float32 on the CPU (max abs difference: the
device path is the CPU's, autocast aside), then ``train_LANCET``'s trainer for one fold: the SSLProbe on the
stored statistics, and fine-tuning of the top 2 layers with SSLProbe on the clean audio (seconds of training audio
per second, forward and backward). This is step 7 of bench/gpu_check.sh:

    python bench/bench_ssl_pipeline.py --size base --device cuda --utterances 200 --json out.json
    python bench/bench_ssl_pipeline.py                     # tiny, CPU: a dry run of the same code (seconds)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_ssl import SIZES  # noqa: E402
from lancet.core.atomic import save_csv  # noqa: E402
from lancet.core.audio import SAMPLE_RATE, load_audio, write_wav  # noqa: E402
from lancet.core.device import resolve_amp, resolve_device  # noqa: E402
from lancet.core.errors import run_cli  # noqa: E402
from lancet.features import open_features  # noqa: E402
from lancet.features.extract_ssl import extract_ssl_features  # noqa: E402
from lancet.ssl import extract_layer_means, load_upstream, save_tiny_upstream  # noqa: E402
from lancet.training.config import TrainConfig  # noqa: E402
from lancet.training.grid import run_training  # noqa: E402

CLASSES = ("neutral", "happy", "sad", "angry")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny", choices=("tiny", "base"))
    p.add_argument("--arch", default="wavlm", choices=("wavlm", "hubert", "wav2vec2"))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--utterances", type=int, default=40, help="per condition (at least 40: 4 per speaker)")
    p.add_argument("--min-s", type=float, default=1.0)
    p.add_argument("--max-s", type=float, default=6.0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: every usable core)")
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def make_corpus(root: Path, n: int, min_s: float, max_s: float) -> tuple[Path, float]:
    """Wavs and a combined manifest (clean and white_0dB); returns the manifest and the clean audio's seconds."""
    rng = np.random.default_rng(0)
    rows, seconds = [], 0.0
    speakers = [(s, g) for s in range(1, 6) for g in "FM"]
    for i in range(n):
        s, g = speakers[i % len(speakers)]
        cls = CLASSES[(i // len(speakers)) % len(CLASSES)]
        uid = f"Ses{s:02d}{g}_impro01_{g}{i:04d}"
        length = int(rng.uniform(min_s, max_s) * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        clean = 0.2 * np.sin(2 * np.pi * (150 + 100 * CLASSES.index(cls)) * t) + 0.02 * rng.standard_normal(length)
        seconds += length / SAMPLE_RATE
        for cond, audio in (("clean", clean), ("white_0dB", clean + np.sqrt(np.mean(clean ** 2)) *
                                               rng.standard_normal(length))):
            path = root / "wav" / cond / f"{uid}.wav"
            write_wav(path, (0.5 * audio / np.abs(audio).max()).astype(np.float32))
            rows.append({"id": uid, "condition": cond, "path": str(path), "session": s, "speaker": f"Ses{s:02d}{g}",
                         "gender": g, "improvised": 1, "label": cls[:3], "class": cls})
    save_csv(root / "manifest.csv", rows, list(rows[0]))
    return root / "manifest.csv", seconds


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    amp = resolve_amp("auto", device)
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    manifest, clean_s = make_corpus(root, max(40, args.utterances), args.min_s, args.max_s)
    folder = save_tiny_upstream(root / "upstream", args.arch, **SIZES[args.size])
    print(f"torch {torch.__version__}, {platform.machine()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f", {torch.get_num_threads()} "
             f"thread(s), load average {os.getloadavg()[0]:.1f}")
          + f"; random {args.arch} ({args.size}), autocast {amp or 'off'}; {clean_s:.0f} s of audio per condition")
    figures: dict = {"device": str(device), "size": args.size, "arch": args.arch, "audio_s_per_condition": clean_s}

    # 1. extraction into the store: both conditions
    t0 = time.perf_counter()
    summary = extract_ssl_features(manifest, root / "features" / "ssl", folder, device=args.device,
                                   threads=args.threads or None, progress=False, log=lambda m: None)
    wall = time.perf_counter() - t0
    steady = summary.conditions[1].seconds  # the second condition: reading processes and upstream warm
    figures.update(extract_audio_s_per_s=clean_s / steady, extract_run_s=wall)
    print(f"extraction: {summary.n_segments} utterances, {2 * clean_s:.0f} s of audio in {wall:.1f} s with the "
          f"start; the second condition {steady:.1f} s: {figures['extract_audio_s_per_s']:.1f} s of audio per second")

    # 2. the device's statistics against the CPU's float32 ones, same upstream, a few utterances
    store = open_features(root / "features" / "ssl")
    index = store.index("clean")[:6]
    paths = {(r["condition"], r["id"]): r["path"] for r in _rows(manifest)}
    waves = [load_audio(paths[("clean", r["id"])]) for r in index]
    upstream = load_upstream(folder)
    reference, _ = extract_layer_means(upstream, waves, amp=None, threads=1)
    device_fp32, _ = extract_layer_means(upstream.to(device), waves, amp=None)
    stored = np.asarray(store.segments("clean"))[[r["row"] for r in index]]
    figures.update(max_abs_diff_stored_vs_cpu_fp32=float(np.abs(stored - reference).max()),
                   max_abs_diff_device_fp32_vs_cpu_fp32=float(np.abs(device_fp32 - reference).max()),
                   max_abs_stat=float(np.abs(reference).max()))
    print(f"statistics against the CPU's float32 ones (largest statistic {figures['max_abs_stat']:.2f}): "
          f"{device} float32 max abs difference {figures['max_abs_diff_device_fp32_vs_cpu_fp32']:.2e}, stored "
          f"(autocast {amp or 'off'}) {figures['max_abs_diff_stored_vs_cpu_fp32']:.2e}")

    # 3. training: the probe on the stored statistics, then fine-tuning the top 2 layers on the clean audio
    base = dict(features_dir=str(root / "features"), features="ssl", models=("SSLProbe",), folds=("1",),
                train_on="clean", results_dir=str(root / "results"), device=args.device, progress=False,
                threads=args.threads, workers=0, audio_manifest=str(manifest))
    for name, extra, epochs in (("probe", {}, 3), ("finetune", {"finetune": True, "finetune_layers": 2}, 1)):
        t0 = time.perf_counter()
        out = run_training(TrainConfig(**base, **extra, epochs=epochs, run_name=name), log=lambda m: None)
        wall = time.perf_counter() - t0
        epoch_s = min(float(r["seconds"]) for r in _history(Path(out["run_dir"])))
        train_s = clean_s * 4 / 5  # four of the five sessions train or validate in fold 1
        figures.update({f"{name}_epoch_s": epoch_s, f"{name}_audio_s_per_s": train_s / epoch_s, f"{name}_run_s": wall})
        clean = next(r for r in out["records"] if r["condition"] == "clean")
        what = ("the stored statistics" if name == "probe" else
                f"{train_s / epoch_s:.1f} s of audio per second through the upstream")
        print(f"{name}: {epochs} epoch(s) of fold 1 in {wall:.1f} s with evaluation; an epoch (training and "
              f"validation) {epoch_s:.3f} s, {what}; clean test UA {100 * clean['ua']:.1f} (random weights, "
              f"8 test utterances: a check that it runs, not an accuracy)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    tmp.cleanup()
    return 0


def _rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="") as fh:
        return list(csv.DictReader(fh))


def _history(run_dir: Path) -> list[dict]:
    files = sorted((run_dir / "history").glob("*.csv"))
    with open(files[0], newline="") as fh:
        return list(csv.DictReader(fh))


if __name__ == "__main__":
    run_cli(main)
