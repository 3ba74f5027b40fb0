"""Fitting one model: the training loop, with validation, best-checkpoint selection and resume.

:func:`train_model` reads top to bottom: set up, resume, then one block per epoch (a fresh online table,
one epoch of steps, the learning-rate decay, validation, the best checkpoint, where training stands).
Each epoch ends with two atomic writes: ``best.pt`` when the validation score (WA+UA)/2 at the utterance
level improved, and ``last.pt`` (lancet.training.resume), so an interrupted run continues exactly where it
stopped. The steps of an epoch run in :class:`PlainEpochs` (the reference loop, which also carries the
per-step extensions) or, with ``--compile`` (the default on CUDA), in the compiled path of
:mod:`lancet.training.compiled`: same random numbers, same recipe, without the per-step overhead.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lancet.core.device import autocast_context
from lancet.core.errors import LancetError

from . import distributed
from .checkpoint import BEST, LAST, save_checkpoint
from .compiled import FastTrainer, draw_epoch, use_compile
from .config import TrainSettings
from .data import (Batch, SegmentTable, class_weights, draw_mixup, iter_batches, mix, mixup,
                   one_hot)
from .evaluate import evaluate_table, metrics_from_probs, to_model_input
from .finetune import parameter_groups
from .metrics import selection_score
from .resume import ResumeState
from .views import consistency, view_permutation, view_rows


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float
    best_val: dict
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    resumed_from: int = 0
    seconds: float = 0.0
    step: str = "plain"          # plain | fast (uncompiled) | compiled: which loop ran (lancet.training.compiled)


@dataclass
class FitHooks:
    """What a unit adds to the plain recipe (all optional), and whom it tells as training goes."""

    desc: str = ""                                          # names the unit in progress bars and errors
    norm: Any = None                                        # a Normaliser: --norm utterance|segment
    specaugment: Callable | None = None                     # f(x, lengths, rng): --specaugment
    epoch_table: Callable[[int], SegmentTable] | None = None  # a fresh table per epoch: --train-on online
    ddp: Any = None                                         # a torchrun DistContext with --ddp
    on_history: Callable[[list[dict]], None] | None = None  # the learning curve, once an epoch is on disk
    on_epoch_end: Callable[[int], None] | None = None       # once an epoch is on disk (tests interrupt there)


def train_model(model: torch.nn.Module, train: SegmentTable, val: SegmentTable, mean: np.ndarray, std: np.ndarray,
                n_classes: int, settings: TrainSettings, device: torch.device, amp_dtype: torch.dtype | None,
                ckpt_dir: Path, seed: int, best_payload: dict[str, Any], hooks: FitHooks | None = None) -> TrainResult:
    """Train ``model`` (already seeded and built) on ``train``, select on ``val``; resume from ``last.pt``.

    ``best_payload`` goes into ``best.pt`` with the weights and normalisation statistics. ``hooks``: the
    extensions, which keep the plain loop (a norm, SpecAugment, online tables, ``--ddp``: ranks share every
    batch, rank 0 writes), and the callbacks."""
    h = hooks or FitHooks()
    norm, specaugment, epoch_table, ddp, desc = h.norm, h.specaugment, h.epoch_table, h.ddp, h.desc
    # the model on its device, and the optimizer and schedule of the recipe
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=(device.type == "cuda" and amp_dtype == torch.float16))
    # the compiled path covers the recipe; the extensions that draw per step or reshape batches, and
    # float16's grad scaler (a host sync per step), keep the plain loop
    fast = (use_compile(settings.compile, device) and norm is None and specaugment is None and epoch_table is None
            and not scaler.is_enabled() and not (ddp is not None and ddp.enabled))
    tensor_lr = fast and settings.compile_backend is not None
    optimizer, scheduler = make_optimizer(model, settings, tensor_lr=tensor_lr)
    rng = np.random.default_rng(seed)  # every draw of the epochs (batch order, mixup) comes from it

    # resume from last.pt: weights, optimizer, schedule, grad scaler and every random generator
    state, last_path = ResumeState(), ckpt_dir / LAST
    if last_path.is_file():
        state = ResumeState.load(last_path, model, optimizer, scheduler, scaler, rng)
        _set_lr_kind(optimizer, scheduler, tensor_lr)
        if state.finished:
            return TrainResult(state.best_epoch, state.best_score, state.best_val, state.epoch, state.history,
                               resumed_from=state.epoch)
    resumed_from = state.epoch

    # who runs the steps of an epoch: the compiled path, or the plain loop with the extensions
    stats = _device_stats(mean, std, device)
    weight = torch.as_tensor(class_weights(train.labels, n_classes), device=device) if settings.class_weighted else None
    epochs = (FastEpochs(model, optimizer, train, val, stats, n_classes, weight, settings, device, amp_dtype, rng)
              if fast else PlainEpochs(model, optimizer, scaler, train, val, stats, n_classes, weight, settings,
                                       device, amp_dtype, rng, seed, norm, specaugment, ddp))
    t0 = time.perf_counter()
    for epoch in range(state.epoch, settings.epochs):
        started = time.perf_counter()
        # --train-on online: new noise, SNRs and rooms every epoch (``train`` is epoch 0's table)
        if epoch_table is not None and epoch > 0:
            epochs.use_table(epoch_table(epoch))
        # one epoch of steps, then the learning-rate decay
        model.train()
        total_loss, seen, bar, extra = epochs.train_epoch(epoch, f"{desc} epoch {epoch + 1}/{settings.epochs}")
        scheduler.step()
        # validate; the epoch's one host sync reads the summed loss
        val_metrics = epochs.validate()
        record = _epoch_record(epoch, float(total_loss) / max(seen, 1), optimizer, val_metrics, started, extra)
        score = record["val_score"]
        state.history.append(record)
        check_finite(record["loss"], model, f"{desc} epoch {epoch + 1}", settings.lr)  # never keep a diverged model
        _close_bar(bar, record)
        # keep the best model by (WA + UA) / 2 on the validation speakers, with what it takes to use it
        if score > state.best_score:
            state.best_score, state.best_epoch, state.best_val, state.stale = score, epoch + 1, val_metrics, 0
            if epochs.writes:
                _save_best(ckpt_dir / BEST, best_payload, model, epoch + 1, val_metrics, mean, std)
        else:
            state.stale += 1
        # where training stands, so that a kill resumes at the next epoch; stop at the end or on patience
        state.epoch = epoch + 1
        state.finished = (epoch + 1 >= settings.epochs
                          or (settings.patience is not None and state.stale >= settings.patience))
        if epochs.writes:
            state.save(last_path, model, optimizer, scheduler, scaler, rng)
            if h.on_history is not None:  # the learning curve, readable while the run goes on
                h.on_history(state.history)
        if h.on_epoch_end is not None:
            h.on_epoch_end(epoch + 1)
        if state.finished:
            break
    step = "plain" if not fast else ("compiled" if settings.compile_backend else "fast")
    return TrainResult(state.best_epoch, state.best_score, state.best_val, len(state.history), state.history,
                       resumed_from, time.perf_counter() - t0, step)


def _epoch_record(epoch: int, loss: float, optimizer, val_metrics: dict, started: float, extra: dict) -> dict:
    """One row of the learning curve: the epoch's loss, learning rate, validation scores and seconds
    (training and validation of the epoch)."""
    return {"epoch": epoch + 1, "loss": loss, "lr": float(optimizer.param_groups[0]["lr"]),
            "val_wa": val_metrics["wa"], "val_ua": val_metrics["ua"], "val_score": selection_score(val_metrics),
            "seconds": time.perf_counter() - started, **extra}


def _close_bar(bar: tqdm, record: dict) -> None:
    bar.set_postfix(loss=f"{record['loss']:.4f}", val_wa=f"{record['val_wa']:.3f}", val_ua=f"{record['val_ua']:.3f}")
    bar.close()


def check_finite(loss: float, model: torch.nn.Module, where: str, lr: float) -> None:
    """A one-line LancetError when training diverged (a non-finite loss or weight): no checkpoint of it is
    written, and no number is reported from it.

    Example:
        >>> check_finite(0.7, torch.nn.Linear(2, 2), "epoch 1", 1e-3)
    """
    if math.isfinite(loss) and all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return
    what = f"the training loss is {loss}" if not math.isfinite(loss) else "the weights are no longer finite"
    raise LancetError(f"{where}: {what} (training diverged); lower --lr (now {lr:g}) or check the features, "
                      f"and rerun with another --run-name")


def _save_best(path: Path, payload: dict[str, Any], model: torch.nn.Module, epoch: int, val_metrics: dict,
               mean: np.ndarray, std: np.ndarray) -> None:
    """``best.pt``: the weights with what it takes to use them (the unit's payload, the normalisation)."""
    save_checkpoint(path, {**payload, "model_state": model.state_dict(), "epoch": epoch, "val": val_metrics,
                           "norm_mean": np.asarray(mean, np.float32), "norm_std": np.asarray(std, np.float32)})


# ----------------------------------------------------------------------------- the optimizer
def make_optimizer(model: torch.nn.Module, s: TrainSettings, tensor_lr: bool = False):
    """RAdam with the recipe's settings, multi-tensor (``foreach``: a few kernels per step instead of a
    few per parameter; RAdam has no fused version), and its exponential decay with a floor.

    ``tensor_lr`` (the compiled step): the learning rate as a tensor, so a compiled optimizer step reads
    its new value each epoch instead of being compiled again for it; on CUDA the optimizer is also
    ``capturable`` (its step counts live on the GPU: no host sync, and CUDA graphs can replay it). A fine-tuned
    upstream gets its own group and schedule (lancet.training.finetune)."""
    groups, schedules = parameter_groups(model, s)  # one group; a fine-tuned upstream's layers form a second
    optimizer = torch.optim.RAdam(groups, lr=s.lr, weight_decay=s.weight_decay, foreach=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=schedules)
    _set_lr_kind(optimizer, scheduler, tensor_lr)
    return optimizer, scheduler


def _set_lr_kind(optimizer, scheduler, tensor_lr: bool) -> None:
    """Make the optimizer fit the step that drives it, also after loading a state saved by the other
    one: learning rate a float (plain loop) or a tensor (compiled step; on the GPU and capturable with
    CUDA parameters). The scheduler's base rates stay floats."""
    scheduler.base_lrs = [float(v) for v in scheduler.base_lrs]
    for group in optimizer.param_groups:
        device = group["params"][0].device
        capturable = tensor_lr and device.type == "cuda"
        home = device if capturable else torch.device("cpu")
        lr = float(group["lr"])
        group["lr"] = torch.tensor(lr, device=home) if tensor_lr else lr
        group["capturable"] = capturable
        if isinstance(group.get("initial_lr"), torch.Tensor):
            group["initial_lr"] = float(group["initial_lr"])
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state and isinstance(state.get("step"), torch.Tensor):
                state["step"] = state["step"].to(home, torch.float32)


def _device_stats(mean: np.ndarray, std: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The fold's normalisation statistics as (F, 1) tensors on ``device``."""
    return (torch.as_tensor(np.asarray(mean, np.float32).reshape(-1, 1), device=device),
            torch.as_tensor(np.asarray(std, np.float32).reshape(-1, 1), device=device))


def _bar(total: int, desc: str, settings: TrainSettings) -> tqdm:
    return tqdm(total=total, desc=desc, unit="batch", disable=not settings.progress, leave=True, dynamic_ncols=True)


# ----------------------------------------------------------------------------- the plain loop
def prefetch_workers(workers: int, table: SegmentTable, device: torch.device) -> int:
    """Threads that gather batches ahead: ``workers`` when they overlap something (reads from a memory
    map, or the GPU computing meanwhile); none for an in-RAM table on the CPU, where a batch is one
    memory copy and the threads would only take cores from the step itself."""
    return workers if device.type == "cuda" or not table.in_ram else 0


def train_step(model: torch.nn.Module, optimizer, scaler, batch: Batch, mean_t: torch.Tensor, std_t: torch.Tensor,
               n_classes: int, mixup_alpha: float, rng: np.random.Generator, device: torch.device,
               amp_dtype: torch.dtype | None, weight: torch.Tensor | None = None, norm=None, augment=None,
               views: int = 1, consistency_kind: str = "off", consistency_weight: float = 0.0) -> torch.Tensor:
    """One optimisation step on a batch (normalise on the device, mixup, autocast, scaled backward).

    ``norm``: a bound :class:`~lancet.training.feature_norm.Normaliser` (``--norm utterance|segment``) instead
    of the global ``mean_t``/``std_t``; ``augment(x, lengths)``: SpecAugment on the normalised batch.
    ``views`` > 1: the batch is that many views of the same segments (lancet.training.views), mixed alike
    in each view, with the consistency term added. Returns the loss as a detached device tensor (reading it
    forces a sync, so callers do it sparingly)."""
    lengths = batch.lengths.to(device, non_blocking=True)
    x = batch.x.to(device, non_blocking=True)
    x = norm(x, lengths, batch.index) if norm is not None else to_model_input(x, mean_t, std_t)
    if augment is not None:  # masks before mixup: each source segment keeps its own masks
        x = augment(x, lengths)
    targets = one_hot(batch.labels.to(device, non_blocking=True), n_classes)
    if views == 1:
        x, targets, lengths, _ = mixup(x, targets, lengths, mixup_alpha, rng)
    else:  # one draw for the batch's segments, applied in every view, so that the views stay aligned
        lam, perm = draw_mixup(x.shape[0] // views, mixup_alpha, rng)
        if perm is not None:
            x, targets, lengths = mix(x, targets, lengths, lam, 1.0 - lam,
                                      view_permutation(torch.from_numpy(perm).to(x.device), views))
    with autocast_context(device, amp_dtype):
        logits = model(x, lengths=lengths)
    loss = F.cross_entropy(logits.float(), targets, weight=weight)
    if views > 1 and consistency_kind != "off":
        loss = loss + consistency_weight * consistency(logits, views, consistency_kind)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def _step_augment(specaugment: Callable, seed: int, epoch: int, step: int) -> Callable:
    """SpecAugment with masks drawn from a generator of (seed, epoch, step): the same masks after a resume,
    and no draw from the loop's generator (whose sequence mixup and batching depend on)."""
    rng = np.random.default_rng([seed, epoch, step, 0x5A])
    return lambda x, lengths: specaugment(x, lengths, rng)


class PlainEpochs:
    """The reference loop: batches gathered on the host, one :func:`train_step` each; it also carries the
    per-step extensions (``--norm utterance|segment``, ``--specaugment``, online tables, ``--ddp``)."""

    def __init__(self, model, optimizer, scaler, train: SegmentTable, val: SegmentTable, stats, n_classes: int,
                 weight, settings: TrainSettings, device: torch.device, amp_dtype, rng: np.random.Generator,
                 seed: int, norm=None, specaugment=None, ddp=None) -> None:
        self.model, self.optimizer, self.scaler, self.val = model, optimizer, scaler, val
        self.mean_t, self.std_t = stats
        self.n_classes, self.weight, self.s, self.device, self.amp_dtype = n_classes, weight, settings, device, amp_dtype
        self.rng, self.seed, self.norm, self.specaugment = rng, seed, norm, specaugment
        # --ddp: the wrapped model steps, each rank takes its shard of every global batch, rank 0 writes
        self.ddp = ddp if ddp is not None and ddp.enabled else None
        self.step_model = distributed.wrap_ddp(model, ddp, device) if self.ddp else model
        self.writes = self.ddp is None or self.ddp.is_main
        self.val_norm = norm.bind(val) if norm is not None else None
        self.use_table(train)

    def use_table(self, train: SegmentTable) -> None:
        self.train = train
        self.train_norm = self.norm.bind(train) if self.norm is not None else None

    def train_epoch(self, epoch: int, desc: str) -> tuple[torch.Tensor, int, tqdm, dict]:
        """(summed loss on the device, segments seen, the open progress bar, what --ddp adds to the record)."""
        s, device = self.s, self.device
        # batch order now; mixup draws lam and a permutation per batch from the same generator, so the
        # whole epoch's randomness follows from the generator alone (and resumes with it)
        views = self.train.views  # > 1: each batch takes its segments in every view (online paired views)
        batches = self.train.plan_batches(s.batch_size, True, self.rng,
                                          min_last=2 * (self.ddp.world_size if self.ddp else 1))  # batch norm: 2 rows
        global_sizes = None
        if self.ddp:  # this rank's shard of each global batch (the recipe's batch size stays global)
            batches, global_sizes = distributed.ddp_batches(batches, self.ddp)
        if views > 1:  # after sharding, so that every view of a segment is on the rank that trains it
            batches = [view_rows(b, len(self.train) // views, views) for b in batches]
        total_loss, seen = torch.zeros((), device=device), 0
        bar = _bar(len(batches), desc, s)
        workers = prefetch_workers(s.workers, self.train, device)
        for step, batch in enumerate(iter_batches(self.train, batches, workers=workers, pin=device.type == "cuda"), 1):
            step_rng = distributed.ShardRng(self.rng, self.ddp, global_sizes[step - 1]) if self.ddp else self.rng
            augment = None if self.specaugment is None else _step_augment(self.specaugment, self.seed, epoch, step)
            loss = train_step(self.step_model, self.optimizer, self.scaler, batch, self.mean_t, self.std_t,
                              self.n_classes, s.mixup_alpha, step_rng, device, self.amp_dtype, self.weight,
                              norm=self.train_norm, augment=augment, views=views, consistency_kind=s.consistency,
                              consistency_weight=s.consistency_weight)
            total_loss += loss * len(batch.index)  # summed on the device: reading it would sync every step
            seen += len(batch.index)
            bar.update(1)
            if s.progress and step % 20 == 0:
                bar.set_postfix(loss=f"{float(total_loss) / max(seen, 1):.4f}")  # a sync, every 20 steps only
        extra = {} if not self.ddp else {"steps": len(batches),  # what all ranks trained together
                                         "global_segments": int(distributed.all_reduce_sum(seen, self.ddp))}
        return total_loss, seen, bar, extra

    def validate(self) -> dict:
        return evaluate_table(self.model, self.val, self.mean_t, self.std_t, self.device, self.n_classes,
                              self.s.pooling, self.s.eval_batch_size, self.amp_dtype, self.s.workers, norm=self.val_norm)


class FastEpochs:
    """The compiled path (:class:`~lancet.training.compiled.FastTrainer`) behind the plain loop's interface:
    each epoch's draws are made up front, in the plain loop's order, from the same generator."""

    writes = True

    def __init__(self, model, optimizer, train: SegmentTable, val: SegmentTable, stats, n_classes: int, weight,
                 settings: TrainSettings, device: torch.device, amp_dtype, rng: np.random.Generator) -> None:
        self.train, self.val, self.n_classes, self.s, self.rng = train, val, n_classes, settings, rng
        self.trainer = FastTrainer(model, optimizer, train, val, *stats, n_classes, weight, device, amp_dtype,
                                   settings.batch_size, settings.mixup_alpha, settings.eval_batch_size,
                                   settings.workers, settings.device_budget_gb, backend=settings.compile_backend)

    def use_table(self, train: SegmentTable) -> None:  # pragma: no cover - online tables take the plain loop
        raise RuntimeError("the compiled path trains on one table")

    def train_epoch(self, epoch: int, desc: str) -> tuple[torch.Tensor, int, tqdm, dict]:
        plan = draw_epoch(len(self.train), self.s.batch_size, self.s.mixup_alpha, self.rng)
        bar = _bar(len(plan.batches), desc, self.s)
        total_loss, seen = self.trainer.train_epoch(plan, on_step=lambda _: bar.update(1))
        return total_loss, seen, bar, {}

    def validate(self) -> dict:
        return metrics_from_probs(self.val, self.trainer.predict(), self.n_classes, self.s.pooling)
