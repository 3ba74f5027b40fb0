"""Opening a run's feature store and reading what it holds: conditions, utterances, classes and folds.

Everything here is read once per run (and once per ``--jobs`` worker) and shared by all its units.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lancet.core.classes import CLASSES, ordered_classes
from lancet.core.conditions import CLEAN, sort_conditions
from lancet.core.errors import LancetError
from lancet.features import FeatureStore, open_features

from .config import TrainConfig
from .data import StoreView
from .folds import Fold, Utterance, filter_utterances, make_folds, utterances_from_index
from .plan import missing_class_warnings


def open_store(features_dir: str | Path, kind: str) -> FeatureStore:
    """Open ``<features_dir>/<kind>`` with :func:`lancet.features.open_features`, with clear errors."""
    root = Path(features_dir)
    if not root.is_dir():
        raise LancetError(f"{root}: features folder not found (extract features first, or pass --features-dir)")
    folder = root / kind
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "params.json").is_file())
        raise LancetError(f"{folder}: feature kind '{kind}' has not been extracted "
                          f"(found: {', '.join(found) if found else 'none'})")
    store = open_features(folder)
    if not list(store.conditions):
        raise LancetError(f"{folder}: the feature store holds no conditions")
    return store


def class_names(classes: str = "4class", found: Sequence[str] = ()) -> tuple[str, ...]:
    """The run's classes: the shared four (IEMOCAP's maps, and ``4class`` on any corpus), or with ``--classes
    all`` every class the features hold (``found``: params.json's class list, else the index's), in the shared
    order of :mod:`lancet.core.classes`."""
    return ordered_classes(found) if classes == "all" else tuple(CLASSES)


@dataclass
class RunData:
    """A run's feature store and what it holds, after ``--classes``, ``--improvised-only`` and ``--folds``."""

    store: FeatureStore
    where: str                      # the store's folder, as errors name it
    view: StoreView
    conditions: list[str]
    class_names: tuple[str, ...]
    utterances: list[Utterance]
    folds: list[Fold]
    split_warnings: list[str]

    @property
    def class_to_label(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.class_names)}

    @property
    def shape(self) -> tuple[int, int]:
        """(n_freq, n_frames) of one segment."""
        return tuple(int(v) for v in self.store.shape)  # type: ignore[return-value]


def load_run_data(cfg: TrainConfig) -> RunData:
    """Open the store of ``cfg`` and split its utterances into the protocol's folds."""
    store = open_store(cfg.features_dir, cfg.features)
    where = str(Path(cfg.features_dir) / cfg.features)
    view = StoreView(store, where)
    conditions = sort_conditions(store.conditions)
    if cfg.train_on in ("clean", "online") and CLEAN not in conditions:
        raise LancetError(f"{where}: --train-on clean but the store has no 'clean' condition "
                          f"(it has {', '.join(conditions)})")
    rows = [row for cond in conditions for row in view.index(cond).utterance_rows()]
    if not rows:
        raise LancetError(f"{where}: the feature store has no segments")
    names = class_names(cfg.classes, store.params.get("class_names") or [r["class"] for r in rows])
    params = dict(store.params) if store.params else {}
    utterances = filter_utterances(utterances_from_index(rows), cfg.classes, cfg.improvised_only, names,
                                   params.get("classes"), where)
    folds = make_folds(utterances, cfg.protocol, cfg.folds)
    return RunData(store, where, view, conditions, names, utterances, folds,
                   missing_class_warnings(folds, utterances, names))
