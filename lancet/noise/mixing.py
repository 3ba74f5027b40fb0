"""Mixing speech and noise at an exact signal-to-noise ratio.

SNR definition used throughout LANCET: the SNR of a mixture is the power of the speech divided by
the power of the added noise, both taken over the whole utterance (silence included, no voice
activity detection), in dB: ``10 * log10(sum(speech**2) / sum(noise**2))``.
"""

from __future__ import annotations

import numpy as np

# Largest absolute sample value written: one 16-bit step below full scale, so a PCM_16 file never clips.
PEAK_LIMIT = 32767.0 / 32768.0
# Mean-square power below which a signal counts as silent (about -120 dBFS).
SILENCE_POWER = 1e-12
# Default crossfade when a short noise is looped.
CROSSFADE_S = 0.05


class SilentSignalError(ValueError):
    """The speech or the noise has (almost) no energy, so no SNR can be set."""


def power(x: np.ndarray) -> float:
    """Mean-square power of ``x`` over all its samples (float64 accumulation)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if x.size else 0.0


def is_silent(x: np.ndarray) -> bool:
    """True when ``x`` has mean-square power below :data:`SILENCE_POWER` (or no samples)."""
    return power(x) < SILENCE_POWER


def measure_snr(speech: np.ndarray, mixture: np.ndarray) -> float:
    """SNR in dB of ``mixture`` with respect to its clean ``speech`` component: noise = mixture - speech.

    Returns ``inf`` when the mixture equals the speech exactly.
    """
    s = np.asarray(speech, dtype=np.float64)
    m = np.asarray(mixture, dtype=np.float64)
    if s.shape != m.shape:
        raise ValueError(f"speech and mixture lengths differ: {s.shape} vs {m.shape}")
    p_noise = float(np.sum((m - s) ** 2))
    p_speech = float(np.sum(s * s))
    if p_noise == 0.0:
        return float("inf")
    if p_speech == 0.0:
        return float("-inf")
    return 10.0 * np.log10(p_speech / p_noise)


def loop_to_length(noise: np.ndarray, length: int, crossfade: int) -> np.ndarray:
    """Repeat ``noise`` until it has at least ``length`` samples, joining copies with an equal-power crossfade.

    The crossfade (sine/cosine ramps, which keep the power of uncorrelated signals constant) is shortened
    to a quarter of the noise when the noise is very short. Returns ``noise`` unchanged if already long enough.
    """
    noise = np.asarray(noise, dtype=np.float32)
    n = noise.size
    if n == 0:
        raise SilentSignalError("empty noise")
    if n >= length:
        return noise
    xf = int(max(0, min(crossfade, n // 4)))
    if xf == 0:
        reps = -(-length // n)
        return np.tile(noise, reps)
    t = (np.arange(xf, dtype=np.float64) + 0.5) / xf
    fade_in = np.sin(0.5 * np.pi * t).astype(np.float32)
    fade_out = np.cos(0.5 * np.pi * t).astype(np.float32)
    step = n - xf  # each further copy adds this many new samples
    copies = 1 + -(-(length - n) // step)
    out = np.zeros(n + (copies - 1) * step, dtype=np.float32)
    out[:n] = noise
    end = n
    for _ in range(copies - 1):
        start = end - xf
        out[start:end] = out[start:end] * fade_out + noise[:xf] * fade_in
        out[end:end + n - xf] = noise[xf:]
        end += step
    return out


def noise_segment(noise: np.ndarray, length: int, rng: np.random.Generator,
                  crossfade: int) -> tuple[np.ndarray, int]:
    """Cut ``length`` samples of ``noise`` starting at a random offset drawn from ``rng``.

    A noise longer than ``length`` gives an offset in ``[0, len(noise) - length]``; a shorter one is looped
    with a crossfade (:func:`loop_to_length`) and the offset lies in ``[0, len(noise))``, so any phase of the
    loop can start the segment. Returns ``(segment, offset_in_samples)``.
    """
    noise = np.asarray(noise, dtype=np.float32)
    n = noise.size
    if n >= length:
        offset = int(rng.integers(0, n - length + 1))
        return noise[offset:offset + length].copy(), offset
    offset = int(rng.integers(0, n))
    looped = loop_to_length(noise, offset + length, crossfade)
    return looped[offset:offset + length].copy(), offset


def scale_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Return ``noise`` scaled so that power(speech) / power(scaled noise) equals ``snr_db`` exactly.

    Raises :class:`SilentSignalError` when either signal is silent (no division by zero, no NaN).
    """
    ps, pn = power(speech), power(noise)
    if ps < SILENCE_POWER:
        raise SilentSignalError("speech is silent")
    if pn < SILENCE_POWER:
        raise SilentSignalError("noise is silent")
    gain = np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))
    return (np.asarray(noise, dtype=np.float64) * gain).astype(np.float64)


def safe_gain(signal: np.ndarray, limit: float = PEAK_LIMIT) -> float:
    """Gain (<= 1) that brings the peak of ``signal`` down to ``limit``; 1.0 when it does not exceed it."""
    peak = float(np.max(np.abs(signal))) if np.size(signal) else 0.0
    return 1.0 if peak <= limit else limit / peak


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float,
               limit: float = PEAK_LIMIT) -> tuple[np.ndarray, float]:
    """Mix ``speech`` and an equally long ``noise`` at ``snr_db`` (see the module docstring for the definition).

    If the mixture's peak would exceed ``limit``, speech and noise are scaled down together by one gain, so
    the SNR is unchanged and nothing is hard-clipped. Returns ``(mixture as float32, gain)``; the speech
    component of the mixture is ``gain * speech``.
    """
    speech = np.asarray(speech, dtype=np.float64)
    noise = np.asarray(noise)
    if speech.shape != noise.shape:
        raise ValueError(f"speech and noise lengths differ: {speech.shape} vs {noise.shape}")
    mixture = speech + scale_noise(speech, noise, snr_db)
    gain = safe_gain(mixture, limit)
    if gain < 1.0:
        mixture *= gain
    return mixture.astype(np.float32), gain
