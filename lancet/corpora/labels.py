"""Raw labels of the open corpora mapped onto the shared class names (:mod:`lancet.core.classes`).

Each reader keeps its own raw-label table (EmoDB's letters, RAVDESS's codes, ...); this module turns a
table into the class map asked for (``4class`` keeps the shared four, ``all`` the corpus's full set),
and maps a user's own label words (the labelled-folder reader) onto the shared names.
"""

from __future__ import annotations

from typing import Mapping

from lancet.core.classes import CLASSES, DEFAULT_CLASS_MAP
from lancet.core.errors import LancetError

#: The class maps every open corpus supports (IEMOCAP adds its own, lancet.corpora.iemocap).
SHARED_CLASS_MAPS = ("4class", "all")

# a user's own labels (generic folder reader, lower-cased) onto the shared names
LABEL_SYNONYMS: dict[str, str] = {
    "neutral": "neutral", "neu": "neutral", "n": "neutral",
    "happy": "happy", "happiness": "happy", "hap": "happy", "joy": "happy", "h": "happy",
    "sad": "sad", "sadness": "sad", "s": "sad",
    "angry": "angry", "anger": "angry", "ang": "angry", "a": "angry",
    "fear": "fear", "fearful": "fear", "fea": "fear",
    "disgust": "disgust", "dis": "disgust", "surprise": "surprise", "surprised": "surprise", "sur": "surprise",
    "boredom": "boredom", "bored": "boredom", "calm": "calm",
}


def check_class_map(classes: str) -> str:
    """``classes`` if every open corpus supports it, else a one-line error listing the choices."""
    if classes not in SHARED_CLASS_MAPS:
        raise LancetError(f"unknown --classes {classes!r}; choose one of {', '.join(SHARED_CLASS_MAPS)}")
    return classes


def class_map(labels: Mapping[str, str], classes: str = DEFAULT_CLASS_MAP,
              merge: Mapping[str, str] | None = None) -> dict[str, str]:
    """Raw label -> class for one ``--classes`` choice; labels left out are dropped (and counted) by the reader.

    ``merge`` renames classes first (RAVDESS ``--calm-as-neutral`` is ``{"calm": "neutral"}``).

    Example:
        >>> class_map({"01": "neutral", "02": "calm", "05": "angry"}, "4class", {"calm": "neutral"})
        {'01': 'neutral', '02': 'neutral', '05': 'angry'}
    """
    check_class_map(classes)
    merged = {raw: (merge or {}).get(cls, cls) for raw, cls in labels.items()}
    if classes == "all":
        return merged
    return {raw: cls for raw, cls in merged.items() if cls in CLASSES}
