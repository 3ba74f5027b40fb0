"""CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset): ``AudioWAV/AAAA_SSS_EEE_LL.wav``.

Fields: actor (1001-1091), sentence (12 three-letter codes), emotion (ANG, DIS, FEA, HAP, NEU, SAD) and
level (LO, MD, HI, or XX unspecified). Gender comes from ``VideoDemographics.csv`` (ActorID, Age, Sex,
Race, Ethnicity) when it is in the corpus folder; otherwise it is unknown (``U``). The release has
7,442 clips of 91 actors.
"""

from __future__ import annotations

import re
from pathlib import Path

from lancet.core.atomic import read_csv
from lancet.core.classes import DEFAULT_CLASS_MAP
from lancet.core.manifest import CorpusScan
from lancet.corpora.labels import class_map
from lancet.corpora.scan import ODD_NAME, add_named_file, check_folders, wav_files
from lancet.core.errors import LancetError

# raw label -> shared class name (the full set; ``--classes 4class`` keeps the shared four)
CREMAD_LABELS: dict[str, str] = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral",
                                 "SAD": "sad"}

SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")
ACTORS = tuple(str(a) for a in range(1001, 1092))
DEMOGRAPHICS = "VideoDemographics.csv"
UNKNOWN_GENDER = "U"
_NAME = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})$")


def parse_cremad_name(stem: str) -> tuple[str, str]:
    """(actor, emotion) of a file name stem; ValueError for a name outside the scheme.

    Example:
        >>> parse_cremad_name("1001_DFA_ANG_XX")
        ('1001', 'ANG')
    """
    match = _NAME.match(stem)
    if match is None:
        raise ValueError("not AAAA_SSS_EEE_LL (actor, sentence, emotion, level)")
    for name, allowed in (("actor", ACTORS), ("sentence", SENTENCES), ("emotion", tuple(CREMAD_LABELS)),
                          ("level", LEVELS)):
        if match[name] not in allowed:
            raise ValueError(f"{name} {match[name]} is not a CREMA-D {name}")
    return match["actor"], match["emotion"]


def read_demographics(path: Path) -> dict[str, str]:
    """ActorID -> M/F from VideoDemographics.csv; a one-line error for a file without the columns."""
    try:
        rows = read_csv(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise LancetError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    if not rows or not {"ActorID", "Sex"} <= {k.lstrip("\ufeff").strip() for k in rows[0]}:
        raise LancetError(f"{path}: expected columns ActorID and Sex")
    out = {}
    for row in rows:
        row = {k.lstrip("\ufeff").strip(): (v or "").strip() for k, v in row.items() if k}
        sex = row["Sex"].lower()
        out[row["ActorID"]] = "M" if sex in ("male", "m") else "F" if sex in ("female", "f") else UNKNOWN_GENDER
    return out


def scan_cremad(root: str | Path, classes: str = DEFAULT_CLASS_MAP,
                converted_dir: str | Path | None = None) -> CorpusScan:
    """Read CREMA-D into utterances of the chosen classes (``4class``, or ``all``: 6).

    Names outside the scheme are rejected with a count; emotions outside the map are dropped and counted.
    """
    mapping = class_map(CREMAD_LABELS, classes)
    root = check_folders(root, converted_dir, "CREMA-D", "expected AudioWAV/ inside")
    audio = root / "AudioWAV"
    if not audio.is_dir():
        raise LancetError(f"{audio}: folder not found; is {root} the CREMA-D folder?")
    demographics = root / DEMOGRAPHICS
    genders = read_demographics(demographics) if demographics.is_file() else {}
    scan = CorpusScan()
    if not demographics.is_file():
        scan.notes.append(f"no {DEMOGRAPHICS} in {root}: gender unknown (U); groups are balanced by class only")
    for wav in wav_files(audio, scan):
        try:
            actor, emotion = parse_cremad_name(wav.stem)
        except ValueError as exc:
            scan.warn(ODD_NAME, f"{wav}: {exc}; skipped")
            continue
        add_named_file(scan, mapping, wav, root, converted_dir, label=emotion, speaker=actor,
                       gender=genders.get(actor, UNKNOWN_GENDER))
    return scan
