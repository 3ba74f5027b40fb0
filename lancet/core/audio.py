"""Audio I/O: every wav is read as 16 kHz mono float32, and written atomically."""

from __future__ import annotations

import errno
import os
import shutil
import struct
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from lancet.core.atomic import atomic_path
from lancet.core.errors import LancetError

SAMPLE_RATE = 16_000
#: Sample rates audio is recorded at: below 1 kHz (a band up to 500 Hz) no speech survives, telephone speech
#: needs 8 kHz; above 768 kHz no converter records. A header outside them is damaged.
SAMPLE_RATE_RANGE = (1_000, 768_000)
#: More channels than any recording set-up a speech corpus uses (a 64-capsule spherical array, a 128-channel
#: room array) and well below libsndfile's own limit of 1024; more is a damaged header.
MAX_CHANNELS = 256
#: Largest plausible sample magnitude. Integer formats decode to [-1, 1]; float files may exceed full scale by
#: some headroom left by processing (a few dB), but a sample beyond 64 (+36 dBFS) is a file written at integer
#: scale (+-32768) or damaged: its features would be shifted by tens of dB, and a value such as 1e30 overflows
#: float32 once squared, so every feature of the file would be infinite or NaN.
MAX_ABS_SAMPLE = 64.0
#: Most frames a compressed file can hold per byte: FLAC packs a constant block of up to 65,535 samples in
#: about 8-10 bytes, under this bound; no coder packs more. A header claiming more is damaged (reading it
#: would allocate its claimed length: 128 GiB for a 27 kB file that said 596 hours).
MAX_FRAMES_PER_BYTE = 8_192
#: Bytes per sample of libsndfile's uncompressed subtypes (a frame holds one per channel), except in the
#: formats that compress them (FLAC reports its bit depth as PCM_16 or PCM_24).
SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                "ULAW": 1, "ALAW": 1}
COMPRESSING_FORMATS = ("FLAC",)


class AudioError(LancetError):
    """An audio file that cannot be used: missing, unreadable, empty, cut off, implausible or not finite."""


def load_audio(path: str | os.PathLike, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sr`` Hz (channels averaged, resampled with soxr if needed).

    Raises :class:`AudioError` with the file name for a missing, unreadable, empty, cut off or implausible
    file (:func:`check_header`, :func:`check_samples`).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    info = _info(path)
    check_header(path, int(info.samplerate), int(info.channels), int(info.frames), info.subtype, info.format)
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioError(f"{path}: unreadable audio ({_first_line(exc)})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    check_not_truncated(path, data.shape[0], file_sr)
    check_decoded(path, data.shape[0], int(info.frames), file_sr)
    check_samples(path, data)
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if file_sr != sr:
        import librosa

        audio = librosa.resample(audio, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _info(path: str | os.PathLike):
    """libsndfile's header of ``path``, or a one-line :class:`AudioError`."""
    try:
        return sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: unreadable audio ({_first_line(exc)})") from None


def audio_info(path: str | os.PathLike) -> tuple[int, int, int]:
    """Return (sample_rate, channels, frames) of an audio file without reading its samples.

    A file cut off mid-data or with an implausible header raises :class:`AudioError`
    (:func:`check_not_truncated`, :func:`check_header`).
    """
    info = _info(path)
    sr, frames = int(info.samplerate), int(info.frames)
    check_header(path, sr, int(info.channels), frames, info.subtype, info.format)
    check_not_truncated(path, frames, sr)
    return sr, int(info.channels), frames


def check_header(path: str | os.PathLike, sr: int, channels: int, frames: int | None, subtype: str = "",
                 fmt: str = "") -> None:
    """Raise :class:`AudioError` for a header no recording has: a sample rate outside
    :data:`SAMPLE_RATE_RANGE`, no channel or more than :data:`MAX_CHANNELS`, or more frames than the file's
    bytes can hold (uncompressed: its sample width; compressed: :data:`MAX_FRAMES_PER_BYTE`)."""
    low, high = SAMPLE_RATE_RANGE
    if not low <= sr <= high:
        raise AudioError(f"{path}: implausible sample rate {sr} Hz in its header (audio is recorded at "
                         f"{low:,} to {high:,} Hz); the file is damaged")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(f"{path}: implausible header: {channels} channels (1 to {MAX_CHANNELS} expected); "
                         f"the file is damaged")
    if frames is None:
        return
    size = os.path.getsize(path)
    width = None if fmt in COMPRESSING_FORMATS else SAMPLE_BYTES.get(subtype)
    most = size // (channels * width) if width else size * MAX_FRAMES_PER_BYTE
    if frames > most:
        raise AudioError(f"{path}: implausible header: it claims {frames} frames ({frames / sr:.1f} s) in a file of "
                         f"{size} bytes, more than the file can hold; the file is damaged")


def check_decoded(path: str | os.PathLike, decoded: int, declared: int, sr: int) -> None:
    """Raise :class:`AudioError` when fewer frames decode than the header declares (a compressed file cut
    off: libsndfile then returns what it could decode, silently)."""
    if decoded < declared:
        raise AudioError(f"{path}: truncated: the header says {declared / sr:.3f} s but only {decoded / sr:.3f} s "
                         f"could be decoded")


def check_samples(path: str | os.PathLike, data: np.ndarray) -> None:
    """Raise :class:`AudioError` for NaN or infinite samples, or one beyond :data:`MAX_ABS_SAMPLE` (checked on
    every channel, before they are averaged: +1e30 and -1e30 would average to a plausible 0)."""
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    if peak > MAX_ABS_SAMPLE:
        raise AudioError(f"{path}: implausible amplitude: a sample of {peak:.3g} where full scale is 1 (a float file "
                         f"beyond +-{MAX_ABS_SAMPLE:g}, +36 dBFS, is wrongly scaled or damaged); rescale it to [-1, 1]")


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
            for cid, csize in _chunks(fh, "<"):
                if cid == b"fmt ":
                    fmt = fh.read(min(csize, 16))
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                elif cid == b"data":
                    if not block_align or csize in (0, 0xFFFFFFFF):  # unknown length (streamed, RF64)
                        return None
                    present = max(0, size - fh.tell())
                    return csize // block_align, min(csize, present) // block_align
    except OSError:
        pass
    return None


def _chunks(fh, byte_order: str) -> Iterator[tuple[bytes, int]]:
    """(id, size) of each chunk of a RIFF (``"<"``) or IFF (``">"``) file from the current position, the file
    at the chunk's data when yielded; the next chunk is found from the size (padded to even) whatever the
    caller read of this one."""
    while True:
        chunk = fh.read(8)
        if len(chunk) < 8:
            return
        cid, csize = chunk[:4], struct.unpack(byte_order + "I", chunk[4:])[0]
        start = fh.tell()
        yield cid, csize
        fh.seek(start + csize + (csize & 1))


#: AU (Sun/NeXT) encodings and their bytes per sample.
_AU_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}
#: AIFF-C compression types whose samples are stored as they are (their width is the header's sample size),
#: and those of one byte per sample whatever the header's sample size says.
_AIFC_PLAIN = {b"NONE", b"sowt", b"twos", b"fl32", b"FL32", b"fl64", b"FL64", b"in24", b"in32"}
_AIFC_BYTE = {b"ulaw", b"ULAW", b"alaw", b"ALAW"}


def aiff_declared_frames(path: str | os.PathLike) -> tuple[int, int] | None:
    """(frames the AIFF header declares, frames the file holds), or None when not a plain AIFF(-C).

    libsndfile clamps a cut-off AIFF to the data present, as it does a wav (:func:`wav_declared_frames`).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
                return None
            size = os.fstat(fh.fileno()).st_size
            declared = frame_bytes = None
            for cid, csize in _chunks(fh, ">"):
                if cid == b"COMM":
                    comm = fh.read(min(csize, 22))
                    compression = comm[18:22] if head[8:12] == b"AIFC" else b"NONE"
                    if len(comm) < 8 or compression not in _AIFC_PLAIN | _AIFC_BYTE:
                        return None  # a compressed AIFF-C: no fixed width
                    channels, declared, bits = struct.unpack(">hIh", comm[:8])
                    frame_bytes = channels * (1 if compression in _AIFC_BYTE else (bits + 7) // 8)
                elif cid == b"SSND":
                    offset = struct.unpack(">I", fh.read(8)[:4])[0]
                    if not frame_bytes or declared is None:
                        return None
                    present = max(0, min(csize - 8 - offset, size - fh.tell() - offset))
                    return declared, present // frame_bytes
    except (OSError, struct.error):
        pass
    return None


def au_declared_frames(path: str | os.PathLike) -> tuple[int, int] | None:
    """(frames the AU header declares, frames the file holds), or None when not an AU file of known length."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if len(head) < 24 or head[:4] != b".snd":
        return None
    offset, length, encoding, _rate, channels = struct.unpack(">5I", head[4:24])
    width = _AU_BYTES.get(encoding)
    if width is None or not channels or length == 0xFFFFFFFF:
        return None
    return length // (width * channels), min(length, max(0, size - offset)) // (width * channels)


def declared_frames(path: str | os.PathLike) -> tuple[str, tuple[int, int]] | None:
    """(format, (declared, present frames)) of a wav, AIFF or AU file, read from its own header; None for
    other formats (compressed ones are checked by decoding: :func:`check_decoded`)."""
    for name, read in (("wav", wav_declared_frames), ("AIFF", aiff_declared_frames), ("AU", au_declared_frames)):
        found = read(path)
        if found is not None:
            return name, found
    return None


def check_not_truncated(path: str | os.PathLike, frames_read: int, sr: int) -> None:
    """Raise :class:`AudioError` when a wav, AIFF or AU file holds fewer frames than its header says (cut off
    mid-data), whatever its name ends in."""
    found = declared_frames(path)
    if found is None:
        return
    kind, (declared, present) = found
    if min(present, frames_read) < declared:
        raise AudioError(f"{path}: truncated {kind}: the header says {declared / sr:.3f} s but the file holds "
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
