"""Checks of numeric settings, shared by every script: one line naming the flag and what is wrong.

``argparse``'s ``type=float`` accepts ``nan``, ``inf`` and ``1e308``; a NaN SNR once wrote every sample
as -32768 and exited 0. Every numeric flag goes through :func:`check_number` before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from lancet.core.errors import LancetError

SNR_RANGE_DB = (-30.0, 50.0)  # below: the speech is inaudible under the noise; above: no noise left to hear


@dataclass(frozen=True)
class Range:
    """The values a numeric setting (a training flag, a model option) may take, and how an error names them.

    Example:
        >>> Range(0, 1, low_open=True).describe(), 0.0 in Range(0, 1, low_open=True)
        ('in (0, 1]', False)
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.high is not None:
            text = f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low == 0 and self.low_open:
            text = "positive"
        else:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{text} ({self.note})" if self.note else text


def check_number(flag: str, value: float | int, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, integer: bool = False) -> float | int:
    """Return ``value`` if finite and within bounds (``minimum <= value <= maximum``, ``value > above``).

    Example:
        >>> check_number("--hop-s", 0.5, above=0)
        0.5
        >>> check_number("--snrs", float("nan"))
        Traceback (most recent call last):
        lancet.core.errors.LancetError: --snrs: nan is not a finite number
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LancetError(f"{flag}: {value!r} is not a number")
    if not math.isfinite(value):
        raise LancetError(f"{flag}: {value} is not a finite number")
    if integer and value != int(value):
        raise LancetError(f"{flag}: {value} is not a whole number")
    if above is not None and not value > above:
        raise LancetError(f"{flag}: must be greater than {above:g}, got {value:g}")
    if minimum is not None and value < minimum:
        raise LancetError(f"{flag}: must be at least {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise LancetError(f"{flag}: must be at most {maximum:g}, got {value:g}")
    return value


def check_snrs(snrs: Iterable[float], flag: str = "--snrs") -> list[float]:
    """SNRs in dB: at least one, each finite and within :data:`SNR_RANGE_DB`, as floats.

    Example:
        >>> check_snrs([-5, 0, 20])
        [-5.0, 0.0, 20.0]
    """
    out = [float(check_number(flag, s, *SNR_RANGE_DB)) for s in snrs]
    if not out:
        raise LancetError(f"{flag}: give at least one SNR")
    return out
