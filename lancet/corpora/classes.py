"""Class names shared by every corpus, and each corpus's raw labels mapped onto them.

Every corpus maps onto the shared four classes (``lancet.corpus.CLASSES``: neutral, happy, sad, angry),
so that a model trained on one corpus can be tested on another; ``all`` keeps the corpus's own full
set under shared names (fear is ``fear`` in EmoDB, RAVDESS and CREMA-D alike). A class list is always
put in one order, :data:`CLASS_ORDER` (unknown names after it, alphabetically), so the integer label of
a class does not depend on which corpus or which files were read first.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from lancet.corpus import CLASSES
from lancet.errors import LancetError

CLASS_ORDER: tuple[str, ...] = CLASSES + ("fear", "disgust", "surprise", "boredom", "calm")
CLASS_CHOICES = ("4class", "all")
DEFAULT_CLASSES = "4class"
_CLASS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

# raw label of each corpus -> shared class name (the full set; "4class" keeps the shared four)
EMODB_LABELS: dict[str, str] = {"W": "angry", "L": "boredom", "N": "neutral", "F": "happy", "A": "fear",
                                "T": "sad", "E": "disgust"}
RAVDESS_LABELS: dict[str, str] = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                                  "06": "fear", "07": "disgust", "08": "surprise"}
CREMAD_LABELS: dict[str, str] = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral",
                                 "SAD": "sad"}
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


def class_sort_key(name: str) -> tuple[int, str]:
    """Shared classes in :data:`CLASS_ORDER`, any other name after them alphabetically."""
    return (CLASS_ORDER.index(name), "") if name in CLASS_ORDER else (len(CLASS_ORDER), name)


def ordered_classes(names: Iterable[str]) -> tuple[str, ...]:
    """The distinct class names in the one order every step uses.

    Example:
        >>> ordered_classes(["sad", "boredom", "angry", "sad", "neutral"])
        ('neutral', 'sad', 'angry', 'boredom')
    """
    return tuple(sorted(set(names), key=class_sort_key))


def check_class_name(name: str) -> str:
    """A class name is a short lower-case word (it becomes a CSV column and a plot label)."""
    if not _CLASS_NAME.match(name):
        raise ValueError(f"class name {name!r} is not a lower-case word of letters, digits, '_' or '-'")
    return name


def class_map(labels: Mapping[str, str], classes: str = DEFAULT_CLASSES,
              merge: Mapping[str, str] | None = None) -> dict[str, str]:
    """Raw label -> class for one ``--classes`` choice; labels left out are dropped (and counted) by the reader.

    ``merge`` renames classes first (RAVDESS ``--calm-as-neutral`` is ``{"calm": "neutral"}``).

    Example:
        >>> class_map(RAVDESS_LABELS, "4class", {"calm": "neutral"})["02"]
        'neutral'
    """
    if classes not in CLASS_CHOICES:
        raise LancetError(f"unknown --classes {classes!r}; choose one of {', '.join(CLASS_CHOICES)}")
    merged = {raw: (merge or {}).get(cls, cls) for raw, cls in labels.items()}
    if classes == "all":
        return merged
    return {raw: cls for raw, cls in merged.items() if cls in CLASSES}
