"""What an online mixture becomes before the loop trains on it: one featuriser per kind of model input.

:class:`~lancet.training.online.OnlineAugmenter` mixes each epoch's audio and hands every mixture to a
featuriser, which cuts it into units with their valid lengths (:meth:`cut`) and computes a batch of units of
many utterances at once (:meth:`compute`), so that the device sees large batches:

* :class:`SegmentFeatures` — the spectral kinds: the store's 2 s segments and features, computed by the torch
  feature path on the training device exactly as extraction computed them;
* :class:`UtteranceStatistics` — ``ssl`` stores: each whole mixture through the upstream on the training device,
  its per-layer means (one upstream pass over the training audio per epoch);
* :class:`AudioUnits` — ``--finetune``: the mixture's audio itself, fed to the upstream by the training step.

:meth:`finish` completes the epoch's table (its class is ``table_class``).
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch

from lancet.core.audio import SAMPLE_RATE
from lancet.core.errors import LancetError
from lancet.features import TorchFeatures, segment_audio, valid_frames
from lancet.features.params import params_from_record
from lancet.ssl import Upstream, iter_layer_means

from .audio_table import AudioTable
from .data import SegmentTable


class SegmentFeatures:
    """The store's segments and features of a mixture (``feature_record``: the store's params.json)."""

    table_class = SegmentTable

    def __init__(self, feature_record: dict, device: str) -> None:
        self.params, self.seg = params_from_record(feature_record)
        if self.seg.sample_rate != SAMPLE_RATE:
            raise LancetError(f"features at {self.seg.sample_rate} Hz; online mixing works at {SAMPLE_RATE} Hz")
        self.shape = tuple(int(v) for v in feature_record["shape"])
        # float32: the extraction's float64 is for agreement with librosa to 1e-5 in near-silent bands; training
        # mixtures need no such precision, and float32 makes an epoch's features 2-4x cheaper on the CPU
        self.torch = TorchFeatures(self.params, self.seg.sample_rate, device=str(device), precision="float32")

    def cut(self, audio: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
        segments, _, real = segment_audio(audio, self.seg)
        return list(segments), [valid_frames(self.params, r, self.shape[1]) for r in real]

    def compute(self, units: Sequence[np.ndarray]) -> np.ndarray:
        return self.torch(np.stack(units))

    def finish(self, table: SegmentTable) -> SegmentTable:
        return table


class UtteranceStatistics:
    """A mixture's per-layer means through ``upstream`` (on the training device; ``threads`` on a CPU), as the
    ssl extraction computed the stored ones. Counts the audio it computed and the time it took, so the run can
    say what an epoch costs."""

    table_class = SegmentTable

    def __init__(self, upstream: Upstream, amp_dtype: torch.dtype | None, threads: int | None) -> None:
        self.upstream, self.amp_dtype, self.threads = upstream, amp_dtype, threads
        self.shape = (upstream.n_layers, upstream.hidden_size)
        self.audio_s = self.compute_s = 0.0

    def cut(self, audio: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
        if len(audio) < self.upstream.min_samples:  # as extraction: too short for one frame, left out
            return [], []
        return [np.asarray(audio, dtype=np.float32)], [int(self.upstream.frames(len(audio)))]

    def compute(self, units: Sequence[np.ndarray]) -> np.ndarray:
        t0 = time.perf_counter()
        stats = list(iter_layer_means(self.upstream, list(units), amp=self.amp_dtype, window=len(units),
                                      threads=self.threads))
        self.compute_s += time.perf_counter() - t0
        self.audio_s += sum(len(u) for u in units) / SAMPLE_RATE
        return np.stack([s.means for s in stats])

    def finish(self, table: SegmentTable) -> SegmentTable:
        return table


class AudioUnits:
    """A mixture's audio as one unit (``--finetune``): an object array of 1-D waves, for an :class:`AudioTable`."""

    table_class = AudioTable

    def __init__(self, min_samples: int, batch_seconds: float) -> None:
        self.min_samples, self.batch_seconds = int(min_samples), float(batch_seconds)
        self.shape = (1,)

    def cut(self, audio: np.ndarray) -> tuple[list[np.ndarray], list[int]]:
        if len(audio) < self.min_samples:
            return [], []
        return [np.asarray(audio, dtype=np.float32)], [len(audio)]

    def compute(self, units: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty(len(units), dtype=object)
        for i, unit in enumerate(units):  # element by element: equal lengths must not become a 2-D array
            out[i] = unit
        return out

    def finish(self, table: AudioTable) -> AudioTable:
        table.batch_seconds = self.batch_seconds
        return table
