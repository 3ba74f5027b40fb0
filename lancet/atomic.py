"""Write files under a temporary name and rename, so no half-written output is ever left behind."""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the real extension last (``x.tmp123.wav``) so that libraries which pick a
    format from the extension still do. On failure the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = suffix if suffix is not None else path.suffix
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{ext}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an array atomically as ``.npy`` (loadable with ``np.load(mmap_mode="r")``)."""
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, array)


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Save JSON atomically, indented for people to read."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def save_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    """Save rows of dicts as CSV atomically, columns in ``fieldnames`` order."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a CSV written by :func:`save_csv` into a list of dicts (all values as strings)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
