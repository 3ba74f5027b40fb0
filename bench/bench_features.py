"""Benchmark feature extraction: naive per-file librosa loop vs the project's CPU path (all cores)
vs the GPU path (when CUDA is present), on the same files in one run.

    PYTHONPATH=. python bench/bench_features.py                      # ~200 synthetic 1-5 s wavs
    PYTHONPATH=. python bench/bench_features.py --manifest datasets/IEMOCAP_standard/manifest.csv \
        --condition clean --limit 500 --kinds mel mfcc

Each method runs in its own subprocess so that its peak memory (ru_maxrss of the process and, for
the pool, the largest worker) is its own. Reports utterances per second (wall clock), the speed-up over naive, the CPU seconds used (all
processes; a fair per-core comparison when other jobs share the machine) and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COLUMNS = ["id", "condition", "noise_type", "snr_db", "path", "session", "speaker", "gender", "improvised", "label", "class"]


def make_synthetic(folder: Path, n: int, seed: int = 0) -> Path:
    """n wavs of 1-5 s (harmonic tones + noise) and a combined manifest with condition 'clean'."""
    from lancet.core.atomic import save_csv
    from lancet.core.audio import SAMPLE_RATE, write_wav

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        dur = rng.uniform(1.0, 5.0)
        t = np.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
        f0 = rng.uniform(100, 300)
        x = sum(0.2 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 5)) + 0.02 * rng.standard_normal(t.size)
        path = folder / f"utt{i:04d}.wav"
        write_wav(path, (0.8 * x / np.abs(x).max()).astype(np.float32))
        rows.append({"id": path.stem, "condition": "clean", "noise_type": "clean", "snr_db": "", "path": str(path),
                     "session": str(1 + i % 5), "speaker": f"Ses0{1 + i % 5}F", "gender": "F", "improvised": "1",
                     "label": "neu", "class": "neutral"})
    manifest = folder / "manifest.csv"
    save_csv(manifest, rows, COLUMNS)
    return manifest


def _cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def _peak_mib() -> tuple[float, float]:
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kib / 1024, child_kib / 1024


def run_method(method: str, manifest: str, kind: str, condition: str, workers: int, out: str,
               batch_size: int = 0) -> dict:
    """Run one method in this process; returns timings (called in a subprocess)."""
    from lancet.features import SegmentParams, extract_features, librosa_reference, make_params, segment_audio
    from lancet.features.extract import read_combined_manifest
    from lancet.core.audio import AudioError, load_audio

    rows = [r for r in read_combined_manifest(manifest) if r["condition"] == condition]
    params, seg = make_params(kind), SegmentParams()
    # warm-up outside the timing (lazy imports, numba compilation, filterbank caches), for both methods
    from lancet.features import compute_features

    dummy = np.random.default_rng(0).standard_normal(seg.segment_samples).astype(np.float32)
    librosa_reference(dummy, params, seg.sample_rate)
    compute_features(dummy[None], params, seg.sample_rate)
    c0 = _cpu_seconds()
    t0 = time.perf_counter()
    if method == "naive":
        n_seg = 0
        for r in rows:
            try:
                audio = load_audio(r["path"])
            except AudioError:
                continue
            segments, _, _ = segment_audio(audio, seg)
            feats = np.stack([librosa_reference(s, params, seg.sample_rate) for s in segments])
            n_seg += feats.shape[0]
    else:
        summary = extract_features(manifest, out, kind=kind, workers=workers, device=method, conditions=[condition],
                                   overwrite=True, progress=False, log=lambda s: None,
                                   **({"batch_size": batch_size} if batch_size > 0 else {}))
        n_seg = summary.n_segments
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - c0
    self_mib, child_mib = _peak_mib()
    return {"method": method, "kind": kind, "utterances": len(rows), "segments": n_seg, "seconds": wall,
            "utt_per_s": len(rows) / wall, "cpu_s": cpu, "peak_rss_mib": self_mib, "peak_worker_rss_mib": child_mib}


def main() -> int:
    from lancet.features.params import KINDS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--manifest", default=None, help="combined manifest; default: synthetic wavs in a temp dir")
    ap.add_argument("--condition", default="clean", help="condition of the manifest to time")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N utterances of the condition (0: all)")
    ap.add_argument("--n-synthetic", type=int, default=200, help="synthetic utterances when no manifest is given")
    spectral = [k for k, entry in KINDS.items() if entry.frames_axis]  # ssl: bench/bench_ssl.py
    ap.add_argument("--kinds", nargs="+", default=spectral, choices=spectral)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="workers of the CPU path")
    ap.add_argument("--methods", nargs="+", default=["naive", "cpu", "cuda"], choices=["naive", "cpu", "cuda"],
                    help="which to time (cuda only where present); the speed-up column is over the first")
    ap.add_argument("--batch-size", type=int, default=0, help="segments per device batch of the GPU path "
                    "(0: the extractor's default, lancet.features.extract.GPU_BATCH_SEGMENTS)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--_run", nargs=5, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._run:  # child: run one method and print its result as JSON
        method, manifest, kind, condition, out = args._run
        print(json.dumps(run_method(method, manifest, kind, condition, args.workers, out, args.batch_size)))
        return 0

    with tempfile.TemporaryDirectory(prefix="lancet_bench_") as tmp:
        tmp = Path(tmp)
        if args.manifest is None:
            manifest = make_synthetic(tmp / "wav", args.n_synthetic)
            source = f"{args.n_synthetic} synthetic 1-5 s wavs"
        else:
            manifest = Path(args.manifest)
            source = str(manifest)
        if args.limit:
            from lancet.core.atomic import read_csv, save_csv
            from lancet.features.extract import read_combined_manifest

            rows = [r for r in read_combined_manifest(manifest) if r["condition"] == args.condition][: args.limit]
            manifest = tmp / "limited.csv"
            save_csv(manifest, rows, list(read_csv(args.manifest)[0]))
            source += f" (first {args.limit} of {args.condition})"
        methods = [m for m in args.methods if m != "cuda"]
        try:
            import torch

            if "cuda" in args.methods and torch.cuda.is_available():
                methods.append("cuda")
        except ImportError:
            pass
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
        print(f"files: {source}; CPU path workers: {args.workers}; cores: {os.cpu_count()}")
        results = []
        for kind in args.kinds:
            base = None
            for method in methods:
                cmd = [sys.executable, __file__, "--workers", str(args.workers), "--batch-size", str(args.batch_size),
                       "--_run", method, str(manifest),
                       kind, args.condition, str(tmp / f"out_{kind}_{method}")]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0:
                    print(proc.stderr, file=sys.stderr)
                    return 1
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                base = base or r["utt_per_s"]
                r["speedup_vs_naive"] = r["utt_per_s"] / base
                results.append(r)
                print(f"{kind:12s} {method:6s} {r['utterances']:5d} utt {r['segments']:6d} seg {r['seconds']:7.2f} s "
                      f"{r['utt_per_s']:8.1f} utt/s  x{r['speedup_vs_naive']:.2f}  CPU {r['cpu_s']:6.2f} s  peak RSS {r['peak_rss_mib']:.0f} MiB"
                      + (f" (largest worker {r['peak_worker_rss_mib']:.0f} MiB)" if method == "cpu" else ""))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
