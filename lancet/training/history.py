"""Learning curves: every unit's epochs in ``results/<run>/history/<unit>.csv``, written as it trains.

The history lives in ``last.pt`` for resuming, where nobody can read it; this CSV is rewritten (atomically)
after every epoch, so a person can open it, or plot it, while a long run goes on. One flat folder per run,
named like the unit's metrics file, holds every unit's history: the curves plot of a model reads all its
folds from there, and copying the checkpoints of a run (to use the models elsewhere) does not drag the
curves along. After a resume the file is rewritten from the resumed history, so it never holds an epoch
twice or an epoch that ``last.pt`` does not.

Columns: ``epoch``, ``loss`` (mean training loss), ``lr`` (the learning rate after the epoch's decay),
``val_wa``, ``val_ua``, ``val_score`` ((WA+UA)/2, the selection score), ``seconds`` (the epoch's training and
validation), then whatever else the loop records (``--ddp``: steps and segments of all ranks).

With ``--tensorboard DIR`` the same values also go to TensorBoard event files under
``DIR/<run>/<unit>/`` when the ``tensorboard`` package is installed (it is optional).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from lancet.core.atomic import read_csv
from lancet.core.csv_safe import save_safe_csv

HISTORY_DIR = "history"
HISTORY_FIELDS = ["epoch", "loss", "lr", "val_wa", "val_ua", "val_score", "seconds"]
#: What to do when --tensorboard is given and the package is not there.
TENSORBOARD_HINT = "pip install tensorboard"


def history_path(run_dir: str | os.PathLike, unit_key: str) -> Path:
    """Where a unit's learning curve goes.

    Example:
        >>> history_path("results/demo", "TCNet__train-online__seed1__fold1").as_posix()
        'results/demo/history/TCNet__train-online__seed1__fold1.csv'
    """
    return Path(run_dir) / HISTORY_DIR / f"{unit_key}.csv"


def history_fields(history: Sequence[dict]) -> list[str]:
    """The columns of a history: the standard ones, then any others the records hold, in order of appearance."""
    extra = [k for r in history for k in r if k not in HISTORY_FIELDS]
    return HISTORY_FIELDS + list(dict.fromkeys(extra))


def write_history(path: str | os.PathLike, history: Sequence[dict]) -> None:
    """Rewrite ``path`` atomically with one row per epoch record."""
    save_safe_csv(path, history, history_fields(history))


def read_history(path: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of a history CSV as numbers (empty cells as NaN)."""
    return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items()} for row in read_csv(path)]


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (the ``tensorboard`` package is installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class EpochLog:
    """Called with a unit's history after each epoch: rewrites its CSV and, when asked and possible, logs
    the newest epoch to TensorBoard (``close`` when the unit is done)."""

    def __init__(self, path: Path, tensorboard_dir: Path | None = None) -> None:
        self.path = path
        self.writer: Any = None
        if tensorboard_dir is not None and tensorboard_available():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(tensorboard_dir))

    def __call__(self, history: Sequence[dict]) -> None:
        write_history(self.path, history)
        if self.writer is not None and history:
            last = history[-1]
            for key in HISTORY_FIELDS[1:]:
                if key in last:
                    self.writer.add_scalar(key, float(last[key]), int(last["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
