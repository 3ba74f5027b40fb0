"""The worker side of the augmentation: one task (one utterance under one noise type at every SNR, or in one
room) made in a worker process from the run's shared, read-only state (:func:`init_worker`).

Randomness comes from a generator seeded by (seed, utterance id, noise type or room) (:func:`task_rng`),
so results do not depend on worker order or count, and one utterance gets the same noise segment at every
SNR (only the level changes along the SNR ladder). The driver is :mod:`lancet.noise.augment`.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from lancet.core.audio import SAMPLE_RATE, AudioError, load_audio, write_wav
from lancet.core.conditions import REVERB, condition_name, snr_name
from lancet.core.manifest import Utterance
from lancet.corpora.layout import output_path
from lancet.noise import babble as babble_mod
from lancet.noise import reverb as reverb_mod
from lancet.noise.mixing import SilentSignalError, is_silent, measure_snr, mix_at_snr, power
from lancet.noise.sources import NoiseSource, draw_noise


def task_rng(seed: int, utt_id: str, kind: str) -> np.random.Generator:
    """The random generator of one (utterance, noise type or room): a hash of all three, order-independent."""
    digest = hashlib.sha256(f"{seed}|{utt_id}|{kind}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


@dataclass(frozen=True)
class Task:
    """One utterance under one noise type (all SNRs) or one room."""

    index: int
    kind: str   # a noise type or REVERB
    name: str   # noise type again, or the room name


class _LRU:
    """A tiny byte-bounded cache of loaded audio."""

    def __init__(self, budget_bytes: int):
        self.budget, self.used, self.items = budget_bytes, 0, OrderedDict()

    def get(self, key: str, loader):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = loader(key)
        self.items[key] = value
        self.used += value.nbytes
        while self.used > self.budget and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.used -= old.nbytes
        return value


_STATE: dict = {}


def init_worker(state: dict) -> None:
    """Pool initializer: keep the shared, read-only state; one BLAS thread per process."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    init_inline(state)


def init_inline(state: dict) -> None:
    """Keep the run's state for tasks run in this process, with fresh audio caches."""
    _STATE.clear()
    _STATE.update(state)
    _STATE["noise_cache"] = _LRU(256 << 20)
    _STATE["speech_cache"] = _LRU(64 << 20)


def _read_written(path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="float64", always_2d=False)
    return data


def _base_row(utt: Utterance, condition: str, noise_type: str, path: Path) -> dict:
    row = utt.to_row()
    row.pop("path")
    row.update(id=utt.id, condition=condition, noise_type=noise_type, path=str(path),
               snr_db="", snr_measured_db="", noise_file="", noise_offset_s="", gain="", level_db="")
    return row


def _noise_for(utt: Utterance, source: NoiseSource, length: int, rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
    """The noise segment for one utterance: (noise, noise_file text, offset text in seconds)."""
    xf = int(round(_STATE["crossfade_s"] * SAMPLE_RATE))

    def load_noise(path: str) -> np.ndarray:
        return _STATE["noise_cache"].get(path, lambda p: load_audio(p, SAMPLE_RATE))

    def corpus_babble(n: int, r: np.random.Generator) -> tuple[np.ndarray, str, list[int]]:
        utts, by_speaker = _STATE["utterances"], _STATE["by_speaker"]
        # session babble: voices of the target's own group only, which is on the target's side of every fold
        if _STATE.get("babble_pool", "session") == "session":
            by_speaker = babble_mod.session_talkers(utt.speaker, str(utt.session), by_speaker, _STATE["group_of"])
        load = lambda i: _STATE["speech_cache"].get(utts[i].path, lambda p: load_audio(p, SAMPLE_RATE))  # noqa: E731
        seg, keys, offs = babble_mod.babble_for(utt.speaker, by_speaker, _STATE["babble_speakers"], n, load, r, xf)
        return seg, "babble:" + "+".join(utts[k].id for k in keys), list(offs)

    noise, what, offsets = draw_noise(source, length, rng, xf, load_noise, corpus_babble, _STATE["babble_speakers"])
    return noise, what, ";".join(f"{o / SAMPLE_RATE:.4f}" for o in offsets) or "0"


def run_task(task: Task) -> list[dict]:
    """Make (or find) every output of one task; return one record per output: a manifest row, or a skip
    (``{"skip": reason, "message": ...}``). Existing outputs are not rewritten but are measured again."""
    utt: Utterance = _STATE["utterances"][task.index]
    rng = task_rng(_STATE["seed"], utt.id, f"{task.kind}:{task.name}")
    levels = [snr_name(s) for s in _STATE["snrs"]] if task.kind != REVERB else [task.name]
    paths = [output_path(_STATE["out"], utt, task.kind, lv, _STATE["corpus_root"]) for lv in levels]
    try:
        speech = load_audio(utt.path, SAMPLE_RATE).astype(np.float64)
    except AudioError as exc:
        return _skips(utt, task.kind, levels, "unreadable speech", str(exc))
    if is_silent(speech):
        return _skips(utt, task.kind, levels, "silent speech", "speech is silent; no SNR can be set")
    if task.kind == REVERB:
        return _reverb_rows(utt, task.name, speech, rng, paths[0])
    return _noise_rows(utt, task.kind, speech, rng, levels, paths)


def _skips(utt: Utterance, kind: str, levels: list[str], reason: str, message: str) -> list[dict]:
    """One skip record per output of a task that cannot be made."""
    return [{"skip": reason, "message": f"{utt.id} [{condition_name(kind, lv)}]: {message}"} for lv in levels]


def _write_once(path: Path, audio: np.ndarray) -> bool:
    """Write ``audio`` unless ``path`` exists (a resumed run keeps finished files); whether it existed."""
    existed = path.is_file()
    if not existed:
        write_wav(path, audio, SAMPLE_RATE, _STATE["subtype"])
    return existed


def _reverb_rows(utt: Utterance, room_name: str, speech: np.ndarray, rng: np.random.Generator,
                 path: Path) -> list[dict]:
    """The reverberant copy of one utterance in one room (an RIR of the room drawn from ``rng``)."""
    room = _STATE["rooms"][room_name]
    k = int(rng.integers(len(room.rirs)))
    try:
        wet, gain = reverb_mod.reverberate(speech, room.rirs[k])
    except SilentSignalError as exc:
        return _skips(utt, REVERB, [room_name], "silent reverberation", str(exc))
    existed = _write_once(path, wet)
    written = _read_written(path)
    row = _base_row(utt, condition_name(REVERB, room_name), REVERB, path)
    row.update(noise_file=room.rir_names[k], gain=f"{gain:.6f}",
               level_db=f"{10 * np.log10(power(written) / power(speech)):.4f}", existed=existed)
    return [row]


def _noise_rows(utt: Utterance, noise_type: str, speech: np.ndarray, rng: np.random.Generator, levels: list[str],
                paths: list[Path]) -> list[dict]:
    """One utterance under one noise at every SNR: one noise segment, only its level changes."""
    try:
        noise, noise_file, offset = _noise_for(utt, _STATE["sources"][noise_type], speech.size, rng)
    except SilentSignalError as exc:
        return _skips(utt, noise_type, levels, "silent noise", str(exc))
    except AudioError as exc:
        return _skips(utt, noise_type, levels, "unreadable noise", str(exc))
    if is_silent(noise):
        return _skips(utt, noise_type, levels, "silent noise",
                      f"noise segment from {noise_file} at {offset} s is silent")
    records = []
    for snr, level, path in zip(_STATE["snrs"], levels, paths):
        mixture, gain = mix_at_snr(speech, noise, snr)
        existed = _write_once(path, mixture)
        measured = measure_snr(gain * speech, _read_written(path))
        row = _base_row(utt, condition_name(noise_type, level), noise_type, path)
        row.update(snr_db=level, snr_measured_db=f"{measured:.4f}", noise_file=noise_file, noise_offset_s=offset,
                   gain=f"{gain:.6f}", existed=existed)
        records.append(row)
    return records
