"""Reverberation: convolution with a room impulse response (RIR), rescaled to the clean utterance's level.

RIRs come from a folder of wavs (``--rir-dir``: each sub-folder is one room, loose files together form a
room named after the folder) or are simulated for large rooms with pyroomacoustics' image-source method,
seeded, several source/microphone placements per room. The reverberated speech keeps the clean utterance's
length and timing (the direct-path delay is removed, the tail beyond the utterance's end is cut) and its
power is set equal to the clean utterance's; if that would exceed full scale it is scaled down instead of
clipped (the manifest records the gain).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lancet.noise.mixing import PEAK_LIMIT, SILENCE_POWER, SilentSignalError, power, safe_gain
from lancet.noise.sources import list_audio

# Simulated large rooms: name -> (length, width, height in m, target RT60 in s).
ROOM_PRESETS = {
    "hall": ((25.0, 18.0, 8.0), 1.2),
    "lecture": ((15.0, 10.0, 4.0), 0.8),
}
DEFAULT_ROOMS = tuple(ROOM_PRESETS)
RIRS_PER_ROOM = 4


@dataclass
class Room:
    """One reverberation condition: a name and its RIRs (float32, at the corpus rate), with names for the manifest."""

    name: str
    rirs: list[np.ndarray]
    rir_names: list[str]


def safe_name(text: str) -> str:
    """A file-system- and condition-safe version of ``text`` (letters, digits, ``-`` and ``.``)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "room"


def simulate_room(name: str, dims, rt60: float, n_rirs: int, seed: int, sr: int = 16000) -> Room:
    """Simulate ``n_rirs`` RIRs of a shoebox room (image-source method), source and microphone placed at random
    (seeded) at least 1 m from the walls and 2 m apart, heights 1.2-1.8 m."""
    import pyroomacoustics as pra

    rng = np.random.default_rng([seed, sum(map(ord, name))])
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    dims = np.asarray(dims, dtype=float)
    rirs, names = [], []
    for k in range(n_rirs):
        while True:
            src = np.r_[rng.uniform(1.0, dims[:2] - 1.0), rng.uniform(1.2, 1.8)]
            mic = np.r_[rng.uniform(1.0, dims[:2] - 1.0), rng.uniform(1.2, 1.8)]
            if np.linalg.norm(src - mic) >= 2.0:
                break
        room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(absorption), max_order=min(max_order, 40))
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        rirs.append(np.asarray(room.rir[0][0], dtype=np.float32))
        names.append(f"simulated:{name}#{k}")
    return Room(name, rirs, names)


def simulated_rooms(names=DEFAULT_ROOMS, seed: int = 0, n_rirs: int = RIRS_PER_ROOM, sr: int = 16000) -> list[Room]:
    """The preset large rooms in ``names`` (see :data:`ROOM_PRESETS`), simulated with ``seed``."""
    rooms = []
    for name in names:
        if name not in ROOM_PRESETS:
            raise ValueError(f"unknown simulated room {name!r} (known: {', '.join(ROOM_PRESETS)})")
        dims, rt60 = ROOM_PRESETS[name]
        rooms.append(simulate_room(name, dims, rt60, n_rirs, seed, sr))
    return rooms


def rooms_from_dir(rir_dir: str | Path, load) -> list[Room]:
    """Rooms from a folder of RIR wavs: each sub-folder with audio is a room; loose files form one more room
    named after the folder. ``load(path)`` reads a file at the corpus rate."""
    rir_dir = Path(rir_dir)
    rooms = []
    loose = sorted(str(p) for p in rir_dir.iterdir() if p.is_file() and p.suffix.lower() in (".wav", ".flac"))
    if loose:
        rooms.append(Room(safe_name(rir_dir.name), [load(p) for p in loose], loose))
    for sub in sorted(p for p in rir_dir.iterdir() if p.is_dir()):
        files = list_audio(sub)
        if files:
            rooms.append(Room(safe_name(sub.name), [load(p) for p in files], files))
    return rooms


def _fft_convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full linear convolution of two 1-D signals through the FFT."""
    n = a.size + b.size - 1
    nfft = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(a, nfft) * np.fft.rfft(b, nfft), nfft)[:n]


def reverberate(speech: np.ndarray, rir: np.ndarray, limit: float = PEAK_LIMIT) -> tuple[np.ndarray, float]:
    """Convolve ``speech`` with ``rir`` and rescale to the clean power (see the module docstring).

    Returns ``(reverberated float32 of len(speech), level gain)`` where gain < 1 only if peak limiting
    lowered the level below the clean one. Raises :class:`SilentSignalError` for silent speech or RIR.
    """
    speech = np.asarray(speech, dtype=np.float64)
    rir = np.asarray(rir, dtype=np.float64)
    ps = power(speech)
    if ps < SILENCE_POWER:
        raise SilentSignalError("speech is silent")
    if rir.size == 0 or not np.any(rir):
        raise SilentSignalError("room impulse response is silent")
    delay = int(np.argmax(np.abs(rir)))
    wet = _fft_convolve(speech, rir)[delay:delay + speech.size]
    pw = power(wet)
    if pw < SILENCE_POWER:
        raise SilentSignalError("reverberated speech is silent")
    wet *= np.sqrt(ps / pw)
    gain = safe_gain(wet, limit)
    if gain < 1.0:
        wet *= gain
    return wet.astype(np.float32), gain
