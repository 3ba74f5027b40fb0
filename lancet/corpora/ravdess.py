"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song): ``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav``.

The seven two-digit fields are modality (01 audio-video, 02 video-only, 03 audio-only), vocal channel
(01 speech, 02 song), emotion (01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust,
08 surprised), intensity (01 normal, 02 strong; neutral has normal only), statement (01, 02),
repetition (01, 02) and actor (01-24; odd actors are male). Only speech, audio-only (``03-01-*``) is
read: 60 files per actor, 1,440 in all.
"""

from __future__ import annotations

import re
from pathlib import Path

from lancet.core.classes import DEFAULT_CLASS_MAP
from lancet.core.manifest import CorpusScan
from lancet.corpora.labels import class_map
from lancet.corpora.scan import ODD_NAME, add_named_file, check_folders, wav_files
from lancet.core.errors import LancetError

# raw label -> shared class name (the full set; ``--classes 4class`` keeps the shared four)
RAVDESS_LABELS: dict[str, str] = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                                  "06": "fear", "07": "disgust", "08": "surprise"}

SPEECH_AUDIO = ("03", "01")
NOT_SPEECH_AUDIO = "(not 03-01 speech audio-only)"
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_RANGES = {"modality": ("01", "02", "03"), "vocal channel": ("01", "02"), "emotion": tuple(RAVDESS_LABELS),
           "intensity": ("01", "02"), "statement": ("01", "02"), "repetition": ("01", "02"),
           "actor": tuple(f"{a:02d}" for a in range(1, 25))}


def parse_ravdess_name(stem: str) -> dict[str, str]:
    """The seven fields of a file name stem; ValueError for a name outside the scheme.

    Example:
        >>> parse_ravdess_name("03-01-05-02-01-02-07")["emotion"]
        '05'
    """
    match = _NAME.match(stem)
    if match is None:
        raise ValueError("not MM-VV-EE-II-SS-RR-AA (seven two-digit fields)")
    fields = dict(zip(_RANGES, match.groups()))
    for name, allowed in _RANGES.items():
        if fields[name] not in allowed:
            raise ValueError(f"{name} {fields[name]} is not one of {', '.join(allowed)}")
    if fields["emotion"] == "01" and fields["intensity"] != "01":
        raise ValueError("neutral has normal intensity (01) only")
    return fields


def scan_ravdess(root: str | Path, classes: str = DEFAULT_CLASS_MAP, converted_dir: str | Path | None = None,
                 calm_as_neutral: bool = False) -> CorpusScan:
    """Read RAVDESS speech, audio-only, into utterances of the chosen classes (``4class``, or ``all``: 8).

    ``calm_as_neutral`` counts calm (02) as neutral. Song and video files are dropped and counted; names
    outside the scheme, or whose actor differs from the folder's, are rejected with a count. RAVDESS is
    48 kHz: the 16 kHz copies are made once in ``converted_dir``.
    """
    mapping = class_map(RAVDESS_LABELS, classes, {"calm": "neutral"} if calm_as_neutral else None)
    root = check_folders(root, converted_dir, "RAVDESS", "expected Actor_01 ... Actor_24 inside")
    actors = sorted(p for p in root.glob("Actor_*") if p.is_dir())
    if not actors:
        raise LancetError(f"{root}: no Actor_XX folders inside; is this the RAVDESS speech folder?")
    scan = CorpusScan()
    for folder in actors:
        folder_actor = folder.name[len("Actor_"):]
        for wav in wav_files(folder, scan):
            try:
                fields = parse_ravdess_name(wav.stem)
                if fields["actor"] != folder_actor:
                    raise ValueError(f"actor {fields['actor']} in the folder of actor {folder_actor}")
            except ValueError as exc:
                scan.warn(ODD_NAME, f"{wav}: {exc}; skipped")
                continue
            if (fields["modality"], fields["vocal channel"]) != SPEECH_AUDIO:
                scan.dropped_labels[NOT_SPEECH_AUDIO] += 1
                continue
            actor = fields["actor"]
            add_named_file(scan, mapping, wav, root, converted_dir, label=fields["emotion"], speaker=f"Actor_{actor}",
                           gender="M" if int(actor) % 2 else "F")
    return scan
