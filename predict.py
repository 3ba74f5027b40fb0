#!/usr/bin/env python
"""Label wav files with a trained checkpoint (features, normalisation and pooling as in training).

    python predict.py --checkpoint results/<run>/checkpoints/LANCET/train-clean/seed987654/fold1/best.pt a.wav b.wav
    python predict.py --checkpoint .../best.pt some/folder/      # every .wav in the folder, sorted

A clip with no speech energy (RMS below -60 dBFS) or shorter than 0.5 s is labelled as well, with a
warning line above the table. Checkpoints load with torch.load(weights_only=True): a file that would
run code is refused.
"""

from __future__ import annotations

import argparse

from lancet.core.errors import run_cli
from lancet.training.predict import format_predictions, predict_files

DEVICE = "auto"      # auto | cpu | cuda
POOLING = None       # None: the pooling the model was evaluated with; or mean | vote


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wavs", nargs="+", metavar="WAV", help="wav files to label, or folders of them")
    p.add_argument("--checkpoint", required=True, help="best.pt written by train_LANCET.py")
    p.add_argument("--device", default=DEVICE, choices=("auto", "cpu", "cuda"))
    p.add_argument("--pooling", default=POOLING, choices=("mean", "vote"))
    args = p.parse_args(argv)
    results, names = predict_files(args.checkpoint, args.wavs, device=args.device, pooling=args.pooling)
    print(format_predictions(results, names))
    return 0


if __name__ == "__main__":
    run_cli(main)
