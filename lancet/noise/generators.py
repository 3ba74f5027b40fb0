"""Generated noises: synthesised from a random generator alone, so no recording is needed.

A noise type names one of these as its generator (:mod:`lancet.noise.registry`): white noise is always
generated, and music and ambient fall back on a stand-in when no recording is found. Every generator takes
``(length, rng, sr)`` and returns ``length`` float32 samples of unit variance, the same for the same
``rng`` state, so a stored and an online mixture draw alike.

Example:
    >>> import numpy as np
    >>> x = PINK.make(16000, np.random.default_rng(0), 16000)
    >>> x.shape, x.dtype, round(float(x.std()), 3)
    ((16000,), dtype('float32'), 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from lancet.core.audio import SAMPLE_RATE

#: ``make(length, rng, sr) -> samples``: one generated noise.
MakeNoise = Callable[[int, np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Generator:
    """A generated noise: its name in the manifest (``generated:<name>``), its function, and what it is
    (in the description of a noise type that is always generated)."""

    name: str
    make: MakeNoise
    what: str


def white_noise(length: int, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Gaussian white noise with unit variance (``sr`` is unused: white noise has no time scale)."""
    return rng.standard_normal(length).astype(np.float32)


def coloured_noise(length: int, rng: np.random.Generator, exponent: float = 1.0) -> np.ndarray:
    """Noise whose power spectrum falls as 1/f**exponent (1: pink, 2: brown), unit variance."""
    n = max(int(length), 2)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    spectrum /= f ** (exponent / 2.0)
    x = np.fft.irfft(spectrum, n)[:length]
    x -= x.mean()
    std = x.std()
    return (x / std if std > 0 else x).astype(np.float32)


def pink_noise(length: int, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """1/f noise, the stand-in for ambient noise (``sr`` is unused: the slope is per octave)."""
    return coloured_noise(length, rng, 1.0)


def brown_noise(length: int, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """1/f² noise (``sr`` is unused: the slope is per octave)."""
    return coloured_noise(length, rng, 2.0)


def synthetic_music(length: int, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A stand-in for music: a random chord progression of harmonic tones with note envelopes, and a beat."""
    t_len = max(int(length), 1)
    out = np.zeros(t_len, dtype=np.float64)
    tempo = rng.uniform(80, 140)
    beat = int(sr * 60.0 / tempo)
    root = rng.uniform(110.0, 220.0)
    chords = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (9, 12, 16))
    chord_len = 4 * beat
    for start in range(0, t_len, chord_len):
        seg = min(chord_len, t_len - start)
        t = np.arange(seg) / sr
        chord = chords[int(rng.integers(len(chords)))]
        env = np.exp(-t * rng.uniform(0.5, 2.0))
        for semi in chord:
            f0 = root * 2.0 ** (semi / 12.0)
            for h, amp in ((1, 1.0), (2, 0.4), (3, 0.2)):
                out[start:start + seg] += amp * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    kick_t = np.arange(int(0.15 * sr)) / sr
    kick = np.sin(2 * np.pi * (60 + 60 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 25) * 3.0
    for start in range(0, t_len, beat):
        seg = min(kick.size, t_len - start)
        out[start:start + seg] += kick[:seg]
    std = out.std()
    return (out / std if std > 0 else out).astype(np.float32)


WHITE = Generator("white", white_noise, "white Gaussian noise")
PINK = Generator("pink", pink_noise, "pink (1/f) noise")
BROWN = Generator("brown", brown_noise, "brown (1/f²) noise")
MUSIC = Generator("music", synthetic_music, "synthetic music (chords and a beat)")
