#!/usr/bin/env python
"""Train and evaluate LANCET / GLAM / TC-Net on extracted features (speaker-independent by default).

    python train_LANCET.py                                  # LOSO, mel, all three models, clean training
    python train_LANCET.py --models LANCET --folds 1 2 --epochs 5
    python train_LANCET.py --protocol random --seeds 1 2 3  # the published split (speaker-dependent)
    python train_LANCET.py --train-on all                   # multi-condition training
    python train_LANCET.py --predict a.wav b.wav --checkpoint results/<run>/checkpoints/.../best.pt

Everything lands in ``results/<run-name>/`` (config.json, per-fold metrics JSON/CSV, summary, plots,
best checkpoints). Rerunning the same command resumes: finished folds are skipped and an interrupted
fold continues from its last epoch. See lancet/training/ for the code.
"""

from __future__ import annotations

import argparse

from lancet.errors import LancetError, run_cli

# ------------------------------------------------------------------ defaults (each is also a flag)
FEATURES_DIR = "features"
FEATURES = "mel"                      # mel | mfcc | spectrogram
MODELS = ("LANCET", "GLAM", "TCNet")
PROTOCOL = "loso"                     # loso (speaker-independent) | random (published, speaker-dependent)
CLASSES = "4class"                    # 4class | 4class-noexc | improvised
SEEDS = (987654,)
EPOCHS = 50
BATCH_SIZE = 32
LR = 1e-3
WEIGHT_DECAY = 1e-6
LR_DECAY = 0.95                       # per epoch, floor 1e-6
MIXUP_ALPHA = 0.5
POOLING = "mean"                      # mean softmax | vote
TRAIN_ON = "clean"                    # clean | matched | all
PATIENCE = None                       # early stopping on validation (WA+UA)/2; None = off
RESULTS_DIR = "results"
DEVICE = "auto"                       # auto | cpu | cuda
AMP = "auto"                          # auto (bf16 or fp16 on CUDA, off on CPU) | bf16 | fp16 | off
WORKERS = 2                           # threads that prepare batches ahead
THREADS = 0                           # torch CPU threads (0: all cores)
RAM_BUDGET_GB = 8.0                   # a fold's segments are copied to RAM when they fit, else the mmap is indexed
JOBS = 0                              # units at once on one device; 0 = as many as fit (CPU: 1)


def build_parser() -> argparse.ArgumentParser:
    from lancet.training.config import AMP_MODES, CLASS_MAPS, DEVICES, FEATURE_KINDS, POOLINGS, PROTOCOLS, TRAIN_ON as TRAIN_CHOICES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--features-dir", default=FEATURES_DIR, help="folder holding <kind>/ feature stores")
    p.add_argument("--features", default=FEATURES, choices=FEATURE_KINDS, help="feature kind")
    p.add_argument("--models", nargs="+", default=list(MODELS), help="models to train (any of LANCET GLAM TCNet)")
    p.add_argument("--protocol", default=PROTOCOL, choices=PROTOCOLS,
                   help="loso: leave-one-session-out (speaker-independent); random: published 80/10/10 split (speaker-dependent)")
    p.add_argument("--classes", default=CLASSES, choices=CLASS_MAPS, help="class map")
    p.add_argument("--improvised-only", action="store_true", help="use improvised dialogs only")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS), help="seeds; results are mean ± std over them")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--lr", type=float, default=LR, help="RAdam learning rate")
    p.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    p.add_argument("--lr-decay", type=float, default=LR_DECAY, help="exponential decay per epoch (floor 1e-6)")
    p.add_argument("--mixup-alpha", type=float, default=MIXUP_ALPHA, help="mixup Beta(alpha, alpha); 0 disables")
    p.add_argument("--class-weighted", action="store_true", help="inverse-frequency class-weighted cross entropy")
    p.add_argument("--pooling", default=POOLING, choices=POOLINGS, help="utterance pooling of segment outputs")
    p.add_argument("--train-on", default=TRAIN_ON, choices=TRAIN_CHOICES,
                   help="clean; matched (one model per condition, as published); all (multi-condition)")
    p.add_argument("--folds", nargs="+", default=None, help="run only these folds (e.g. 1 3 or fold1)")
    p.add_argument("--patience", type=int, default=PATIENCE, help="stop after this many epochs without validation gain")
    p.add_argument("--run-name", default=None, help="results subfolder (default: derived from the settings)")
    p.add_argument("--results-dir", default=RESULTS_DIR)
    p.add_argument("--device", default=DEVICE, choices=DEVICES)
    p.add_argument("--amp", default=AMP, choices=AMP_MODES)
    p.add_argument("--workers", type=int, default=WORKERS, help="batch-preparing threads (0: none)")
    p.add_argument("--threads", type=int, default=THREADS, help="torch CPU threads (0: all cores)")
    p.add_argument("--ram-budget-gb", type=float, default=RAM_BUDGET_GB)
    p.add_argument("--jobs", type=int, default=JOBS,
                   help="units (model x fold x seed x condition) trained at once on this device; 0: as many as fit "
                        "(CUDA: from free memory; CPU: 1)")
    p.add_argument("--ddp", action="store_true",
                   help="under torchrun: train each unit data-parallel across all ranks instead of sharing the units")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--predict", nargs="+", metavar="WAV", help="label these wav files with --checkpoint instead of training")
    p.add_argument("--checkpoint", help="best.pt of a trained model (with --predict)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.predict or args.checkpoint:
        if not (args.predict and args.checkpoint):
            raise LancetError("--predict and --checkpoint go together: --predict WAV... --checkpoint best.pt")
        from lancet.training.predict import format_predictions, predict_files

        results, names = predict_files(args.checkpoint, args.predict, device=args.device)
        print(format_predictions(results, names))
        return 0
    from lancet.training.config import TrainConfig
    from lancet.training.runner import run_training

    cfg = TrainConfig(
        features_dir=args.features_dir, features=args.features, models=tuple(args.models), protocol=args.protocol,
        classes=args.classes, improvised_only=args.improvised_only, seeds=tuple(args.seeds), epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, lr_decay=args.lr_decay,
        mixup_alpha=args.mixup_alpha, class_weighted=args.class_weighted, pooling=args.pooling,
        train_on=args.train_on, folds=tuple(args.folds) if args.folds else None, patience=args.patience,
        run_name=args.run_name, results_dir=args.results_dir, device=args.device, amp=args.amp,
        workers=args.workers, threads=args.threads, ram_budget_gb=args.ram_budget_gb, progress=not args.no_progress,
        jobs=args.jobs, ddp=args.ddp,
    )
    run_training(cfg)
    return 0


if __name__ == "__main__":
    run_cli(main)
