"""``plots/curves_<model>.png``: each model's learning curves, one line per fold (training loss and
validation UA against the epoch), drawn from the units' ``history/*.csv`` (lancet.training.history).

A fold whose curve keeps falling at the last epoch wanted more epochs; one whose validation UA peaked
early and fell after it overfits (the best checkpoint is the peak, marked with a dot).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from lancet.core.atomic import atomic_path

from .history import history_path, read_history
from .plan import Unit


def curve_label(unit: Unit, units: Sequence[Unit]) -> str:
    """A line's name: the fold, plus the seed and training tag when the model has several."""
    same = [u for u in units if u.model == unit.model]
    parts = [unit.fold.name]
    if len({u.seed for u in same}) > 1:
        parts.append(f"seed {unit.seed}")
    if len({u.tag for u in same}) > 1:
        parts.append(unit.tag)
    return " ".join(parts)


def plot_curves(path: Path, curves: dict[str, list[dict[str, float]]], title: str) -> None:
    """Training loss and validation UA (%) against the epoch, one line per entry of ``curves``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, ua_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, rows) in enumerate(curves.items()):
        colour = colours[k % len(colours)]
        epochs = [r["epoch"] for r in rows]
        loss_ax.plot(epochs, [r["loss"] for r in rows], marker=".", color=colour, label=label)
        ua = [100 * r["val_ua"] for r in rows]
        ua_ax.plot(epochs, ua, marker=".", color=colour, label=label)
        scores = [r.get("val_score", math.nan) for r in rows]
        if any(not math.isnan(s) for s in scores):  # the epoch the best checkpoint comes from
            best = max(range(len(rows)), key=lambda i: -math.inf if math.isnan(scores[i]) else scores[i])
            ua_ax.plot([epochs[best]], [ua[best]], "o", color=colour, markersize=7, markerfacecolor="none")
    loss_ax.set_ylabel("training loss")
    ua_ax.set_ylabel("validation UA (%)")
    for ax in (loss_ax, ua_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ua_ax.legend(fontsize=7)
    ua_ax.set_title("circles: the best epoch (WA+UA)/2, kept as best.pt", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def write_curves(run_dir: str | os.PathLike, units: Sequence[Unit]) -> dict[str, Path]:
    """``plots/curves_<model>.png`` for every model of ``units`` with a history; returns the paths written."""
    run_dir = Path(run_dir)
    paths: dict[str, Path] = {}
    for model in dict.fromkeys(u.model for u in units):
        curves = {}
        for unit in (u for u in units if u.model == model):
            path = history_path(run_dir, unit.key)
            rows = read_history(path) if path.is_file() else []
            if rows:  # units finished before histories were written have none
                curves[curve_label(unit, units)] = rows
        if curves:
            out = run_dir / "plots" / f"curves_{model}.png"
            plot_curves(out, curves, f"{model}: learning curves ({run_dir.name})")
            paths[f"curves_{model}"] = out
    return paths
