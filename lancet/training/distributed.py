"""Sharing a run's units among torchrun ranks: set-up from torchrun's variables, claims, waiting, DDP helpers.

``torchrun --nproc-per-node G [--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT] train_LANCET.py ...``
starts G x M copies of the trainer with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`setup` reads them (no variables: a plain single process)
and joins the rendezvous store that torchrun's agent already runs. Nothing here starts processes.

How the units are shared: every rank plans the same ordered list of units; a rank *claims* the next
unit by incrementing one counter in the rendezvous store (an atomic ``add``), so every unit is
claimed exactly once per launch, and a rank that is free early simply claims more (GLAM costs more
than TC-Net, so a fixed split would leave ranks idle). A claimed unit that is already finished (its
metrics file exists) is skipped. The counter lives only as long as the launch: when a rank dies,
torchrun stops the others, and rerunning the same command starts a fresh counter, so the dead
rank's unfinished unit is claimed again and continues from its ``last.pt``.

When every rank has run out of units it says so in the store; rank 0 waits for all of them (by
polling the store: no collective timeout however long the last unit takes) and then writes the
summary, tables and plots once.

Backends: the control group is ``gloo`` (works on CPU, and lets several ranks share one GPU);
``--ddp`` on CUDA adds ``nccl`` for the gradients (``cpu:gloo,cuda:nccl``), one GPU per rank.

Example:
    >>> ctx = DistContext()          # what setup() returns without torchrun's variables
    >>> (ctx.rank, ctx.world_size, ctx.is_main, ctx.enabled)
    (0, 1, True, False)
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from lancet.core.errors import LancetError
from lancet.core.workers import available_cpus

# Collectives (DDP all-reduce, barriers) give up after this long; waiting for other ranks' units
# polls the store instead and has no limit.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
POLL_S = 0.5


@dataclass
class DistContext:
    """This process's place in a torchrun launch (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None              # set when a process group was initialised
    store: Any = field(default=None, repr=False)  # the launch's key-value store (prefixed), or None

    @property
    def enabled(self) -> bool:
        """Whether several ranks share the work."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def tag(self) -> str:
        """A log prefix naming the rank (empty in a single process)."""
        return f"[rank {self.rank}/{self.world_size}] " if self.enabled else ""


def launched_by_torchrun() -> bool:
    """Whether torchrun's variables say this process is one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise LancetError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def setup(device_type: str = "cpu", ddp: bool = False) -> DistContext:
    """Join the launch described by torchrun's variables; a single-process context without them.

    ``device_type`` 'cuda' with ``ddp`` adds the NCCL backend for gradients; otherwise the group is
    gloo only (it carries a few small control messages and DDP's gradients on CPU).
    """
    if not launched_by_torchrun():
        return DistContext()
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if not dist.is_available():
        raise LancetError("torchrun started several ranks but this torch build has no torch.distributed")
    backend = "cpu:gloo,cuda:nccl" if (device_type == "cuda" and ddp) else "gloo"
    if dist.is_initialized():
        base = None
    else:
        try:
            base, rank, world = next(dist.rendezvous("env://", timeout=COLLECTIVE_TIMEOUT))
        except (RuntimeError, ValueError) as exc:
            raise LancetError(f"cannot join the torchrun launch at {os.environ.get('MASTER_ADDR')}:"
                              f"{os.environ.get('MASTER_PORT')} ({exc})") from None
        if device_type == "cuda" and torch.cuda.is_available():
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend, store=dist.PrefixStore("lancet-pg", base), rank=rank, world_size=world,
                                timeout=COLLECTIVE_TIMEOUT)
    # keys are per launch; an elastic restart (--max-restarts) gets a fresh prefix too
    prefix = f"lancet/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    store = dist.PrefixStore(prefix, base) if base is not None else None
    return DistContext(rank, world, local_rank, local_world, backend, store)


def teardown(ctx: DistContext) -> None:
    """Leave the process group (quietly: the launch is ending)."""
    if ctx.backend is None:
        return
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_device(ctx: DistContext, device: torch.device) -> torch.device:
    """The device this rank uses: ``cuda:LOCAL_RANK`` (wrapping round when ranks outnumber GPUs)."""
    if device.type != "cuda" or not ctx.enabled:
        return device
    return torch.device("cuda", ctx.local_rank % max(1, torch.cuda.device_count()))


def rank_threads(ctx: DistContext, threads: int) -> int:
    """CPU threads for one rank: ``threads`` when given, else this node's cores split among its ranks."""
    if threads > 0:
        return threads
    return max(1, available_cpus() // max(1, ctx.local_world_size))


# ----------------------------------------------------------------------------- sharing the units
def claim(ctx: DistContext, items: Sequence[Any]) -> Iterator[Any]:
    """Yield the items this rank claims, in plan order; lazily: each ``next`` claims one more.

    Without torchrun every item is yielded. With it, the shared counter hands each index to exactly
    one rank.
    """
    if ctx.store is None:
        yield from items
        return
    while True:
        i = int(ctx.store.add("next_unit", 1)) - 1
        if i >= len(items):
            return
        yield items[i]


def wait_for_all(ctx: DistContext, what: str = "done", log=None) -> None:
    """Every rank calls this when it has no more work; it returns on every rank once all have.

    Polls the store (no collective timeout, however long other ranks' units take).
    """
    if ctx.store is None:
        return
    n = int(ctx.store.add(what, 1))
    last_note = time.monotonic()
    while n < ctx.world_size:
        time.sleep(POLL_S)
        n = int(ctx.store.add(what, 0))
        if log is not None and time.monotonic() - last_note > 300:
            log(f"{ctx.tag}waiting for {ctx.world_size - n} other rank(s) to finish their units")
            last_note = time.monotonic()


def broadcast_error(ctx: DistContext, message: str | None, key: str) -> str | None:
    """Rank 0 publishes ``message`` (an error text, or None for success); every rank returns it.

    Lets rank 0 alone do a check (the output-folder lock, the config of an earlier run) while the
    others stop with the same one-line error instead of hanging.
    """
    if ctx.store is None:
        return message
    if ctx.is_main:
        ctx.store.set(key, "" if message is None else "E" + message)
        return message
    value = ctx.store.get(key).decode()  # blocks until rank 0 has set it (store timeout applies)
    return value[1:] if value.startswith("E") else None


def host() -> str:
    return socket.gethostname()


# ----------------------------------------------------------------------------- data-parallel (--ddp)
def shard(indices, ctx: DistContext):
    """This rank's share of a global batch's indices: every ``world_size``-th from ``rank``.

    The shards of all ranks together are the global batch, so the recipe's batch size holds.

    Example:
        >>> shard(list(range(10)), DistContext(rank=1, world_size=3))
        [1, 4, 7]
    """
    if ctx.world_size <= 1:
        return indices
    return indices[ctx.rank::ctx.world_size]


def wrap_ddp(model: torch.nn.Module, ctx: DistContext, device: torch.device) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel (batch norm synchronised across ranks on CUDA)."""
    if not ctx.enabled or ctx.backend is None:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index)
    return DistributedDataParallel(model)


def all_reduce_sum(value: float, ctx: DistContext) -> float:
    """Sum of ``value`` over ranks (a float through the gloo group)."""
    if not ctx.enabled or ctx.backend is None:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item())


class ShardRng:
    """The unit's generator seen by one rank's mixup under ``--ddp``.

    Every rank must consume the unit's generator exactly as the others (the next epoch's batch
    order comes from it), but each mixes only its own shard, and shards of the last batch can
    differ in size. So ``permutation`` draws the *global* batch's permutation (the same draw on
    every rank) and returns the order it induces on this rank's shard; ``beta`` is passed through.

    Example:
        >>> import numpy as np
        >>> r = ShardRng(np.random.default_rng(0), DistContext(rank=1, world_size=2), global_size=5)
        >>> sorted(r.permutation(2).tolist())
        [0, 1]
    """

    def __init__(self, rng, ctx: DistContext, global_size: int) -> None:
        self.rng, self.ctx, self.global_size = rng, ctx, global_size

    def beta(self, a: float, b: float) -> float:
        return self.rng.beta(a, b)

    def permutation(self, n: int):
        perm = self.rng.permutation(self.global_size)
        local = perm[self.ctx.rank::self.ctx.world_size][:n]
        return np.argsort(local, kind="stable")


def ddp_batches(batches: list, ctx: DistContext) -> tuple[list, list[int]]:
    """(this rank's shard of each global batch, the global sizes)."""
    return [shard(b, ctx) for b in batches], [len(b) for b in batches]
