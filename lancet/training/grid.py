"""A training run end to end: the grid of units (models x folds x seeds x training conditions), then the reports.

Layout under ``<results>/<run-name>/``:

* ``config.json`` — the resolved configuration;
* ``checkpoints/<model>/train-<tag>/seed<seed>/<fold>/best.pt`` (+ ``last.pt`` while training);
* ``metrics/<model>__train-<tag>__seed<seed>__<fold>.json|.csv`` — per condition, written last: its
  presence marks the unit finished, and a rerun of the same command skips it;
* ``history/<model>__train-<tag>__seed<seed>__<fold>.csv`` — each unit's learning curve, rewritten after
  every epoch (lancet.training.history), drawn per model in ``plots/curves_<model>.png``;
* ``metrics_all.json|csv``, ``summary.json|csv`` (the robustness matrix), ``plots/*.png``.

Units run one by one in this process, ``--jobs N`` at a time in worker processes, or shared among the
ranks of a torchrun launch (:mod:`lancet.training.distributed`); with ``--ddp`` all ranks train each
unit together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from lancet.core.atomic import save_json
from lancet.core.device import resolve_amp, resolve_device
from lancet.core.errors import LancetError, printable
from lancet.core.locking import output_lock
from lancet.core.paths import check_outside
from lancet.core.workers import WorkerDied, imap
from lancet.corpora.standard_names import describe_noise_sources
from lancet.models import build_model

from . import distributed, jobs
from .config import TrainConfig
from .cross_corpus import evaluate_cross_corpus, open_test_store
from .curves import write_curves
from .evaluate import robustness_matrix
from .history import HISTORY_DIR, TENSORBOARD_HINT, tensorboard_available
from .identity import check_rerun, digest, run_identity
from .noise_pools import NoisePools
from .plan import Unit, plan_units, validate_config
from .report import format_summary, write_summary
from .stores import RunData, load_run_data
from .unit import UnitRunner


def place_process(cfg: TrainConfig, dist: distributed.DistContext, device: torch.device | None,
                  threads: int | None) -> tuple[torch.device, int]:
    """(device, CPU threads) of this process: the configured ones, a torchrun rank's own GPU and share of the
    cores, or what a ``--jobs`` worker was given."""
    chosen = resolve_device(cfg.device, cfg.threads)
    if device is not None:
        chosen = device
    elif dist.enabled:
        chosen = distributed.rank_device(dist, chosen)
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
    n_threads = threads if threads is not None else distributed.rank_threads(dist, cfg.threads)
    if chosen.type == "cpu" and (threads is not None or dist.enabled):
        torch.set_num_threads(n_threads)
    return chosen, n_threads


def check_models_build(cfg: TrainConfig, data: RunData) -> None:
    """Build every model once for the store's segments with its options, on torch's meta device (nothing is
    allocated), so that a constructor's refusal (an attention kernel longer than the segments) comes before any
    unit trains, not after the first model's folds. Other errors are left to the unit that builds it for real."""
    n_freq, n_frames = data.shape
    for name in cfg.models:
        try:
            with torch.device("meta"):
                build_model(name, len(data.class_names), n_freq, n_frames, **cfg.model_options.get(name, {}))
        except LancetError:
            raise
        except Exception:  # noqa: BLE001 - a model that cannot be built on the meta device is built by its unit
            pass


def check_results_outside(cfg: TrainConfig, data: RunData) -> None:
    """The run folder never lies inside a feature store the run reads (the training or the cross-corpus one)."""
    stores = [("the feature store", data.store.folder)]
    if cfg.test_features_dir:
        stores.append(("the cross-corpus feature store", Path(cfg.test_features_dir) / cfg.features))
    check_outside(cfg.results_dir, "--results-dir", stores)
    check_outside(Path(cfg.results_dir) / cfg.run_name, "--run-name", stores)


class GridRun(UnitRunner):
    """Plans the units of one configuration, runs the unfinished ones and writes the reports (module docstring)."""

    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] | None = None,
                 on_epoch_end: Callable[[Unit, int], None] | None = None,
                 dist: distributed.DistContext | None = None, device: torch.device | None = None,
                 threads: int | None = None) -> None:
        """``dist``: this rank's place in a torchrun launch (default: a single process); ``device`` and
        ``threads`` override the configured ones (a --jobs worker process gets its rank's device)."""
        validate_config(cfg)
        dist = dist or distributed.DistContext()
        log = log or (lambda msg: print(dist.tag + msg, flush=True))
        data = load_run_data(cfg)
        if cfg.test_features_dir:  # check the cross-corpus store now, not after hours of training
            open_test_store(cfg, data)
        check_models_build(cfg, data)
        self.units = plan_units(cfg, data.folds, data.conditions)
        noise = NoisePools.load(cfg, data.conditions, {u.id for u in data.utterances}, data.store.params, log)
        # what the numbers will be computed from; the default run name carries its digest
        self.identity = run_identity(cfg, data.store, noise.source or None)
        if not cfg.run_name:
            cfg = dataclasses.replace(cfg, run_name=f"{cfg.resolved_run_name()}_{digest(self.identity)[:8]}")
        check_results_outside(cfg, data)
        placed, self.threads = place_process(cfg, dist, device, threads)
        super().__init__(cfg, data, noise, Path(cfg.results_dir) / cfg.run_name, placed,
                         resolve_amp(cfg.amp, placed), dist, log, on_epoch_end, digest(self.identity))

    # what the run holds, by the names its users read
    utterances = property(lambda self: self.data.utterances)
    folds = property(lambda self: self.data.folds)
    conditions = property(lambda self: self.data.conditions)
    view = property(lambda self: self.data.view)
    class_names = property(lambda self: self.data.class_names)
    class_to_label = property(lambda self: self.data.class_to_label)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        """Train every unfinished unit, then write the summary (on rank 0 once all ranks are done)."""
        cfg, ctx = self.cfg, self.dist
        with contextlib.ExitStack() as held:
            self._start(held)
            t0 = time.perf_counter()
            if cfg.ddp and not ctx.enabled:
                self.log("--ddp: not started by torchrun (one process), so each unit trains on its own as usual")
            if cfg.ddp and ctx.enabled:
                self._run_units_together()
            else:
                self._run_units_shared()
            distributed.wait_for_all(ctx, "units-done", self.log)
            return self._summarise(t0)

    def _start(self, held: contextlib.ExitStack) -> None:
        """Hold the results folder, check an earlier run's settings, write ``config.json`` and say what runs.

        Rank 0 alone does it; the other ranks stop with the same one-line error when it fails."""
        cfg, ctx, data = self.cfg, self.dist, self.data
        error = None
        if ctx.is_main:
            try:
                held.enter_context(output_lock(self.run_dir, wait=cfg.wait, log=self.log))
                note = check_rerun(self.run_dir, self.identity, sorted((self.run_dir / "metrics").glob("*.json")))
                if note:
                    self.log(f"note: {note}")
            except LancetError as exc:
                error = str(exc)
        error = distributed.broadcast_error(ctx, error, "start")
        if error is not None:
            raise LancetError(error)
        if not ctx.is_main:
            return
        resolved = cfg.to_json()
        resolved["split_warnings"] = list(data.split_warnings)  # recorded with the results
        resolved.update(device=str(self.device),
                        amp_dtype=str(self.amp_dtype).removeprefix("torch.") if self.amp_dtype else "off",
                        conditions=data.conditions, folds_run=[f.name for f in data.folds],
                        class_names=list(data.class_names), feature_shape=list(data.shape),
                        world_size=ctx.world_size, identity=self.identity, identity_digest=self.identity_digest)
        save_json(self.run_dir / "config.json", resolved)
        self.noise.save(self.run_dir)  # noise_split.json: which recordings trained, which tested
        self.log(json.dumps(resolved, indent=2, default=str))
        if cfg.protocol == "random":
            self.log("protocol random: stratified 80/10/10 utterance split (random_state 42), as published — "
                     "SPEAKER-DEPENDENT: the same speakers are in training and test")
        if cfg.tensorboard and not tensorboard_available():
            self.log(f"--tensorboard: the tensorboard package is not installed ({TENSORBOARD_HINT}); the learning "
                     f"curves are still written to {self.run_dir / HISTORY_DIR} and plots/curves_<model>.png")
        for fold in data.folds:
            self.log(fold.describe())
        for line in data.split_warnings:
            self.log(f"warning: {line}")

    def _summarise(self, t0: float) -> dict:
        """The robustness matrix of every unit's records, printed and (rank 0) written with its plots."""
        cfg = self.cfg
        records = self.collect()
        rows = robustness_matrix(records)
        speaker_independent = cfg.protocol == "loso"
        table = format_summary(rows, speaker_independent)
        noise = describe_noise_sources(self.data.store.params.get("manifest"))  # real or generated noise
        table = f"{printable(noise)}\n{table}" if noise else table  # folder names from the disk: one line
        paths: dict = {}
        if self.dist.is_main:
            missing = [u.key for u in self.units if not self.metrics_path(u).is_file()]
            if missing:  # a rank finished without an error but left units undone: never summarise half a run
                raise LancetError(f"{self.run_dir}: {len(missing)} unit(s) have no metrics (e.g. {missing[0]}); "
                                  f"rerun the same command to finish them")
            paths = write_summary(self.run_dir, records, rows, self.data.class_names, speaker_independent)
            paths.update(write_curves(self.run_dir, self.units))
            self.log(table)
            if cfg.test_features_dir:  # train on one corpus, test on another: its own table
                paths.update(evaluate_cross_corpus(self, self.units))
            self.log(f"results in {self.run_dir} ({time.perf_counter() - t0:.1f} s)")
        return {"run_dir": self.run_dir, "records": records, "summary": rows, "table": table, "paths": paths}

    def collect(self) -> list[dict]:
        records = []
        for unit in self.units:
            path = self.metrics_path(unit)
            if path.is_file():
                records.extend(json.loads(path.read_text()))
        return records

    # ------------------------------------------------------------------ scheduling
    def _claimed_units(self) -> Iterator[Unit]:
        """The unfinished units this process trains, claimed lazily from the launch's shared counter."""
        for unit in distributed.claim(self.dist, self.units):
            if self.metrics_path(unit).is_file():
                self.log(f"[{unit.key}] finished earlier; skipped")
                continue
            yield unit

    def resolve_jobs(self) -> int:
        """``--jobs``, or (0) as many units at once as fit this rank's device (see jobs.auto_jobs)."""
        if self.cfg.jobs > 0:
            return self.cfg.jobs
        todo = sum(not self.metrics_path(u).is_file() for u in self.units)
        if self.device.type != "cuda" or todo <= 1 or self.cfg.finetune:  # an upstream per unit: one at a time
            return 1
        data, cfg = self.data, self.cfg
        n_freq, n_frames = data.shape
        arrays = [data.view.segments(c) for c in data.conditions]
        n_seg = max(a.shape[0] for a in arrays)
        per_segment = n_freq * n_frames * arrays[0].dtype.itemsize
        train_conds = 1 if cfg.train_on != "all" else len(data.conditions)
        need = max(jobs.estimate_unit_bytes(
            lambda m=m: build_model(m, len(data.class_names), n_freq, n_frames, **cfg.model_options.get(m, {})),
            cfg.batch_size, (n_freq, n_frames), n_seg * train_conds * per_segment,
            self.device, self.amp_dtype) for m in cfg.models)
        n_jobs = jobs.auto_jobs(self.device, need, todo, self.dist.local_world_size)
        self.log(f"--jobs 0: {n_jobs} unit(s) at once on {self.device} (about {need / 2**30:.2f} GiB per unit)")
        return n_jobs

    def _run_units_shared(self) -> None:
        """Each unit on one process: inline with ``--jobs 1``, else in ``jobs`` worker processes."""
        n_jobs = self.resolve_jobs()
        if n_jobs <= 1:
            for unit in self._claimed_units():
                self.run_unit(unit)
            return
        threads = max(1, self.threads // n_jobs) if self.device.type == "cpu" else 1
        cfg = self.cfg
        if self.device.type == "cuda" and cfg.device_budget_gb == 0:
            # each worker may keep its segments on the GPU: share the default budget (half the free memory)
            free, _ = torch.cuda.mem_get_info(self.device)
            cfg = dataclasses.replace(cfg, device_budget_gb=0.5 * free / n_jobs / 2**30)
        self.log(f"training {n_jobs} units at once on {self.device}"
                 + (f", {threads} CPU thread(s) each" if self.device.type == "cpu" else ""))
        keys = (unit.key for unit in self._claimed_units())
        try:
            for key in imap(job_run_unit, keys, workers=n_jobs, initializer=job_init,
                            initargs=(cfg, str(self.device), threads), ordered=False, max_pending=n_jobs,
                            progress=False, describe=lambda k: f"unit {k}", preload=("torch", __name__)):
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


# ----------------------------------------------------------------------------- --jobs worker processes
# Each worker holds one GridRun (the store opened once) on the device it was given.
_JOB: dict[str, Any] = {}


def job_init(cfg: TrainConfig, device: str, threads: int) -> None:
    """Worker-process initializer: one GridRun per worker, on ``device``."""
    torch.set_num_threads(max(1, threads))
    run = GridRun(cfg, device=torch.device(device), threads=threads)
    _JOB.update(run=run, units={u.key: u for u in run.units})


def job_run_unit(key: str) -> str:
    """Train and evaluate one unit in a worker process; its metrics file is the result."""
    _JOB["run"].run_unit(_JOB["units"][key])
    return key


def run_training(cfg: TrainConfig, log: Callable[[str], None] | None = None,
                 on_epoch_end: Callable[[Unit, int], None] | None = None) -> dict:
    """Train and evaluate everything ``cfg`` asks for; returns records, summary rows and paths.

    Under torchrun this process is one rank of the launch (see :mod:`lancet.training.distributed`).
    """
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    ctx = distributed.setup("cuda" if cuda else "cpu", ddp=cfg.ddp)
    try:
        return GridRun(cfg, log=log, on_epoch_end=on_epoch_end, dist=ctx).run()
    finally:
        distributed.teardown(ctx)
