#!/usr/bin/env python
"""Seconds per training epoch of each training recipe, against clean-only training, on one fold of a store.

    python bench/bench_recipes.py --features-dir /tmp/study/features --features mfcc --model LANCET \
        --noise-manifest /tmp/study/augmented/augmented_manifest.csv [--epochs 4] [--threads 1]

Trains one unit per recipe (clean, online, online with two copies, paired views, paired views with the JS
consistency term) for a few epochs in a scratch folder and prints a table of the median seconds per epoch
(training, the online mixing and features included, and validation; from each unit's history.csv) and its
ratio to clean-only training, the figure the robustness study's compute target is judged on. The machine
should be otherwise idle: on a shared one the ratios hold better than the seconds.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lancet.core.errors import run_cli  # noqa: E402
from lancet.training.config import TrainConfig  # noqa: E402
from lancet.training.grid import run_training  # noqa: E402

#: name -> the settings that make the recipe (everything else as TrainConfig's defaults)
RECIPES = {
    "clean": dict(train_on="clean"),
    "online": dict(train_on="online", online_paired=False),
    "online, 2 copies": dict(train_on="online", online_paired=False, online_copies=2),
    "paired": dict(train_on="online", online_paired=True),
    "paired + JS": dict(train_on="online", online_paired=True, consistency="js"),
}


def seconds_per_epoch(run_dir: Path) -> float:
    """Median seconds per epoch over the unit's history (the median keeps a busy moment out)."""
    rows = [r for path in sorted((run_dir / "history").glob("*.csv")) for r in csv.DictReader(path.open())]
    return statistics.median(float(r["seconds"]) for r in rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features-dir", required=True)
    p.add_argument("--features", default="mfcc")
    p.add_argument("--model", default="LANCET")
    p.add_argument("--fold", default="1")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--noise-manifest", help="augmented_manifest.csv of the store's noisy conditions")
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.recipes:
            cfg = TrainConfig(features_dir=args.features_dir, features=args.features, models=(args.model,),
                              folds=(args.fold,), seeds=(1,), epochs=args.epochs, threads=args.threads, workers=0,
                              progress=False, results_dir=scratch, run_name=f"r{len(results)}",
                              noise_manifest=args.noise_manifest, **RECIPES[name])
            out = run_training(cfg, log=lambda *_: None)
            results[name] = seconds_per_epoch(Path(out["run_dir"]))
            print(f"{name}: {results[name]:.2f} s per epoch", flush=True)
    base = results.get("clean")
    print(f"\n{args.model} on {args.features}, fold {args.fold}, {args.epochs} epochs, {args.threads} thread(s)\n")
    print("| recipe | seconds per epoch | vs clean |\n|---|---|---|")
    for name, secs in results.items():
        print(f"| {name} | {secs:.2f} | {'-' if not base else f'{secs / base:.2f}x'} |")
    return 0


if __name__ == "__main__":
    run_cli(main)
