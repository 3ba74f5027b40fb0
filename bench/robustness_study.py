#!/usr/bin/env python
"""Tables and the accuracy-against-SNR plot of a robustness study (docs/ROBUSTNESS.md) from its run folders.

    python bench/robustness_study.py --results /tmp/study/results clean_global online_utterance ... \
        [--reference clean_global] [--plot docs/robustness_snr.png --plot-models LANCET GLAM TCNet]

Reads every finished unit's records (``<run>/metrics/*.json``), so it works on a study still running.
Prints, per model, one markdown table: conditions down, runs across, utterance-level UA in % as
mean ± std over folds and seeds ("!" = a run where one class took > 90 % of the predictions), plus the
mean over all conditions and the number of units pooled. With ``--reference RUN`` (clean-only training)
it also prints, per model and run, the issue's targets: the drop from clean at 10 dB (at most 8 points)
and 0 dB (at most 20) per noise type, whether any condition is degenerate, clean UA against the
reference run (at most 2 points lower), and each run's mean UA over conditions per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lancet.core.conditions import condition_sort_key, parse_condition  # noqa: E402
from lancet.core.errors import LancetError, run_cli  # noqa: E402
from lancet.noise.registry import NOISE_TYPES  # noqa: E402
from lancet.training.evaluate import robustness_matrix  # noqa: E402
from lancet.training.metrics import mean_std  # noqa: E402


def load_run(folder: Path) -> list[dict]:
    records = []
    for path in sorted((folder / "metrics").glob("*.json")):
        records.extend(json.loads(path.read_text()))
    return records


def cell(r: dict | None) -> str:
    if r is None:
        return "-"
    mark = " !" if r.get("degenerate_runs") else ""
    return f"{100 * r['ua_mean']:.1f} ± {100 * r['ua_std']:.1f}{mark}"


def unit_means(records: list[dict]) -> list[float]:
    """Per (fold, seed): the mean UA over all conditions (so the std below is over folds and seeds)."""
    by: dict[tuple, list[float]] = {}
    for r in records:
        by.setdefault((r["fold"], r["seed"]), []).append(r["ua"])
    return [sum(v) / len(v) for v in by.values()]


def table(model: str, runs: dict[str, list[dict]]) -> str:
    rows = {name: {r["condition"]: r for r in robustness_matrix([x for x in recs if x["model"] == model])}
            for name, recs in runs.items()}
    names = [n for n in runs if rows[n]]
    if not names:
        return ""
    conds = sorted({c for n in names for c in rows[n]}, key=condition_sort_key)
    out = [f"**{model}** (UA %, mean ± std over folds x seeds)", "",
           "| condition | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for c in conds:
        out.append(f"| {c} | " + " | ".join(cell(rows[n].get(c)) for n in names) + " |")
    means = []
    for n in names:
        recs = [x for x in runs[n] if x["model"] == model]
        m, s = mean_std(unit_means(recs))
        means.append(f"**{100 * m:.1f} ± {100 * s:.1f}**")
    out.append("| mean over conditions | " + " | ".join(means) + " |")
    units = [len({(x["fold"], x["seed"]) for x in runs[n] if x["model"] == model}) for n in names]
    out.append("| units (folds x seeds) | " + " | ".join(map(str, units)) + " |")
    return "\n".join(out)


TARGET_DROP = {10.0: 8.0, 0.0: 20.0}   # the limits: UA at this SNR within this many points of clean
TARGET_CLEAN_LOSS = 2.0                 # clean UA at most this many points below clean-only training


def target_noises(runs: dict[str, list[dict]]) -> list[str]:
    """The registered noise types the runs were tested on at an SNR, in registry order (the study's: babble,
    ambient, white)."""
    tested = {parse_condition(r["condition"])[0] for recs in runs.values() for r in recs
              if parse_condition(r["condition"])[1] is not None}
    return [n for n in NOISE_TYPES if n in tested]


def targets(model: str, runs: dict[str, list[dict]], reference: str) -> str:
    """The issue's targets for every run of ``model``: drops from clean in points, '✓' where met."""
    ref = {r["condition"]: r for r in robustness_matrix([x for x in runs[reference] if x["model"] == model])}
    if "clean" not in ref:
        return ""
    noises = target_noises(runs)
    columns = [f"{n} {snr:g} dB" for snr in TARGET_DROP for n in noises]
    columns += ["degenerate", "clean vs reference", "mean UA"]
    out = [f"**{model}**: targets (points; ✓ met)", "", "| run | " + " | ".join(columns) + " |",
           "|---|" + "---|" * len(columns)]
    for name, recs in runs.items():
        rows = {r["condition"]: r for r in robustness_matrix([x for x in recs if x["model"] == model])}
        if "clean" not in rows:
            continue
        clean = 100 * rows["clean"]["ua_mean"]
        cells = []
        for snr, limit in TARGET_DROP.items():
            for noise in noises:
                r = rows.get(f"{noise}_{snr:g}dB")
                drop = None if r is None else 100 * r["ua_mean"] - clean
                cells.append("-" if drop is None else f"{drop:+.1f}" + (" ✓" if drop >= -limit else ""))
        degenerate = sorted(c for c, r in rows.items() if r.get("degenerate_runs"))
        cells.append(", ".join(degenerate) if degenerate else "none ✓")
        loss = clean - 100 * ref["clean"]["ua_mean"]
        cells.append(f"{loss:+.1f}" + (" ✓" if loss >= -TARGET_CLEAN_LOSS else ""))
        m, s = mean_std(unit_means([x for x in recs if x["model"] == model]))
        cells.append(f"{100 * m:.1f} ± {100 * s:.1f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(path: Path, runs: dict[str, list[dict]], models: list[str]) -> None:
    """UA against SNR: one row of panels per model, one panel per noise type, one line per run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lancet.core.atomic import atomic_path

    noises = sorted({parse_condition(r["condition"])[0] for recs in runs.values() for r in recs
                     if parse_condition(r["condition"])[1] is not None})
    fig, axes = plt.subplots(len(models), len(noises), figsize=(4.2 * len(noises), 3.3 * len(models)), sharey=True,
                             squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, model in enumerate(models):
        for k, (name, recs) in enumerate(runs.items()):
            rows = robustness_matrix([x for x in recs if x["model"] == model])
            if not rows:
                continue
            clean = next((r for r in rows if r["condition"] == "clean"), None)
            for ax, noise in zip(axes[row], noises):
                pts = sorted((r for r in rows if r["noise_type"] == noise and r["snr_db"] != ""),
                             key=lambda r: float(r["snr_db"]))
                ax.errorbar([float(r["snr_db"]) for r in pts], [100 * r["ua_mean"] for r in pts],
                            yerr=[100 * r["ua_std"] for r in pts], marker="o", capsize=3,
                            color=colours[k % len(colours)], label=name)
                if clean is not None:
                    ax.axhline(100 * clean["ua_mean"], color=colours[k % len(colours)], linestyle="--", linewidth=1)
        for ax, noise in zip(axes[row], noises):
            ax.axhline(25, color="grey", linestyle=":", linewidth=1)
            ax.set_title(f"{model}: {noise} (dashed: clean, dotted: chance)", fontsize=9)
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("UA (%)")
    for ax in axes[-1]:
        ax.set_xlabel("SNR (dB)")
    axes[0][-1].legend(fontsize=7)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run names (folders under --results)")
    p.add_argument("--results", required=True, help="results folder of the study")
    p.add_argument("--models", nargs="+", default=["LANCET", "TCNet", "GLAM"])
    p.add_argument("--plot", help="write the accuracy-against-SNR plot of --plot-models here (PNG)")
    p.add_argument("--plot-models", nargs="+", default=["LANCET"], help="models in the plot, one row each")
    p.add_argument("--reference", help="run of clean-only training: also print the issue's targets against it")
    args = p.parse_args()
    runs = {}
    for name in args.runs:
        folder = Path(args.results) / name
        if not folder.is_dir():
            raise LancetError(f"{folder}: no such run folder")
        runs[name] = load_run(folder)
    if args.reference and args.reference not in runs:
        raise LancetError(f"--reference {args.reference}: name it among the runs too")
    for model in args.models:
        text = table(model, runs)
        if text:
            print(text + "\n")
        if args.reference and (text := targets(model, runs, args.reference)):
            print(text + "\n")
    if args.plot:
        plot(Path(args.plot), runs, args.plot_models)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    run_cli(main)
