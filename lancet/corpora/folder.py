"""Any labelled corpus: a CSV with columns ``path, label, speaker`` and optionally ``gender``.

Paths are relative to the CSV's folder (or absolute). Labels are matched case-insensitively onto the
shared class names (``Anger``, ``ang`` and ``angry`` are all ``angry``; see
:data:`lancet.corpora.labels.LABEL_SYNONYMS`); with ``--classes all`` any other label becomes a class of
its own (lower-cased). The utterance id is the file's path relative to the CSV's folder, without the
extension, with ``/`` and unsafe characters turned into ``_``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from lancet.core.classes import CLASSES, DEFAULT_CLASS_MAP, check_class_name
from lancet.core.manifest import CorpusScan
from lancet.corpora.labels import LABEL_SYNONYMS, check_class_map
from lancet.corpora.scan import add_audio, check_converted_outside
from lancet.core.errors import LancetError

REQUIRED = ("path", "label", "speaker")
BAD_ROW = "bad row"
DUPLICATE = "duplicate id"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_GENDERS = {"m": "M", "male": "M", "man": "M", "f": "F", "female": "F", "woman": "F"}


def utterance_id(path: Path, root: Path) -> str:
    """A file-name-safe id from the path relative to ``root`` (the file name alone when outside it).

    Example:
        >>> utterance_id(Path("/data/spk1/take 2.wav"), Path("/data"))
        'spk1_take_2'
        >>> utterance_id(Path("/data/.x.wav"), Path("/data"))
        'x'
    """
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    return _UNSAFE.sub("_", "_".join(rel.with_suffix("").parts)).strip("_.") or "utt"  # no leading dot: hidden


def label_class(label: str, classes: str) -> str | None:
    """The class of a raw label under ``--classes`` (None: outside the map, dropped)."""
    key = label.strip().lower()
    cls = LABEL_SYNONYMS.get(key)
    if classes == "4class":
        return cls if cls in CLASSES else None
    return cls or check_class_name(key)


def scan_folder(csv_path: str | Path, classes: str = DEFAULT_CLASS_MAP,
                converted_dir: str | Path | None = None) -> CorpusScan:
    """Read the files a CSV lists into utterances; rows without a path, label or speaker, labels that
    cannot be class names, repeated ids and missing or broken files are reported, counted and skipped."""
    check_class_map(classes)
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise LancetError(f"{csv_path}: CSV not found (columns path, label, speaker[, gender])")
    root = csv_path.resolve().parent
    check_converted_outside(root, converted_dir)
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            header = [h.strip().lower() for h in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LancetError(f"{csv_path}: unreadable CSV ({exc.__class__.__name__})") from None
    missing = [c for c in REQUIRED if c not in header]
    if not rows:
        raise LancetError(f"{csv_path}: no rows (expected a header path,label,speaker[,gender] and one row per file)")
    if missing:
        raise LancetError(f"{csv_path}: lacks column(s) {', '.join(missing)} (needs path, label, speaker[, gender])")
    scan = CorpusScan()
    seen: set[str] = set()
    for line_no, raw in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"{csv_path}:{line_no}"
        empty = [c for c in REQUIRED if not row.get(c)]
        if empty:
            scan.warn(BAD_ROW, f"{where}: empty {', '.join(empty)}; skipped")
            continue
        try:
            cls = label_class(row["label"], classes)
        except ValueError as exc:
            scan.warn(BAD_ROW, f"{where}: {exc}; skipped")
            continue
        if cls is None:
            scan.dropped_labels[row["label"]] += 1
            continue
        p = Path(row["path"])
        wav = p if p.is_absolute() else root / p
        uid = utterance_id(wav, root)
        if uid in seen:
            scan.warn(DUPLICATE, f"{where}: {row['path']} gives the id {uid} of an earlier row; skipped")
            continue
        seen.add(uid)
        gender = _GENDERS.get(row.get("gender", "").lower(), "U")
        add_audio(scan, wav, root, converted_dir, where, uid=uid, speaker=row["speaker"], gender=gender,
                  label=row["label"], cls=cls)
    return scan
