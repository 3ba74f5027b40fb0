"""Audio read in blocks, as 16 kHz mono float32: a recording of any length in bounded memory.

:func:`lancet.core.audio.load_audio` reads a whole file, which is right for an utterance and wrong for a
two-hour interview (460 MB of float32 at 16 kHz before any feature is computed). :func:`open_audio_stream`
reads the same file ``block_s`` seconds at a time and converts each block the way ``load_audio`` converts
the whole: channels averaged, then resampled by soxr with the same "HQ" filter. The resampler is a
stream that keeps its filter state between blocks, so the blocks put end to end equal ``load_audio``'s
samples exactly, and the stream pads the end to the same length (``ceil(n * ratio)``, librosa's rule).

Formats: whatever libsndfile decodes (WAV, FLAC, OGG/Vorbis/Opus, MP3 since libsndfile 1.1, AIFF, ...);
anything else goes to audioread, librosa's other backend, which needs a system decoder (ffmpeg or
GStreamer) for m4a, aac or wma. A file neither can read is a one-line :class:`AudioError` naming it and
the formats that work.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import audioread
import numpy as np
import soundfile as sf
import soxr

from lancet.core.audio import (
    SAMPLE_RATE, AudioError, check_decoded, check_header, check_not_truncated, check_samples,
)

#: Seconds of source audio read at a time: 5 s of 48 kHz stereo is 1.9 MB of float32.
BLOCK_S = 5.0
#: What libsndfile here decodes (shown in the error for a file it cannot read).
SOUNDFILE_FORMATS = tuple(sorted(sf.available_formats()))
#: Audio file suffixes a folder is searched for (libsndfile's, plus those a system decoder may read).
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
                            ".caf", ".w64", ".rf64", ".m4a", ".aac", ".wma"})
#: The soxr quality of load_audio's resampling (librosa's ``res_type="soxr_hq"``).
RESAMPLE_QUALITY = "HQ"


def readable_formats() -> str:
    """The formats a user can rely on, for error messages.

    Example:
        >>> "FLAC" in readable_formats()
        True
    """
    return (f"{', '.join(SOUNDFILE_FORMATS)} (libsndfile {sf.__libsndfile_version__}); other formats "
            f"(m4a, aac, wma) need ffmpeg or GStreamer installed for librosa's audioread")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = re.sub(r"^Error opening '.*?': ", "", text.splitlines()[0]) if text else ""  # the path is said once
    return text.rstrip(".") or type(exc).__name__


@dataclass
class AudioStream:
    """An opened recording: its source rate, channels and length, and :meth:`blocks` at ``sample_rate``."""

    path: Path
    source_rate: int
    channels: int
    frames: int | None          # source frames when the header says (None: audioread without a length)
    sample_rate: int = SAMPLE_RATE
    block_s: float = BLOCK_S
    backend: str = "soundfile"  # soundfile | audioread
    estimated_s: float = 0.0    # a decoder's estimate of the length when ``frames`` is None (progress bars)

    @property
    def output_frames(self) -> int | None:
        """Samples :meth:`blocks` yields in all: ``load_audio``'s length, ``ceil(frames * ratio)``."""
        if self.frames is None:
            return None
        if self.source_rate == self.sample_rate:
            return self.frames
        return int(math.ceil(self.frames * (float(self.sample_rate) / self.source_rate)))

    @property
    def duration_s(self) -> float:
        """Length in seconds: exact from the header, else the decoder's estimate (0 when it gives none)."""
        return self.estimated_s if self.frames is None else self.frames / self.source_rate

    def blocks(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks at ``sample_rate``; together they equal ``load_audio(path, sample_rate)``.

        Raises :class:`AudioError` for NaN, infinite or implausibly large samples
        (:func:`lancet.core.audio.check_samples`), a file that holds no samples, or one that decodes fewer
        frames than its header says.
        """
        resampler = None
        if self.source_rate != self.sample_rate:
            resampler = soxr.ResampleStream(self.source_rate, self.sample_rate, 1, dtype="float32",
                                            quality=RESAMPLE_QUALITY)
        target = self.output_frames
        n_in = n_out = 0
        for raw in self._raw_blocks():
            check_samples(self.path, raw)  # every channel, before averaging, as load_audio checks it
            mono = raw.mean(axis=1) if raw.shape[1] > 1 else raw[:, 0]
            n_in += len(mono)
            out = resampler.resample_chunk(mono, last=False) if resampler is not None else mono
            if target is not None:
                out = out[:max(0, target - n_out)]
            n_out += len(out)
            if len(out):
                yield np.ascontiguousarray(out, dtype=np.float32)
        if n_in == 0:
            raise AudioError(f"{self.path}: empty audio (0 samples)")
        if self.frames is not None:  # a compressed file cut off decodes fewer frames than its header says
            check_decoded(self.path, n_in, self.frames, self.source_rate)
        if resampler is None:
            return
        # the filter's delayed tail, then zeros up to librosa's length (it pads with fix_length)
        out = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        target = int(math.ceil(n_in * (float(self.sample_rate) / self.source_rate)))
        out = out[:max(0, target - n_out)]
        pad = np.zeros(max(0, target - n_out - len(out)), np.float32)
        tail = np.concatenate([out.astype(np.float32, copy=False), pad])
        if len(tail):
            yield tail

    def _raw_blocks(self) -> Iterator[np.ndarray]:
        """(frames, channels) float32 blocks of the source, ``block_s`` seconds each."""
        block = max(1, int(round(self.block_s * self.source_rate)))
        if self.backend == "soundfile":
            with sf.SoundFile(str(self.path)) as fh:
                while True:
                    data = fh.read(block, dtype="float32", always_2d=True)
                    if not len(data):
                        return
                    yield data
        else:
            yield from _audioread_blocks(self.path, self.channels, block)


def _audioread_blocks(path: Path, channels: int, block: int) -> Iterator[np.ndarray]:
    """audioread's 16-bit buffers as float32 blocks of ``block`` frames (librosa scales by 1/32768 too)."""
    frame_bytes = 2 * channels
    pending = bytearray()
    with audioread.audio_open(str(path)) as fh:
        for buf in fh:
            pending += buf
            if len(pending) >= block * frame_bytes:
                usable = len(pending) - len(pending) % frame_bytes
                yield _int16_frames(bytes(pending[:usable]), channels)
                del pending[:usable]
    usable = len(pending) - len(pending) % frame_bytes
    if usable:
        yield _int16_frames(bytes(pending[:usable]), channels)


def _int16_frames(data: bytes, channels: int) -> np.ndarray:
    return (np.frombuffer(data, "<i2").astype(np.float32) / 32768.0).reshape(-1, channels)


def open_audio_stream(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, block_s: float = BLOCK_S) -> AudioStream:
    """Open ``path`` for :meth:`AudioStream.blocks` (headers only: nothing is decoded yet).

    One-line :class:`AudioError` for a missing file, a format nothing here decodes (naming the formats that
    work), a WAV cut off mid-data, or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found" + (" (it is a folder)" if path.is_dir() else ""))
    if not block_s > 0:
        raise AudioError(f"{path}: block length must be positive, got {block_s!r} s")
    try:
        info = sf.info(str(path))
    except Exception as sf_exc:  # soundfile raises several types for what libsndfile cannot open
        stream = _open_with_audioread(path, sample_rate, block_s, sf_exc)
    else:
        stream = AudioStream(path, int(info.samplerate), int(info.channels), int(info.frames), sample_rate, block_s)
        check_header(path, stream.source_rate, stream.channels, stream.frames, info.subtype, info.format)
        check_not_truncated(path, stream.frames, stream.source_rate)
    if stream.frames == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    if stream.source_rate <= 0 or stream.channels <= 0:
        raise AudioError(f"{path}: unusable header ({stream.source_rate} Hz, {stream.channels} channels)")
    check_header(path, stream.source_rate, stream.channels, None)  # a decoder's header too
    return stream


def _open_with_audioread(path: Path, sample_rate: int, block_s: float, sf_exc: BaseException) -> AudioStream:
    try:
        with audioread.audio_open(str(path)) as fh:
            rate, channels, duration = int(fh.samplerate), int(fh.channels), float(fh.duration or 0.0)
    except Exception as exc:  # NoBackendError, DecodeError, or an OSError of the decoder
        raise AudioError(f"{path}: cannot read this audio (libsndfile: {_first_line(sf_exc)}; audioread: "
                         f"{_first_line(exc)}); readable here: {readable_formats()}") from None
    # a decoder's duration is an estimate: the stream counts the real frames instead of trusting it
    return AudioStream(path, rate, channels, None, sample_rate, block_s, backend="audioread", estimated_s=duration)
