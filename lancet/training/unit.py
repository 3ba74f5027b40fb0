"""Fitting one unit: one model on one fold with one seed, trained, then tested on every condition.

:class:`UnitRunner` holds what every unit of a run shares on this process (the opened store, the noise
pools, the device) and :meth:`UnitRunner.run_unit` does one unit from its tables to its metrics file:

1. the training and validation tables (stored mixtures of training-pool recordings only, or, with
   ``--train-on online``, a fresh noisy copy of the training utterances every epoch);
2. the fold's normalisation statistics, from training segments only (kept beside the features and in
   the checkpoint);
3. :func:`lancet.training.fit.train_model`, which resumes from ``last.pt`` and keeps ``best.pt``;
4. the best model on every test condition (test-pool recordings only), one record per condition, written
   last: the metrics file marks the unit finished.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lancet.core.atomic import atomic_path
from lancet.core.conditions import CLEAN
from lancet.core.errors import LancetError
from lancet.features import compute_norm_stats
from lancet.features.params import has_frames_axis
from lancet.models import build_model
from lancet.noise.pools import TEST as TEST_POOL
from lancet.noise.pools import TRAIN as TRAIN_POOL

from . import distributed
from .checkpoint import BEST, LAST, load_checkpoint
from .compiled import SegmentPredictor, use_compile
from .config import NORM_STATS_MAX_MB, TrainConfig, TrainSettings
from .data import SegmentTable, build_table
from .evaluate import evaluate_table, metrics_from_probs
from .feature_norm import Normaliser
from .fit import FitHooks, TrainResult, seed_everything, train_model
from .history import EpochLog, history_path
from .noise_pools import NoisePools
from .online import AUDIO_HINT, OnlineAugmenter, OnlineSettings, TrainUtterance, clean_audio_paths
from .plan import Unit
from .records import condition_record
from .report import write_records
from .specaugment import spec_augment
from .ssl_unit import SslParts, identity_norm, model_input
from .stores import RunData

CHECKPOINT_FORMAT = "lancet-checkpoint-2"


class UnitRunner:
    """Trains and evaluates the units of one run on this process's device (see the module docstring)."""

    def __init__(self, cfg: TrainConfig, data: RunData, noise: NoisePools, run_dir: Path, device: torch.device,
                 amp_dtype: torch.dtype | None, dist: distributed.DistContext, log: Callable[[str], None],
                 on_epoch_end: Callable[[Unit, int], None] | None = None, identity_digest: str = "") -> None:
        """``identity_digest`` (lancet.training.identity) goes into every record: what it was computed from."""
        self.cfg, self.data, self.noise, self.run_dir = cfg, data, noise, run_dir
        self.identity_digest = identity_digest
        self.device, self.amp_dtype, self.dist, self.log, self.on_epoch_end = device, amp_dtype, dist, log, on_epoch_end
        self.norm_stats_dir = data.store.folder / "norm_stats"  # the results folder's when that is read-only
        # a store of per-utterance statistics (ssl): identity normalisation, the upstream for online and --finetune
        self.ssl = (None if has_frames_axis(data.store.kind) else
                    SslParts(cfg, data.view, data.store.params, data.where, device, amp_dtype, log))

    # ------------------------------------------------------------------ where a unit's files go
    def metrics_path(self, unit: Unit) -> Path:
        return self.run_dir / "metrics" / f"{unit.key}.json"

    def ckpt_dir(self, unit: Unit) -> Path:
        return self.run_dir / "checkpoints" / unit.model / f"train-{unit.tag}" / f"seed{unit.seed}" / unit.fold.name

    def settings(self) -> TrainSettings:
        settings = TrainSettings.from_config(self.cfg)
        if self.cfg.finetune:  # batches of audio of many lengths: the plain loop
            settings.compile = "off"
        return settings

    def epoch_log(self, unit: Unit, writes: bool = True) -> EpochLog:
        """The unit's learning curve: ``history/<unit>.csv`` and, with ``--tensorboard DIR``, event files in
        ``DIR/<run>/<unit>/`` (only on the process that writes the unit's files)."""
        board = self.cfg.tensorboard
        where = Path(board) / self.run_dir.name / unit.key if board and writes else None
        return EpochLog(history_path(self.run_dir, unit.key), where)

    # ------------------------------------------------------------------ one unit
    def run_unit(self, unit: Unit) -> list[dict]:
        """Train ``unit`` (resuming an interrupted one), test it, write its metrics; returns its records."""
        cfg, data = self.cfg, self.data
        seed_everything(unit.seed)
        train, val, online = self._tables(unit)
        mean, std = self._norm_stats(unit, train)
        together = cfg.ddp and self.dist.enabled  # --ddp: all ranks train this unit; rank 0 writes
        if (self.dist.is_main or not together) and self.ssl is None:
            self._save_norm_stats(unit, mean, std)
        options = dict(cfg.model_options.get(unit.model, {}))
        n_freq, n_frames = data.shape
        model = build_model(unit.model, len(data.class_names), n_freq, n_frames, **options)
        if self.ssl is not None:  # a head; with --finetune under the upstream
            model = self.ssl.model(model)
        ckpt_dir = self.ckpt_dir(unit)
        hook = None if self.on_epoch_end is None else (lambda epoch: self.on_epoch_end(unit, epoch))
        desc = f"{unit.model} {unit.fold.name} {unit.tag} seed {unit.seed}"
        views = f" x {train.views} views (clean and noisy)" if train.views > 1 else ""
        self.log(f"[{desc}] {len(train) // train.views} training{views} / {len(val)} validation segments "
                 f"({'in RAM' if train.in_ram else 'memory-mapped'}), device {self.device}"
                 + (f" autocast {str(self.amp_dtype).removeprefix('torch.')}" if self.amp_dtype else ""))
        curves = self.epoch_log(unit, writes=self.dist.is_main or not together)
        try:
            hooks = FitHooks(desc=desc, norm=self._normaliser(mean, std), specaugment=self._specaugment(),
                             epoch_table=online.epoch_table if online else None, ddp=self.dist if together else None,
                             on_history=curves, on_epoch_end=hook)
            result = train_model(model, train, val, mean, std, len(data.class_names), self.settings(), self.device,
                                 self.amp_dtype, ckpt_dir, unit.seed, self._payload(unit, options), hooks)
        finally:
            curves.close()
        if result.resumed_from:
            self.log(f"[{desc}] resumed after epoch {result.resumed_from}")
        if result.step == "compiled":
            self.log(f"[{desc}] compiled training step, {result.seconds:.1f} s")
        del train, val
        if together:
            self._log_data_parallel(desc, result)
            if not self.dist.is_main:
                return []  # rank 0 evaluates and writes the unit's metrics
        model.load_state_dict(load_checkpoint(ckpt_dir / BEST, map_location=self.device)["model_state"])
        records = self.evaluate_unit(unit, model, result, mean, std, desc)
        write_records(self.metrics_path(unit).with_suffix(""), records, data.class_names)
        (ckpt_dir / LAST).unlink(missing_ok=True)
        clean = next((r for r in records if r["condition"] == CLEAN), records[0])
        self.log(f"[{desc}] best epoch {result.best_epoch}: {clean['condition']} test WA {100 * clean['wa']:.1f} "
                 f"UA {100 * clean['ua']:.1f} F1 {100 * clean['macro_f1']:.1f}")
        return records

    def evaluate_unit(self, unit: Unit, model: torch.nn.Module, result: TrainResult, mean: np.ndarray,
                      std: np.ndarray, desc: str) -> list[dict]:
        """The trained ``model`` on every test condition of ``unit`` (test-pool recordings only)."""
        cfg, data = self.cfg, self.data
        mean_t = torch.as_tensor(mean.reshape(-1, 1), device=self.device)
        std_t = torch.as_tensor(std.reshape(-1, 1), device=self.device)
        test_norm = self._normaliser(mean, std)
        # the compiled path evaluates the test conditions the way it validated: one static batch shape,
        # replayed (CUDA graphs) instead of launching every kernel of every batch
        predictor = None
        if test_norm is None and use_compile(self.settings().compile, self.device):
            predictor = SegmentPredictor(model, mean_t, std_t, self.device, self.amp_dtype, cfg.eval_batch_size,
                                         backend=self.settings().compile_backend)
        records = []
        for cond in unit.eval_conditions:
            test = self.condition_table(data.view, [cond], self.noise.ids([cond], unit.fold.test, TEST_POOL))
            if len(test) == 0:
                self.log(f"[{desc}] no test segments in {cond}; skipped")
                continue
            if predictor is not None:
                m = metrics_from_probs(test, predictor.predict(test), len(data.class_names), cfg.pooling)
            else:
                m = evaluate_table(model, test, mean_t, std_t, self.device, len(data.class_names), cfg.pooling,
                                   cfg.eval_batch_size, self.amp_dtype, cfg.workers,
                                   norm=None if test_norm is None else test_norm.bind(test))
            records.append(condition_record(unit, cond, m, best_epoch=result.best_epoch,
                                            val_wa=result.best_val.get("wa"), val_ua=result.best_val.get("ua"),
                                            norm=cfg.norm, test_noise=self.noise.describe(cond),
                                            identity=self.identity_digest))
        if not records:
            raise LancetError(f"{data.where}: {unit.fold.name}: the test split has no segments in any condition")
        return records

    # ------------------------------------------------------------------ a unit's pieces
    def _tables(self, unit: Unit) -> tuple[SegmentTable, SegmentTable, OnlineAugmenter | None]:
        """(epoch 0's training table, the validation table, the online augmenter or None).

        Stored noisy mixtures come only from training-pool recordings (asserted); ``--train-on online``
        trains on a fresh noisy copy of the fold's training utterances every epoch."""
        noise = self.noise
        train_ids = noise.ids(unit.train_conditions, unit.fold.train, TRAIN_POOL)
        noise.check_unit(unit.train_conditions, train_ids, noise.ids(unit.eval_conditions, unit.fold.test, TEST_POOL),
                         unit.eval_conditions)
        online = self._online(unit) if unit.train_on == "online" else None
        train = online.epoch_table(0) if online else self._table(unit.train_conditions, train_ids, "training", unit)
        if online and self.ssl is not None:
            self.ssl.report_online_cost(online.featuriser, self.cfg.epochs, f"{unit.model} {unit.fold.name}")
        val = self._table(unit.train_conditions, noise.ids(unit.train_conditions, unit.fold.val, TRAIN_POOL),
                          "validation", unit)
        return train, val, online

    def condition_table(self, view, conditions: list[str], ids, record: dict | None = None) -> SegmentTable:
        """The segments of ``ids`` in ``conditions`` of ``view``'s store (``record``: its params.json when it is
        not the run's own), as stored, or their audio with ``--finetune``."""
        budget = self.cfg.ram_budget_gb * 2**30
        if self.ssl is not None:
            return self.ssl.table(view, conditions, ids, self.data.class_to_label, budget, record)
        return build_table(view, conditions, ids, self.data.class_to_label, budget)

    def _table(self, conditions: list[str], ids, what: str, unit: Unit) -> SegmentTable:
        table = self.condition_table(self.data.view, conditions, ids)
        if len(table) == 0:
            raise LancetError(f"{self.data.where}: {unit.fold.name}: the {what} split has no segments in "
                              f"{', '.join(conditions)}")
        return table

    def _norm_stats(self, unit: Unit, train: SegmentTable) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin mean and std of (a sample of) the training segments: no test speaker contributes.
        A store without a frames axis (ssl) is not normalised: :func:`~lancet.training.ssl_unit.identity_norm`."""
        if self.ssl is not None:
            return identity_norm()
        x_norm, len_norm = train.sample(NORM_STATS_MAX_MB * 2**20, np.random.default_rng(unit.seed))
        mean, std = compute_norm_stats(x_norm, valid_frames=len_norm)
        return np.asarray(mean, np.float32).reshape(-1), np.asarray(std, np.float32).reshape(-1)

    def _save_norm_stats(self, unit: Unit, mean: np.ndarray, std: np.ndarray) -> None:
        """Keep a fold's statistics next to the features too (they also travel in the checkpoint).

        Named by run and fold, with the training speakers inside, so anyone can check that no test
        speaker contributed.
        """
        name = f"{self.run_dir.name}__{unit.key}.npz"
        fallback = self.run_dir / "norm_stats"
        folder = self.norm_stats_dir
        while True:
            try:
                with atomic_path(folder / name, ".npz") as tmp:
                    np.savez(tmp, mean=mean, std=std, train_speakers=np.array(unit.fold.train_speakers),
                             test_speakers=np.array(unit.fold.test_speakers))
                self.norm_stats_dir = folder
                return
            except OSError as exc:  # a read-only features folder: keep them with the results instead
                if folder == fallback:
                    raise
                self.log(f"{folder}: not writable ({exc.strerror or type(exc).__name__}); "
                         f"normalisation statistics go to {fallback} instead")
                folder = fallback

    def _payload(self, unit: Unit, options: dict) -> dict:
        """What ``best.pt`` carries besides the weights: enough to rebuild and use the model anywhere."""
        cfg, data = self.cfg, self.data
        n_freq, n_frames = data.shape
        return {
            "format": CHECKPOINT_FORMAT, "model_name": unit.model, "model_options": options,
            "n_classes": len(data.class_names), "class_names": list(data.class_names),
            "n_freq": n_freq, "n_frames": n_frames, "feature_kind": data.store.kind,
            "feature_params": dict(data.store.params), "fold": unit.fold.name, "seed": unit.seed,
            "train_on": unit.train_on, "train_conditions": unit.train_conditions, "protocol": cfg.protocol,
            "speaker_independent": unit.fold.speaker_independent, "pooling": cfg.pooling,
            "test_speakers": list(unit.fold.test_speakers), "config": cfg.to_json(), "norm": cfg.norm,
            "input": "features" if self.ssl is None else model_input(cfg),
            "finetune_layers": cfg.finetune_layers if cfg.finetune else None,
        }

    def _normaliser(self, mean: np.ndarray, std: np.ndarray) -> Normaliser | None:
        """A :class:`Normaliser` for ``--norm utterance|segment``; None for ``global`` (the loop's own path)."""
        return None if self.cfg.norm == "global" else Normaliser(self.cfg.norm, mean, std, self.device)

    def _specaugment(self) -> Callable | None:
        """``f(x, lengths, rng)`` with the run's mask settings, or None without ``--specaugment``."""
        cfg = self.cfg
        if not cfg.specaugment:
            return None
        return functools.partial(spec_augment, time_masks=cfg.specaugment_time_masks,
                                 time_width=cfg.specaugment_time_width, freq_masks=cfg.specaugment_freq_masks,
                                 freq_width=cfg.specaugment_freq_width)

    def _online(self, unit: Unit) -> OnlineAugmenter:
        """The online augmenter of ``unit``'s fold: its training utterances' clean audio, training speakers only."""
        cfg, data = self.cfg, self.data
        manifest = cfg.audio_manifest or data.store.params.get("manifest")
        if not manifest:
            raise LancetError(f"{data.where}: params.json names no manifest; pass --audio-manifest for --train-on "
                              f"online (the default), or {AUDIO_HINT}")
        paths = clean_audio_paths(manifest)
        labels = data.class_to_label
        chosen = [u for u in data.utterances if u.id in unit.fold.train and u.cls in labels]
        missing = [u.id for u in chosen if u.id not in paths]
        if missing:
            raise LancetError(f"{manifest}: no clean audio for {len(missing)} training utterance(s) of "
                              f"{unit.fold.name} (e.g. {missing[0]}); {AUDIO_HINT}")
        utts = [TrainUtterance(u.id, paths[u.id], u.speaker, labels[u.cls]) for u in chosen]
        blocked = tuple(unit.fold.test_speakers) + tuple(unit.fold.val_speakers)
        return OnlineAugmenter(utts, unit.fold.train_speakers, blocked, data.store.params,
                               OnlineSettings.from_config(cfg), seed=unit.seed, device=str(self.device),
                               log=self.log, epochs=cfg.epochs,
                               featuriser=None if self.ssl is None else self.ssl.featuriser())

    def _log_data_parallel(self, desc: str, result: TrainResult) -> None:
        last = result.history[-1] if result.history else {}
        if "global_segments" in last:
            self.log(f"[{desc}] data-parallel on {self.dist.world_size} ranks: {last['steps']} steps per epoch, "
                     f"{last['global_segments']} segments per epoch, global batch {self.cfg.batch_size}")
