"""The training loop: one model on one fold, with validation, best-checkpoint selection and resume.

Each epoch ends with two atomic writes: ``best.pt`` when the validation score (WA+UA)/2 at the
utterance level improved, and ``last.pt`` (model, optimizer, scheduler, grad scaler, epoch, best
state, history and every random generator's state), so an interrupted run continues exactly where
it stopped.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from lancet.atomic import atomic_path
from lancet.errors import LancetError

from .checkpoint import load_checkpoint, save_checkpoint  # weights_only, no code runs on load
from .data import Batch, SegmentTable, batch_indices, class_weights, iter_batches, mixup, one_hot
from .evaluate import autocast_context, evaluate_table, to_model_input
from .metrics import selection_score

LAST = "last.pt"
BEST = "best.pt"


# ----------------------------------------------------------------------------- device, precision, seeds
def resolve_device(name: str, threads: int = 0) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a :class:`LancetError`.

    On CPU, torch uses ``threads`` threads (0: every core)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise LancetError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise LancetError(f"--device {name!r}: choose auto, cpu or cuda")
    device = torch.device(name)
    if device.type == "cpu":
        torch.set_num_threads(threads if threads > 0 else max(1, os.cpu_count() or 1))
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` = bf16 on CUDA when supported, else fp16; off on CPU."""
    if mode == "off":
        return None
    if device.type != "cuda":
        if mode == "auto":
            return None
        if mode == "bf16":
            return torch.bfloat16
        raise LancetError(f"--amp {mode}: float16 autocast needs a CUDA device (use --amp bf16 or off on CPU)")
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise LancetError("--amp bf16: this GPU does not support bfloat16 (use --amp fp16)")
        return torch.bfloat16
    if mode == "fp16":
        return torch.float16
    raise LancetError(f"--amp {mode!r}: choose auto, bf16, fp16 or off")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _rng_state(rng: np.random.Generator) -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "generator": rng.bit_generator.state}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, rng: np.random.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["generator"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- training
@dataclass
class TrainSettings:
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-6
    lr_decay: float = 0.95
    lr_floor: float = 1e-6
    mixup_alpha: float = 0.5
    class_weighted: bool = False
    pooling: str = "mean"
    patience: int | None = None
    workers: int = 0
    eval_batch_size: int = 128
    progress: bool = True


@dataclass
class TrainResult:
    best_epoch: int
    best_score: float
    best_val: dict
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    resumed_from: int = 0
    seconds: float = 0.0


def make_optimizer(model: torch.nn.Module, s: TrainSettings):
    optimizer = torch.optim.RAdam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    floor = s.lr_floor / s.lr if s.lr > 0 else 0.0
    decay = s.lr_decay
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda e: max(decay ** e, floor))
    return optimizer, scheduler


def train_step(model: torch.nn.Module, optimizer, scaler, batch: Batch, mean_t: torch.Tensor, std_t: torch.Tensor,
               n_classes: int, mixup_alpha: float, rng: np.random.Generator, device: torch.device,
               amp_dtype: torch.dtype | None, weight: torch.Tensor | None = None, norm=None, augment=None) -> torch.Tensor:
    """One optimisation step on a batch (normalise on the device, mixup, autocast, scaled backward).

    ``norm``: a bound :class:`~lancet.training.normalize.Normaliser` (``--norm utterance|segment``) instead
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
    optimizer, scheduler = make_optimizer(model, settings)
    scaler = torch.amp.GradScaler("cuda", enabled=(device.type == "cuda" and amp_dtype == torch.float16))
    rng = np.random.default_rng(seed)
    mean_t = torch.as_tensor(np.asarray(mean, np.float32).reshape(-1, 1), device=device)
    std_t = torch.as_tensor(np.asarray(std, np.float32).reshape(-1, 1), device=device)
    weight = None
    if settings.class_weighted:
        weight = torch.as_tensor(class_weights(train.labels, n_classes), device=device)

    start, best_score, best_epoch, best_val, history, stale = 0, -np.inf, -1, {}, [], 0
    last_path = ckpt_dir / LAST
    if last_path.is_file():
        state = load_checkpoint(last_path, map_location="cpu")  # RNG states must stay CPU tensors
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], rng)
        start, best_score, best_epoch = state["epoch"], state["best_score"], state["best_epoch"]
        best_val, history, stale = state["best_val"], state["history"], state["stale"]
        if state.get("finished"):
            return TrainResult(best_epoch, best_score, best_val, start, history, resumed_from=start)
    resumed_from = start
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
        batches = batch_indices(len(train), settings.batch_size, True, rng, min_last=2 * (ddp.world_size if sharded else 1))
        if sharded:  # --ddp: this rank's shard of each global batch (the recipe's batch size stays global)
            batches, global_sizes = distributed.ddp_batches(batches, ddp)
        total_loss, seen = torch.zeros((), device=device), 0
        bar = tqdm(total=len(batches), desc=f"{desc} epoch {epoch + 1}/{settings.epochs}", unit="batch",
                   disable=not settings.progress, leave=True, dynamic_ncols=True)
        for step, batch in enumerate(iter_batches(train, batches, workers=settings.workers, pin=pin), 1):
            step_rng = distributed.ShardRng(rng, ddp, global_sizes[step - 1]) if sharded else rng  # --ddp
            loss = train_step(step_model, optimizer, scaler, batch, mean_t, std_t, n_classes, settings.mixup_alpha,
                              step_rng, device, amp_dtype, weight, norm=train_norm,
                              augment=None if specaugment is None else _step_augment(specaugment, seed, epoch, step))
            total_loss += loss * len(batch.index)  # summed on the device: no sync per step
            seen += len(batch.index)
            bar.update(1)
            if settings.progress and step % 20 == 0:
                bar.set_postfix(loss=f"{float(total_loss) / max(seen, 1):.4f}")
        scheduler.step()
        val_metrics = evaluate_table(model, val, mean_t, std_t, device, n_classes, settings.pooling,
                                     settings.eval_batch_size, amp_dtype, settings.workers, norm=val_norm)
        score = selection_score(val_metrics)
        record = {"epoch": epoch + 1, "loss": float(total_loss) / max(seen, 1), "lr": optimizer.param_groups[0]["lr"],
                  "val_wa": val_metrics["wa"], "val_ua": val_metrics["ua"], "val_score": score}
        if sharded:  # --ddp: what all ranks trained together this epoch
            record.update(steps=len(batches), global_segments=int(distributed.all_reduce_sum(seen, ddp)))
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", val_wa=f"{val_metrics['wa']:.3f}", val_ua=f"{val_metrics['ua']:.3f}")
        bar.close()
        if score > best_score:
            best_score, best_epoch, best_val, stale = score, epoch + 1, val_metrics, 0
            payload = dict(best_payload)
            payload.update(model_state=model.state_dict(), epoch=epoch + 1, val=val_metrics,
                           norm_mean=np.asarray(mean, np.float32), norm_std=np.asarray(std, np.float32))
            if writes:
                save_checkpoint(ckpt_dir / BEST, payload)
        else:
            stale += 1
        finished = epoch + 1 >= settings.epochs or (settings.patience is not None and stale >= settings.patience)
        if writes:
            save_checkpoint(last_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": _rng_state(rng), "epoch": epoch + 1, "best_score": best_score,
                "best_epoch": best_epoch, "best_val": best_val, "history": history, "stale": stale, "finished": finished,
            })
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
        if finished:
            break
    return TrainResult(best_epoch, best_score, best_val, len(history), history, resumed_from,
                       time.perf_counter() - t0)
