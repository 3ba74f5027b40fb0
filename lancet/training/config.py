"""Every training default in one place, and the resolved configuration of a run.

The defaults follow the published LANCET trainer (RAdam 1e-3, weight decay 1e-6, exponential decay
0.95 per epoch with a floor of 1e-6, batch 32, 50 epochs, mixup alpha 0.5, seed 987654) except the
protocol: this project defaults to leave-one-session-out (speaker-independent); the published random
80/10/10 utterance split is ``protocol="random"`` and is reported as speaker-dependent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lancet.conditions import CLEAN
from lancet.corpus import CLASS_MAPS as _CORPUS_CLASS_MAPS
from lancet.features.params import KINDS as _FEATURE_KINDS

FEATURE_KINDS = tuple(_FEATURE_KINDS)
PROTOCOLS = ("loso", "random")
CLASS_MAPS = tuple(_CORPUS_CLASS_MAPS)
POOLINGS = ("mean", "vote")
TRAIN_ON = ("clean", "matched", "all")
DEVICES = ("auto", "cpu", "cuda")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DEFAULT_MODELS = ("LANCET", "GLAM", "TCNet")

DEFAULT_SEED = 987654
RANDOM_SPLIT_STATE = 42          # random_state of the published stratified 80/10/10 split
RANDOM_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
LR_FLOOR = 1e-6                  # the learning rate never decays below this
RAM_BUDGET_GB = 8.0              # a fold's segments are copied to RAM when they fit in this, else the mmap is indexed
NORM_STATS_MAX_MB = 512.0        # normalisation statistics use at most this much training data (random subsample above)

# Fields that change what a run computes: a rerun into the same results folder must match them.
IDENTITY_FIELDS = (
    "features", "protocol", "classes", "improvised_only", "epochs", "batch_size", "lr", "weight_decay",
    "lr_decay", "lr_floor", "mixup_alpha", "class_weighted", "pooling", "train_on", "patience",
)


@dataclass
class TrainConfig:
    """The resolved settings of one training run (saved as ``config.json``)."""

    features_dir: str = "features"
    features: str = "mel"
    models: tuple[str, ...] = DEFAULT_MODELS
    protocol: str = "loso"
    classes: str = "4class"
    improvised_only: bool = False
    seeds: tuple[int, ...] = (DEFAULT_SEED,)
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-6
    lr_decay: float = 0.95
    lr_floor: float = LR_FLOOR
    mixup_alpha: float = 0.5
    class_weighted: bool = False
    pooling: str = "mean"
    train_on: str = "clean"
    folds: tuple[str, ...] | None = None
    patience: int | None = None
    run_name: str | None = None
    results_dir: str = "results"
    device: str = "auto"
    amp: str = "auto"
    workers: int = 2
    threads: int = 0             # CPU threads for torch; 0 = all cores
    ram_budget_gb: float = RAM_BUDGET_GB
    jobs: int = 0                # units trained at once on this process's device; 0 = as many as fit (CPU: 1)
    ddp: bool = False            # under torchrun: each unit data-parallel across all ranks instead of sharing units
    model_options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        self.models = tuple(self.models)
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.folds is not None:
            self.folds = tuple(str(f) for f in self.folds)

    @property
    def improvised(self) -> bool:
        """Whether only improvised dialogs are used (``--improvised-only`` or ``--classes improvised``)."""
        return self.improvised_only or self.classes == "improvised"

    def resolved_run_name(self) -> str:
        """The run name, or one derived from the settings so that the same command resumes the same run."""
        if self.run_name:
            return self.run_name
        parts = [self.features, self.protocol, self.classes, f"train-{self.train_on}"]
        if self.improvised_only and self.classes != "improvised":
            parts.append("impro")
        return "_".join(parts)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["models"] = list(self.models)
        out["seeds"] = list(self.seeds)
        out["folds"] = list(self.folds) if self.folds is not None else None
        out["run_name"] = self.resolved_run_name()
        out["speaker_independent"] = self.protocol == "loso"
        return out

    def identity(self) -> dict[str, Any]:
        data = self.to_json()
        return {k: data[k] for k in IDENTITY_FIELDS}
