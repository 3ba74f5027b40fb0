"""Whole utterances as audio, for the fine-tuning path (``--finetune``): the table the loop trains and tests on.

An :class:`AudioTable` is a :class:`~lancet.training.data.SegmentTable` whose rows are utterances, whose
``lengths`` are samples and whose batches are their 16 kHz audio zero-padded to the longest, so the training
loop, mixup, evaluation and pooling run on it unchanged: the model is an upstream under a head
(:class:`lancet.ssl.UpstreamClassifier`) and takes ``(audio, samples)`` where a CNN takes
``(features, frames)``. Batches are planned by padded seconds: utterances of similar length go together
(a shuffled epoch sorts windows of its order, then shuffles the batches), at most ``batch_size`` of them and
``batch_seconds`` of padded audio each, so a batch of long utterances is small and one of short ones large.

Which utterances and labels a table holds is decided exactly as for the stored statistics (the ssl store's
index, the fold, the noise pools); their audio comes from the combined manifest's wavs, one per condition.
Online mixtures are held in memory as made (:mod:`lancet.training.online_features`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from lancet.core.audio import SAMPLE_RATE, audio_info, load_audio
from lancet.core.errors import LancetError
from lancet.ssl.batching import plan_batches

from .data import SegmentTable, StoreView, build_table

#: Utterances whose lengths are sorted together when a shuffled epoch is planned (in batches of the recipe).
SORT_WINDOW_BATCHES = 32


class WaveFiles:
    """Utterances' audio by row, read from their wavs; kept in memory after the first read when all of it
    fits ``keep_bytes`` (the training utterances are read every epoch), else read at every use."""

    def __init__(self, paths: Sequence[str], lengths: np.ndarray, keep_bytes: float) -> None:
        self.paths = list(paths)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.keep = float(self.lengths.sum()) * 4 <= keep_bytes
        self.kept: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, row: int) -> np.ndarray:
        wave = self.kept.get(row)
        if wave is None:
            wave = load_audio(self.paths[row])
            if len(wave) != self.lengths[row]:  # pragma: no cover - the header said otherwise (a file replaced)
                raise LancetError(f"{self.paths[row]}: {len(wave)} samples where its header said {self.lengths[row]}; "
                                  f"it changed during the run")
            if self.keep:
                self.kept[row] = wave
        return wave


class AudioTable(SegmentTable):
    """Utterances as audio (see the module docstring); ``sources`` hold waves by row: :class:`WaveFiles`, or an
    object array of 1-D float32 arrays (online mixtures)."""

    batch_seconds: float = 64.0

    @property
    def in_ram(self) -> bool:
        return all(isinstance(s, np.ndarray) or s.keep for s in self.sources)

    def wave(self, i: int) -> np.ndarray:
        return self.sources[int(self.part[i])][int(self.local[i])]

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """The audio of rows ``idx`` zero-padded to the longest: (len(idx), samples) float32."""
        idx = np.asarray(idx, dtype=np.int64)
        width = int(self.lengths[idx].max()) if len(idx) else 0
        out = np.zeros((len(idx), width), dtype=np.float32)
        for k, i in enumerate(idx):
            wave = self.wave(int(i))
            out[k, : len(wave)] = wave
        return out

    def plan_batches(self, batch_size: int, shuffle: bool, rng: np.random.Generator | None,
                     min_last: int = 1) -> list[np.ndarray]:
        """Batches of similar lengths under the padded-seconds budget (module docstring); every row once.

        ``min_last`` is ignored: the heads over an upstream have no batch norm, and a long utterance may be a
        batch of its own."""
        n = len(self)
        order = rng.permutation(n) if shuffle else np.arange(n)
        budget = max(1, int(self.batch_seconds * SAMPLE_RATE))
        window = max(1, batch_size * SORT_WINDOW_BATCHES)
        batches = []
        for start in range(0, n, window):
            chunk = order[start:start + window]
            batches += [chunk[b] for b in plan_batches(self.lengths[chunk], budget, batch_size, sort=True)]
        if shuffle and batches:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def sample(self, max_bytes: float, rng: np.random.Generator):  # pragma: no cover - guarded by the trainer
        raise LancetError("audio has no normalisation statistics: the upstream normalises its own input")


def build_audio_table(view: StoreView, conditions: Sequence[str], utt_ids, class_to_label: Mapping[str, int],
                      paths: Mapping[tuple[str, str], str], manifest: str, ram_budget_bytes: float,
                      batch_seconds: float) -> AudioTable:
    """The utterances :func:`~lancet.training.data.build_table` would take from the ssl store, as their audio."""
    rows = build_table(view, conditions, utt_ids, class_to_label, ram_budget_bytes=0)  # the selection; no copy
    keys = [rows.utt_keys[u] for u in rows.utt]
    missing = [k for k in keys if k not in paths]
    if missing:
        cond, uid = missing[0]
        raise LancetError(f"{manifest}: no wav for utterance {uid} of condition {cond} ({len(missing)} missing); "
                          f"--finetune reads each condition's audio from the combined manifest (--audio-manifest)")
    files = [paths[k] for k in keys]
    lengths = np.array([_samples(f) for f in files], dtype=np.int64)
    table = AudioTable([WaveFiles(files, lengths, ram_budget_bytes)], np.zeros(len(files), np.int32),
                       np.arange(len(files), dtype=np.int64), rows.labels, lengths, rows.utt, rows.utt_keys,
                       list(conditions))
    table.batch_seconds = batch_seconds
    return table


def _samples(path: str) -> int:
    """Samples of a wav at 16 kHz: from its header when it is 16 kHz already, else by reading it."""
    rate, _, frames = audio_info(path)
    return frames if rate == SAMPLE_RATE else len(load_audio(path))
