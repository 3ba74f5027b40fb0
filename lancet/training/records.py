"""One result record per (unit, test condition): the row every metrics file, summary and table is built from.

The same builder serves a run's own test conditions and cross-corpus testing, so both write the same
columns (lancet.training.report.RECORD_FIELDS) and aggregate the same way.
"""

from __future__ import annotations

from typing import Any

from lancet.core.conditions import parse_condition

from .plan import Unit


def condition_record(unit: Unit, condition: str, metrics: dict, best_epoch: Any = "", val_wa: Any = "",
                     val_ua: Any = "", **more: Any) -> dict:
    """The record of ``unit`` tested on ``condition`` (``metrics`` from lancet.training.evaluate); ``more``
    (normalisation, test noise, the stores of a cross-corpus test) follows the metrics.

    Example:
        >>> from lancet.training.folds import Fold
        >>> fold = Fold("fold1", frozenset(), frozenset(), frozenset(), True)
        >>> m = {"wa": 0.5, "ua": 0.4, "macro_f1": 0.3, "segment_wa": 0.5, "segment_ua": 0.4, "n": 10,
        ...      "n_segments": 12, "recall": [0.4], "confusion": [[4]]}
        >>> r = condition_record(Unit("LANCET", 1, fold, "clean", ["clean"], ["white_0dB"]), "white_0dB", m)
        >>> r["noise_type"], r["snr_db"], r["train_condition"], r["n_utterances"]
        ('white', 0.0, 'clean', 10)
    """
    noise, snr = parse_condition(condition)
    return {
        "model": unit.model, "train_on": unit.train_on,
        "train_condition": "+".join(unit.train_conditions) if unit.train_on != "all" else "all",
        "fold": unit.fold.name, "seed": unit.seed, "condition": condition, "noise_type": noise,
        "snr_db": "" if snr is None else snr, "wa": metrics["wa"], "ua": metrics["ua"],
        "macro_f1": metrics["macro_f1"], "segment_wa": metrics["segment_wa"], "segment_ua": metrics["segment_ua"],
        "n_utterances": metrics["n"], "n_segments": metrics["n_segments"], "best_epoch": best_epoch,
        "val_wa": val_wa, "val_ua": val_ua, "recall": metrics["recall"], "confusion": metrics["confusion"], **more,
    }
