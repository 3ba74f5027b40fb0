"""What a run will do, checked before any work starts: its settings and its units.

A run is a list of *units*, each one model trained and evaluated on one fold with one seed and one
training condition (``matched`` training plans one unit per stored condition). :func:`validate_config`
refuses settings that cannot work with one line each, and :func:`plan_units` lays out the units in the
order every process of a launch agrees on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from lancet.core.conditions import CLEAN
from lancet.core.errors import LancetError
from lancet.core.paths import safe_component
from lancet.features.params import has_frames_axis
from lancet.models import MODELS, build_model

from .config import TrainConfig, check_fields
from .folds import Fold


def validate_config(cfg: TrainConfig) -> None:
    """One-line :class:`LancetError` for any setting that cannot work (fields, then the checks across them)."""
    check_fields(cfg)
    if not cfg.models:
        raise LancetError("--models: name at least one model")
    for name in cfg.models:
        if name not in MODELS:
            raise LancetError(f"--models: unknown model {name!r}; known models: {', '.join(MODELS)}")
    if len(set(cfg.models)) != len(cfg.models):
        raise LancetError("--models: a model is named twice")
    if not cfg.seeds:
        raise LancetError("--seeds: give at least one seed")
    for flag, values in (("--seeds", cfg.seeds), ("--folds", cfg.folds or ())):
        repeated = sorted({v for v in values if list(values).count(v) > 1})
        if repeated:  # a unit twice would be trained twice and counted twice in the mean
            raise LancetError(f"{flag}: {', '.join(map(str, repeated))} given more than once")
    bad = [s for s in cfg.seeds if not 0 <= s < 2**32]
    if bad:
        raise LancetError(f"--seeds {bad[0]}: a seed is a whole number from 0 to {2**32 - 1}")
    if cfg.lr_floor > cfg.lr:  # the schedule would multiply the learning rate up to the floor
        raise LancetError(f"--lr-floor {cfg.lr_floor:g} is above --lr {cfg.lr:g}: the floor is the lowest the decay "
                          f"may bring the learning rate; give a floor below --lr")
    if cfg.run_name is not None:
        safe_component(cfg.run_name, "--run-name")  # one folder inside --results-dir, never a path out of it
    if cfg.test_features_dir and Path(cfg.test_features_dir).resolve() == Path(cfg.features_dir).resolve():
        raise LancetError(f"--test-features-dir {cfg.test_features_dir}: the training store itself; cross-corpus "
                          f"testing needs another corpus's features")
    if cfg.train_on == "online":
        if not cfg.online_snr_low <= cfg.online_snr_high:
            raise LancetError(f"--online-snr: the low end {cfg.online_snr_low} is above the high end "
                              f"{cfg.online_snr_high}")
        if not cfg.online_noise_types:
            raise LancetError("--online-noise-types: name at least one noise type")
        for flag, path in (("--noise-dir", cfg.noise_dir), ("--rir-dir", cfg.rir_dir),
                           ("--audio-manifest", cfg.audio_manifest)):
            if path and not Path(path).exists():
                raise LancetError(f"{flag} {path}: not found")
    if cfg.online_copies > 1 and cfg.train_on != "online":
        raise LancetError(f"--online-copies: it shapes --train-on online's epochs, not --train-on {cfg.train_on}")
    if cfg.consistency != "off" and not cfg.paired_views:
        raise LancetError(f"--consistency {cfg.consistency}: needs paired views (--train-on online with "
                          f"--online-paired, the default, and no --finetune): a clean and a noisy view of every "
                          f"segment in each batch")
    if cfg.paired_views and cfg.online_clean_prob > 0:
        raise LancetError(f"--online-clean-prob {cfg.online_clean_prob:g}: paired views (the default) show every "
                          f"segment clean already; pass --no-online-paired to keep a share of utterances clean instead")
    if cfg.noise_manifest and not Path(cfg.noise_manifest).is_file():
        raise LancetError(f"--noise-manifest {cfg.noise_manifest}: not found (the augmented_manifest.csv of "
                          f"datasets/augment_IEMOCAP.py)")
    validate_kind(cfg)


def validate_kind(cfg: TrainConfig) -> None:
    """The models and settings that fit the feature kind: (features x frames) segments for the CNNs, one
    per-layer statistic per utterance for the heads over a self-supervised upstream (``--features ssl``)."""
    frames = has_frames_axis(cfg.features)
    heads = [n for n, entry in MODELS.items() if not has_frames_axis(entry.input_kind)]
    for name in cfg.models:
        if has_frames_axis(MODELS[name].input_kind) == frames:
            continue
        if frames:
            raise LancetError(f"--models {name}: a head over a self-supervised upstream; train it on --features ssl "
                              f"(feature_extraction/extract_features_ssl.py)")
        raise LancetError(f"--models {name}: reads (features x frames) segments, but --features {cfg.features} holds "
                          f"one per-layer statistic per utterance; choose among {', '.join(heads)}")
    if frames:
        for flag, value in (("--finetune", cfg.finetune), ("--upstream", cfg.upstream),
                            ("--finetune-layers", cfg.finetune_layers is not None)):
            if value:
                raise LancetError(f"{flag}: for a self-supervised upstream (--features ssl), not --features {cfg.features}")
        return
    if cfg.norm != "global":
        raise LancetError(f"--norm {cfg.norm}: --features {cfg.features} has no frames to normalise over (the heads "
                          f"read the upstream's statistics as they are); leave --norm global")
    if cfg.specaugment:
        raise LancetError(f"--specaugment: masks frequency bins and frames, which --features {cfg.features} does not "
                          f"have; leave it off (fine-tuning applies the upstream's own time masking)")
    if not cfg.finetune:
        if cfg.finetune_layers is not None:
            raise LancetError("--finetune-layers: goes with --finetune")
        for name in cfg.models:
            _check_takes_statistics(name)
        return
    if cfg.compile == "on":
        raise LancetError("--compile on: --finetune runs the plain loop (batches of audio of many lengths); "
                          "leave --compile auto or off")
    if cfg.ddp:
        raise LancetError("--ddp: not with --finetune; train the units side by side instead (--jobs, or torchrun "
                          "without --ddp)")
    if cfg.online_copies > 1:
        raise LancetError("--online-copies: --finetune trains on one fresh noisy copy per epoch")


def _check_takes_statistics(name: str) -> None:
    """A head that cannot read stored per-layer means says so when asked (built on the meta device: no memory)."""
    with torch.device("meta"):
        model = build_model(name, 2, 2, 4)
        model(torch.empty(1, 1, 2, 4), torch.ones(1, dtype=torch.long))


@dataclass
class Unit:
    """One model on one fold with one seed, trained on ``train_conditions`` and tested on ``eval_conditions``."""

    model: str
    seed: int
    fold: Fold
    train_on: str                 # clean | online | matched | all
    train_conditions: list[str]
    eval_conditions: list[str]

    @property
    def tag(self) -> str:
        return self.train_on if self.train_on != "matched" else f"matched-{self.train_conditions[0]}"

    @property
    def key(self) -> str:
        return f"{self.model}__train-{self.tag}__seed{self.seed}__{self.fold.name}"


def plan_units(cfg: TrainConfig, folds: list[Fold], conditions: list[str]) -> list[Unit]:
    """Every unit of the run, seeds outermost, then models, folds and (``matched``) conditions."""
    units = []
    for seed in cfg.seeds:
        for model in cfg.models:
            for fold in folds:
                if cfg.train_on in ("clean", "online"):  # online is planned like clean: one model, every condition
                    units.append(Unit(model, seed, fold, cfg.train_on, [CLEAN], list(conditions)))
                elif cfg.train_on == "all":
                    units.append(Unit(model, seed, fold, "all", list(conditions), list(conditions)))
                else:
                    for cond in conditions:
                        units.append(Unit(model, seed, fold, "matched", [cond], [cond]))
    return units


def missing_class_warnings(folds: list[Fold], utterances: list, class_names: tuple[str, ...]) -> list[str]:
    """One line per fold split (train/validation/test) that lacks a class: its UA and the model selection
    on it silently change meaning (a missing class has no recall), so the run says so."""
    cls = {u.id: u.cls for u in utterances}
    lines = []
    for fold in folds:
        for what, ids in (("training", fold.train), ("validation", fold.val), ("test", fold.test)):
            present = {cls[i] for i in ids if i in cls}
            missing = [c for c in class_names if c not in present]
            if missing:
                lines.append(f"{fold.name}: the {what} split has no {', '.join(missing)} utterances")
    return lines
