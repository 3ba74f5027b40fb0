"""What a unit on an ``ssl`` store does differently: no normalisation, the upstream when the statistics do not do.

* The frozen probe trains on the stored per-layer means as they are: the statistics are not frequency x time,
  so the fold's normalisation is the identity (mean 0, std 1, carried in the checkpoint as for every model).
* ``--train-on online`` computes each epoch's statistics of fresh mixtures with the upstream on the training
  device (:class:`~lancet.training.online_features.UtteranceStatistics`): one upstream pass over the training
  audio per epoch, said in the log with what the first epoch cost.
* ``--finetune`` trains on audio: the model is the upstream under the head
  (:class:`lancet.ssl.UpstreamClassifier`, ``--finetune-layers`` of it training), the tables are the
  utterances' wavs (:mod:`lancet.training.audio_table`), the online mixtures go to the upstream as audio.

The upstream is loaded from local files for every unit that needs it (fine-tuning changes it, so every unit
starts from the checkpoint) and held to the store's identity (:mod:`lancet.training.ssl_upstream`).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from lancet.core.errors import LancetError
from lancet.core.manifest import audio_paths
from lancet.ssl import Upstream, UpstreamClassifier

from .audio_table import build_audio_table
from .config import TrainConfig
from .data import SegmentTable, StoreView, build_table
from .online_features import AudioUnits, UtteranceStatistics
from .ssl_upstream import load_recorded_upstream

#: Beyond this estimate of the upstream's share of an online run on a CPU, the log says so twice as loud.
SLOW_ONLINE_MIN = 60.0


def identity_norm() -> tuple[np.ndarray, np.ndarray]:
    """The normalisation of a per-layer statistic or of audio: none (mean 0, std 1, broadcast over every axis)."""
    return np.zeros(1, np.float32), np.ones(1, np.float32)


def model_input(cfg: TrainConfig) -> str:
    """What the checkpoint's model reads: ``audio`` (fine-tuned upstream) or ``statistics`` (a head on the means)."""
    return "audio" if cfg.finetune else "statistics"


class SslParts:
    """The ssl pieces of one run's units (module docstring); ``store_record``: the store's params.json."""

    def __init__(self, cfg: TrainConfig, view: StoreView, store_record: dict, where: str, device: torch.device,
                 amp_dtype: torch.dtype | None, log: Callable[[str], None]) -> None:
        self.cfg, self.view, self.record, self.where = cfg, view, store_record, where
        self.device, self.amp_dtype, self.log = device, amp_dtype, log
        self._paths: dict[str, Mapping[tuple[str, str], str]] = {}

    def upstream(self) -> Upstream:
        """A fresh copy of the store's upstream (``--upstream`` or the recorded one), checked against the store."""
        return load_recorded_upstream(self.record, self.where, self.cfg.upstream, log=self.log)

    def model(self, head: torch.nn.Module) -> torch.nn.Module:
        """The unit's model: the head itself, or (``--finetune``) the upstream under it."""
        if not self.cfg.finetune:
            return head
        return UpstreamClassifier(self.upstream(), head, self.cfg.finetune_layers)

    # ------------------------------------------------------------------ tables
    def manifest(self, record: dict | None = None) -> str:
        """The combined manifest holding a store's wavs (``--audio-manifest`` for the run's own store)."""
        record = self.record if record is None else record
        own = record is self.record and self.cfg.audio_manifest
        manifest = own or record.get("manifest")
        if not manifest:
            raise LancetError(f"{self.where}: params.json names no manifest; pass --audio-manifest (--finetune reads "
                              f"the utterances' wavs)")
        return str(manifest)

    def table(self, view: StoreView, conditions: Sequence[str], ids, class_to_label: Mapping[str, int],
              ram_budget_bytes: float, record: dict | None = None) -> SegmentTable:
        """The stored statistics of ``ids`` in ``conditions`` or, with ``--finetune``, their audio (``record``: the
        params.json of ``view``'s store, when it is not the run's own: a cross-corpus test store)."""
        if not self.cfg.finetune:
            return build_table(view, conditions, ids, class_to_label, ram_budget_bytes)
        manifest = self.manifest(record)
        if manifest not in self._paths:
            self._paths[manifest] = audio_paths(manifest, "--finetune reads every condition's wavs from it: pass --audio-manifest")
        return build_audio_table(view, conditions, ids, class_to_label, self._paths[manifest], manifest,
                                 ram_budget_bytes, self.cfg.audio_batch_seconds)

    # ------------------------------------------------------------------ online
    def featuriser(self) -> UtteranceStatistics | AudioUnits:
        """What each online mixture becomes: its audio (``--finetune``) or its per-layer means, on the device."""
        if self.cfg.finetune:
            min_samples = int(self.record["params"]["min_samples"])
            return AudioUnits(min_samples, self.cfg.audio_batch_seconds)
        upstream = self.upstream().to(self.device)
        threads = torch.get_num_threads() if self.device.type == "cpu" else None
        return UtteranceStatistics(upstream, self.amp_dtype, threads)

    def report_online_cost(self, featuriser, epochs: int, desc: str) -> None:
        """After epoch 0's mixtures: what one upstream pass over the training audio took, and so every epoch."""
        if not isinstance(featuriser, UtteranceStatistics) or featuriser.compute_s <= 0:
            return
        spent, audio = featuriser.compute_s, featuriser.audio_s
        total_min = spent * epochs / 60
        line = (f"[{desc}] --train-on online: the upstream computed the statistics of {audio:.0f} s of mixtures in "
                f"{spent:.1f} s on {self.device} ({audio / spent:.1f} s of audio per second); every epoch costs as "
                f"much again, about {total_min:.1f} min for {epochs} epochs")
        if self.device.type == "cpu":
            line += (" on the CPU" + (": a GPU, or --train-on all (stored noisy statistics, no upstream pass), "
                                      "is much faster" if total_min > SLOW_ONLINE_MIN else ""))
        self.log(line)

