"""What a run's numbers were computed from: its settings and the content of its inputs, as one identity.

A results folder is only trusted for the data it was computed on. The identity of a run is

* every setting that changes what a unit computes (:data:`lancet.training.config.IDENTITY_FIELDS`;
  models, seeds and folds only choose which units exist, so a run may grow by them);
* the feature store's content: its extraction settings, class list and the checksum of every condition's
  array and index (so another corpus, a re-extraction or a truncated index is another identity, wherever
  the folder lies);
* the noise manifest the split of recordings came from (its checksum).

The default run name ends in a digest of it, so another corpus or other settings start another folder;
``config.json`` holds it, and every unit's records carry its digest, so a rerun into a folder computed from
anything else is refused with one line naming what changed, instead of reporting the old numbers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lancet.core.atomic import file_checksum
from lancet.core.errors import LancetError
from lancet.features import FeatureStore

from .config import TrainConfig

#: params.json entries that do not change what a feature means (where it came from, its record-keeping).
NOT_FEATURE_SETTINGS = ("conditions", "manifest", "device", "created", "class_names", "checksums", "dtype")


def feature_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The part of a store's params.json that decides what its numbers mean.

    Example:
        >>> feature_settings({"kind": "mfcc", "shape": [26, 63], "manifest": "a.csv", "conditions": {}})
        {'kind': 'mfcc', 'shape': [26, 63]}
    """
    return {k: v for k, v in json.loads(json.dumps(params)).items() if k not in NOT_FEATURE_SETTINGS}


def store_identity(store: FeatureStore) -> dict[str, Any]:
    """The content of a feature store: settings, classes, and per condition its array's recorded checksum and its
    index's checksum (computed here: the index is small, and a hand-edited or cut one must count)."""
    recorded = store.params.get("conditions", {})

    def array(condition: str) -> str:  # a store written before checksums were recorded is hashed here, once
        return recorded.get(condition, {}).get("checksum") or file_checksum(store.folder / f"{condition}.npy")

    return {
        "settings": feature_settings(store.params),
        "class_names": list(store.params.get("class_names") or []),
        "conditions": {c: {"array": array(c), "index": file_checksum(store.folder / f"{c}.csv")}
                       for c in store.conditions},
    }


def noise_identity(manifest: str | None) -> str | None:
    """The checksum of the augmented manifest the noise split came from (None: no split)."""
    return file_checksum(manifest) if manifest else None


def run_identity(cfg: TrainConfig, store: FeatureStore, noise_manifest: str | None) -> dict[str, Any]:
    """Everything a unit's numbers depend on (see the module docstring), JSON-ready."""
    return {"settings": cfg.identity(), "features": store_identity(store), "noise_manifest": noise_identity(noise_manifest)}


def digest(identity: dict[str, Any]) -> str:
    """A short, stable name for an identity (12 hex digits of the SHA-256 of its canonical JSON).

    Example:
        >>> digest({"a": 1}) == digest({"a": 1}) != digest({"a": 2})
        True
    """
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def first_change(old: Any, new: Any, where: str = "") -> str | None:
    """The first place (dotted path) where two identities differ, or None when they are equal.

    Example:
        >>> first_change({"settings": {"lr": 0.001}}, {"settings": {"lr": 0.01}})
        'settings.lr (0.001 -> 0.01)'
    """
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if key not in old or key not in new:
                return f"{where}{key} ({'added' if key not in old else 'removed'})"
            change = first_change(old[key], new[key], f"{where}{key}.")
            if change:
                return change
        return None
    if old != new:
        return f"{where.rstrip('.')} ({_short(old)} -> {_short(new)})"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def check_rerun(run_dir: Path, identity: dict[str, Any], finished: list[Path]) -> str | None:
    """Refuse (one-line LancetError) a run into ``run_dir`` whose earlier results came from another identity.

    ``finished``: the metrics files already there. A folder whose earlier run finished no unit is taken
    over (returns a note saying so): a run that crashed at start must not block its corrected rerun.
    """
    path = run_dir / "config.json"
    old = None
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            old = "unreadable"
        if not isinstance(old, dict):
            if finished:
                raise LancetError(f"{path}: not a run configuration (a JSON object); the results beside it cannot be "
                                  f"tied to their data: use another --run-name")
            return f"{path}: not a run configuration; written afresh (no unit had finished)"
    new_digest = digest(identity)
    if old is not None and old.get("identity") != identity:
        change = (first_change(old["identity"], identity) if isinstance(old.get("identity"), dict)
                  else "config.json records no identity (edited, or of an older version)")
        if finished:
            raise LancetError(f"{run_dir}: computed from other data or settings ({change}); results there cannot "
                              f"be reused: use another --run-name, or leave it out for a folder named by the settings")
        return f"{run_dir}: the earlier run there finished no unit; starting afresh ({change})"
    stale = [p for p in finished if _records_digest(p) != new_digest]
    if stale:
        raise LancetError(f"{stale[0]}: computed from other data or settings than this run (digest "
                          f"{_records_digest(stale[0]) or 'none'}, now {new_digest}); use another --run-name")
    return None


def _records_digest(path: Path) -> str | None:
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    digests = {r.get("identity") for r in records if isinstance(r, dict)} if isinstance(records, list) else set()
    return digests.pop() if len(digests) == 1 else None
