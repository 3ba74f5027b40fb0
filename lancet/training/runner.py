"""One training run end to end: folds x models x seeds x training conditions, then the reports.

Layout under ``<results>/<run-name>/``:

* ``config.json`` — the resolved configuration;
* ``checkpoints/<model>/train-<tag>/seed<seed>/<fold>/best.pt`` (+ ``last.pt`` while training);
* ``metrics/<model>__train-<tag>__seed<seed>__<fold>.json|.csv`` — per condition, written last: its
  presence marks the unit finished, and a rerun of the same command skips it;
* ``metrics_all.json|csv``, ``summary.json|csv`` (the robustness matrix), ``plots/*.png``.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lancet.core.atomic import atomic_path, save_json
from lancet.core.conditions import CLEAN, parse_condition, sort_conditions
from lancet.core.errors import LancetError
from lancet.core.locking import output_lock

from . import distributed
from .config import (AMP_MODES, CLASS_MAPS, DEVICES, FEATURE_KINDS, NORM_STATS_MAX_MB, POOLINGS,
                     PROTOCOLS, TRAIN_ON, TrainConfig)
from .data import StoreView, build_table
from .evaluate import evaluate_table, metrics_from_probs, robustness_matrix
from lancet.core.device import resolve_amp, resolve_device
from .fit import BEST, LAST, TrainSettings, load_checkpoint, seed_everything, train_model
from .report import format_summary, write_records, write_summary
from lancet.noise.pools import TEST as TEST_POOL, TRAIN as TRAIN_POOL

from .folds import Fold, filter_utterances, make_folds, utterances_from_index
from .compiled import SegmentPredictor, use_compile


def class_names(classes: str = "4class", found: Sequence[str] = ()) -> tuple[str, ...]:
    """The run's classes: the shared four (IEMOCAP's maps, and ``4class`` on any corpus), or with ``--classes
    all`` every class the features hold (``found``: params.json's class list, else the index's), in the shared
    order of :mod:`lancet.corpora.labels`."""
    from lancet.core.classes import ordered_classes
    from lancet.core.classes import CLASSES

    return ordered_classes(found) if classes == "all" else tuple(CLASSES)


def open_store(features_dir: str | Path, kind: str):
    """Open ``<features_dir>/<kind>`` with :func:`lancet.features.open_features`, with clear errors."""
    root = Path(features_dir)
    if not root.is_dir():
        raise LancetError(f"{root}: features folder not found (extract features first, or pass --features-dir)")
    folder = root / kind
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "params.json").is_file())
        raise LancetError(f"{folder}: feature kind '{kind}' has not been extracted "
                          f"(found: {', '.join(found) if found else 'none'})")
    from lancet.features import open_features

    store = open_features(folder)
    if not list(store.conditions):
        raise LancetError(f"{folder}: the feature store holds no conditions")
    return store


def check_numbers(cfg: TrainConfig) -> None:
    """Every numeric setting finite and in its range, as a one-line :class:`LancetError` naming the flag.

    A NaN or infinite learning rate, decay or mixup alpha would otherwise train a NaN model (or fail
    deep inside the optimiser). Every float field is checked, so new settings are covered too.
    """
    import dataclasses
    import math

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise LancetError(f"{flag(f.name)} {v}: must be a finite number")
    ranges = (("lr", lambda v: v > 0, "positive"), ("weight_decay", lambda v: v >= 0, ">= 0"),
              ("lr_decay", lambda v: 0 < v <= 1, "in (0, 1]"), ("lr_floor", lambda v: v >= 0, ">= 0"),
              ("mixup_alpha", lambda v: v >= 0, ">= 0 (0 disables mixup)"),
              ("ram_budget_gb", lambda v: v >= 0, ">= 0 (0: always memory-map)"),
              ("workers", lambda v: v >= 0, ">= 0"), ("threads", lambda v: v >= 0, ">= 0 (0: all cores)"))
    for name, ok, what in ranges:
        value = getattr(cfg, name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LancetError(f"{flag(name)} {value!r}: must be a number")
        if not ok(value):
            raise LancetError(f"{flag(name)} {value}: must be {what}")


def missing_class_warnings(folds: list[Fold], utterances: list, class_names: tuple[str, ...]) -> list[str]:
    """One line per fold split (train/validation/test) that lacks a class: its UA and the model selection
    on it silently change meaning (a missing class has no recall), so the run says so."""
    cls = {u.id: u.cls for u in utterances}
    lines = []
    for fold in folds:
        for what, ids in (("training", fold.train), ("validation", fold.val), ("test", fold.test)):
            present = {cls[i] for i in ids if i in cls}
            missing = [c for c in class_names if c not in present]
            if missing:
                lines.append(f"{fold.name}: the {what} split has no {', '.join(missing)} utterances")
    return lines


def validate_config(cfg: TrainConfig) -> None:
    from lancet.models import MODELS

    checks = [("--features", cfg.features, FEATURE_KINDS), ("--protocol", cfg.protocol, PROTOCOLS),
              ("--classes", cfg.classes, CLASS_MAPS), ("--pooling", cfg.pooling, POOLINGS),
              ("--train-on", cfg.train_on, TRAIN_ON), ("--device", cfg.device, DEVICES), ("--amp", cfg.amp, AMP_MODES)]
    for flag, value, choices in checks:
        if value not in choices:
            raise LancetError(f"{flag} {value!r}: choose one of {', '.join(choices)}")
    if not cfg.models:
        raise LancetError("--models: name at least one model")
    for name in cfg.models:
        if name not in MODELS:
            raise LancetError(f"--models: unknown model {name!r}; known models: {', '.join(MODELS)}")
    if len(set(cfg.models)) != len(cfg.models):
        raise LancetError("--models: a model is named twice")
    if not cfg.seeds:
        raise LancetError("--seeds: give at least one seed")
    for flag, value in (("--epochs", cfg.epochs), ("--batch-size", cfg.batch_size)):
        if value < 1:
            raise LancetError(f"{flag} must be at least 1, got {value}")
    check_numbers(cfg)
    if cfg.patience is not None and cfg.patience < 1:
        raise LancetError("--patience must be at least 1")
    from .noise_pools import validate_robustness  # issue 12: --norm, --specaugment, --train-on online, noise split

    validate_robustness(cfg)


def check_run_dir(run_dir: Path, cfg: TrainConfig) -> None:
    """A rerun into an existing run folder must use the same settings (else results would mix)."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise LancetError(f"{path}: unreadable config of an earlier run; remove it or use another --run-name") from None
    new = cfg.identity()
    for key, value in new.items():
        if key in old and old[key] != value:
            raise LancetError(f"{run_dir}: an earlier run there used {key}={old[key]!r}, this one {value!r}; "
                              f"use another --run-name or the same settings")


@dataclass
class Unit:
    model: str
    seed: int
    fold: Fold
    train_on: str                 # clean | matched | all
    train_conditions: list[str]
    eval_conditions: list[str]

    @property
    def tag(self) -> str:
        return self.train_on if self.train_on != "matched" else f"matched-{self.train_conditions[0]}"

    @property
    def key(self) -> str:
        return f"{self.model}__train-{self.tag}__seed{self.seed}__{self.fold.name}"


def plan_units(cfg: TrainConfig, folds: list[Fold], conditions: list[str]) -> list[Unit]:
    units = []
    for seed in cfg.seeds:
        for model in cfg.models:
            for fold in folds:
                if cfg.train_on == "clean":
                    units.append(Unit(model, seed, fold, "clean", [CLEAN], list(conditions)))
                elif cfg.train_on == "online":  # fresh noise every epoch; planned like clean: one model, every condition
                    units.append(Unit(model, seed, fold, "online", [CLEAN], list(conditions)))
                elif cfg.train_on == "all":
                    units.append(Unit(model, seed, fold, "all", list(conditions), list(conditions)))
                else:
                    for cond in conditions:
                        units.append(Unit(model, seed, fold, "matched", [cond], [cond]))
    return units


class Trainer:
    """Runs the planned units of one configuration; see the module docstring for the outputs."""

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] | None = None,
                 on_epoch_end: Callable[[Unit, int], None] | None = None,
                 dist: distributed.DistContext | None = None, device=None, threads: int | None = None) -> None:
        """``dist``: this rank's place in a torchrun launch (default: a single process); ``device`` and
        ``threads`` override the configured ones (a --jobs worker process gets its rank's device)."""
        validate_config(cfg)
        self.cfg = cfg
        self.dist = dist or distributed.DistContext()
        self.log = log or (lambda msg: print(self.dist.tag + msg, flush=True))
        self.on_epoch_end = on_epoch_end
        self.store = open_store(cfg.features_dir, cfg.features)
        self.where = str(Path(cfg.features_dir) / cfg.features)
        self.view = StoreView(self.store, self.where)
        self.conditions = sort_conditions(self.store.conditions)
        if cfg.train_on in ("clean", "online") and CLEAN not in self.conditions:
            raise LancetError(f"{self.where}: --train-on clean but the store has no 'clean' condition "
                              f"(it has {', '.join(self.conditions)})")
        rows = [row for cond in self.conditions for row in self.view.index(cond).utterance_rows()]
        if not rows:
            raise LancetError(f"{self.where}: the feature store has no segments")
        self.class_names = class_names(cfg.classes, self.store.params.get("class_names") or [r["class"] for r in rows])
        self.class_to_label = {c: i for i, c in enumerate(self.class_names)}
        utterances = utterances_from_index(rows)
        params = dict(self.store.params) if self.store.params else {}
        self.utterances = filter_utterances(utterances, cfg.classes, cfg.improvised_only, self.class_names,
                                            params.get("classes"), self.where)
        self.folds = make_folds(self.utterances, cfg.protocol, cfg.folds)
        self.split_warnings = missing_class_warnings(self.folds, self.utterances, self.class_names)
        if cfg.test_features_dir:  # check the cross-corpus store now, not after hours of training
            from .cross_corpus import open_test_store

            open_test_store(self)
        self.units = plan_units(cfg, self.folds, self.conditions)
        from .noise_pools import NoisePools  # issue 12: training/test pools of the noise recordings

        self.noise = NoisePools.load(cfg, self.conditions, {u.id for u in self.utterances}, self.store.params, self.log)
        self.run_dir = Path(cfg.results_dir) / cfg.resolved_run_name()
        self.device = resolve_device(cfg.device, cfg.threads)
        # scale-out (lancet.training.distributed): a worker's or a rank's own device and CPU share
        if device is not None:
            self.device = device
        elif self.dist.enabled:
            self.device = distributed.rank_device(self.dist, self.device)
            if self.device.type == "cuda":
                import torch

                torch.cuda.set_device(self.device)
        self.threads = threads if threads is not None else distributed.rank_threads(self.dist, cfg.threads)
        if self.device.type == "cpu" and (threads is not None or self.dist.enabled):
            import torch

            torch.set_num_threads(self.threads)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.n_freq, self.n_frames = (int(v) for v in self.store.shape)
        self.norm_stats_dir = self.store.folder / "norm_stats"  # the results folder's when that is read-only

    # ------------------------------------------------------------------ helpers
    def metrics_path(self, unit: Unit) -> Path:
        return self.run_dir / "metrics" / f"{unit.key}.json"

    def ckpt_dir(self, unit: Unit) -> Path:
        return self.run_dir / "checkpoints" / unit.model / f"train-{unit.tag}" / f"seed{unit.seed}" / unit.fold.name

    def settings(self) -> TrainSettings:
        return TrainSettings.from_config(self.cfg)

    def _table(self, conditions: list[str], ids, what: str, unit: Unit):
        table = build_table(self.view, conditions, ids, self.class_to_label, self.cfg.ram_budget_gb * 2**30)
        if len(table) == 0:
            raise LancetError(f"{self.where}: {unit.fold.name}: the {what} split has no segments in "
                              f"{', '.join(conditions)}")
        return table

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

    # ------------------------------------------------------------------ one unit
    def run_unit(self, unit: Unit) -> list[dict]:
        from lancet.features import compute_norm_stats
        from lancet.models import build_model

        import torch

        cfg = self.cfg
        seed_everything(unit.seed)
        # issue 12: stored noisy mixtures only from training-pool recordings (asserted); --train-on online
        # trains on a fresh noisy copy of the fold's training utterances every epoch (epoch 0's table here)
        from .noise_pools import make_normaliser, make_online, make_specaugment

        train_ids = self.noise.ids(unit.train_conditions, unit.fold.train, TRAIN_POOL)
        self.noise.check_unit(unit.train_conditions, train_ids,
                              self.noise.ids(unit.eval_conditions, unit.fold.test, TEST_POOL), unit.eval_conditions)
        online = make_online(self, unit) if unit.train_on == "online" else None
        train = online.epoch_table(0) if online else self._table(unit.train_conditions, train_ids, "training", unit)
        val = self._table(unit.train_conditions, self.noise.ids(unit.train_conditions, unit.fold.val, TRAIN_POOL),
                          "validation", unit)
        x_norm, len_norm = train.sample(NORM_STATS_MAX_MB * 2**20, np.random.default_rng(unit.seed))
        mean, std = compute_norm_stats(x_norm, valid_frames=len_norm)
        del x_norm
        mean = np.asarray(mean, np.float32).reshape(-1)
        std = np.asarray(std, np.float32).reshape(-1)
        together = cfg.ddp and self.dist.enabled  # --ddp: all ranks train this unit; rank 0 writes
        if self.dist.is_main or not together:
            self._save_norm_stats(unit, mean, std)
        options = dict(cfg.model_options.get(unit.model, {}))
        model = build_model(unit.model, len(self.class_names), self.n_freq, self.n_frames, **options)
        payload = {
            "format": "lancet-checkpoint-2", "model_name": unit.model, "model_options": options,
            "n_classes": len(self.class_names), "class_names": list(self.class_names),
            "n_freq": self.n_freq, "n_frames": self.n_frames, "feature_kind": self.store.kind,
            "feature_params": dict(self.store.params), "fold": unit.fold.name, "seed": unit.seed,
            "train_on": unit.train_on, "train_conditions": unit.train_conditions, "protocol": cfg.protocol,
            "speaker_independent": unit.fold.speaker_independent, "pooling": cfg.pooling,
            "test_speakers": list(unit.fold.test_speakers), "config": cfg.to_json(), "norm": cfg.norm,
        }
        ckpt_dir = self.ckpt_dir(unit)
        hook = None if self.on_epoch_end is None else (lambda epoch: self.on_epoch_end(unit, epoch))
        desc = f"{unit.model} {unit.fold.name} {unit.tag} seed {unit.seed}"
        self.log(f"[{desc}] {len(train)} training / {len(val)} validation segments "
                 f"({'in RAM' if train.in_ram else 'memory-mapped'}), device {self.device}"
                 + (f" autocast {str(self.amp_dtype).removeprefix('torch.')}" if self.amp_dtype else ""))
        result = train_model(model, train, val, mean, std, len(self.class_names), self.settings(), self.device,
                             self.amp_dtype, ckpt_dir, unit.seed, payload, desc=desc,
                             norm=make_normaliser(cfg, mean, std, self.device), specaugment=make_specaugment(cfg),
                             epoch_table=online.epoch_table if online else None, on_epoch_end=hook,
                             ddp=self.dist if together else None)
        if result.resumed_from:
            self.log(f"[{desc}] resumed after epoch {result.resumed_from}")
        if result.step == "compiled":
            self.log(f"[{desc}] compiled training step, {result.seconds:.1f} s")
        del train, val
        if together:
            last = result.history[-1] if result.history else {}
            if "global_segments" in last:
                self.log(f"[{desc}] data-parallel on {self.dist.world_size} ranks: {last['steps']} steps per epoch, "
                         f"{last['global_segments']} segments per epoch, global batch {cfg.batch_size}")
            if not self.dist.is_main:
                return []  # rank 0 evaluates and writes the unit's metrics
        best = load_checkpoint(ckpt_dir / BEST, map_location=self.device)
        model.load_state_dict(best["model_state"])
        mean_t = torch.as_tensor(mean.reshape(-1, 1), device=self.device)
        std_t = torch.as_tensor(std.reshape(-1, 1), device=self.device)
        records = []
        test_norm = make_normaliser(cfg, mean, std, self.device)
        # the compiled path evaluates the test conditions the way it validated: one static batch shape,
        # replayed (CUDA graphs) instead of launching every kernel of every batch
        predictor = None
        if test_norm is None and use_compile(cfg.compile, self.device):
            predictor = SegmentPredictor(model, mean_t, std_t, self.device, self.amp_dtype, cfg.eval_batch_size,
                                         backend=self.settings().compile_backend)
        for cond in unit.eval_conditions:
            test = build_table(self.view, [cond], self.noise.ids([cond], unit.fold.test, TEST_POOL), self.class_to_label,
                               cfg.ram_budget_gb * 2**30)
            if len(test) == 0:
                self.log(f"[{desc}] no test segments in {cond}; skipped")
                continue
            if predictor is not None:
                m = metrics_from_probs(test, predictor.predict(test), len(self.class_names), cfg.pooling)
            else:
                m = evaluate_table(model, test, mean_t, std_t, self.device, len(self.class_names), cfg.pooling,
                                   cfg.eval_batch_size, self.amp_dtype, cfg.workers,
                                   norm=None if test_norm is None else test_norm.bind(test))
            noise, snr = parse_condition(cond)
            records.append({
                "model": unit.model, "train_on": unit.train_on, "train_condition": "+".join(unit.train_conditions)
                if unit.train_on != "all" else "all", "fold": unit.fold.name, "seed": unit.seed, "condition": cond,
                "noise_type": noise, "snr_db": "" if snr is None else snr, "wa": m["wa"], "ua": m["ua"],
                "macro_f1": m["macro_f1"], "segment_wa": m["segment_wa"], "segment_ua": m["segment_ua"],
                "n_utterances": m["n"], "n_segments": m["n_segments"], "best_epoch": result.best_epoch,
                "val_wa": result.best_val.get("wa"), "val_ua": result.best_val.get("ua"),
                "recall": m["recall"], "confusion": m["confusion"], "norm": cfg.norm,
                "test_noise": self.noise.describe(cond),
            })
        if not records:
            raise LancetError(f"{self.where}: {unit.fold.name}: the test split has no segments in any condition")
        write_records(self.metrics_path(unit).with_suffix(""), records, self.class_names)
        (ckpt_dir / LAST).unlink(missing_ok=True)
        clean = next((r for r in records if r["condition"] == CLEAN), records[0])
        self.log(f"[{desc}] best epoch {result.best_epoch}: {clean['condition']} test WA {100 * clean['wa']:.1f} "
                 f"UA {100 * clean['ua']:.1f} F1 {100 * clean['macro_f1']:.1f}")
        return records

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        """Train every unfinished unit, then write the summary (on rank 0 once all ranks are done).

        Under torchrun the units are shared among the ranks (or, with ``--ddp``, each unit is trained
        by all of them together); see :mod:`lancet.training.distributed`.
        """
        cfg, ctx = self.cfg, self.dist
        with contextlib.ExitStack() as held:
            # rank 0 alone holds the results folder and checks an earlier run's settings; the
            # other ranks stop with the same one-line error when that fails
            error = None
            if ctx.is_main:
                try:
                    held.enter_context(output_lock(self.run_dir, wait=cfg.wait, log=self.log))
                    check_run_dir(self.run_dir, cfg)
                except LancetError as exc:
                    error = str(exc)
            error = distributed.broadcast_error(ctx, error, "start")
            if error is not None:
                raise LancetError(error)
            resolved = cfg.to_json()
            resolved["split_warnings"] = list(self.split_warnings)  # recorded with the results
            resolved.update(device=str(self.device), amp_dtype=str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "off",
                            conditions=self.conditions, folds_run=[f.name for f in self.folds],
                            class_names=list(self.class_names), feature_shape=[self.n_freq, self.n_frames],
                            world_size=ctx.world_size)
            if ctx.is_main:
                save_json(self.run_dir / "config.json", resolved)
                self.noise.save(self.run_dir)  # noise_split.json: which recordings trained, which tested
                self.log(json.dumps(resolved, indent=2, default=str))
                if cfg.protocol == "random":
                    self.log("protocol random: stratified 80/10/10 utterance split (random_state 42), as published — "
                             "SPEAKER-DEPENDENT: the same speakers are in training and test")
                for fold in self.folds:
                    self.log(fold.describe())
                for line in self.split_warnings:
                    self.log(f"warning: {line}")
            t0 = time.perf_counter()
            if cfg.ddp and not ctx.enabled:
                self.log("--ddp: not started by torchrun (one process), so each unit trains on its own as usual")
            if cfg.ddp and ctx.enabled:
                self._run_units_together()
            else:
                self._run_units_shared()
            distributed.wait_for_all(ctx, "units-done", self.log)
            records = self.collect()
            rows = robustness_matrix(records)
            speaker_independent = cfg.protocol == "loso"
            table = format_summary(rows, speaker_independent)
            from lancet.corpora.standard_names import describe_noise_sources  # real or generated noise, in the title

            noise = describe_noise_sources(self.store.params.get("manifest"))
            table = f"{noise}\n{table}" if noise else table
            paths: dict = {}
            if ctx.is_main:
                missing = [u.key for u in self.units if not self.metrics_path(u).is_file()]
                if missing:  # a rank finished without an error but left units undone: never summarise half a run
                    raise LancetError(f"{self.run_dir}: {len(missing)} unit(s) have no metrics (e.g. {missing[0]}); "
                                      f"rerun the same command to finish them")
                paths = write_summary(self.run_dir, records, rows, self.class_names, speaker_independent)
                self.log(table)
                if cfg.test_features_dir:  # train on one corpus, test on another: its own table
                    from .cross_corpus import evaluate_cross_corpus

                    paths.update(evaluate_cross_corpus(self))
                self.log(f"results in {self.run_dir} ({time.perf_counter() - t0:.1f} s)")
        return {"run_dir": self.run_dir, "records": records, "summary": rows, "table": table, "paths": paths}

    # ------------------------------------------------------------------ scheduling (lancet.training.distributed)
    def _claimed_units(self):
        """The unfinished units this process trains, claimed lazily from the launch's shared counter."""
        for unit in distributed.claim(self.dist, self.units):
            if self.metrics_path(unit).is_file():
                self.log(f"[{unit.key}] finished earlier; skipped")
                continue
            yield unit

    def resolve_jobs(self) -> int:
        """``--jobs``, or (0) as many units at once as fit this rank's device (see distributed.auto_jobs)."""
        if self.cfg.jobs < 0:
            raise LancetError(f"--jobs must be 0 (as many as fit) or more, got {self.cfg.jobs}")
        if self.cfg.jobs > 0:
            return self.cfg.jobs
        todo = sum(not self.metrics_path(u).is_file() for u in self.units)
        if self.device.type != "cuda" or todo <= 1:
            return 1
        from lancet.models import build_model

        arrays = [self.view.segments(c) for c in self.conditions]
        n_seg = max(a.shape[0] for a in arrays)
        per_segment = self.n_freq * self.n_frames * arrays[0].dtype.itemsize
        train_conds = 1 if self.cfg.train_on != "all" else len(self.conditions)
        need = max(distributed.estimate_unit_bytes(
            lambda m=m: build_model(m, len(self.class_names), self.n_freq, self.n_frames,
                                    **self.cfg.model_options.get(m, {})),
            self.cfg.batch_size, (self.n_freq, self.n_frames), n_seg * train_conds * per_segment,
            self.device, self.amp_dtype) for m in self.cfg.models)
        jobs = distributed.auto_jobs(self.device, need, todo, self.dist.local_world_size)
        self.log(f"--jobs 0: {jobs} unit(s) at once on {self.device} (about {need / 2**30:.2f} GiB per unit)")
        return jobs

    def _run_units_shared(self) -> None:
        """Each unit on one process: inline with ``--jobs 1``, else in ``jobs`` worker processes."""
        jobs = self.resolve_jobs()
        if jobs <= 1:
            for unit in self._claimed_units():
                self.run_unit(unit)
            return
        from lancet.core.workers import WorkerDied, imap

        threads = max(1, self.threads // jobs) if self.device.type == "cpu" else 1
        cfg = self.cfg
        if self.device.type == "cuda" and cfg.device_budget_gb == 0:
            import dataclasses

            import torch

            # each worker may keep its segments on the GPU: share the default budget (half the free memory)
            free, _ = torch.cuda.mem_get_info(self.device)
            cfg = dataclasses.replace(cfg, device_budget_gb=0.5 * free / jobs / 2**30)
        self.log(f"training {jobs} units at once on {self.device}"
                 + (f", {threads} CPU thread(s) each" if self.device.type == "cpu" else ""))
        keys = (unit.key for unit in self._claimed_units())
        try:
            for key in imap(distributed.job_run_unit, keys, workers=jobs, initializer=distributed.job_init,
                            initargs=(cfg, str(self.device), threads), ordered=False, max_pending=jobs,
                            progress=False, describe=lambda k: f"unit {k}", preload=("torch", "lancet.training.runner")):
                self.log(f"[{key}] done")
        except WorkerDied as exc:  # killed from outside (out of memory?): not a bug to trace back
            raise LancetError(f"{exc}; rerun the same command to resume (finished units are kept, "
                              f"interrupted ones continue from their last epoch)") from None

    def _run_units_together(self) -> None:
        """``--ddp``: every rank trains every unit, each on its shard of every batch."""
        for unit in self.units:
            done = distributed.broadcast_error(self.dist, "done" if self.metrics_path(unit).is_file() else None,
                                               f"skip/{unit.key}")
            if done:
                self.log(f"[{unit.key}] finished earlier; skipped")
                continue
            self.run_unit(unit)

    def collect(self) -> list[dict]:
        records = []
        for unit in self.units:
            path = self.metrics_path(unit)
            if path.is_file():
                records.extend(json.loads(path.read_text()))
        return records


def run_training(cfg: TrainConfig, log: Callable[[str], None] | None = None,
                 on_epoch_end: Callable[[Unit, int], None] | None = None) -> dict:
    """Train and evaluate everything ``cfg`` asks for; returns records, summary rows and paths.

    Under torchrun this process is one rank of the launch (see :mod:`lancet.training.distributed`).
    """
    import torch

    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    ctx = distributed.setup("cuda" if cuda else "cpu", ddp=cfg.ddp)
    try:
        return Trainer(cfg, log=log, on_epoch_end=on_epoch_end, dist=ctx).run()
    finally:
        distributed.teardown(ctx)
