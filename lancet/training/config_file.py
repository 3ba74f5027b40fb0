"""Rerun from a saved configuration: ``train_LANCET.py --config results/<run>/config.json``.

A run's ``config.json`` holds every setting (a :class:`~lancet.training.config.TrainConfig` field) next to
what the run recorded about itself. Reading it back, the settings become the flags' defaults, so flags
given beside ``--config`` override them (a boolean either way: ``--specaugment`` / ``--no-specaugment``).
The run's own records are recognised and left out: :data:`RUN_FACTS`, plus two settings the file holds as
they were resolved for that run rather than as given (``run_name``: the folder the run went to, so a
rerun goes to the folder its settings name unless ``--run-name`` is given; ``device``: the device it
ran on, e.g. ``cuda:0``, resolved afresh). Any other key is a one-line error, as is a value of the wrong
type, so a typo in a hand-edited file never trains silently with a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, Sequence

from lancet.core.errors import LancetError

from .config import TrainConfig, _flag_type, default_of

#: What a run writes into config.json besides its settings (TrainConfig.to_json and GridRun._start).
RUN_FACTS = frozenset({"speaker_independent", "split_warnings", "amp_dtype", "conditions", "folds_run",
                       "class_names", "feature_shape", "world_size", "identity", "identity_digest", "paired_views"})
#: Settings config.json holds as resolved for the run that wrote it; a rerun resolves them afresh.
RESOLVED_SETTINGS = frozenset({"run_name", "device"})
CONFIG_HELP = ("load every setting from a run's config.json (results/<run>/config.json); flags given beside it "
               "override it; the run's name and device are resolved afresh")


def _describe(kind: type, is_tuple: bool, optional: bool) -> str:
    text = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "an object"}.get(kind, kind.__name__)
    text = f"a list of {text.removeprefix('a ').removeprefix('an ')}s" if is_tuple else text
    return text + (" or null" if optional else "")


def _fits(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


class _RepeatedKey(Exception):
    pass


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice: a hand-edited file would silently keep the last."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RepeatedKey(key)
        out[key] = value
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The settings of a saved ``config.json`` (field name -> value as JSON holds it), checked key by key.

    One-line :class:`LancetError` for a missing or unreadable file, a key that is neither a setting nor
    something a run records (listing them), or a value of the wrong type.
    """
    path = Path(path)
    if not path.is_file():
        raise LancetError(f"--config {path}: not found (a run writes results/<run>/config.json)")
    try:  # -sig: an editor's byte-order mark is not an error
        data = json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=_no_repeated_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LancetError(f"--config {path}: not readable JSON ({str(exc).splitlines()[0]})") from None
    except _RepeatedKey as exc:
        raise LancetError(f"--config {path}: the setting {exc} is given twice (JSON keeps the last one silently); "
                          f"keep one") from None
    if not isinstance(data, dict):
        raise LancetError(f"--config {path}: holds a {type(data).__name__}, not the object a run writes")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - fields - RUN_FACTS)
    if unknown:
        raise LancetError(f"--config {path}: unknown setting(s) {', '.join(unknown)}; the settings are the flags of "
                          f"train_LANCET.py --help (with _ for -)")
    hints = typing.get_type_hints(TrainConfig)
    settings = {}
    for name in sorted(fields & set(data) - RESOLVED_SETTINGS):
        value = data[name]
        kind, is_tuple, optional = _flag_type(hints[name])
        optional = optional or default_of(name) is None
        ok = (value is None and optional) or (
            _fits(value, list) and all(_fits(v, kind) for v in value) if is_tuple else _fits(value, kind))
        if kind is dict:
            ok = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
        if not ok:
            raise LancetError(f"--config {path}: {name} = {json.dumps(value)}: expected "
                              f"{_describe(kind, is_tuple, optional)}")
        settings[name] = value
    return settings


def _option_text(value: Any) -> str:
    """A model option's value as ``--model-options`` writes it (lancet.models.parse_option_value reads it back)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(_option_text(v) for v in value) + ("," if len(value) == 1 else "")
    return repr(value) if isinstance(value, float) else str(value)


def as_flag_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as the parser's namespace holds them: lists for tuples, ``MODEL.KEY=VALUE`` items for model
    options (parsed and checked again, like flags).

    Example:
        >>> as_flag_defaults({"seeds": [1, 2], "model_options": {"TCNet": {"residual": False}}})
        {'seeds': [1, 2], 'model_options': ['TCNet.residual=false']}
    """
    out = dict(settings)
    if "model_options" in out:
        out["model_options"] = [f"{model}.{key}={_option_text(value)}"
                                for model, options in out["model_options"].items() for key, value in options.items()]
    return out


def add_config_flag(parser: argparse._ActionsContainer) -> None:
    """The ``--config`` flag (on a parser or one of its groups)."""
    parser.add_argument("--config", metavar="CONFIG_JSON", help=CONFIG_HELP)


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with the settings of ``--config FILE`` (if given) as the defaults of the flags."""
    first = argparse.ArgumentParser(add_help=False)
    add_config_flag(first)
    known, _ = first.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**as_flag_defaults(read_config_file(known.config)))
    return parser.parse_args(argv)
