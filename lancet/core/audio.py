"""Audio I/O: every wav is read as 16 kHz mono float32, and written atomically."""

from __future__ import annotations

import errno
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from lancet.core.atomic import atomic_path
from lancet.core.errors import LancetError

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
    check_not_truncated(path, data.shape[0], file_sr)
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if file_sr != sr:
        import librosa

        audio = librosa.resample(audio, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(audio, dtype=np.float32)


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """Return (sample_rate, channels, frames) of a wav without reading its samples.

    A wav cut off mid-data raises :class:`AudioError` (see :func:`check_not_truncated`).
    """
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: unreadable audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    sr, frames = int(info.samplerate), int(info.frames)
    check_not_truncated(path, frames, sr)
    return sr, int(info.channels), frames


def wav_declared_frames(path: str | os.PathLike) -> tuple[int, int] | None:
    """(frames the WAV header declares, frames the file actually holds), or None when not a plain RIFF WAV.

    libsndfile quietly clamps a cut-off file to the data present, so a wav truncated mid-data (a copy
    stopped halfway) would be read as a shorter utterance; this reads the RIFF chunks to catch it.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = os.fstat(fh.fileno()).st_size
            block_align = 0
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = fh.read(min(csize, 16))
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                    fh.seek(csize - len(fmt) + (csize & 1), os.SEEK_CUR)
                elif cid == b"data":
                    if not block_align or csize in (0, 0xFFFFFFFF):  # unknown length (streamed, RF64)
                        return None
                    present = max(0, size - fh.tell())
                    return csize // block_align, min(csize, present) // block_align
                else:
                    fh.seek(csize + (csize & 1), os.SEEK_CUR)
    except OSError:
        return None


def check_not_truncated(path: str | os.PathLike, frames_read: int, sr: int) -> None:
    """Raise :class:`AudioError` when a wav holds fewer frames than its header says (cut off mid-data)."""
    if Path(path).suffix.lower() != ".wav":
        return
    found = wav_declared_frames(path)
    if found is None:
        return
    declared, present = found
    if min(present, frames_read) < declared:
        raise AudioError(f"{path}: truncated wav: the header says {declared / sr:.3f} s but the file holds "
                         f"only {min(present, frames_read) / sr:.3f} s")


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int = SAMPLE_RATE, subtype: str = "PCM_16") -> None:
    """Write mono audio to ``path`` atomically (temporary name, then rename). Values must lie in [-1, 1]."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"{path}: expected mono audio, got shape {audio.shape}")
    with atomic_path(path, ".wav") as tmp:
        try:
            sf.write(str(tmp), audio, sr, subtype=subtype, format="WAV")
        except (RuntimeError, AssertionError) as exc:  # libsndfile says only 'System error.' on a full disk
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            full = shutil.disk_usage(tmp.parent).free < audio.nbytes + (1 << 16)
            raise OSError(errno.ENOSPC if full else errno.EIO, f"cannot write audio ({first})", str(path)) from None
