"""Model registry: ``MODELS`` by name and ``build_model``; published feature shapes."""

from __future__ import annotations

import inspect
from typing import Any, Sequence

from torch import nn

from lancet.core.errors import LancetError
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
    allowed = list(model_option_defaults(name))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LancetError(f"{name}: unknown option(s) {', '.join(unknown)}; known options: {', '.join(allowed)}")
    sizes = {"n_classes": n_classes}
    if n_freq is not None:
        sizes["n_freq"] = n_freq
    if n_frames is not None:
        sizes["n_frames"] = n_frames
    return cls(**sizes, **options)


def model_option_defaults(name: str) -> dict[str, Any]:
    """The options of model ``name`` (keyword arguments of its constructor beyond the sizes) and their defaults."""
    params = inspect.signature(MODELS[name].__init__).parameters
    return {p: v.default for p, v in params.items() if p not in ("self", "n_classes", "n_freq", "n_frames")
            and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)}


def parse_option_value(text: str) -> Any:
    """A command-line option value as int, float, bool, None, a tuple (comma-separated) or str.

    Example:
        >>> parse_option_value("3,5,10"), parse_option_value("same"), parse_option_value("false")
        ((3, 5, 10), 'same', False)
    """
    text = text.strip()
    if "," in text:
        return tuple(parse_option_value(part) for part in text.split(",") if part.strip())
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _coerce(model: str, option: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of the option's default; ints pass where floats are expected."""
    where = f"--model-options {model}.{option}"
    if default is inspect.Parameter.empty or default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise LancetError(f"{where}: expects true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise LancetError(f"{where}: expects an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LancetError(f"{where}: expects a number, got {value!r}")
        return float(value)
    if isinstance(default, tuple):
        return value if isinstance(value, tuple) else (value,)
    if isinstance(default, str) and not isinstance(value, str):
        raise LancetError(f"{where}: expects a word, got {value!r}")
    return value


def parse_model_options(items: Sequence[str], models: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """``--model-options`` entries (``option=value`` or ``Model.option=value``) as options per model.

    An entry without a model name goes to every model of ``models`` (default: all) that has the
    option. Unknown models or options, and values of the wrong type, are a one-line
    :class:`LancetError` that lists the valid ones.

    Example:
        >>> parse_model_options(["attention_padding=same", "GLAM.ff_mult=2"], ["LANCET", "GLAM"])
        {'LANCET': {'attention_padding': 'same'}, 'GLAM': {'ff_mult': 2}}
    """
    models = list(MODELS) if models is None else list(models)
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise LancetError(f"--model-options {item!r}: write option=value or Model.option=value")
        model, dot, option = key.rpartition(".")
        if dot:
            if model not in MODELS:
                raise LancetError(f"--model-options {item!r}: unknown model {model!r}; known models: {', '.join(MODELS)}")
            targets = [model]
        else:
            targets = [m for m in models if m in MODELS and option in model_option_defaults(m)]
        if not targets or (dot and option not in model_option_defaults(model)):
            names = [model] if dot else [m for m in models if m in MODELS]
            valid = "; ".join(f"{m}: {', '.join(model_option_defaults(m)) or 'none'}" for m in names)
            raise LancetError(f"--model-options {item!r}: unknown option {option!r}; valid options: {valid}")
        value = parse_option_value(text)
        for m in targets:
            out.setdefault(m, {})[option] = _coerce(m, option, value, model_option_defaults(m)[option])
    return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
