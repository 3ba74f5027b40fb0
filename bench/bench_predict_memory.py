"""Peak memory of predict.py on long recordings: streamed in blocks, against reading the whole file.

    PYTHONPATH=. python bench/bench_predict_memory.py                    # 1, 10 and 60 min, 48 kHz stereo FLAC
    PYTHONPATH=. python bench/bench_predict_memory.py --minutes 1 10 120 --kind mel

Writes synthetic recordings (a tone in noise, 48 kHz stereo FLAC, written 10 s at a time) and an
untrained TC-Net checkpoint into a temporary folder, then labels each recording, with its timeline, in
a fresh process and prints that process's peak resident memory (VmHWM) and time. The reference reads
the whole file and computes every segment's features at once (what predict.py did before it streamed),
for the lengths given with --reference-minutes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 48000
CHANNELS = 2

PROBE = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from lancet.training.predict import predict_files, utterance_features, load_predictor
    t0 = time.perf_counter()
    if sys.argv[3] == "streamed":
        results, _ = predict_files(sys.argv[1], [sys.argv[2]], device="cpu", timeline=True)
        segments = results[0]["n_segments"]
    else:
        feats, _ = utterance_features(sys.argv[2], load_predictor(sys.argv[1], "cpu").feature_record)
        segments = len(feats)
    peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
    print(segments, round(peak, 1), round(time.perf_counter() - t0, 1))
""")


def write_recording(path: Path, minutes: float, seed: int = 0) -> None:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    block = 10 * SAMPLE_RATE
    with sf.SoundFile(str(path), "w", SAMPLE_RATE, CHANNELS, format="FLAC") as fh:
        for k in range(int(round(minutes * 6))):
            t = np.arange(block) / SAMPLE_RATE
            mono = 0.1 * np.sin(2 * np.pi * (150 + 20 * (k % 5)) * t) + 0.01 * rng.standard_normal(block)
            fh.write(np.stack([mono * (1 - 0.5 * c) for c in range(CHANNELS)], axis=1).astype(np.float32))


def write_checkpoint(path: Path, kind: str) -> None:
    import torch

    from lancet.features.params import SegmentParams, make_params, params_record
    from lancet.models import build_model
    from lancet.training.checkpoint import save_checkpoint

    record = params_record(make_params(kind), SegmentParams(), "float32")
    n_freq, n_frames = record["shape"]
    torch.manual_seed(0)
    model = build_model("TCNet", 4, n_freq, n_frames)
    save_checkpoint(path, {"model_name": "TCNet", "model_options": {}, "model_state": model.state_dict(),
                           "class_names": ["neutral", "happy", "sad", "angry"], "feature_params": record,
                           "norm_mean": np.zeros(n_freq, np.float32), "norm_std": np.ones(n_freq, np.float32),
                           "n_freq": n_freq, "n_frames": n_frames})


def probe(checkpoint: Path, recording: Path, how: str) -> tuple[int, float, float]:
    r = subprocess.run([sys.executable, "-c", PROBE, str(checkpoint), str(recording), how], capture_output=True,
                       text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    segments, peak, seconds = r.stdout.split()
    return int(segments), float(peak), float(seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    p.add_argument("--reference-minutes", type=float, nargs="*", default=[1, 10])
    p.add_argument("--kind", default="mfcc", choices=("mel", "mfcc", "spectrogram"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = folder / "best.pt"
        write_checkpoint(checkpoint, args.kind)
        print(f"{args.kind}, {SAMPLE_RATE} Hz, {CHANNELS} channels, FLAC; peak = VmHWM of the process")
        print(f"{'minutes':>8}  {'how':<10} {'segments':>8}  {'peak MB':>8}  {'seconds':>8}")
        for minutes in sorted(set(args.minutes) | set(args.reference_minutes)):
            recording = folder / f"{minutes:g}min.flac"
            write_recording(recording, minutes)
            hows = ["streamed"] + (["whole file"] if minutes in args.reference_minutes else [])
            for how in hows:
                segments, peak, seconds = probe(checkpoint, recording, how.split()[0])
                print(f"{minutes:>8g}  {how:<10} {segments:>8}  {peak:>8.1f}  {seconds:>8.1f}", flush=True)
            recording.unlink()


if __name__ == "__main__":
    main()
