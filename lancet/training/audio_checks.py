"""Why a prediction on a clip may mean little: no speech energy, or too little audio.

A model answers for any input, also for silence; so a clip whose RMS level is below :data:`SILENCE_DBFS`
or shorter than :data:`MIN_CLIP_S` gets a warning beside its label. :class:`Level` measures the RMS of a
recording streamed in blocks, so a long file is checked without holding it.
"""

from __future__ import annotations

import numpy as np

#: RMS level (dB relative to full scale, 20 log10 RMS) below which a clip holds no speech energy:
#: speech is recorded around -35 to -15 dBFS, -60 dBFS is near the noise floor of 16-bit silence.
SILENCE_DBFS = -60.0
#: Clips shorter than this hold too little speech for an emotion label.
MIN_CLIP_S = 0.5


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level of float audio in [-1, 1] in dBFS (20 log10 RMS); ``-inf`` for digital silence.

    Example:
        >>> round(rms_dbfs(np.full(100, 0.1)), 6)
        -20.0
    """
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return float(20.0 * np.log10(rms)) if rms > 0 else float("-inf")


def clip_warnings(level_dbfs: float, seconds: float) -> list[str]:
    """The warnings of a clip of this RMS level and length (empty list if fine)."""
    out = []
    if level_dbfs < SILENCE_DBFS:
        out.append(f"no speech energy (RMS {level_dbfs:.1f} dBFS, below {SILENCE_DBFS:g} dBFS): the label means nothing")
    if seconds < MIN_CLIP_S:
        out.append(f"only {seconds:.2f} s of audio (under {MIN_CLIP_S:g} s): too short to judge")
    return out


def audio_warnings(audio: np.ndarray, sample_rate: int) -> list[str]:
    """Why a prediction on this clip means little: no speech energy, or too short (empty list if fine)."""
    return clip_warnings(rms_dbfs(audio), len(audio) / sample_rate)


class Level:
    """RMS level and length of audio seen block by block.

    Example:
        >>> level = Level(100)
        >>> level.add(np.full(50, 0.1)); level.add(np.full(50, 0.1))
        >>> round(level.dbfs, 6), level.seconds
        (-20.0, 1.0)
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.samples = 0
        self._energy = 0.0

    def add(self, block: np.ndarray) -> None:
        self._energy += float(np.sum(np.square(block, dtype=np.float64)))
        self.samples += len(block)

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    @property
    def dbfs(self) -> float:
        rms = np.sqrt(self._energy / self.samples) if self.samples else 0.0
        return float(20.0 * np.log10(rms)) if rms > 0 else float("-inf")

    def warnings(self) -> list[str]:
        return clip_warnings(self.dbfs, self.seconds)
