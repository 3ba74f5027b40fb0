"""Classification metrics, as scikit-learn defines them, without its per-call overhead.

* WA (weighted accuracy) = plain accuracy.
* UA (unweighted accuracy) = mean recall over the classes present in the reference labels
  (``balanced_accuracy_score``; equal to ``recall_score(average="macro")`` when every class occurs).
* macro-F1 over the classes present in the reference or the predictions (``f1_score(average="macro")``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Confusion matrix (rows = reference class, columns = predicted class) as int64."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {t.shape} vs {p.shape}")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def weighted_accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def unweighted_accuracy(cm: np.ndarray) -> float:
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    used = (support + predicted) > 0
    if not used.any():
        return float("nan")
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[used].mean())


def per_class_recall(cm: np.ndarray) -> list[float | None]:
    support = cm.sum(axis=1)
    return [float(cm[i, i] / support[i]) if support[i] else None for i in range(cm.shape[0])]


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> dict:
    """WA, UA, macro-F1, per-class recall and the confusion matrix, as plain JSON-able values."""
    cm = confusion(y_true, y_pred, n_classes)
    return {
        "wa": weighted_accuracy(cm),
        "ua": unweighted_accuracy(cm),
        "macro_f1": macro_f1(cm),
        "recall": per_class_recall(cm),
        "confusion": cm.tolist(),
        "n": int(cm.sum()),
    }


def selection_score(metrics: dict) -> float:
    """The model-selection criterion of the published trainer: (WA + UA) / 2."""
    return 0.5 * (metrics["wa"] + metrics["ua"])


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population, ddof=0) standard deviation, ignoring NaN; (nan, nan) when empty."""
    arr = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std())


# A condition where one class takes more than this share of the predictions is flagged as degenerate:
# its WA/UA say nothing about emotion (e.g. every utterance labelled "angry" scores UA = 1/K).
DEGENERATE_SHARE = 0.9


def dominant_prediction(cm: np.ndarray | Sequence[Sequence[int]]) -> tuple[int, float]:
    """(class index, share of all predictions) of the most predicted class of confusion matrix ``cm``.

    Example::

        >>> dominant_prediction([[0, 5], [0, 5]])
        (1, 1.0)
    """
    cm = np.asarray(cm, dtype=np.int64)
    predicted = cm.sum(axis=0)
    total = int(predicted.sum())
    if total == 0:
        return -1, float("nan")
    k = int(predicted.argmax())
    return k, float(predicted[k] / total)


def degenerate_class(cm: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str],
                     threshold: float = DEGENERATE_SHARE) -> str:
    """The dominant class's name when it takes more than ``threshold`` of the predictions, else ``""``."""
    k, share = dominant_prediction(cm)
    return class_names[k] if k >= 0 and share > threshold else ""
