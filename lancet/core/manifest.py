"""The corpus manifest: one record type per utterance, shared by every corpus reader and every later step.

A corpus reader (lancet.corpora) turns a release into a :class:`CorpusScan` of :class:`Utterance` records;
:func:`write_manifest` stores them as one CSV that augmentation, standardisation and feature extraction
read with :func:`read_manifest`, never the release tree itself.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Hashable, Iterable, Mapping, Sequence

from lancet.core.atomic import read_csv, save_csv
from lancet.core.audio import SAMPLE_RATE
from lancet.core.classes import CLASS_NAME, CLASSES, ordered_classes
from lancet.core.conditions import CLEAN
from lancet.core.errors import LancetError, printable
from lancet.core.paths import is_safe_component

MANIFEST_COLUMNS = ["id", "path", "session", "speaker", "gender", "improvised", "label", "class",
                    "duration_s", "sample_rate"]


@dataclass
class Utterance:
    """One labelled utterance of a corpus, as a manifest row (``session``: IEMOCAP's session or a speaker group)."""

    id: str
    path: str
    session: int
    speaker: str
    gender: str
    improvised: bool
    label: str
    cls: str
    duration_s: float = 0.0
    sample_rate: int = SAMPLE_RATE

    @property
    def dialog(self) -> str:
        return self.id.rsplit("_", 1)[0]

    @property
    def class_index(self) -> int:
        return CLASSES.index(self.cls)

    def to_row(self) -> dict[str, object]:
        row = asdict(self)
        row["class"] = row.pop("cls")
        row["improvised"] = int(self.improvised)
        row["duration_s"] = f"{self.duration_s:.4f}"
        return row


@dataclass
class CorpusScan:
    """What a scan of a corpus found: kept utterances and everything dropped or skipped, counted."""

    utterances: list[Utterance] = field(default_factory=list)
    dropped_labels: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what a reader did not find but can do without
    converted: int = 0

    def warn(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        self.warnings.append(message)


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write the corpus manifest CSV atomically."""
    save_csv(path, (u.to_row() for u in utterances), MANIFEST_COLUMNS)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a corpus manifest; a missing file or column is a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise LancetError(f"{path}: manifest not found (run datasets/prepare_IEMOCAP.py first)")
    rows = read_csv(path)
    if not rows:
        raise LancetError(f"{path}: manifest has no rows")
    missing = [c for c in MANIFEST_COLUMNS if c not in rows[0]]
    if missing:
        raise LancetError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    utterances = []
    for line_no, row in enumerate(rows, start=2):
        try:
            if not CLASS_NAME.match(row["class"] or ""):  # any corpus's classes, not only the shared four
                raise ValueError(f"bad class {row['class']!r} (a lower-case word)")
            if not is_safe_component(row["id"] or ""):  # output paths are built from it (a hand-edited manifest)
                raise ValueError(f"unsafe utterance id {(row['id'] or '')[:80]!r}: no path separators, '..' "
                                 f"or leading dot allowed")
            utterances.append(Utterance(
                id=row["id"], path=row["path"], session=int(row["session"]), speaker=row["speaker"],
                gender=row["gender"], improvised=row["improvised"] in ("1", "True", "true"),
                label=row["label"], cls=row["class"], duration_s=float(row["duration_s"] or 0),
                sample_rate=int(row["sample_rate"] or SAMPLE_RATE),
            ))
        except (ValueError, TypeError) as exc:
            raise LancetError(f"{path}:{line_no}: bad manifest row ({exc})") from None
    refuse_duplicates(path, rows, lambda r: r["id"], "utterance {}")
    refuse_duplicates(path, rows, lambda r: os.path.normpath(os.path.abspath(r["path"])), "audio file {}",
                      "one recording under two ids counts twice, and in two folds leaks test speech into training")
    return utterances


def refuse_duplicates(path: str | os.PathLike, rows: Sequence[Mapping[str, str]], key: Callable[[Mapping], Hashable],
                      what: str, why: str = "a row twice counts its utterance twice") -> None:
    """A one-line LancetError naming the lines of the first two ``rows`` with the same ``key`` (``what``
    formats the key, a tuple's items in turn: ``"utterance {} under condition {}"``). ``rows`` are a CSV's
    data rows, so row k is on line k + 2.

    Example:
        >>> refuse_duplicates("m.csv", [{"id": "a"}, {"id": "b"}, {"id": "a"}], lambda r: r["id"], "utterance {}")
        Traceback (most recent call last):
        lancet.core.errors.LancetError: m.csv: lines 2 and 4 both hold utterance a (a row twice counts its utterance twice); keep one of them
    """
    seen: dict[Hashable, int] = {}
    for line_no, row in enumerate(rows, start=2):
        k = key(row)
        if k in seen:
            shown = what.format(*k) if isinstance(k, tuple) else what.format(k)
            raise LancetError(f"{path}: lines {seen[k]} and {line_no} both hold {shown} ({why}); "
                              f"keep one of them")
        seen[k] = line_no


def audio_paths(manifest: str | os.PathLike, hint: str) -> dict[tuple[str, str], str]:
    """``(condition, id) -> wav path`` of a combined manifest (PIPELINE.md step 3); a corpus manifest without a
    ``condition`` column holds the clean audio only. Relative paths are read from the manifest's folder, where
    the steps that write them put them. ``hint`` says in the missing-file error what needs the audio.
    """
    path = Path(manifest)
    if not path.is_file():
        raise LancetError(f"{path}: audio manifest not found ({hint})")
    rows = read_csv(path)
    if not rows or "id" not in rows[0] or "path" not in rows[0]:
        raise LancetError(f"{path}: not a manifest with 'id' and 'path' columns")
    base = path.resolve().parent
    out = {}
    for r in rows:
        p = Path(r["path"])
        out[(r.get("condition") or CLEAN, r["id"])] = str(p if p.is_absolute() else base / p)
    return out


def count_table(utterances: list[Utterance], column: str = "S") -> str:
    """A printable table of utterance counts per class (rows) and session or speaker group (columns).

    Rows are the classes present, in the shared order (:func:`lancet.core.classes.ordered_classes`),
    so a 7-class EmoDB manifest prints seven rows; ``column`` prefixes the session/group numbers.
    """
    classes = ordered_classes(set(CLASSES) | {u.cls for u in utterances})
    sessions = sorted({u.session for u in utterances})
    counts = Counter((u.cls, u.session) for u in utterances)
    header = f"{'class':<9}" + "".join(f"{column + str(s):>7}" for s in sessions) + f"{'total':>8}"
    lines = [header]
    for cls in classes:
        per = [counts[(cls, s)] for s in sessions]
        lines.append(f"{cls:<9}" + "".join(f"{n:>7}" for n in per) + f"{sum(per):>8}")
    per_session = [sum(counts[(c, s)] for c in classes) for s in sessions]
    lines.append(f"{'total':<9}" + "".join(f"{n:>7}" for n in per_session) + f"{sum(per_session):>8}")
    genders = Counter(u.gender for u in utterances)
    unknown = "".join(f", {g or '?'} {n}" for g, n in sorted(genders.items()) if g not in ("F", "M"))  # e.g. U
    lines.append(f"gender: F {genders['F']}, M {genders['M']}{unknown}; "
                 f"improvised {sum(u.improvised for u in utterances)}, "
                 f"scripted {sum(not u.improvised for u in utterances)}")
    return "\n".join(lines)


def report(scan: CorpusScan, file=None, column: str = "S") -> None:
    """Print counts, dropped labels and skipped files of a scan (to standard output unless ``file``)."""
    file = file or sys.stdout  # looked up now: a caller may have redirected it since import
    print(count_table(scan.utterances, column), file=file)
    if scan.dropped_labels:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(scan.dropped_labels.items()))
        print(f"dropped (label outside the class map): {dropped}", file=file)
    if scan.converted:
        print(f"converted to 16 kHz mono (once): {scan.converted} files", file=file)
    for note in scan.notes:
        print(f"note: {printable(note)}", file=file)
    if scan.skipped:
        for message in scan.warnings[:20]:
            print(f"warning: {printable(message)}", file=file)  # a file name may hold a newline
        if len(scan.warnings) > 20:
            print(f"warning: ... and {len(scan.warnings) - 20} more", file=file)
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(scan.skipped.items()))
        print(f"skipped: {skipped}", file=file)
