"""Augmentation throughput: seconds of audio written per second of wall time, 1 process vs all cores.

    python bench/bench_augment.py [--utterances-per-speaker 8] [--workers N] [--generated-noise]

Makes the demo corpus in a temporary folder (lancet.corpora.demo), then runs the full augmentation (4 noise
types x 6 SNRs + 2 simulated rooms, noise from ../shared/data/noise when present) once with one process and
once with all cores, each into a fresh folder. Each run includes its start-up (loading and resampling the
noise recordings, simulating the RIRs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lancet.core.atomic import read_csv  # noqa: E402
from lancet.corpora.iemocap import scan_iemocap  # noqa: E402
from lancet.corpora.demo import make_demo_corpus  # noqa: E402
from lancet.noise.augment import AugmentConfig, augment  # noqa: E402
from lancet.noise.sources import SHARED_NOISE_DIR  # noqa: E402

UTTERANCES_PER_SPEAKER = 8
WORKERS = os.cpu_count() or 1


def run_once(utts, out: Path, workers: int, shared) -> dict:
    t0 = time.perf_counter()
    summary = augment(utts, AugmentConfig(out=out, workers=workers, shared_noise_dir=shared, progress=False),
                      log=lambda *_: None)
    wall = time.perf_counter() - t0
    audio_s = sum(float(r["duration_s"]) for r in read_csv(out / "augmented_manifest.csv"))
    return {"workers": workers, "files": summary.written, "audio_s": round(audio_s, 1), "wall_s": round(wall, 2),
            "audio_s_per_wall_s": round(audio_s / wall, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--utterances-per-speaker", type=int, default=UTTERANCES_PER_SPEAKER)
    p.add_argument("--workers", type=int, default=WORKERS, help="the 'all cores' run")
    p.add_argument("--generated-noise", action="store_true", help="ignore ../shared/data/noise")
    args = p.parse_args()
    shared = None if args.generated_noise else SHARED_NOISE_DIR
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_demo_corpus(tmp / "IEMOCAP", seed=0, utterances_per_speaker=args.utterances_per_speaker)
        utts = scan_iemocap(tmp / "IEMOCAP").utterances
        clean_s = sum(u.duration_s for u in utts)
        print(f"demo corpus: {len(utts)} utterances, {clean_s:.0f} s of clean speech; noise: "
              f"{'shared recordings' if shared and Path(shared).is_dir() else 'generated'}; cpu cores: {os.cpu_count()}")
        results = [run_once(utts, tmp / f"out{w}", w, shared) for w in sorted({1, args.workers})]
    for r in results:
        print(json.dumps(r))
    if len(results) == 2:
        print(f"speed-up with {results[1]['workers']} workers: "
              f"{results[1]['audio_s_per_wall_s'] / results[0]['audio_s_per_wall_s']:.2f}x")
    return 0


if __name__ == "__main__":
    main()
