"""Several trained models voting together: the fold models of a run, or any ``best.pt`` files.

A run trains one model per fold (and seed); each has met other speakers, so the average of their class
probabilities is steadier than any one of them. :func:`load_ensemble` takes ``best.pt`` files and run
folders (every ``best.pt`` under a folder), keeps one model type (``--model`` when a folder holds several)
and checks that the models can vote together: the same classes in the same order, and the same feature
settings, so that one feature computation serves them all. Each model normalises the features its own
way (its fold's statistics, its ``--norm``). Models over a self-supervised upstream (``--features ssl``) label
whole utterances: a recording is cut into windows of :data:`UTTERANCE_WINDOW` (one window for a clip of up to
30 s, the length of the longest utterances they were trained on), each window's audio one utterance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from lancet.core.errors import LancetError
from lancet.features.params import FeatureParams, SegmentParams, params_from_record

from .checkpoint import BEST
from .predictor import Predictor, load_predictor, segment_probs

#: How a model trained on whole utterances (the ssl kind) cuts a recording: windows of up to 30 s (a clip of
#: up to 30 s is one window: the utterance itself), the last one aligned to the end when more than 0.5 s is left.
UTTERANCE_WINDOW = SegmentParams(segment_s=30.0, hop_s=30.0, tail_min_s=0.5)

#: The parts of a store's params.json that decide the features (not where they came from or when).
FEATURE_KEYS = ("kind", "sample_rate", "params", "segment_s", "hop_s", "tail_min_s", "short", "shape")


def feature_settings(record: dict) -> dict:
    """What two checkpoints must share to be fed the same features.

    Example:
        >>> feature_settings({"kind": "mfcc", "shape": [26, 63], "manifest": "a.csv", "conditions": {}})
        {'kind': 'mfcc', 'shape': [26, 63]}
    """
    return {k: record[k] for k in FEATURE_KEYS if k in record}


def find_checkpoints(paths: Sequence[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """(checkpoint file, found in a folder) for each path: a file as given, a folder as every ``best.pt`` under it."""
    found: list[tuple[Path, bool]] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(p.rglob(BEST))
            if not files:
                raise LancetError(f"{p}: no {BEST} under this folder (a run folder holds "
                                  f"checkpoints/<model>/train-<tag>/seed<seed>/<fold>/{BEST})")
            found.extend((f, True) for f in files)
        elif p.is_file():
            found.append((p, False))
        else:
            raise LancetError(f"{p}: checkpoint not found")
    seen: set[Path] = set()
    unique = []
    for f, in_folder in found:  # a file named twice, or also inside a folder given, votes once
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append((f, in_folder))
    return unique


@dataclass
class Ensemble:
    """Models that vote together (see the module docstring); built by :func:`load_ensemble`."""

    predictors: list[Predictor]

    @property
    def class_names(self) -> list[str]:
        return self.predictors[0].class_names

    @property
    def feature_record(self) -> dict:
        return self.predictors[0].feature_record

    @property
    def input(self) -> str:
        """What the models read: ``features``, ``statistics`` (per-layer means of :attr:`upstream`) or ``audio``."""
        return self.predictors[0].input

    @property
    def upstream(self):
        """The upstream that computes the statistics (``input`` statistics), shared by the models."""
        return self.predictors[0].upstream

    @property
    def params(self) -> tuple[FeatureParams, SegmentParams]:
        params, seg = params_from_record(self.feature_record)
        return (params, seg) if self.input == "features" else (params, UTTERANCE_WINDOW)

    @property
    def needs_utterance_stats(self) -> bool:
        """Whether a model normalises by the statistics of the whole utterance (``--norm utterance``)."""
        return any(p.norm == "utterance" for p in self.predictors)

    def __len__(self) -> int:
        return len(self.predictors)

    def describe(self) -> str:
        """One line naming the models that vote."""
        names = sorted({p.model_name for p in self.predictors})
        if len(self) == 1:
            return f"1 model: {self.predictors[0].source}"
        return f"{len(self)} models vote ({', '.join(names)}; mean of their class probabilities)"

    def segment_probs(self, feats: np.ndarray, lengths: np.ndarray,
                      stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """(models, n, classes) softmax probabilities of feature segments (n, F, T), one slice per model."""
        return np.stack([segment_probs(p, feats, lengths, stats) for p in self.predictors])


def check_agreement(predictors: Sequence[Predictor]) -> None:
    """One-line :class:`LancetError` unless every model has the first one's classes and feature settings."""
    first = predictors[0]
    for p in predictors[1:]:
        if p.input != first.input:
            raise LancetError(f"{p.source}: reads {p.input}, {first.source} reads {first.input}; models that vote "
                              f"together must take the same input")
        if p.class_names != first.class_names:
            raise LancetError(f"{p.source}: classes {', '.join(p.class_names)} differ from {first.source}'s "
                              f"({', '.join(first.class_names)}); models that vote together must share their classes")
        a, b = feature_settings(first.feature_record), feature_settings(p.feature_record)
        if a != b:
            key = next(k for k in FEATURE_KEYS if a.get(k) != b.get(k))
            raise LancetError(f"{p.source}: feature setting {key} = {b.get(key)!r} differs from {first.source}'s "
                              f"{a.get(key)!r}; models that vote together must be trained on the same features")


def layout_model(path: Path) -> str | None:
    """The model a ``best.pt`` belongs to by the run layout (``checkpoints/<model>/train-<tag>/seed<n>/<fold>/``),
    read from its path so that a folder's other models need not be loaded to be left out.

    Example:
        >>> layout_model(Path("results/demo/checkpoints/GLAM/train-online/seed1/fold2/best.pt"))
        'GLAM'
    """
    parts = path.parts
    if len(parts) >= 6 and parts[-6] == "checkpoints" and parts[-4].startswith("train-") and parts[-3].startswith("seed"):
        return parts[-5]
    return None


def load_ensemble(checkpoints: str | os.PathLike | Sequence[str | os.PathLike], model: str | None = None,
                  device: str = "auto", amp: str = "off") -> Ensemble:
    """The models of ``checkpoints`` (files and run folders) that vote together.

    A folder holding several model types needs ``model`` (one-line error listing them); files named one by
    one all vote, unless ``model`` picks among them. Disagreeing classes or features are a one-line error.
    """
    if isinstance(checkpoints, (str, os.PathLike)):
        checkpoints = [checkpoints]
    if not checkpoints:
        raise LancetError("--checkpoint: give a best.pt file or a run folder")
    found = find_checkpoints(checkpoints)
    loaded: dict[Path, Predictor] = {}
    upstreams: dict = {}  # fold models of one store share its upstream

    def kind(f: Path) -> str:  # by the layout when it says, else by loading the file
        name = layout_model(f)
        if name is None:
            loaded[f] = load_predictor(f, device, amp, upstreams=upstreams)
            name = loaded[f].model_name
        return name

    kinds = [(f, in_folder, kind(f)) for f, in_folder in found]
    if model is not None:
        chosen = [f for f, _, k in kinds if k == model]
        if not chosen:
            raise LancetError(f"--model {model}: no such model among the checkpoints given (they hold "
                              f"{', '.join(sorted({k for _, _, k in kinds}))})")
    else:
        in_folders = sorted({k for _, in_folder, k in kinds if in_folder})
        if len(in_folders) > 1:
            raise LancetError(f"{', '.join(map(str, checkpoints))}: holds {len(in_folders)} model types "
                              f"({', '.join(in_folders)}); choose one with --model NAME")
        chosen = [f for f, _, _ in kinds]
    predictors = [loaded[f] if f in loaded else load_predictor(f, device, amp, upstreams=upstreams) for f in chosen]
    check_agreement(predictors)
    return Ensemble(predictors)
