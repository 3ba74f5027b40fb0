"""One device choice for the whole toolkit (training, prediction, feature extraction).

``auto`` picks CUDA when present; asking for CUDA without it is a one-line :class:`LancetError`,
never a deep CUDA traceback later on.
"""

from __future__ import annotations


import torch

from lancet.errors import LancetError

#: Values of every ``--device`` flag (``cuda:N`` is accepted too, e.g. one GPU per torchrun rank).
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto", threads: int | None = None) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a usable :class:`torch.device`.

    With ``threads`` given, also set up the device for training: on CPU torch uses ``threads``
    threads (0: :func:`lancet.workers.default_torch_threads`); on CUDA cuDNN autotuning and TF32 are switched on.

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
            from lancet.workers import default_torch_threads

            torch.set_num_threads(threads if threads > 0 else default_torch_threads())
        else:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
    return device

