"""One device and precision choice for the whole toolkit (training, prediction, feature extraction).

``auto`` picks CUDA when present; asking for CUDA without it is a one-line :class:`LancetError`,
never a deep CUDA traceback later on. Autocast precision is chosen here too (:func:`resolve_amp`).
"""

from __future__ import annotations

import contextlib

import torch

from lancet.core.errors import LancetError
from lancet.core.workers import default_torch_threads

#: Values of every ``--device`` flag (``cuda:N`` is accepted too, e.g. one GPU per torchrun rank).
DEVICES = ("auto", "cpu", "cuda")
#: Values of every ``--amp`` flag.
AMP_MODES = ("auto", "bf16", "fp16", "off")


def resolve_device(name: str = "auto", threads: int | None = None) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a usable :class:`torch.device`.

    With ``threads`` given, also set up the device for training: on CPU torch uses ``threads``
    threads (0: :func:`lancet.core.workers.default_torch_threads`); on CUDA cuDNN autotuning and TF32 are switched on.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and name != "cuda" and not name.startswith("cuda:"):
        raise LancetError(f"--device {name!r}: choose auto, cpu or cuda")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LancetError(f"--device {name}: no CUDA device is available (use --device cpu or auto)")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise LancetError(f"--device {name!r}: not a CUDA device name (cuda or cuda:N)") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LancetError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    else:
        device = torch.device("cpu")
    if threads is not None:
        if device.type == "cpu":
            torch.set_num_threads(threads if threads > 0 else default_torch_threads())
        else:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
    return device


def resolve_amp(mode: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` = bf16 on CUDA when supported, else fp16; off on CPU.

    Example:
        >>> resolve_amp("auto", torch.device("cpu")) is None
        True
    """
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
    raise LancetError(f"--amp {mode!r}: choose {', '.join(AMP_MODES)}")


def autocast_context(device: torch.device, amp_dtype: torch.dtype | None):
    """``torch.autocast`` for ``amp_dtype`` on ``device``, or a context that does nothing (full precision)."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)
