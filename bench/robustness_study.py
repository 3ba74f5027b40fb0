#!/usr/bin/env python
"""Tables, targets, timing and the accuracy-against-SNR plot of a robustness study (docs/ROBUSTNESS.md).

    python bench/robustness_study.py --results /tmp/study/results mfcc_clean50 mfcc_online50 ... \
        [--reference mfcc_clean50 mel_clean50] [--compare mfcc_paired50 mfcc_online50] [--seeds 1] [--plot docs/robustness_snr.png --plot-models LANCET GLAM]

Reads every finished unit's records (``<run>/metrics/*.json``), so it works on a study still running.
Prints, per model, one markdown table: conditions down, runs across, utterance-level UA in % as
mean ± std over folds and seeds ("!" = a run where one class took > 90 % of the predictions), the mean
over all conditions, the number of units pooled and the seconds per training epoch (from the units'
``history/*.csv``, where the run wrote them). With ``--reference`` (clean-only runs, one per feature kind)
each run is held against the reference of its own feature kind: the issue's targets (drop from clean at
10 dB at most 5 points and at 0 dB at most 15, no degenerate condition, clean UA at most 2 points below
clean-only training on the same units, at most 2.5 times its compute per epoch) and the paired difference of the mean UA
over conditions, unit by unit (same fold and seed). ``--compare A B`` prints that paired difference between
any two runs, of the mean UA and of clean UA; ``--seeds`` pools only those seeds' units.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")   # figures go to files: no display needed
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lancet.core.atomic import atomic_path, read_csv  # noqa: E402
from lancet.core.conditions import condition_sort_key, parse_condition  # noqa: E402
from lancet.core.errors import LancetError, run_cli  # noqa: E402
from lancet.noise.registry import NOISE_TYPES  # noqa: E402
from lancet.training.evaluate import robustness_matrix  # noqa: E402
from lancet.training.metrics import mean_std  # noqa: E402


@dataclass
class Run:
    """One run folder of the study: its records, feature kind and the seconds of its training epochs."""

    name: str
    records: list[dict]
    features: str
    epoch_seconds: dict[str, list[float]]   # model -> seconds of every epoch of every unit


def load_run(folder: Path, seeds: list[int] | None = None) -> Run:
    """The run's finished records (only those of ``seeds`` when given) and its training epochs' seconds."""
    records = []
    for path in sorted((folder / "metrics").glob("*.json")):
        records.extend(r for r in json.loads(path.read_text()) if seeds is None or int(r["seed"]) in seeds)
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    seconds: dict[str, list[float]] = {}
    for path in sorted((folder / "history").glob("*.csv")):
        model = path.name.split("__", 1)[0]
        if seeds is not None and not any(f"__seed{seed}__" in path.name for seed in seeds):
            continue
        seconds.setdefault(model, []).extend(float(r["seconds"]) for r in read_csv(path) if r.get("seconds"))
    return Run(folder.name, records, str(config.get("features", "?")), seconds)


def per_epoch(run: Run, model: str) -> float | None:
    """Median seconds per training epoch of ``model`` in ``run`` (median: robust to a busy moment)."""
    values = run.epoch_seconds.get(model)
    return float(np.median(values)) if values else None


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


def table(model: str, runs: dict[str, Run]) -> str:
    rows = {name: {r["condition"]: r for r in robustness_matrix([x for x in run.records if x["model"] == model])}
            for name, run in runs.items()}
    names = [n for n in runs if rows[n]]
    if not names:
        return ""
    conds = sorted({c for n in names for c in rows[n]}, key=condition_sort_key)
    out = [f"**{model}** (UA %, mean ± std over folds x seeds)", "",
           "| condition | " + " | ".join(f"{n} ({runs[n].features})" for n in names) + " |",
           "|---|" + "---|" * len(names)]
    for c in conds:
        out.append(f"| {c} | " + " | ".join(cell(rows[n].get(c)) for n in names) + " |")
    means = []
    for n in names:
        m, s = mean_std(unit_means([x for x in runs[n].records if x["model"] == model]))
        means.append(f"**{100 * m:.1f} ± {100 * s:.1f}**")
    out.append("| mean over conditions | " + " | ".join(means) + " |")
    units = [len({(x["fold"], x["seed"]) for x in runs[n].records if x["model"] == model}) for n in names]
    out.append("| units (folds x seeds) | " + " | ".join(map(str, units)) + " |")
    secs = [per_epoch(runs[n], model) for n in names]
    out.append("| seconds per epoch (median) | " + " | ".join("-" if s is None else f"{s:.1f}" for s in secs) + " |")
    return "\n".join(out)


def paired(model: str, run: Run, reference: Run, condition: str | None = None) -> str:
    """UA of ``run`` minus ``reference``, unit by unit (same fold and seed): mean ± std and the units where
    ``run`` is better. Over the mean of all conditions, or over one ``condition``."""
    def by_unit(r: Run) -> dict:
        out: dict[tuple, list[float]] = {}
        for x in r.records:
            if x["model"] == model and condition in (None, x["condition"]):
                out.setdefault((x["fold"], x["seed"]), []).append(x["ua"])
        return {k: sum(v) / len(v) for k, v in out.items()}

    a, b = by_unit(run), by_unit(reference)
    shared = sorted(set(a) & set(b))
    if not shared:
        return "-"
    diff = np.array([a[k] - b[k] for k in shared]) * 100
    return f"{diff.mean():+.1f} ± {diff.std():.1f} (better in {int((diff > 0).sum())} of {len(diff)})"


def comparison(models: list[str], runs: dict[str, Run], pairs: list[tuple[str, str]]) -> str:
    """Paired differences, A minus B over the units both ran, of the mean UA over conditions and of clean UA."""
    out = ["Paired over the same (fold, seed), A minus B (UA points; units where A is better):", "",
           "| A - B | model | mean UA over conditions | clean UA |", "|---|---|---|---|"]
    for a, b in pairs:
        for model in models:
            mean, clean = paired(model, runs[a], runs[b]), paired(model, runs[a], runs[b], "clean")
            if mean != "-":
                out.append(f"| {a} - {b} | {model} | {mean} | {clean} |")
    return "\n".join(out)


TARGET_DROP = {10.0: 5.0, 0.0: 15.0}   # the limits: UA at this SNR within this many points of clean
TARGET_CLEAN_LOSS = 2.0                 # clean UA at most this many points below clean-only training
TARGET_COMPUTE = 2.5                    # seconds per epoch at most this many times clean-only training's


def target_noises(runs: dict[str, Run]) -> list[str]:
    """The registered noise types the runs were tested on at an SNR, in registry order (the study's: babble,
    ambient, white)."""
    tested = {parse_condition(r["condition"])[0] for run in runs.values() for r in run.records
              if parse_condition(r["condition"])[1] is not None}
    return [n for n in NOISE_TYPES if n in tested]


def targets(model: str, runs: dict[str, Run], references: dict[str, Run]) -> str:
    """The issue's targets for every run of ``model`` against the clean-only run of its feature kind:
    drops from clean in points, degenerate conditions, clean loss, compute, paired difference ('✓' met)."""
    noises = target_noises(runs)
    columns = [f"{n} {snr:g} dB" for snr in TARGET_DROP for n in noises]
    columns += ["degenerate", "clean vs clean-only", "compute vs clean-only", "mean UA", "paired vs clean-only"]
    out = [f"**{model}**: targets (points; ✓ met)", "", "| run | " + " | ".join(columns) + " |",
           "|---|" + "---|" * len(columns)]
    for name, run in runs.items():
        reference = references.get(run.features)
        rows = {r["condition"]: r for r in robustness_matrix([x for x in run.records if x["model"] == model])}
        # clean-only training on the run's own units (fold, seed), so a two-seed run meets a three-seed reference fairly
        units = {(x["fold"], x["seed"]) for x in run.records if x["model"] == model}
        ref = {} if reference is None else {r["condition"]: r for r in robustness_matrix(
            [x for x in reference.records if x["model"] == model and (x["fold"], x["seed"]) in units])}
        if "clean" not in rows or "clean" not in ref:
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
        mine, theirs = per_epoch(run, model), per_epoch(reference, model)
        ratio = None if mine is None or not theirs else mine / theirs
        cells.append("-" if ratio is None else f"{ratio:.1f}x" + (" ✓" if ratio <= TARGET_COMPUTE else ""))
        m, s = mean_std(unit_means([x for x in run.records if x["model"] == model]))
        cells.append(f"{100 * m:.1f} ± {100 * s:.1f}")
        cells.append("-" if run is reference else paired(model, run, reference))
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(path: Path, runs: dict[str, Run], models: list[str]) -> None:
    """UA against SNR: one row of panels per model, one panel per noise type, one line per run."""
    noises = sorted({parse_condition(r["condition"])[0] for run in runs.values() for r in run.records
                     if parse_condition(r["condition"])[1] is not None})
    fig, axes = plt.subplots(len(models), len(noises), figsize=(4.2 * len(noises), 3.3 * len(models)), sharey=True,
                             squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, model in enumerate(models):
        for k, (name, run) in enumerate(runs.items()):
            rows = robustness_matrix([x for x in run.records if x["model"] == model and x.get("model")])
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
    p.add_argument("--compare", nargs=2, action="append", default=[], metavar=("A", "B"),
                   help="also print the paired difference A minus B, unit by unit (repeatable)")
    p.add_argument("--seeds", nargs="+", type=int,
                   help="pool only these seeds' units (to hold runs with different seeds on the same units)")
    p.add_argument("--plot", help="write the accuracy-against-SNR plot of --plot-models here (PNG)")
    p.add_argument("--plot-models", nargs="+", default=["LANCET"], help="models in the plot, one row each")
    p.add_argument("--reference", nargs="+", default=[],
                   help="clean-only runs (one per feature kind): also print the issue's targets against them")
    args = p.parse_args()
    runs = {}
    for name in args.runs:
        folder = Path(args.results) / name
        if not folder.is_dir():
            raise LancetError(f"{folder}: no such run folder")
        runs[name] = load_run(folder, args.seeds)
    missing = [r for r in args.reference + [n for pair in args.compare for n in pair] if r not in runs]
    if missing:
        raise LancetError(f"--reference/--compare {missing[0]}: name it among the runs too")
    references = {runs[r].features: runs[r] for r in args.reference}
    for model in args.models:
        text = table(model, runs)
        if text:
            print(text + "\n")
        if references and (text := targets(model, runs, references)):
            print(text + "\n")
    if args.compare:
        print(comparison(args.models, runs, [tuple(pair) for pair in args.compare]) + "\n")
    if args.plot:
        plot(Path(args.plot), runs, args.plot_models)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    run_cli(main)
