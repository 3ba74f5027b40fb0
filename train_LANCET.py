#!/usr/bin/env python
"""Train and evaluate LANCET / GLAM / TC-Net or heads over a self-supervised upstream (speaker-independent by default).

    python train_LANCET.py                                  # LOSO, mel, all three models, clean + fresh noise
    python train_LANCET.py --no-online-paired               # one noisy copy per epoch, no clean view (half the cost)
    python train_LANCET.py --train-on clean                 # clean speech only (features alone, no audio needed)
    python train_LANCET.py --models LANCET --folds 1 2 --epochs 5
    python train_LANCET.py --protocol random --seeds 1 2 3  # the published split (speaker-dependent)
    python train_LANCET.py --train-on all                   # multi-condition training
    python train_LANCET.py --config results/<run>/config.json --run-name again --seeds 1 2   # rerun, changed
    python train_LANCET.py --features ssl --models SSLProbe --train-on all   # SUPERB's probe on stored statistics
    python train_LANCET.py --features ssl --models SSLProbe --finetune --finetune-layers 2   # fine-tune the upstream
    python train_LANCET.py --predict a.wav b.wav --checkpoint results/<run>/checkpoints/.../best.pt

Everything lands in ``results/<run-name>/`` (config.json, per-fold metrics JSON/CSV, summary, plots,
best checkpoints). Rerunning the same command resumes: finished folds are skipped and an interrupted
fold continues from its last epoch. See lancet/training/ for the code.
"""

from __future__ import annotations

import argparse

from lancet.core.errors import HelpFormatter, LancetError, run_cli
from lancet.training.config import build_parser as config_parser
from lancet.training.config import config_from_args
from lancet.training.config_file import add_config_flag, parse_with_config
from lancet.training.grid import run_training
from lancet.training.predict import run_predictions

# ------------------------------------------------------------------ paths (each is also a flag)
# Every other setting -- the recipe (epochs, batch size, learning rate, mixup, seeds...), the device,
# the model options -- is a field of lancet.training.config.TrainConfig, where its default and help
# are written once; the flags below are generated from those fields.
FEATURES_DIR = "features"             # folder holding <kind>/ feature stores (extract_features_*.py --out)
RESULTS_DIR = "results"               # results/<run-name>/ per run
PATHS = {"features_dir": FEATURES_DIR, "results_dir": RESULTS_DIR}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    config_parser(PATHS, p)
    add_config_flag(p.add_argument_group("a saved configuration"))
    g = p.add_argument_group("prediction instead of training")
    g.add_argument("--predict", nargs="+", metavar="WAV", help="label these wav files with --checkpoint")
    g.add_argument("--checkpoint", help="best.pt of a trained model, or a run folder (its fold models vote; "
                   "predict.py has --model, --out and --timeline)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_with_config(build_parser(), argv)
    if args.predict or args.checkpoint:
        if not (args.predict and args.checkpoint):
            raise LancetError("--predict and --checkpoint go together: --predict WAV... --checkpoint best.pt")
        run_predictions([args.checkpoint], args.predict, device=args.device, progress=args.progress)
        return 0
    run_training(config_from_args(args))
    return 0


if __name__ == "__main__":
    run_cli(main)
