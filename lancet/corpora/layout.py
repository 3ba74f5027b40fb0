"""Where a corpus's files go in the trees later steps write: keyed by their path relative to the corpus.

Augmentation writes ``<out>/<condition dir>/<relative path>``. For IEMOCAP the relative path is the
release layout (``SessionN/sentences/wav/<dialog>/<id>.wav``), kept exactly as before; for any other
corpus it is the audio's path relative to the folder that holds all of the manifest's audio (EmoDB:
``wav/03a01Fa.wav``, RAVDESS: ``Actor_01/03-01-...wav``, CREMA-D: ``AudioWAV/1001_DFA_ANG_XX.wav``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from lancet.core.manifest import Utterance
from lancet.core.paths import inside, safe_component

#: The augmented tree's own files: one row per written mixture (its noise recording, offset and measured
#: SNR; the trainer splits recordings into training and test pools from it) and what produced the tree.
AUGMENTED_MANIFEST = "augmented_manifest.csv"
AUGMENT_CONFIG = "augment_config.json"
#: Beside a converted 16 kHz copy (``<copy>.source.json``): the source it was made from (lancet.corpora.scan).
SOURCE_RECORD = ".source.json"


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


def release_root(path: str | Path) -> Path | None:
    """The IEMOCAP release folder holding ``path`` when it sits in the release layout, else None.

    Example:
        >>> str(release_root("/x/IEMOCAP/Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"))
        '/x/IEMOCAP'
    """
    return Path(path).parents[4] if release_layout(path) else None


def corpus_folders(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """The folders a manifest's audio lives in, as (what it is, folder): IEMOCAP releases (audio in the release
    layout), the folders converted copies were made from, the deepest folder holding all of the audio, and
    each audio file's own folder. A step's output inside any of them would write into a corpus, which every
    step only reads (:func:`lancet.core.paths.check_outside`).

    The common folder is left out when it is the file-system root or the home folder (audio gathered from all
    over a disk has no corpus folder of its own); the files' own folders still count.
    """
    folders = sorted({os.path.dirname(os.path.abspath(str(p))) for p in paths})
    if not folders:
        return []
    found: dict[Path, str] = {}
    for folder in folders:
        first = next((f for f in sorted(os.listdir(folder)) if f.endswith(SOURCE_RECORD)), None) \
            if os.path.isdir(folder) else None
        source = _converted_from(Path(folder) / first) if first else None
        for p in (os.path.join(folder, "x.wav"), source):
            root = release_root(p) if p else None
            if root is not None:
                found.setdefault(root, "the original corpus folder")
        if source is not None:
            found.setdefault(source.parent, "the corpus folder the converted copies came from")
    common = Path(os.path.commonpath(folders))
    if len(common.parts) > 2 and common != Path.home():
        found.setdefault(common, "the corpus audio folder")
    for folder in folders:
        found.setdefault(Path(folder), "the corpus audio folder")
    return [(what, folder) for folder, what in found.items()]


def _converted_from(record: Path) -> Path | None:
    """The source a converted copy's record names, or None when it names none."""
    try:
        source = json.loads(record.read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(source) if isinstance(source, str) and source else None


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
