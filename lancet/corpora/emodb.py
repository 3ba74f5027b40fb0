"""EmoDB (Berlin Database of Emotional Speech): ``wav/SSTTTEV.wav``.

A name is speaker (2 digits), text (``a01`` ... ``b10``), emotion letter and version letter, e.g.
``03a01Fa.wav``: speaker 03, text a01, happiness (Freude), first version. The release has 535
utterances of 10 speakers (male 03 10 11 12 15; female 08 09 13 14 16); the letters are the German
emotion names (W Ärger anger, L Langeweile boredom, E Ekel disgust, A Angst fear, F Freude happiness,
T Trauer sadness, N neutral).
"""

from __future__ import annotations

import re
from pathlib import Path

from lancet.core.classes import DEFAULT_CLASS_MAP
from lancet.core.manifest import CorpusScan
from lancet.corpora.labels import class_map
from lancet.corpora.scan import ODD_NAME, add_named_file, check_folders, wav_files

# raw label -> shared class name (the full set; ``--classes 4class`` keeps the shared four)
EMODB_LABELS: dict[str, str] = {"W": "angry", "L": "boredom", "N": "neutral", "F": "happy", "A": "fear",
                                "T": "sad", "E": "disgust"}

EMODB_GENDER: dict[str, str] = {**{s: "M" for s in ("03", "10", "11", "12", "15")},
                                **{s: "F" for s in ("08", "09", "13", "14", "16")}}
_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])$")


def parse_emodb_name(stem: str) -> tuple[str, str, str]:
    """(speaker, gender, emotion letter) of a file name stem; ValueError for a name outside the scheme.

    Example:
        >>> parse_emodb_name("03a01Fa")
        ('03', 'M', 'F')
    """
    match = _NAME.match(stem)
    if match is None:
        raise ValueError("not SSTTTEV (speaker, text, emotion letter, version)")
    if match["speaker"] not in EMODB_GENDER:
        raise ValueError(f"speaker {match['speaker']} is not one of EmoDB's ten")
    if match["emotion"] not in EMODB_LABELS:
        raise ValueError(f"emotion letter {match['emotion']} is not one of {''.join(EMODB_LABELS)}")
    return match["speaker"], EMODB_GENDER[match["speaker"]], match["emotion"]


def wav_folder(root: Path) -> Path:
    """``<root>/wav`` as released; a folder holding the wavs directly is accepted too."""
    return root / "wav" if (root / "wav").is_dir() else root


def scan_emodb(root: str | Path, classes: str = DEFAULT_CLASS_MAP,
               converted_dir: str | Path | None = None) -> CorpusScan:
    """Read EmoDB into utterances of the chosen classes (``4class`` or ``all``, 7 classes).

    Letters outside the class map are dropped and counted; names outside the scheme are rejected with
    a count; unreadable or empty files are skipped with a warning. The 16 kHz copies go to
    ``converted_dir`` (EmoDB is 16 kHz as released; copies resampled to other rates are converted once).
    """
    mapping = class_map(EMODB_LABELS, classes)
    root = check_folders(root, converted_dir, "EmoDB", "expected wav/ with files like 03a01Fa.wav inside")
    scan = CorpusScan()
    for wav in wav_files(wav_folder(root), scan):
        try:
            speaker, gender, letter = parse_emodb_name(wav.stem)
        except ValueError as exc:
            scan.warn(ODD_NAME, f"{wav}: {exc}; skipped")
            continue
        add_named_file(scan, mapping, wav, root, converted_dir, label=letter, speaker=speaker, gender=gender)
    return scan
