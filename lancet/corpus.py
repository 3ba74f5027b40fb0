"""The IEMOCAP corpus layer: read the release layout exactly and turn it into one manifest.

Layout read (as distributed by USC SAIL)::

    <root>/SessionN/dialog/EmoEvaluation/<dialog>.txt     labels, one line per utterance
    <root>/SessionN/sentences/wav/<dialog>/<utt_id>.wav   audio

Every later step reads the manifest this module writes, never the release tree itself.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from lancet.atomic import read_csv, save_csv
from lancet.audio import SAMPLE_RATE, AudioError, audio_info, load_audio, write_wav
from lancet.errors import LancetError
from lancet.paths import is_safe_component, inside

CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "angry")

_FOUR = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
_FOUR_NOEXC = {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry"}

# name -> (raw label -> class, improvised dialogs only)
CLASS_MAPS: dict[str, tuple[dict[str, str], bool]] = {
    "4class": (_FOUR, False),
    "4class-noexc": (_FOUR_NOEXC, False),
    "improvised": (_FOUR, True),
}
DEFAULT_CLASS_MAP = "4class"

_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

MANIFEST_COLUMNS = ["id", "path", "session", "speaker", "gender", "improvised", "label", "class",
                    "duration_s", "sample_rate"]

# "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]"
_UTTERANCE_LINE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\s*\]\t(?P<id>\S+)\t(?P<label>\S+)\t\[[^\]]*\]\s*$"
)
# The IEMOCAP id shape, which is also a safe file name: no separators, no dots (``Ses01F_x/../..`` is refused).
_UTTERANCE_ID = re.compile(r"^Ses(?P<session>0[1-5])[FM]_[A-Za-z0-9_-]+_(?P<gender>[FM])[A-Za-z0-9-]*$")


@dataclass
class Utterance:
    """One labelled utterance of the corpus, as a manifest row."""

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
class LabelLine:
    """An utterance line of an EmoEvaluation file."""

    utterance_id: str
    label: str
    start_s: float
    end_s: float
    line_no: int


@dataclass
class CorpusScan:
    """What a scan of the release found: kept utterances and everything dropped or skipped, counted."""

    utterances: list[Utterance] = field(default_factory=list)
    dropped_labels: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    converted: int = 0

    def warn(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        self.warnings.append(message)


def parse_speaker(utterance_id: str) -> tuple[int, str, str]:
    """Return (session, speaker, gender) from an utterance id.

    The speaker is the session plus the gender letter that starts the id's last part:
    ``Ses01F_impro01_M013`` is the male speaker of Session 1, ``Ses01M``.
    """
    match = _UTTERANCE_ID.match(utterance_id)
    if not match:
        raise ValueError(f"not an IEMOCAP utterance id: {utterance_id!r}")
    session = int(match["session"])
    gender = match["gender"]
    return session, f"Ses{session:02d}{gender}", gender


def is_improvised(dialog: str) -> bool:
    """Improvised dialogs are named ``SesXXY_improNN[a|b]``; the rest are scripted."""
    return "_impro" in dialog


def parse_emo_evaluation(path: str | Path, scan: CorpusScan | None = None) -> list[LabelLine]:
    """Parse one EmoEvaluation label file.

    Utterance lines look like ``[start - end]<TAB>id<TAB>label<TAB>[V, A, D]``. Header (``%``),
    annotator (``C-E1:``, ``A-E1:``, ...) and blank lines are skipped. A line that starts like an
    utterance line but does not parse is reported (file and line) and counted as ``malformed line``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")  # -sig: a BOM would hide line 1
    except OSError as exc:
        raise LancetError(f"{path}: cannot read label file ({exc.strerror})") from None
    lines: list[LabelLine] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n").lstrip("\ufeff")  # a BOM also where files were concatenated
        if not line.strip() or not line.lstrip().startswith("["):
            continue
        match = _UTTERANCE_LINE.match(line.strip())
        if match is None or not _UTTERANCE_ID.match(match["id"]):
            if match is None:
                reason, message = "malformed line", f"{path}:{line_no}: malformed utterance line: {line.strip()[:80]!r}"
            else:  # e.g. "Ses01F_x/../../victim": it would name a file outside the corpus
                reason, message = "bad utterance id", (
                    f"{path}:{line_no}: utterance id {match['id'][:80]!r} is not an IEMOCAP id "
                    f"(SesNN[FM]_<dialog>_[FM]NNN: letters, digits, _ and -, no path separators or dots); skipped")
            if scan is None:
                raise LancetError(message)
            scan.warn(reason, message)
            continue
        lines.append(LabelLine(match["id"], match["label"], float(match["start"]), float(match["end"]), line_no))
    return lines


def session_dirs(root: str | Path) -> list[Path]:
    """The ``SessionN`` folders of a release, checked to exist."""
    root = Path(root)
    if not root.is_dir():
        raise LancetError(f"{root}: IEMOCAP folder not found (expected Session1..Session5 inside)")
    found = sorted(p for p in root.glob("Session[1-5]") if p.is_dir())
    if not found:
        raise LancetError(f"{root}: no Session1..Session5 folders inside; is this the IEMOCAP release folder?")
    return found


def label_files(session_dir: Path) -> list[Path]:
    """EmoEvaluation label files of a session (macOS ``._`` companions ignored)."""
    folder = session_dir / "dialog" / "EmoEvaluation"
    if not folder.is_dir():
        raise LancetError(f"{folder}: label folder not found")
    return sorted(p for p in folder.glob("*.txt") if not p.name.startswith("._"))


def scan_corpus(
    root: str | Path,
    class_map: str = DEFAULT_CLASS_MAP,
    converted_dir: str | Path | None = None,
) -> CorpusScan:
    """Read a release (or anything in its layout) into utterances of the chosen class map.

    Labels outside the map are dropped and counted. Missing, unreadable or empty audio and
    malformed label lines are skipped with a warning and counted; nothing stops halfway. Audio that
    is not 16 kHz mono is converted once into ``converted_dir`` (same layout) and the manifest points
    there; the user's files are never modified.
    """
    if class_map not in CLASS_MAPS:
        raise LancetError(f"unknown class map {class_map!r}; choose one of {', '.join(CLASS_MAPS)}")
    mapping, improvised_only = CLASS_MAPS[class_map]
    root = Path(root).resolve()
    scan = CorpusScan()
    seen: set[str] = set()
    for session_dir in session_dirs(root):
        for label_file in label_files(session_dir):
            dialog = label_file.stem
            for entry in parse_emo_evaluation(label_file, scan):
                where = f"{label_file}:{entry.line_no}"
                if entry.utterance_id in seen:
                    scan.warn("duplicate id", f"{where}: utterance {entry.utterance_id} listed twice; first kept")
                    continue
                seen.add(entry.utterance_id)
                improvised = is_improvised(dialog)
                if improvised_only and not improvised:
                    scan.dropped_labels["(scripted)"] += 1
                    continue
                cls = mapping.get(entry.label)
                if cls is None:
                    scan.dropped_labels[entry.label] += 1
                    continue
                wav = session_dir / "sentences" / "wav" / dialog / f"{entry.utterance_id}.wav"
                if not wav.is_file():
                    scan.warn("missing wav", f"{where}: names {wav}, which does not exist; skipped")
                    continue
                try:
                    inside(root, wav)  # the id shape already rules out '..'; a symbolic link could still lead out
                    sr, channels, frames = audio_info(wav)
                    if frames == 0:
                        raise AudioError(f"{wav}: empty audio (0 samples)")
                except AudioError as exc:
                    reason = "truncated wav" if "truncated wav" in str(exc) else "broken wav"
                    scan.warn(reason, f"{where}: {exc}; skipped")
                    continue
                except LancetError as exc:
                    scan.warn("outside the corpus", f"{where}: {exc}")
                    continue
                path = wav
                if sr != SAMPLE_RATE or channels != 1:
                    try:
                        path = _convert_once(wav, root, converted_dir)
                    except AudioError as exc:
                        scan.warn("broken wav", f"{where}: {exc}; skipped")
                        continue
                    scan.converted += 1
                session, speaker, gender = parse_speaker(entry.utterance_id)
                scan.utterances.append(Utterance(
                    id=entry.utterance_id, path=str(path), session=session, speaker=speaker,
                    gender=gender, improvised=improvised, label=entry.label, cls=cls,
                    duration_s=frames / sr, sample_rate=SAMPLE_RATE,
                ))
    return scan


def _convert_once(wav: Path, root: Path, converted_dir: str | Path | None) -> Path:
    """Write a 16 kHz mono copy of ``wav`` under ``converted_dir`` unless one is already there."""
    if converted_dir is None:
        raise AudioError(f"{wav}: not 16 kHz mono and no folder given for converted copies")
    target = Path(converted_dir).resolve() / wav.relative_to(root)
    if not target.is_file():
        write_wav(target, load_audio(wav, SAMPLE_RATE), SAMPLE_RATE)
    return target


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
            if not _CLASS_NAME.match(row["class"] or ""):  # any corpus's classes (lancet.corpora), not only CLASSES
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
    return utterances


def count_table(utterances: list[Utterance], column: str = "S") -> str:
    """A printable table of utterance counts per class (rows) and session or speaker group (columns).

    Rows are the classes present, in the shared order (:func:`lancet.corpora.classes.ordered_classes`),
    so a 7-class EmoDB manifest prints seven rows; ``column`` prefixes the session/group numbers.
    """
    from lancet.corpora.classes import ordered_classes

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


def report(scan: CorpusScan, file=sys.stdout, column: str = "S") -> None:
    """Print counts, dropped labels and skipped files of a scan."""
    print(count_table(scan.utterances, column), file=file)
    if scan.dropped_labels:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(scan.dropped_labels.items()))
        print(f"dropped (label outside the class map): {dropped}", file=file)
    if scan.converted:
        print(f"converted to 16 kHz mono (once): {scan.converted} files", file=file)
    if scan.skipped:
        for message in scan.warnings[:20]:
            print(f"warning: {message}", file=file)
        if len(scan.warnings) > 20:
            print(f"warning: ... and {len(scan.warnings) - 20} more", file=file)
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(scan.skipped.items()))
        print(f"skipped: {skipped}", file=file)
