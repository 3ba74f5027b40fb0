"""``predict.py --out``: the predictions as a file to keep, one row per recording (CSV or JSON).

Columns: ``path``, ``label``, one ``prob_<class>`` per class (they sum to 1), ``duration_s``, ``segments``
(training segments the file gave), ``models`` (how many models voted) and ``warnings`` (no speech
energy, too short; joined by `` | ``). The CSV is written for spreadsheets (:mod:`lancet.core.csv_safe`:
no cell runs as a formula, a newline in a file name cannot split a row); the JSON keeps every value as
it is, the classes and the checkpoints that voted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from lancet.core.atomic import save_json
from lancet.core.csv_safe import write_safe_csv
from lancet.core.errors import LancetError

OUT_SUFFIXES = (".csv", ".json")
WARNING_SEPARATOR = " | "


def prediction_header(class_names: Sequence[str]) -> list[str]:
    """The CSV columns.

    Example:
        >>> prediction_header(["sad", "angry"])
        ['path', 'label', 'prob_sad', 'prob_angry', 'duration_s', 'segments', 'models', 'warnings']
    """
    return ["path", "label"] + [f"prob_{c}" for c in class_names] + ["duration_s", "segments", "models", "warnings"]


def check_out_path(path: str | os.PathLike) -> Path:
    """``--out`` as a path, refused in one line unless it ends in .csv or .json (checked before any work)."""
    path = Path(path)
    if path.suffix.lower() not in OUT_SUFFIXES:
        raise LancetError(f"--out {path}: name a .csv or .json file")
    if path.is_dir():
        raise LancetError(f"--out {path}: is a folder; name a .csv or .json file")
    return path


def write_predictions(path: str | os.PathLike, results: Sequence[dict], class_names: Sequence[str],
                      checkpoints: Sequence[str] = ()) -> Path:
    """Write ``results`` (of :func:`lancet.training.predict.predict_files`) to ``path`` atomically."""
    path = check_out_path(path)
    if path.suffix.lower() == ".csv":
        write_safe_csv(path, prediction_header(class_names),
                       ([r["path"], r["label"], *r["scores"], round(r.get("duration_s", 0.0), 3), r["n_segments"],
                         r.get("models", 1), WARNING_SEPARATOR.join(r.get("warnings", []))] for r in results))
    else:
        save_json(path, {"class_names": list(class_names), "checkpoints": list(map(str, checkpoints)),
                         "predictions": [{"path": r["path"], "label": r["label"],
                                          "probabilities": dict(zip(class_names, r["scores"])),
                                          "duration_s": r.get("duration_s"), "segments": r["n_segments"],
                                          "models": r.get("models", 1), "warnings": list(r.get("warnings", []))}
                                         for r in results]}, allow_nan=False)
    return path
