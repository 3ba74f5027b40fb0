"""The training loop: one model on one fold, with validation, best-checkpoint selection and resume.

Each epoch ends with two atomic writes: ``best.pt`` when the validation score (WA+UA)/2 at the
utterance level improved, and ``last.pt`` (model, optimizer, scheduler, grad scaler and every random
generator's state, plus a :class:`ResumeState`: epoch, best so far, history), so an interrupted run
continues exactly where it stopped.

:func:`train_model` below is the plain reference loop, read top to bottom; with ``--compile`` (the
default on CUDA) the same epochs run through :mod:`lancet.training.compiled` instead: same random numbers,
same recipe, without the per-step overhead.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from lancet.core.device import autocast_context

from .checkpoint import load_checkpoint, save_checkpoint  # weights_only, no code runs on load
from .config import TrainConfig
from .data import Batch, SegmentTable, batch_indices, class_weights, iter_batches, mixup, one_hot
from .evaluate import evaluate_table, metrics_from_probs, to_model_input
from .metrics import selection_score
from .compiled import FastTrainer, draw_epoch, use_compile

LAST = "last.pt"
BEST = "best.pt"


# ----------------------------------------------------------------------------- seeds
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _rng_state(rng: np.random.Generator) -> dict:
    """Every generator's state as plain values and tensors (numpy's key array becomes an int64 tensor)."""
    legacy = np.random.get_state(legacy=False)
    legacy["state"] = {"key": torch.from_numpy(legacy["state"]["key"].astype(np.int64)), "pos": int(legacy["state"]["pos"])}
    state = {"python": random.getstate(), "numpy": legacy, "torch": torch.get_rng_state(),
             "generator": rng.bit_generator.state}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, rng: np.random.Generator) -> None:
    random.setstate(state["python"])
    legacy = state["numpy"]
    if isinstance(legacy, dict):  # this version's plain form; older last.pt files hold numpy's own tuple
        key = legacy["state"]["key"]
        key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        legacy = {**legacy, "state": {"key": key.astype(np.uint32), "pos": int(legacy["state"]["pos"])}}
    np.random.set_state(legacy)
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["generator"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- training
_DEFAULTS = TrainConfig()  # the one set of defaults


@dataclass
class TrainSettings:
    """The part of :class:`~lancet.training.config.TrainConfig` one training loop needs (same defaults)."""

    epochs: int = _DEFAULTS.epochs
    batch_size: int = _DEFAULTS.batch_size
    lr: float = _DEFAULTS.lr
    weight_decay: float = _DEFAULTS.weight_decay
    lr_decay: float = _DEFAULTS.lr_decay
    lr_floor: float = _DEFAULTS.lr_floor
    mixup_alpha: float = _DEFAULTS.mixup_alpha
    class_weighted: bool = _DEFAULTS.class_weighted
    pooling: str = _DEFAULTS.pooling
    patience: int | None = _DEFAULTS.patience
    workers: int = _DEFAULTS.workers
    eval_batch_size: int = _DEFAULTS.eval_batch_size
    progress: bool = _DEFAULTS.progress
    compile: str = _DEFAULTS.compile
    device_budget_gb: float = _DEFAULTS.device_budget_gb
    compile_backend: str | None = "inductor"  # torch.compile backend of --compile on (tests: aot_eager)

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> "TrainSettings":
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls) if hasattr(cfg, f.name)})


@dataclass
class ResumeState:
    """Where training stands after an epoch: saved in ``last.pt`` beside the model, optimizer, scheduler,
    grad-scaler and random-generator states, as plain values only (loads with ``weights_only``)."""

    epoch: int = 0                  # epochs done
    best_score: float = float("-inf")
    best_epoch: int = -1
    best_val: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    stale: int = 0                  # epochs since the best one (early stopping)
    finished: bool = False

    def save(self, path: Path, model, optimizer, scheduler, scaler, rng: np.random.Generator) -> None:
        save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                               "rng": _rng_state(rng), **dataclasses.asdict(self)})

    @classmethod
    def load(cls, path: Path, model, optimizer, scheduler, scaler, rng: np.random.Generator) -> "ResumeState":
        """Restore every state from ``path`` into the given objects; returns the loop's own state."""
        state = load_checkpoint(path, map_location="cpu")  # RNG states must stay CPU tensors
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], rng)
        return cls(**{f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state})


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


def make_optimizer(model: torch.nn.Module, s: TrainSettings, tensor_lr: bool = False):
    """RAdam with the recipe's settings, multi-tensor (``foreach``: a few kernels per step instead of a
    few per parameter; RAdam has no fused version), and its exponential decay with a floor.

    ``tensor_lr`` (the compiled step): the learning rate as a tensor, so a compiled optimizer step reads
    its new value each epoch instead of being compiled again for it; on CUDA the optimizer is also
    ``capturable`` (its step counts live on the GPU: no host sync, and CUDA graphs can replay it)."""
    optimizer = torch.optim.RAdam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay, foreach=True)
    floor = s.lr_floor / s.lr if s.lr > 0 else 0.0
    decay = s.lr_decay
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda e: max(decay ** e, floor))
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


def prefetch_workers(workers: int, table: SegmentTable, device: torch.device) -> int:
    """Threads that gather batches ahead: ``workers`` when they overlap something (reads from a memory
    map, or the GPU computing meanwhile); none for an in-RAM table on the CPU, where a batch is one
    memory copy and the threads would only take cores from the step itself."""
    return workers if device.type == "cuda" or not table.in_ram else 0


def train_step(model: torch.nn.Module, optimizer, scaler, batch: Batch, mean_t: torch.Tensor, std_t: torch.Tensor,
               n_classes: int, mixup_alpha: float, rng: np.random.Generator, device: torch.device,
               amp_dtype: torch.dtype | None, weight: torch.Tensor | None = None, norm=None, augment=None) -> torch.Tensor:
    """One optimisation step on a batch (normalise on the device, mixup, autocast, scaled backward).

    ``norm``: a bound :class:`~lancet.training.feature_norm.Normaliser` (``--norm utterance|segment``) instead
    of the global ``mean_t``/``std_t``; ``augment(x, lengths)``: SpecAugment on the normalised batch.
    Returns the loss as a detached device tensor (reading it forces a sync, so callers do it sparingly)."""
    lengths = batch.lengths.to(device, non_blocking=True)
    x = batch.x.to(device, non_blocking=True)
    x = norm(x, lengths, batch.index) if norm is not None else to_model_input(x, mean_t, std_t)
    if augment is not None:  # masks before mixup: each source segment keeps its own masks
        x = augment(x, lengths)
    targets = one_hot(batch.labels.to(device, non_blocking=True), n_classes)
    x, targets, lengths, _ = mixup(x, targets, lengths, mixup_alpha, rng)
    with autocast_context(device, amp_dtype):
        logits = model(x, lengths=lengths)
    loss = F.cross_entropy(logits.float(), targets, weight=weight)
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


def train_model(model: torch.nn.Module, train: SegmentTable, val: SegmentTable, mean: np.ndarray, std: np.ndarray,
                n_classes: int, settings: TrainSettings, device: torch.device, amp_dtype: torch.dtype | None,
                ckpt_dir: Path, seed: int, best_payload: dict[str, Any], desc: str = "", norm=None, specaugment=None,
                epoch_table: Callable[[int], SegmentTable] | None = None,
                on_epoch_end: Callable[[int], None] | None = None, ddp=None) -> TrainResult:
    """Train ``model`` (already seeded and built) on ``train``, select on ``val``; resume from ``last.pt``.

    ``ddp`` (a :class:`~lancet.training.distributed.DistContext` under torchrun with ``--ddp``): every
    rank trains this model together, each on its shard of every batch; only rank 0 writes checkpoints.

    ``best_payload`` is stored with the best weights (model name and options, class names, feature
    parameters, ...); the normalisation statistics are added here. ``on_epoch_end(epoch)`` is called
    after each epoch's checkpoint is on disk (tests use it to simulate an interruption).
    """
    from tqdm.auto import tqdm

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=(device.type == "cuda" and amp_dtype == torch.float16))
    # The fast path (lancet.training.compiled) covers the recipe; the extensions that draw per step or
    # reshape batches (--norm utterance|segment, --specaugment, --train-on online, --ddp) and float16's
    # grad scaler (a host sync per step) keep the plain loop below.
    fast_ok = (use_compile(settings.compile, device) and norm is None and specaugment is None and epoch_table is None
               and not scaler.is_enabled() and not (ddp is not None and ddp.enabled))
    tensor_lr = fast_ok and settings.compile_backend is not None
    optimizer, scheduler = make_optimizer(model, settings, tensor_lr=tensor_lr)
    rng = np.random.default_rng(seed)
    mean_t = torch.as_tensor(np.asarray(mean, np.float32).reshape(-1, 1), device=device)
    std_t = torch.as_tensor(np.asarray(std, np.float32).reshape(-1, 1), device=device)
    weight = None
    if settings.class_weighted:
        weight = torch.as_tensor(class_weights(train.labels, n_classes), device=device)

    state = ResumeState()
    last_path = ckpt_dir / LAST
    if last_path.is_file():
        state = ResumeState.load(last_path, model, optimizer, scheduler, scaler, rng)
        _set_lr_kind(optimizer, scheduler, tensor_lr)
        if state.finished:
            return TrainResult(state.best_epoch, state.best_score, state.best_val, state.epoch, state.history,
                               resumed_from=state.epoch)
    resumed_from = start = state.epoch
    history = state.history
    fast = None
    if fast_ok:
        fast = FastTrainer(model, optimizer, train, val, mean_t, std_t, n_classes, weight, device, amp_dtype,
                           settings.batch_size, settings.mixup_alpha, settings.eval_batch_size, settings.workers,
                           settings.device_budget_gb, backend=settings.compile_backend)
    # --- noise robustness hooks (issue 12): --norm utterance|segment, --specaugment, --train-on online
    train_norm = norm.bind(train) if norm is not None else None
    val_norm = norm.bind(val) if norm is not None else None
    table_epoch = 0  # ``train`` is epoch 0's table; online training swaps in a fresh one every epoch
    # --- --ddp hook (lancet.training.distributed): wrap the model, shard each batch, rank 0 writes
    step_model, writes = model, True
    if ddp is not None and ddp.enabled:
        from . import distributed

        step_model, writes = distributed.wrap_ddp(model, ddp, device), ddp.is_main
    sharded = step_model is not model
    # --- end of the --ddp hook
    t0 = time.perf_counter()
    pin = device.type == "cuda"
    epoch = start
    finished = False
    for epoch in range(start, settings.epochs):
        model.train()
        if epoch_table is not None and epoch != table_epoch:  # --train-on online: new noise, SNRs, rooms
            train, table_epoch = epoch_table(epoch), epoch
            train_norm = norm.bind(train) if norm is not None else None
        bar_desc = f"{desc} epoch {epoch + 1}/{settings.epochs}"
        if fast is not None:  # the same epoch, drawn up front and run without per-step overhead
            plan = draw_epoch(len(train), settings.batch_size, settings.mixup_alpha, rng)
            bar = tqdm(total=len(plan.batches), desc=bar_desc, unit="batch", disable=not settings.progress,
                       leave=True, dynamic_ncols=True)
            total_loss, seen = fast.train_epoch(plan, on_step=lambda _: bar.update(1))
        else:
            # Batch order now; mixup draws lam and a permutation per batch from the same generator, so
            # the whole epoch's randomness follows from ``rng`` alone (and resumes with it).
            batches = batch_indices(len(train), settings.batch_size, True, rng,
                                    min_last=2 * (ddp.world_size if sharded else 1))  # batch norm needs 2 rows
            if sharded:  # --ddp: this rank's shard of each global batch (the recipe's batch size stays global)
                batches, global_sizes = distributed.ddp_batches(batches, ddp)
            total_loss, seen = torch.zeros((), device=device), 0
            bar = tqdm(total=len(batches), desc=bar_desc, unit="batch", disable=not settings.progress, leave=True,
                       dynamic_ncols=True)
            workers = prefetch_workers(settings.workers, train, device)
            for step, batch in enumerate(iter_batches(train, batches, workers=workers, pin=pin), 1):
                step_rng = distributed.ShardRng(rng, ddp, global_sizes[step - 1]) if sharded else rng  # --ddp
                loss = train_step(step_model, optimizer, scaler, batch, mean_t, std_t, n_classes, settings.mixup_alpha,
                                  step_rng, device, amp_dtype, weight, norm=train_norm,
                                  augment=None if specaugment is None else _step_augment(specaugment, seed, epoch, step))
                total_loss += loss * len(batch.index)  # summed on the device: reading it would sync every step
                seen += len(batch.index)
                bar.update(1)
                if settings.progress and step % 20 == 0:
                    bar.set_postfix(loss=f"{float(total_loss) / max(seen, 1):.4f}")  # a sync, every 20 steps only
        scheduler.step()
        if fast is not None:
            val_metrics = metrics_from_probs(val, fast.predict(), n_classes, settings.pooling)
        else:
            val_metrics = evaluate_table(model, val, mean_t, std_t, device, n_classes, settings.pooling,
                                         settings.eval_batch_size, amp_dtype, settings.workers, norm=val_norm)
        score = selection_score(val_metrics)
        record = {"epoch": epoch + 1, "loss": float(total_loss) / max(seen, 1),  # the epoch's one sync
                  "lr": float(optimizer.param_groups[0]["lr"]),
                  "val_wa": val_metrics["wa"], "val_ua": val_metrics["ua"], "val_score": score}
        if sharded:  # --ddp: what all ranks trained together this epoch
            record.update(steps=len(batches), global_segments=int(distributed.all_reduce_sum(seen, ddp)))
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", val_wa=f"{val_metrics['wa']:.3f}", val_ua=f"{val_metrics['ua']:.3f}")
        bar.close()
        if score > state.best_score:
            state.best_score, state.best_epoch, state.best_val, state.stale = score, epoch + 1, val_metrics, 0
            payload = dict(best_payload)
            payload.update(model_state=model.state_dict(), epoch=epoch + 1, val=val_metrics,
                           norm_mean=np.asarray(mean, np.float32), norm_std=np.asarray(std, np.float32))
            if writes:
                save_checkpoint(ckpt_dir / BEST, payload)
        else:
            state.stale += 1
        state.epoch = epoch + 1
        state.finished = finished = (epoch + 1 >= settings.epochs
                                     or (settings.patience is not None and state.stale >= settings.patience))
        if writes:
            state.save(last_path, model, optimizer, scheduler, scaler, rng)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
        if finished:
            break
    step = "plain" if fast is None else ("compiled" if settings.compile_backend else "fast")
    return TrainResult(state.best_epoch, state.best_score, state.best_val, len(history), history, resumed_from,
                       time.perf_counter() - t0, step)
