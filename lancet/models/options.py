"""What a model option may be, read from its constructor's annotation, and the check of a value against it.

A model's options are the keyword arguments of its constructor beyond the sizes; their annotations say what
they take, so the command line checks ``--model-options`` values before any work starts, never deep in torch::

    bn_chan: Annotated[int, Range(1, 1024)] = 64                    # a whole number in [1, 1024]
    attn_kernels: Annotated[tuple[int, ...], Range(1, 255)] = ...   # one or more, each in [1, 255]
    hid_channels: Annotated[int | None, Range(1, 4096)] = None      # or none (the model's own default)
    attention_padding: Literal["valid", "same"] = "valid"           # one of these words

An option without an annotation is checked against its default's type, as before; one whose default is None
and that says nothing else takes any value. Adding a model stays one file plus one registry line.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from lancet.core.checks import Range
from lancet.core.errors import LancetError


@dataclass(frozen=True)
class OptionSpec:
    """What one option takes: ``kind`` (int, float, bool, str; None: anything), a tuple of them (at least one
    item), None as well, a range for numbers (each item of a tuple), or a set of words."""

    default: Any
    kind: type | None = None
    is_tuple: bool = False
    optional: bool = False
    valid: Range | None = None
    choices: tuple | None = None


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The resolved annotations of ``factory``'s constructor (a class's ``__init__``), extras kept; none when
    they cannot be resolved (a model written without them)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # a name the annotation uses is not importable here: fall back to the default's type
        return {}


def option_spec(hint: Any, default: Any) -> OptionSpec:
    """The spec of one option from its annotation (``inspect.Parameter.empty``: none) and its default.

    Example:
        >>> spec = option_spec(typing.Annotated[int | None, Range(1, 8)], None)
        >>> spec.kind, spec.optional, spec.valid.describe()
        (<class 'int'>, True, 'in [1, 8]')
    """
    valid = None
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        valid = next((e for e in extras if isinstance(e, Range)), None)
    optional = default is None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = optional or len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else inspect.Parameter.empty
    if typing.get_origin(hint) is typing.Literal:
        choices = typing.get_args(hint)
        return OptionSpec(default, type(choices[0]), optional=optional, choices=choices)
    if typing.get_origin(hint) is tuple:
        return OptionSpec(default, typing.get_args(hint)[0], True, optional, valid)
    if isinstance(hint, type) and hint in (int, float, bool, str):
        return OptionSpec(default, hint, optional=optional, valid=valid)
    if default is None:  # nothing said: anything goes, as before
        return OptionSpec(default, optional=True)
    if isinstance(default, tuple):  # at least one item, each of the default's items' type when they share one
        kinds = {type(v) for v in default}
        return OptionSpec(default, kinds.pop() if len(kinds) == 1 and kinds <= {bool, int, float, str} else None,
                          True, optional)
    return OptionSpec(default, next((t for t in (bool, int, float, str) if isinstance(default, t)), None),
                      optional=optional)


def option_specs(factory: Callable[..., Any], sizes: tuple[str, ...]) -> dict[str, OptionSpec]:
    """Every option of ``factory`` (keyword arguments beyond ``sizes``) with its spec, in signature order."""
    hints = _hints(factory)
    params = inspect.signature(factory).parameters
    return {name: option_spec(hints.get(name, inspect.Parameter.empty), p.default) for name, p in params.items()
            if name not in sizes and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


_WORDS = {bool: ("true or false", "true or false values"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), str: ("a word", "words")}


def check_value(where: str, spec: OptionSpec, value: Any) -> Any:
    """``value`` checked against ``spec`` (ints pass where floats are expected; one item where a tuple is; a list
    read from JSON as a tuple), or a one-line LancetError that starts with ``where`` and says what it takes.

    Example:
        >>> check_value("--model-options LANCET.bn_chan", option_spec(typing.Annotated[int, Range(1, 1024)], 64), -3)
        Traceback (most recent call last):
        lancet.core.errors.LancetError: --model-options LANCET.bn_chan: expects an integer in [1, 1024], got -3
    """
    if value is None:
        if spec.optional or (spec.kind is None and not spec.is_tuple):
            return None
        raise LancetError(f"{where}: expects {_expected(spec)}, got none")
    if spec.is_tuple:
        items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if not items:
            raise LancetError(f"{where}: expects {_expected(spec)}, got none")
        return items if spec.kind is None else tuple(_item(where, spec, v) for v in items)
    return value if spec.kind is None else _item(where, spec, value)


def _item(where: str, spec: OptionSpec, value: Any) -> Any:
    """One value (a tuple's item) of the option's kind, within its range or words."""
    kind = spec.kind
    fits = (isinstance(value, bool) if kind is bool else
            isinstance(value, int) and not isinstance(value, bool) if kind is int else
            isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else
            isinstance(value, str))
    if not fits:
        raise LancetError(f"{where}: expects {_expected(spec, with_range=False)}, got {value!r}")
    if (kind is float and not math.isfinite(value)) or (spec.choices and value not in spec.choices) \
            or (spec.valid is not None and value not in spec.valid):
        raise LancetError(f"{where}: expects {_expected(spec)}, got {value!r}")
    return float(value) if kind is float else value


def _expected(spec: OptionSpec, with_range: bool = True) -> str:
    """What an option takes, in words: ``an integer in [1, 1024]``, ``one or more integers, each in [1, 255]``."""
    one, many = _WORDS.get(spec.kind, ("a value", "values"))
    if spec.choices:
        text = "one of " + ", ".join(map(str, spec.choices))
    elif spec.is_tuple:
        text = f"one or more {many}" + (f", each {spec.valid.describe()}" if spec.valid and with_range else "")
    else:
        text = one + (f" {spec.valid.describe()}" if spec.valid and with_range else "")
        text += " (finite)" if spec.kind is float and with_range and spec.valid is None else ""
    return text + (" or none" if spec.optional else "")
