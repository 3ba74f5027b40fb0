"""The model registry: one :class:`ModelEntry` per model in ``MODELS``, and ``build_model``.

Adding a model is one new file (its ``nn.Module``) plus one line in ``_ENTRIES``; the command line
(``--models``, ``--model-options`` from the constructor's keyword arguments, checked against their
annotations: lancet.models.options), training, checkpoints,
reports and ``predict.py`` enumerate ``MODELS`` and read entries when they are called, never names.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from lancet.core.errors import LancetError
from lancet.models.glam import GLAM
from lancet.models.lancet import LANCET
from lancet.models.options import OptionSpec, check_value, option_specs
from lancet.models.tcnet import TCNet
from lancet.ssl.heads import SuperbProbe, attentive_stats_head

#: Constructor arguments every model takes; the others are its options (``--model-options``).
SIZE_ARGUMENTS = ("n_classes", "n_freq", "n_frames")


@dataclass(frozen=True)
class ModelEntry:
    """One model: how to build it and what it was published with.

    ``factory(n_classes, n_freq, n_frames, **options)`` returns an ``nn.Module`` whose
    ``forward(x, lengths=None)`` maps (batch, 1, n_freq, time) to logits (batch, n_classes); its keyword
    arguments beyond the sizes are the model's options, with their defaults.

    Example:
        >>> MODELS["TCNet"].input_kind, MODELS["TCNet"].published_parameters
        ('mfcc', 25778)
    """

    name: str
    factory: Callable[..., nn.Module]
    #: the feature kind of its published input; the shape is looked up in lancet.features by whoever needs
    #: both (this layer does not import features)
    input_kind: str
    #: where it comes from, one line (the ``--models`` help lists it; docs/MODELS.md has the details)
    paper: str
    #: trainable parameters on that input with 4 classes, as published for the original code (None: none
    #: published); the tests hold every entry to it
    published_parameters: int | None = None
    #: options a checkpoint of the first format implies where it does not record them: defaults that changed
    #: after such checkpoints were written
    old_checkpoint_options: Mapping[str, Any] = field(default_factory=dict)


_ENTRIES = (
    ModelEntry("LANCET", LANCET, "mel", "Terraf & Iraqi, EUSIPCO 2025", 292_134,
               old_checkpoint_options={"attention_padding": "same"}),
    ModelEntry("GLAM", GLAM, "mfcc", "Zhu & Li, ICASSP 2022", 940_283),
    ModelEntry("TCNet", TCNet, "mfcc", "Ishaq, Khan & Kwon, CSSE 2023", 25_778),
    # heads over a self-supervised upstream (lancet.ssl): on stored per-layer means, or on its frames with --finetune
    ModelEntry("SSLProbe", SuperbProbe, "ssl", "SUPERB's frozen probe (Yang et al., Interspeech 2021)"),
    ModelEntry("SSLAttentive", attentive_stats_head, "ssl",
               "attentive statistics pooling over SSL frames (Okabe et al., Interspeech 2018; --finetune only)"),
)
#: The models by name, in the order runs train them and tables list them.
MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in _ENTRIES}


def build_model(name: str, n_classes: int = 4, n_freq: int | None = None, n_frames: int | None = None,
                **options: object) -> nn.Module:
    """Build the model ``name`` (one of ``MODELS``) for (n_freq x n_frames) segments.

    ``n_freq``/``n_frames`` default to the model's published input. Unknown names or options raise
    :class:`LancetError` with a one-line message.
    """
    if name not in MODELS:
        raise LancetError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    allowed = list(model_option_defaults(name))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LancetError(f"{name}: unknown option(s) {', '.join(unknown)}; known options: {', '.join(allowed)}")
    specs = model_option_specs(name)
    for option, value in options.items():  # a checkpoint's or a caller's options, checked as the flags are
        check_value(f"{name}: option {option}", specs[option], value)
    sizes = {"n_classes": n_classes}
    if n_freq is not None:
        sizes["n_freq"] = n_freq
    if n_frames is not None:
        sizes["n_frames"] = n_frames
    return MODELS[name].factory(**sizes, **options)


def model_option_defaults(name: str) -> dict[str, Any]:
    """The options of model ``name`` (keyword arguments of its constructor beyond the sizes) and their defaults."""
    params = inspect.signature(MODELS[name].factory).parameters
    return {p: v.default for p, v in params.items() if p not in SIZE_ARGUMENTS
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


def model_option_specs(name: str) -> dict[str, OptionSpec]:
    """What each option of model ``name`` takes, from its constructor's annotations (lancet.models.options)."""
    return option_specs(MODELS[name].factory, SIZE_ARGUMENTS)


def parse_model_options(items: Sequence[str], models: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """``--model-options`` entries (``option=value`` or ``Model.option=value``) as options per model.

    An entry without a model name goes to every model of ``models`` (default: all) that has the
    option. Unknown models or options, and values of the wrong type or out of the range the constructor's
    annotation gives (:mod:`lancet.models.options`), are a one-line :class:`LancetError`.

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
            out.setdefault(m, {})[option] = check_value(f"--model-options {m}.{option}", model_option_specs(m)[option],
                                                        value)
    return out


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
