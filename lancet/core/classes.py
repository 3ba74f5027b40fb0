"""Emotion class names shared by every corpus and step, their one order, and the class maps by name.

Every corpus maps its raw labels onto shared names (fear is ``fear`` in EmoDB, RAVDESS and CREMA-D
alike), so a model trained on one corpus can be tested on another. A class list is always put in
one order, :data:`CLASS_ORDER` (unknown names after it, alphabetically), so the integer label of a
class never depends on which corpus or which files were read first.
"""

from __future__ import annotations

import re
from typing import Iterable

#: The four classes of the usual IEMOCAP protocol, which every corpus maps onto with ``4class``.
CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "angry")
CLASS_ORDER: tuple[str, ...] = CLASSES + ("fear", "disgust", "surprise", "boredom", "calm")

#: Every class map by name, and what it keeps. A corpus reader supports some of them
#: (lancet.corpora.registry); the trainer accepts all of them.
CLASS_MAPS: dict[str, str] = {
    "4class": "neutral, happy, sad, angry: the four classes shared by every corpus (IEMOCAP: excited counts as happy)",
    "4class-noexc": "IEMOCAP's four classes without excited",
    "improvised": "IEMOCAP's four classes, improvised dialogs only",
    "all": "every class the corpus has, under the shared names",
}
DEFAULT_CLASS_MAP = "4class"

# A class name becomes a CSV column and a plot label: a short lower-case word.
CLASS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


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
    """``name`` if it is a short lower-case word of letters, digits, '_' or '-'; else ValueError.

    Example:
        >>> check_class_name("angry")
        'angry'
    """
    if not CLASS_NAME.match(name):
        raise ValueError(f"class name {name!r} is not a lower-case word of letters, digits, '_' or '-'")
    return name
