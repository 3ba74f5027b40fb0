"""Audio I/O: every wav is read as 16 kHz mono float32, and written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from lancet.atomic import atomic_path
from lancet.errors import LancetError

SAMPLE_RATE = 16_000


class AudioError(LancetError):
    """A wav that cannot be used: missing, unreadable, empty or not finite."""


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sr`` Hz (channels averaged, resampled with soxr if needed).

    Raises :class:`AudioError` with the file name for a missing, unreadable, empty or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: unreadable audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if file_sr != sr:
        import librosa

        audio = librosa.resample(audio, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(audio, dtype=np.float32)


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """Return (sample_rate, channels, frames) of a wav without reading its samples."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: unreadable audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return int(info.samplerate), int(info.channels), int(info.frames)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int = SAMPLE_RATE, subtype: str = "PCM_16") -> None:
    """Write mono audio to ``path`` atomically (temporary name, then rename). Values must lie in [-1, 1]."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"{path}: expected mono audio, got shape {audio.shape}")
    with atomic_path(path, ".wav") as tmp:
        sf.write(str(tmp), audio, sr, subtype=subtype, format="WAV")
