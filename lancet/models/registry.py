"""Model registry: ``MODELS`` by name and ``build_model``; published feature shapes."""

from __future__ import annotations

import inspect

from torch import nn

from lancet.errors import LancetError
from lancet.models.glam import GLAM
from lancet.models.lancet import LANCET
from lancet.models.tcnet import TCNet

MODELS: dict[str, type[nn.Module]] = {"LANCET": LANCET, "GLAM": GLAM, "TCNet": TCNet}

#: (n_freq, n_frames) of one 2 s segment for each feature kind (see docs/PIPELINE.md, step 4).
FEATURE_SHAPES: dict[str, tuple[int, int]] = {"mel": (128, 201), "mfcc": (26, 63), "spectrogram": (400, 197)}


def build_model(name: str, n_classes: int = 4, n_freq: int | None = None, n_frames: int | None = None,
                **options: object) -> nn.Module:
    """Build the model ``name`` (one of ``MODELS``) for (n_freq x n_frames) segments.

    ``n_freq``/``n_frames`` default to the model's published input. Unknown names or options raise
    :class:`LancetError` with a one-line message.
    """
    if name not in MODELS:
        raise LancetError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    cls = MODELS[name]
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "n_classes", "n_freq", "n_frames")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LancetError(f"{name}: unknown option(s) {', '.join(unknown)}; known options: {', '.join(allowed)}")
    sizes = {"n_classes": n_classes}
    if n_freq is not None:
        sizes["n_freq"] = n_freq
    if n_frames is not None:
        sizes["n_frames"] = n_frames
    return cls(**sizes, **options)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
