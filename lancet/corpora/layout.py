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

from lancet.core.manifest import Utterance
from lancet.core.paths import inside, safe_component

#: The augmented tree's own files: one row per written mixture (its noise recording, offset and measured
#: SNR; the trainer splits recordings into training and test pools from it) and what produced the tree.
AUGMENTED_MANIFEST = "augmented_manifest.csv"
AUGMENT_CONFIG = "augment_config.json"


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


def output_path(out: Path, utt: Utterance, kind: str, level: str, root: Path | None = None) -> Path:
    """Where the augmented copy of ``utt`` goes: IEMOCAP's release layout under the condition folder, or for any
    other corpus the audio's path relative to ``root``, the folder of the manifest's audio.

    Ids come from a manifest anyone can edit: a name that is not one plain file name, or a path that would
    leave ``out``, is a LancetError (an id ``Ses01F_x/../../victim`` once overwrote a file outside).

    Example:
        >>> u = Utterance("Ses01F_impro01_F000", "/x/a.wav", 1, "Ses01F", "F", True, "neu", "neutral")
        >>> str(output_path(Path("/out"), u, "white", "0"))
        '/out/white/0/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav'
    """
    safe_component(utt.id, "utterance id")
    safe_component(level, "condition level")
    if root is None or release_layout(utt.path):
        rel = Path(f"Session{int(utt.session)}", "sentences", "wav", utt.dialog, f"{utt.id}.wav")
    else:
        rel = relative_audio_path(utt.path, root)
    return inside(out, out / kind / level / rel)
