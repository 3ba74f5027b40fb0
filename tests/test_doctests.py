"""Every docstring example in the package runs with the suite (one place, every module found by walking
``lancet``): an ``Example`` that drifts from the code fails here."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import lancet


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(lancet.__path__, prefix="lancet."):
        spec = importlib.util.find_spec(info.name)
        origin = Path(spec.origin) if spec and spec.origin else None
        if origin and origin.suffix == ".py" and ">>>" in origin.read_text(encoding="utf-8"):
            names.append(info.name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_the_walk_finds_the_documented_modules():
    assert {"lancet.core.device", "lancet.training.config", "lancet.corpora.emodb", "lancet.training.feature_norm"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name}: '>>>' in the source but no example collected"
    assert result.failed == 0
