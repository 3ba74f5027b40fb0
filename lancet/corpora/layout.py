"""Where a corpus's files go in the trees later steps write: keyed by their path relative to the corpus.

Augmentation writes ``<out>/<condition dir>/<relative path>``. For IEMOCAP the relative path is the
release layout (``SessionN/sentences/wav/<dialog>/<id>.wav``), kept exactly as before; for any other
corpus it is the audio's path relative to the folder that holds all of the manifest's audio (EmoDB:
``wav/03a01Fa.wav``, RAVDESS: ``Actor_01/03-01-...wav``, CREMA-D: ``AudioWAV/1001_DFA_ANG_XX.wav``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def release_layout(path: str | Path) -> bool:
    """Whether ``path`` sits in IEMOCAP's release layout ``SessionN/sentences/wav/<dialog>/<file>``.

    Example:
        >>> release_layout("/x/IEMOCAP/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
        True
        >>> release_layout("/x/EmoDB/wav/03a01Fa.wav")
        False
    """
    p = Path(path)
    return (len(p.parents) >= 5 and p.parents[1].name == "wav" and p.parents[2].name == "sentences"
            and p.parents[3].name.startswith("Session"))


def corpus_root(paths: Iterable[str | Path]) -> Path:
    """The deepest folder holding every one of ``paths`` (the folders of the manifest's audio).

    Example:
        >>> str(corpus_root(["/d/EmoDB_16k/wav/a.wav", "/d/EmoDB_16k/wav/b.wav"]))
        '/d/EmoDB_16k/wav'
    """
    folders = {os.path.abspath(os.path.dirname(str(p))) for p in paths}
    if not folders:
        raise ValueError("corpus_root: no paths")
    return Path(os.path.commonpath(sorted(folders)))


def relative_audio_path(path: str | Path, root: Path) -> Path:
    """``path`` relative to ``root``, as a ``.wav`` (what is written is always wav).

    Example:
        >>> str(relative_audio_path("/d/RAVDESS/Actor_01/03-01-01-01-01-01-01.wav", Path("/d/RAVDESS")))
        'Actor_01/03-01-01-01-01-01-01.wav'
    """
    p = Path(os.path.abspath(str(path)))
    try:
        rel = p.relative_to(root)
    except ValueError:
        rel = Path(p.name)
    return rel.with_suffix(".wav")
