"""Condition names: ``clean``, ``<noise>_<snr>dB`` and ``reverberation_<room>`` (docs/PIPELINE.md).

One place writes, reads and orders them, for augmentation, the feature store and the reports alike.
"""

from __future__ import annotations

import re
from typing import Iterable

CLEAN = "clean"
REVERB = "reverberation"

_NOISE_AT_SNR = re.compile(r"^(?P<noise>[A-Za-z]+)_(?P<snr>-?\d+(?:\.\d+)?)dB$")
_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?)")


def snr_name(snr: float) -> str:
    """Folder/condition spelling of an SNR: ``-5``, ``0``, ``20``, ``2.5``."""
    snr = float(snr)
    return str(int(snr)) if snr.is_integer() else f"{snr:g}"


def condition_name(noise_type: str, level: str) -> str:
    """``babble_-5dB`` for a noise at an SNR, ``reverberation_<room>`` for a room."""
    return f"{REVERB}_{level}" if noise_type == REVERB else f"{noise_type}_{level}dB"


def parse_condition(condition: str) -> tuple[str, float | None]:
    """``clean`` -> (clean, None); ``babble_-5dB`` -> (babble, -5.0); ``reverberation_hall`` -> (reverberation, None)."""
    if condition == CLEAN:
        return CLEAN, None
    match = _NOISE_AT_SNR.match(condition)
    if match:
        return match["noise"], float(match["snr"])
    return condition.split("_", 1)[0], None


def condition_sort_key(condition: str) -> tuple:
    """Clean first, then by noise type, SNR ascending, then by name with numbers compared as numbers."""
    noise, snr = parse_condition(condition)
    parts = _NUMBER.split(condition)
    natural = tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts) if p)
    return (noise != CLEAN, noise, snr if snr is not None else float("inf"), natural)


def sort_conditions(conditions: Iterable[str]) -> list[str]:
    """Distinct conditions in report order (:func:`condition_sort_key`)."""
    return sorted(set(conditions), key=condition_sort_key)
