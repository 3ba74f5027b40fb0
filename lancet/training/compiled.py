"""The fast training path (``--compile on``; the default on CUDA): the same recipe as the plain loop in
:mod:`.fit`, without its per-step overhead.

* The epoch's random numbers (batch order, each batch's mixup ``lam`` and permutation) are drawn on
  the host up front, in exactly the order the plain loop draws them from the same generator, so both
  paths see identical numbers and give the same loss trajectory (to float rounding).
* The fold's segments live on the device when they fit (:class:`DeviceTable`): batch indexing,
  normalisation and mixup run there and nothing waits for the host; the loss is summed on the device
  and read once per epoch. Otherwise batches stream from the memory map as in the plain loop.
* Forward + loss and the optimizer step are compiled with :func:`torch.compile` (``reduce-overhead``
  on CUDA: replayed as CUDA graphs) for one static batch shape. The last, smaller batch of an epoch
  runs the same functions uncompiled: padding it would put fake rows into batch-norm statistics, and
  a second shape would compile again. The very first step also runs uncompiled, so the optimizer's
  state exists before its step is traced (tracing it empty and then full would compile twice).
* Validation runs in large static batches (the last one padded: in eval mode batch norm uses its
  running statistics, so padded rows cannot change real ones) through a compiled forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch._dynamo.config as dynamo_config
import torch.nn.functional as F

from .data import SegmentTable, batch_indices, draw_mixup, iter_batches, mix, one_hot
from lancet.core.device import autocast_context

from .evaluate import to_model_input

COMPILE_MODE = {"cuda": "reduce-overhead", "cpu": "default"}


def use_compile(mode: str, device: torch.device) -> bool:
    """``--compile``: ``auto`` = on for CUDA, off for CPU."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"--compile {mode!r}: choose auto, on or off")
    return device.type == "cuda" if mode == "auto" else mode == "on"


# ----------------------------------------------------------------------------- an epoch's random numbers
@dataclass
class EpochPlan:
    """Everything random in one training epoch, drawn before it starts."""

    batches: list[np.ndarray]       # segment indices of each batch
    lams: np.ndarray                # (n_batches,) float64 mixup weight; 1.0 where a batch is not mixed
    perms: list[np.ndarray | None]  # each batch's mixup permutation (None: not mixed)


def draw_epoch(n: int, batch_size: int, mixup_alpha: float, rng: np.random.Generator, min_last: int = 2) -> EpochPlan:
    """The draws of one plain-loop epoch, in its order: the shuffle, then per batch ``Beta`` and permutation.

    Example:
        >>> p = draw_epoch(10, 4, 0.5, np.random.default_rng(0))
        >>> [len(b) for b in p.batches], p.perms[0].shape
        ([4, 4, 2], (4,))
    """
    batches = batch_indices(n, batch_size, True, rng, min_last=min_last)
    lams = np.ones(len(batches), dtype=np.float64)
    perms: list[np.ndarray | None] = []
    for i, b in enumerate(batches):
        lams[i], perm = draw_mixup(len(b), mixup_alpha, rng)
        perms.append(perm)
    return EpochPlan(batches, lams, perms)


# ----------------------------------------------------------------------------- segments on the device
class DeviceTable:
    """A table's features (as stored, float16 or float32), lengths and labels as device tensors."""

    def __init__(self, x: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> None:
        self.x, self.lengths, self.labels = x, lengths, labels

    @classmethod
    def load(cls, table: SegmentTable, device: torch.device, chunk: int = 2048) -> "DeviceTable":
        """Copy ``table`` to ``device`` in chunks (a memory-mapped table is never held whole in RAM)."""
        n = len(table)
        first = table.sources[0]
        x = torch.empty((n,) + tuple(first.shape[1:]), dtype=torch.from_numpy(first[:0]).dtype, device=device)
        for i in range(0, n, chunk):
            idx = np.arange(i, min(n, i + chunk))
            x[i:i + len(idx)] = torch.from_numpy(table.gather(idx)).to(device)
        return cls(x, torch.from_numpy(table.lengths.copy()).to(device), torch.from_numpy(table.labels.copy()).to(device))

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows ``idx`` (a device tensor): gathered on the device, no host round trip."""
        return self.x.index_select(0, idx), self.lengths.index_select(0, idx), self.labels.index_select(0, idx)


def table_bytes(table: SegmentTable) -> int:
    first = table.sources[0]
    return len(table) * int(np.prod(first.shape[1:])) * first.dtype.itemsize


def resident_budget(device: torch.device, budget_gb: float) -> float:
    """Bytes of segments that may live on ``device``: ``budget_gb``, or (0) half the free GPU memory."""
    if budget_gb > 0:
        return budget_gb * 2**30
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return 0.5 * free
    return float("inf")  # CPU: a table already in RAM (--ram-budget-gb) is the resident copy


# ----------------------------------------------------------------------------- the step functions
def mixed_loss(model: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor,
               w: torch.Tensor, perm: torch.Tensor | None, mean: torch.Tensor, std: torch.Tensor, n_classes: int,
               weight: torch.Tensor | None, amp_dtype: torch.dtype | None, device_type: str) -> torch.Tensor:
    """Normalise, mix (``w`` = (lam, 1 - lam) as float32, the plain loop's numbers), forward, cross entropy."""
    x = to_model_input(x, mean, std)
    targets = one_hot(labels, n_classes)
    if perm is not None:
        x, targets, lengths = mix(x, targets, lengths, w[0], w[1], perm)
    with autocast_context(torch.device(device_type), amp_dtype):
        logits = model(x, lengths=lengths)
    return F.cross_entropy(logits.float(), targets, weight=weight)


def eval_probs(model: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
               amp_dtype: torch.dtype | None, device_type: str) -> torch.Tensor:
    with autocast_context(torch.device(device_type), amp_dtype):
        logits = model(to_model_input(x, mean, std), lengths=lengths)
    return torch.softmax(logits.float(), dim=-1)


def compile_static(fn: Callable, backend: str, device: torch.device) -> Callable:
    """``torch.compile`` for one fixed shape (``dynamic=False``; CUDA graphs on CUDA with inductor)."""
    # one graph per model instance and shape; several units per process must not hit the limit
    dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, 64)
    mode = COMPILE_MODE.get(device.type) if backend == "inductor" else None
    return torch.compile(fn, backend=backend, mode=mode, dynamic=False)


class SegmentPredictor:
    """Softmax outputs of every segment of a table, in static batches of ``batch_size`` through one
    (compiled) function: validation during training and the test conditions after it both replay it.

    The last batch is padded to the full size with zero rows at full length, so one shape serves
    every batch; eval-mode batch norm keeps rows independent, and the padded rows are dropped.
    ``resident``: the table already on the device (:class:`DeviceTable`), else batches are gathered.
    """

    def __init__(self, model: torch.nn.Module, mean_t: torch.Tensor, std_t: torch.Tensor, device: torch.device,
                 amp_dtype: torch.dtype | None, batch_size: int, backend: str | None = None) -> None:
        self.model, self.mean, self.std, self.device, self.amp_dtype = model, mean_t, std_t, device, amp_dtype
        self.batch_size = int(batch_size)
        self.cudagraphs = backend is not None and device.type == "cuda"
        self.probs_fn: Callable = eval_probs if backend is None else compile_static(eval_probs, backend, device)

    @torch.no_grad()
    def _batch(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, pad = x.shape[0], self.batch_size - x.shape[0]
        if pad:
            x = torch.cat([x, x.new_zeros((pad,) + tuple(x.shape[1:]))])
            lengths = torch.cat([lengths, lengths.new_full((pad,), x.shape[-1])])
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        probs = self.probs_fn(self.model, x, lengths, self.mean, self.std, self.amp_dtype, self.device.type)
        return probs[:n].clone()  # a graph's output is overwritten by its next replay

    def predict(self, table: SegmentTable, resident: DeviceTable | None = None) -> np.ndarray:
        """Softmax outputs (n, K) of every segment of ``table``, in table order."""
        self.model.eval()
        dev, bs, n = self.device, self.batch_size, len(table)
        out: list[torch.Tensor] = []
        for i in range(0, n, bs):
            idx = np.arange(i, min(n, i + bs))
            if resident is not None:
                x, lengths, _ = resident.batch(torch.arange(i, i + len(idx), device=dev))
            else:
                x = torch.from_numpy(table.gather(idx)).to(dev, non_blocking=True)
                lengths = torch.from_numpy(table.lengths[idx].copy()).to(dev, non_blocking=True)
            out.append(self._batch(x, lengths))
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return torch.cat(out).cpu().numpy().astype(np.float32, copy=False)


class FastTrainer:
    """Trains and validates one model on the fast path; built once per :func:`.fit.train_model` call.

    ``backend``: None runs the same functions uncompiled (tests compare the two); otherwise a
    :func:`torch.compile` backend (``inductor``, or ``aot_eager`` in tests).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, train: SegmentTable,
                 val: SegmentTable, mean_t: torch.Tensor, std_t: torch.Tensor, n_classes: int,
                 weight: torch.Tensor | None, device: torch.device, amp_dtype: torch.dtype | None, batch_size: int,
                 mixup_alpha: float, eval_batch_size: int, workers: int = 0, budget_gb: float = 0.0,
                 backend: str | None = "inductor") -> None:
        self.model, self.optimizer = model, optimizer
        self.mean, self.std, self.n_classes, self.weight = mean_t, std_t, n_classes, weight
        self.device, self.amp_dtype = device, amp_dtype
        self.batch_size, self.mixup_alpha, self.eval_batch_size, self.workers = batch_size, mixup_alpha, eval_batch_size, workers
        self.train, self.val = train, val
        budget = resident_budget(device, budget_gb)
        fits = table_bytes(train) + table_bytes(val) <= budget and (device.type != "cpu" or train.in_ram)
        self.train_dt = DeviceTable.load(train, device) if fits else None
        self.val_dt = DeviceTable.load(val, device) if fits else None
        self.resident = fits
        self.warm = False  # the first step runs eagerly (the optimizer's state exists before it is traced)
        self.cudagraphs = backend is not None and device.type == "cuda"
        self.predictor = SegmentPredictor(model, mean_t, std_t, device, amp_dtype, eval_batch_size, backend)
        loss_fn: Callable = mixed_loss
        opt_step: Callable = optimizer.step
        if backend is not None:
            loss_fn = compile_static(mixed_loss, backend, device)

            def _opt_step() -> None:
                optimizer.step()

            opt_step = compile_static(_opt_step, backend, device)
        self.loss_fn, self.opt_step = loss_fn, opt_step

    # ------------------------------------------------------------------ training
    def _step(self, x, lengths, labels, w, perm, static: bool) -> torch.Tensor:
        if static and self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs may be reused now
        loss_fn = self.loss_fn if static else mixed_loss
        loss = loss_fn(self.model, x, lengths, labels, w, perm, self.mean, self.std, self.n_classes, self.weight,
                       self.amp_dtype, self.device.type)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if static:
            self.opt_step()
        else:
            self.optimizer.step()
        return loss.detach()

    def train_epoch(self, plan: EpochPlan, on_step: Callable[[int], None] | None = None) -> tuple[torch.Tensor, int]:
        """One epoch of ``plan``; returns (summed loss on the device, segments seen)."""
        dev = self.device
        self.model.train()
        # the plan goes to the device in three copies, not three per step
        w = torch.from_numpy(np.stack([plan.lams, 1.0 - plan.lams], axis=1).astype(np.float32)).to(dev)
        perms = [torch.from_numpy(p).to(dev, non_blocking=True) if p is not None else None for p in plan.perms]
        if self.resident:
            order = torch.from_numpy(np.concatenate(plan.batches)).to(dev, non_blocking=True)
            offsets = np.cumsum([0] + [len(b) for b in plan.batches])
            source = (self.train_dt.batch(order[offsets[s]:offsets[s + 1]]) for s in range(len(plan.batches)))
        else:
            source = ((b.x.to(dev, non_blocking=True), b.lengths.to(dev, non_blocking=True),
                       b.labels.to(dev, non_blocking=True))
                      for b in iter_batches(self.train, plan.batches, workers=self.workers, pin=dev.type == "cuda"))
        total, seen = torch.zeros((), device=dev), 0
        for s, (x, lengths, labels) in enumerate(source):
            b = len(plan.batches[s])
            static = self.warm and b == self.batch_size  # the one compiled shape
            loss = self._step(x, lengths, labels, w[s], perms[s], static)
            total += loss * b  # summed on the device: no sync per step
            seen += b
            self.warm = True
            if on_step is not None:
                on_step(s + 1)
        return total, seen

    # ------------------------------------------------------------------ validation
    def predict(self) -> np.ndarray:
        """Softmax outputs (n, K) of the validation table, in table order (see :class:`SegmentPredictor`)."""
        return self.predictor.predict(self.val, self.val_dt)
