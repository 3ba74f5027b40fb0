"""IEMOCAP: read the release layout exactly and turn it into the corpus manifest.

Layout read (as distributed by USC SAIL)::

    <root>/SessionN/dialog/EmoEvaluation/<dialog>.txt     labels, one line per utterance
    <root>/SessionN/sentences/wav/<dialog>/<utt_id>.wav   audio

Every later step reads the manifest (:mod:`lancet.core.manifest`), never the release tree itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lancet.core.audio import SAMPLE_RATE, AudioError, audio_info
from lancet.core.classes import DEFAULT_CLASS_MAP
from lancet.core.errors import LancetError
from lancet.core.manifest import CorpusScan, Utterance
from lancet.core.paths import inside
from lancet.corpora.scan import convert_once

_FOUR = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
_FOUR_NOEXC = {"neu": "neutral", "hap": "happy", "sad": "sad", "ang": "angry"}

#: IEMOCAP's class maps (names from lancet.core.classes.CLASS_MAPS): raw label -> class, improvised dialogs only
IEMOCAP_CLASS_MAPS: dict[str, tuple[dict[str, str], bool]] = {
    "4class": (_FOUR, False),
    "4class-noexc": (_FOUR_NOEXC, False),
    "improvised": (_FOUR, True),
}

# "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]"
_UTTERANCE_LINE = re.compile(
    r"^\[\s*(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\s*\]\t(?P<id>\S+)\t(?P<label>\S+)\t\[[^\]]*\]\s*$"
)
# The IEMOCAP id shape, which is also a safe file name: no separators, no dots (``Ses01F_x/../..`` is refused).
_UTTERANCE_ID = re.compile(r"^Ses(?P<session>0[1-5])[FM]_[A-Za-z0-9_-]+_(?P<gender>[FM])[A-Za-z0-9-]*$")


@dataclass
class LabelLine:
    """An utterance line of an EmoEvaluation file."""

    utterance_id: str
    label: str
    start_s: float
    end_s: float
    line_no: int

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


def scan_iemocap(root: str | Path, class_map: str = DEFAULT_CLASS_MAP,
                 converted_dir: str | Path | None = None) -> CorpusScan:
    """Read a release (or anything in its layout) into utterances of the chosen class map.

    Labels outside the map are dropped and counted. Missing, unreadable or empty audio and
    malformed label lines are skipped with a warning and counted; nothing stops halfway. Audio that
    is not 16 kHz mono is converted once into ``converted_dir`` (same layout) and the manifest points
    there; the user's files are never modified.
    """
    if class_map not in IEMOCAP_CLASS_MAPS:
        raise LancetError(f"unknown class map {class_map!r}; choose one of {', '.join(IEMOCAP_CLASS_MAPS)}")
    mapping, improvised_only = IEMOCAP_CLASS_MAPS[class_map]
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
                _add_utterance(scan, wav, root, converted_dir, where, entry, cls, improvised)
    return scan


def _add_utterance(scan: CorpusScan, wav: Path, root: Path, converted_dir: str | Path | None, where: str,
                   entry: LabelLine, cls: str, improvised: bool) -> None:
    """Check one labelled utterance's wav and record it (converted once when not 16 kHz mono), or count why not."""
    if not wav.is_file():
        scan.warn("missing wav", f"{where}: names {wav}, which does not exist; skipped")
        return
    try:
        inside(root, wav)  # the id shape already rules out '..'; a symbolic link could still lead out
        sr, channels, frames = audio_info(wav)
        if frames == 0:
            raise AudioError(f"{wav}: empty audio (0 samples)")
        path = wav if sr == SAMPLE_RATE and channels == 1 else convert_once(wav, root, converted_dir)
    except AudioError as exc:
        reason = "truncated wav" if "truncated wav" in str(exc) else "broken wav"
        scan.warn(reason, f"{where}: {exc}; skipped")
        return
    except LancetError as exc:
        scan.warn("outside the corpus", f"{where}: {exc}")
        return
    if path != wav:
        scan.converted += 1
    session, speaker, gender = parse_speaker(entry.utterance_id)
    scan.utterances.append(Utterance(
        id=entry.utterance_id, path=str(path), session=session, speaker=speaker,
        gender=gender, improvised=improvised, label=entry.label, cls=cls,
        duration_s=frames / sr, sample_rate=SAMPLE_RATE,
    ))
