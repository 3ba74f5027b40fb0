#!/usr/bin/env python
"""Label audio files with trained models (features, normalisation and pooling as in training).

    python predict.py --checkpoint results/<run>/checkpoints/LANCET/train-online/seed987654/fold1/best.pt a.wav
    python predict.py --checkpoint results/<run> --model LANCET --out predictions.csv some/folder/
    python predict.py --checkpoint results/<run> --model LANCET --timeline interview.flac
    python predict.py --checkpoint a/best.pt --checkpoint b/best.pt clip.mp3   # two models vote

A run folder stands for every best.pt under it (the fold models of one model type: --model NAME when it
holds several); their class probabilities are averaged, and the output says how many voted. Any format
libsndfile reads (WAV, FLAC, OGG, MP3, ...; others through a system decoder), any sample rate and channel
count, converted as in training; long recordings are streamed in blocks. A clip with no speech energy
(RMS below -60 dBFS) or shorter than 0.5 s is labelled as well, with a warning. Checkpoints load with
torch.load(weights_only=True): a file that would run code is refused.
"""

from __future__ import annotations

import argparse

from lancet.core.errors import HelpFormatter, run_cli
from lancet.training.predict import run_predictions

DEVICE = "auto"          # auto | cpu | cuda
POOLING = None           # None: the pooling each model was evaluated with; or mean | vote
MODEL = None             # the model type to use from a run folder holding several (LANCET, GLAM, TCNet)
OUT = None               # predictions.csv or predictions.json: one row per file
TIMELINE_DIR = "timeline"  # where --timeline writes <recording>.csv and <recording>.png
WINDOW_S = None          # timeline window (s); None: the training segment (2 s)
HOP_S = None             # timeline hop (s); None: the training hop (1 s)
BLOCK_S = 5.0            # seconds of audio read at a time (memory stays bounded whatever the length)
PROGRESS = True          # a tqdm bar over the seconds of audio


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="AUDIO", help="audio files to label, or folders of them")
    p.add_argument("--checkpoint", action="append", required=True, metavar="PATH",
                   help="a best.pt written by train_LANCET.py, or a run folder (every best.pt under it); "
                        "give it again for more models (they vote together)")
    p.add_argument("--model", default=MODEL, metavar="NAME", help="the model type to use from the checkpoints")
    p.add_argument("--out", default=OUT, metavar="FILE", help="also write the predictions to FILE.csv or FILE.json")
    p.add_argument("--timeline", action="store_true",
                   help="also label windows over time in each recording longer than one window (CSV + PNG; default: off)")
    p.add_argument("--timeline-dir", default=TIMELINE_DIR, metavar="DIR", help="folder of the timelines")
    p.add_argument("--window-s", type=float, default=WINDOW_S, help="timeline window in seconds "
                   "(default: the training segment)")
    p.add_argument("--hop-s", type=float, default=HOP_S, help="timeline hop in seconds (default: the training hop)")
    p.add_argument("--device", default=DEVICE, choices=("auto", "cpu", "cuda"), help="auto: CUDA when present")
    p.add_argument("--pooling", default=POOLING, choices=("mean", "vote"),
                   help="segment pooling (default: each model's own)")
    p.add_argument("--block-s", type=float, default=BLOCK_S, help="seconds of audio read at a time")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=PROGRESS,
                   help="turn off the progress bar (default: on)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_predictions(args.checkpoint, args.inputs, model=args.model, device=args.device, pooling=args.pooling,
                    out=args.out, timeline_dir=args.timeline_dir if args.timeline else None,
                    window_s=args.window_s, hop_s=args.hop_s, block_s=args.block_s, progress=args.progress)
    return 0


if __name__ == "__main__":
    run_cli(main)
