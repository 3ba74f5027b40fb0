"""Checkpoints that cannot run code: only tensors and plain Python values go in, and they load with
``torch.load(..., weights_only=True)``.

A pickle can call any function while it is read, so a crafted ``best.pt`` loaded with
``weights_only=False`` runs its author's code before anything can check it. Here:

* :func:`save_checkpoint` turns numpy arrays (normalisation statistics, numpy RNG states) into
  tensors, remembers where they were (``__numpy__``: key path and dtype) and refuses any other
  object, so every file it writes loads with plain ``torch.load(path, weights_only=True)``;
* :func:`load_checkpoint` first lists the globals the pickle would import (a static scan; nothing
  runs), refuses the file with a one-line :class:`LancetError` when any is outside an allow-list,
  then loads it with ``weights_only=True`` and puts the numpy arrays back.

The allow-list is exactly what checkpoints of earlier versions of this project hold besides
tensors: numpy arrays, rebuilt through ``numpy.core.multiarray._reconstruct`` with ``numpy.ndarray``
and ``numpy.dtype`` (PyTorch's unpickler then checks every argument of those calls too).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lancet.core.atomic import atomic_path
from lancet.core.errors import LancetError

#: A unit's checkpoint files: the best epoch's model (kept) and the last epoch's full state (while training).
BEST = "best.pt"
LAST = "last.pt"

#: Key under which :func:`save_checkpoint` lists the numpy arrays it stored as tensors.
NUMPY_KEY = "__numpy__"

#: Plain values allowed as leaves besides tensors.
_PLAIN = (str, int, float, bool, bytes, type(None), torch.dtype, torch.Size, torch.device)


def _numpy_globals() -> list[Any]:
    """The numpy callables an old checkpoint of this project needs (numpy 1.x and 2.x spellings)."""
    try:
        from numpy._core import multiarray  # numpy 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    found: list[Any] = [np.ndarray, np.dtype, multiarray._reconstruct]
    # numpy >= 1.25 may pickle a dtype as its class (numpy.dtypes.Float32DType, ...)
    found.extend(type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDGSUV")
    return found


def _global_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


_ALLOWED_NUMPY = _numpy_globals()
#: Names of the globals (module.name, as PyTorch reports them) an old checkpoint may import.
ALLOWED_GLOBALS = frozenset(_global_name(g) for g in _ALLOWED_NUMPY) | {
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}


# ----------------------------------------------------------------------------- save
def _to_plain(obj: Any, path: tuple, arrays: list) -> tuple[Any, bool]:
    """(obj with numpy arrays as tensors and numpy scalars as Python numbers, whether it changed)."""
    if isinstance(obj, torch.Tensor) or (isinstance(obj, _PLAIN) and not isinstance(obj, np.generic)):
        return obj, False
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"checkpoint entry {list(path)}: numpy array of dtype {obj.dtype} cannot be stored")
        arrays.append([list(path), str(obj.dtype)])
        data = obj.astype(np.int64) if obj.dtype.kind == "u" and obj.dtype.itemsize >= 2 else obj
        return torch.from_numpy(np.array(data, copy=True)), True
    if isinstance(obj, np.generic):
        return obj.item(), True
    if isinstance(obj, dict):
        items, changed = {}, False
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint entry {list(path)}: key {k!r} is not a string or integer")
            items[k], c = _to_plain(v, path + (k,), arrays)
            changed |= c
        if not changed:
            return obj, False
        out = OrderedDict(items) if isinstance(obj, OrderedDict) else items
        if hasattr(obj, "_metadata"):  # a module state_dict's version info
            out = OrderedDict(items)
            out._metadata = obj._metadata  # type: ignore[attr-defined]
        return out, True
    if isinstance(obj, (list, tuple)):
        parts = [_to_plain(v, path + (i,), arrays) for i, v in enumerate(obj)]
        if not any(c for _, c in parts):
            return obj, False
        values = [v for v, _ in parts]
        return (tuple(values) if isinstance(obj, tuple) else values), True
    raise TypeError(f"checkpoint entry {list(path)}: {type(obj).__name__} is not a tensor or a plain value")


def to_plain(obj: dict) -> dict:
    """A copy of ``obj`` that holds only tensors and plain values (numpy arrays listed under ``__numpy__``).

    Example:
        >>> to_plain({"m": np.zeros(2, np.float32)})
        {'m': tensor([0., 0.]), '__numpy__': [[['m'], 'float32']]}
    """
    if not isinstance(obj, dict):
        raise TypeError(f"a checkpoint is a dict, got {type(obj).__name__}")
    arrays: list = []
    plain, _ = _to_plain(obj, (), arrays)
    plain = dict(plain)
    if arrays:
        plain[NUMPY_KEY] = arrays
    return plain


def save_checkpoint(path: str | os.PathLike, obj: dict) -> None:
    """``torch.save`` of :func:`to_plain` ``(obj)`` under a temporary name, renamed on success.

    Raises ``TypeError`` (before writing) for anything that is not a tensor, a numpy array or a plain
    value, so a checkpoint that could not be loaded safely is never written.
    """
    plain = to_plain(obj)
    with atomic_path(Path(path), ".pt") as tmp:
        torch.save(plain, tmp)


# ----------------------------------------------------------------------------- load
def _restore_numpy(obj: Any, wanted: dict[tuple, str], path: tuple = ()) -> Any:
    if path in wanted:
        return obj.detach().cpu().numpy().astype(wanted[path], copy=False) if isinstance(obj, torch.Tensor) else obj
    if not any(p[:len(path)] == path for p in wanted):
        return obj
    if isinstance(obj, dict):
        out = type(obj)((k, _restore_numpy(v, wanted, path + (k,))) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata  # type: ignore[attr-defined]
        return out
    if isinstance(obj, (list, tuple)):
        values = [_restore_numpy(v, wanted, path + (i,)) for i, v in enumerate(obj)]
        return tuple(values) if isinstance(obj, tuple) else values
    return obj


def from_plain(obj: dict) -> dict:
    """Undo :func:`to_plain`: the arrays listed under ``__numpy__`` become numpy arrays again."""
    arrays = obj.pop(NUMPY_KEY, None)
    if not arrays:
        return obj
    wanted = {tuple(p): dtype for p, dtype in arrays}
    return _restore_numpy(obj, wanted)


def _refuse(path: Path, what: str) -> LancetError:
    return LancetError(f"{path}: refused: the checkpoint holds {what}, not only tensors and plain values "
                       f"(loading it could run code); only checkpoints written by LANCET are loaded")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (or by earlier versions of this project).

    Nothing in the file runs: its imports are checked against :data:`ALLOWED_GLOBALS` before
    loading, and the load itself uses ``weights_only=True``. Missing, unreadable or foreign files
    are a one-line :class:`LancetError`.
    """
    path = Path(path)
    if not path.is_file():
        raise LancetError(f"{path}: checkpoint not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        imports = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint (legacy pickle, truncated, foreign): weights_only decides below
        imports = []
    unsafe = sorted(set(imports) - ALLOWED_GLOBALS)
    if unsafe:
        raise _refuse(path, ", ".join(unsafe))
    try:
        with torch.serialization.safe_globals(_ALLOWED_NUMPY), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyTorch's note on foreign pickle protocols
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"(?:unsupported global:? GLOBAL|Trying to call) ([\w.]+)", str(exc), flags=re.IGNORECASE)
        raise _refuse(path, ", ".join(sorted(set(found))) or "pickle instructions other than data") from None
    except Exception as exc:  # a truncated or foreign file
        raise LancetError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise LancetError(f"{path}: not a LANCET checkpoint (holds a {type(obj).__name__}, not a dict)")
    return from_plain(obj)
