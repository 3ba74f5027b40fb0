"""Reports: per-fold records (JSON/CSV), the robustness summary (JSON/CSV, printed table) and PNG plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from lancet.core.atomic import atomic_path, save_json
from lancet.core.csv_safe import save_safe_csv

from lancet.core.conditions import condition_sort_key, parse_condition

from .metrics import DEGENERATE_SHARE, degenerate_class, dominant_prediction

RECORD_FIELDS = ["model", "train_on", "train_condition", "fold", "seed", "condition", "noise_type", "snr_db",
                 "wa", "ua", "macro_f1", "segment_wa", "segment_ua", "n_utterances", "n_segments",
                 "best_epoch", "val_wa", "val_ua", "degenerate", "dominant_share", "norm", "test_noise"]
SUMMARY_FIELDS = ["model", "train_on", "condition", "noise_type", "snr_db", "runs", "folds", "seeds",
                  "wa_mean", "wa_std", "ua_mean", "ua_std", "macro_f1_mean", "macro_f1_std",
                  "degenerate_runs", "degenerate", "test_noise"]


def record_fields(class_names: Sequence[str]) -> list[str]:
    return RECORD_FIELDS + [f"recall_{c}" for c in class_names]


def flag_degenerate(records: list[dict], class_names: Sequence[str]) -> list[dict]:
    """Add ``degenerate`` (the dominant class when it takes > 90 % of the predictions, else "") and
    ``dominant_share`` to every record that has a confusion matrix (in place; returned for chaining)."""
    for r in records:
        if "confusion" in r:
            r["degenerate"] = degenerate_class(r["confusion"], class_names)
            r["dominant_share"] = dominant_prediction(r["confusion"])[1]
    return records


def write_records(path_stem: Path, records: list[dict], class_names: Sequence[str]) -> None:
    """``<stem>.json`` (with confusion matrices) and ``<stem>.csv`` (one row per record); degenerate
    conditions are flagged on the way (:func:`flag_degenerate`)."""
    flag_degenerate(records, class_names)
    save_json(path_stem.with_suffix(".json"), records)
    rows = []
    for r in records:
        row = dict(r)
        for name, value in zip(class_names, r.get("recall", [])):
            row[f"recall_{name}"] = value
        rows.append(row)
    save_safe_csv(path_stem.with_suffix(".csv"), rows, record_fields(class_names))


def _pct(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{100 * mean:5.1f}±{100 * std:4.1f}"


def format_summary(rows: list[dict], speaker_independent: bool) -> str:
    """Conditions down, (model, training condition) across; each cell 'WA mean±std / UA mean±std' in %."""
    if not rows:
        return "(no results)"
    columns = list(dict.fromkeys((r["model"], r["train_on"]) for r in rows))
    conditions = sorted({r["condition"] for r in rows}, key=condition_sort_key)
    cell = {(r["model"], r["train_on"], r["condition"]): r for r in rows}
    head = ["condition"] + [f"{m} (train {t})" for m, t in columns]
    lines = []
    for cond in conditions:
        line = [cond]
        for m, t in columns:
            r = cell.get((m, t, cond))
            line.append("-" if r is None else f"WA {_pct(r['wa_mean'], r['wa_std'])} / UA {_pct(r['ua_mean'], r['ua_std'])}"
                        + (" !" if r.get("degenerate_runs") else ""))
        lines.append(line)
    widths = [max(len(row[i]) for row in [head] + lines) for i in range(len(head))]
    fmt = lambda row: "  ".join(v.ljust(w) for v, w in zip(row, widths))  # noqa: E731
    runs = sorted({r["runs"] for r in rows})
    title = ("speaker-independent (leave-one-session-out)" if speaker_independent
             else "SPEAKER-DEPENDENT (random utterance split, as published)")
    out = [f"Utterance-level WA / UA in % (mean ± std over folds x seeds; runs per cell: "
           f"{', '.join(map(str, runs))}) — {title}", fmt(head), fmt(["-" * w for w in widths])]
    out += [fmt(line) for line in lines]
    flagged = [r for r in rows if r.get("degenerate_runs")]
    if flagged:
        out.append(f"! degenerate: one class takes more than {100 * DEGENERATE_SHARE:.0f} % of the predictions "
                   f"(the figure is chance, not a measurement):")
        out += [f"  {r['model']} (train {r['train_on']}) {r['condition']}: {r['degenerate']} in "
                f"{r['degenerate_runs']} of {r['runs']} runs" for r in flagged]
    noise_notes = dict.fromkeys((r["noise_type"], r.get("test_noise")) for r in rows if r.get("test_noise"))
    if noise_notes:
        out.append("test noise: " + "; ".join(f"{nt}: {note}" for nt, note in noise_notes))
    return "\n".join(out)


def _savefig(fig, path: Path) -> None:
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")


def plot_confusions(path: Path, confusions: dict[str, np.ndarray], class_names: Sequence[str], title: str) -> None:
    """One row-normalised confusion matrix per condition (summed over folds and seeds), in a grid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = sorted(confusions, key=condition_sort_key)
    n = len(conds)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    short = [c[:3] for c in class_names]
    for ax, cond in zip(axes.ravel(), conds):
        cm = np.asarray(confusions[cond], dtype=np.float64)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(short)), short, fontsize=7)
        ax.set_yticks(range(len(short)), short, fontsize=7)
        ax.set_title(cond, fontsize=8)
    fig.suptitle(title + " (rows: reference, % of row)", fontsize=9)
    _savefig(fig, path)
    plt.close(fig)


def plot_snr(path: Path, rows: list[dict], noise_type: str, title: str) -> None:
    """WA and UA against SNR for one noise type, one line per (model, training); clean as dashed lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    series = list(dict.fromkeys((r["model"], r["train_on"]) for r in rows))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (model, train_on) in enumerate(series):
        colour = colours[k % len(colours)]
        pts = sorted((r for r in rows if (r["model"], r["train_on"]) == (model, train_on)
                      and r["noise_type"] == noise_type and r["snr_db"] != ""), key=lambda r: float(r["snr_db"]))
        clean = [r for r in rows if (r["model"], r["train_on"]) == (model, train_on) and r["condition"] == "clean"]
        for ax, key in zip(axes, ("wa", "ua")):
            if pts:
                ax.errorbar([float(r["snr_db"]) for r in pts], [100 * r[f"{key}_mean"] for r in pts],
                            yerr=[100 * r[f"{key}_std"] for r in pts], marker="o", capsize=3, color=colour,
                            label=f"{model} (train {train_on})")
            if clean:
                ax.axhline(100 * clean[0][f"{key}_mean"], color=colour, linestyle="--", linewidth=1)
    for ax, key in zip(axes, ("WA", "UA")):
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel(f"{key} (%)")
        ax.set_title(f"{key} vs SNR, {noise_type} (dashed: clean)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    _savefig(fig, path)
    plt.close(fig)


def write_summary(run_dir: Path, records: list[dict], rows: list[dict], class_names: Sequence[str],
                  speaker_independent: bool) -> dict[str, Path]:
    """Write every report of a run; returns the paths written."""
    paths: dict[str, Path] = {}
    write_records(run_dir / "metrics_all", records, class_names)
    paths["records"] = run_dir / "metrics_all.csv"
    save_json(run_dir / "summary.json", {"speaker_independent": speaker_independent, "rows": rows})
    save_safe_csv(run_dir / "summary.csv", rows, SUMMARY_FIELDS)  # a spreadsheet never runs a cell
    paths["summary"] = run_dir / "summary.csv"
    plots = run_dir / "plots"
    kind = "speaker-independent" if speaker_independent else "speaker-dependent"
    for model, train_on in dict.fromkeys((r["model"], r["train_on"]) for r in records):
        confusions: dict[str, np.ndarray] = {}
        for r in records:
            if (r["model"], r["train_on"]) == (model, train_on):
                cm = np.asarray(r["confusion"])
                confusions[r["condition"]] = confusions.get(r["condition"], 0) + cm
        p = plots / f"confusion_{model}_train-{train_on}.png"
        plot_confusions(p, confusions, class_names, f"{model}, trained on {train_on}, {kind}")
        paths[f"confusion_{model}_{train_on}"] = p
    noise_types = sorted({parse_condition(r["condition"])[0] for r in rows if parse_condition(r["condition"])[1] is not None})
    for noise in noise_types:
        p = plots / f"snr_{noise}.png"
        plot_snr(p, rows, noise, f"Accuracy vs SNR ({noise}), {kind}")
        paths[f"snr_{noise}"] = p
    return paths
