"""Several units at once on one device (``--jobs``): how many fit, from one unit's measured memory.

One small model cannot fill a large GPU, so a process may train several units at once. Each runs in
its own worker process (lancet.core.workers, started by forkserver/spawn, never fork): a unit seeds the
global torch/numpy/python generators and its dropout draws from them, so threads sharing one
process could not give the results of a one-by-one run; processes do, bit for bit on the same
device and thread count. Kernels of several processes share a GPU by time slicing; the NVIDIA
Multi-Process Service (``nvidia-cuda-mps-control -d``) lets them overlap.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from lancet.core import workers

CUDA_CONTEXT_BYTES = 600 * 2**20   # a process's CUDA context and cuDNN/cuBLAS workspaces, roughly
MAX_AUTO_JOBS = 8


def auto_jobs(device: torch.device, per_unit_bytes: float, n_units: int, local_world_size: int = 1) -> int:
    """How many units to train at once when ``--jobs 0``: 1 on CPU (torch already uses every core for
    one unit); on CUDA as many as fit in 90 % of the free memory at ``per_unit_bytes`` each (see
    :func:`estimate_unit_bytes`), at most one per CPU core of this rank, :data:`MAX_AUTO_JOBS`, and
    the number of units.

    Example:
        >>> auto_jobs(torch.device("cpu"), 1e9, 10)
        1
    """
    if device.type != "cuda" or n_units <= 1:
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    fit = int(0.9 * free // max(per_unit_bytes + CUDA_CONTEXT_BYTES, 1))
    cores = max(1, workers.available_cpus() // max(1, local_world_size))
    return max(1, min(fit, cores, MAX_AUTO_JOBS, n_units))


def estimate_unit_bytes(build: Callable[[], torch.nn.Module], batch_size: int, input_shape: tuple[int, int], data_bytes: float,
                        device: torch.device, amp_dtype: torch.dtype | None) -> float:
    """Device memory one unit needs: measured peak of one training step of ``build()`` at ``batch_size``
    (weights, gradients, optimizer state, activations), plus ``data_bytes`` (its segments when they
    are kept on the device). CUDA only; returns ``data_bytes`` elsewhere."""
    if device.type != "cuda":
        return float(data_bytes)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    try:
        model = build().to(device)
        opt = torch.optim.RAdam(model.parameters())
        x = torch.randn(batch_size, 1, *input_shape, device=device)
        ctx = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        with ctx:
            loss = model(x).float().logsumexp(-1).mean()
        loss.backward()
        opt.step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del model, opt, x, loss
    except torch.cuda.OutOfMemoryError:  # one unit barely fits (or not): never more than one at once
        peak = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.empty_cache()
    return float(peak) * 1.2 + float(data_bytes)   # allocator fragmentation
