"""The package's layers hold: no import against them, no circle, no import tucked inside a function to hide one.

The contracts live in pyproject.toml ([tool.importlinter]); import-linter reads every import of the
package, also those inside functions, so a circle fails here however it is written.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Imports that may stay inside functions: optional or heavy packages that a step must not pay for unless it
# uses them (plots, the random split, simulated rooms, resampling, thread limits in workers), the numpy 1/2
# module shim, and torch in the feature extraction's GPU path (CPU workers never import torch).
LAZY_OK = {
    "librosa": "resampling and feature references: slow to import, not every step needs it",
    "matplotlib": "plots only",
    "sklearn": "the published random split only",
    "pyroomacoustics": "simulated rooms only",
    "threadpoolctl": "worker thread limits, where installed",
    "numpy._core": "numpy 2 spelling of a checkpoint global",
    "numpy.core": "numpy 1 spelling of a checkpoint global",
    "transformers": "self-supervised upstreams only",
    "huggingface_hub": "the hub cache of self-supervised upstreams, with transformers",
    "tensorboard": "--tensorboard only",
    "torch.utils.tensorboard": "--tensorboard only",
}
# the GPU path of feature extraction (torch, and lancet.core.device, which is torch): CPU extraction workers
# must not pay for importing it
LAZY_OK_IN = {"lancet/features/": ("torch", "lancet.core.device")}


def _function_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[tuple[int, str]] = set()  # a nested function's imports are seen from each enclosing one
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found.update((node.lineno, a.name) for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    found.add((node.lineno, "." * node.level + (node.module or "")))
    return sorted(found)


def _allowed(rel: str, module: str) -> bool:
    extra = next((mods for prefix, mods in LAZY_OK_IN.items() if rel.startswith(prefix)), ())
    return any(module == m or module.startswith(m + ".") for m in (*LAZY_OK, *extra))


def test_the_import_contracts_hold():
    # the console script of the interpreter running the tests (the virtual environment's)
    r = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "2 kept, 0 broken" in r.stdout


def test_no_import_inside_a_function_but_optional_heavy_packages():
    scripts = [ROOT / n for n in ("train_LANCET.py", "predict.py", "models.py")]
    files = [*sorted((ROOT / "lancet").rglob("*.py")), *scripts, *sorted((ROOT / "datasets").glob("*.py"))]
    offenders = [f"{p.relative_to(ROOT)}:{line}: {module}" for p in files for line, module in _function_imports(p)
                 if not _allowed(str(p.relative_to(ROOT)), module)]
    assert not offenders, "imports inside functions (move them to the top, or fix the layering):\n" + "\n".join(offenders)


def test_the_check_sees_a_hidden_import(tmp_path):
    """The AST walk finds an import inside a nested function, and the allow-list is by module, not by name."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    def g():\n        from lancet.training import fit\n    import librosa\n")
    found = _function_imports(p)
    assert [m for _, m in found] == ["lancet.training", "librosa"]  # once each, in line order
    assert not _allowed("lancet/x.py", "lancet.training") and _allowed("lancet/x.py", "librosa")
    assert _allowed("lancet/features/extract.py", "torch") and not _allowed("lancet/training/x.py", "torch")
