"""Emotion over time in a long recording: labels and class probabilities per window, as CSV and PNG.

A 40-minute interview averaged into one label says little; the timeline labels each window of
``window_s`` seconds every ``hop_s`` seconds (by default the training segment and its hop, so each
window is exactly one segment the model was trained on). Each window is labelled as prediction labels a
file holding only that excerpt: its segments' softmax outputs averaged (over the segments, then over the
models that vote), normalised with the excerpt's own statistics under ``--norm utterance``. Windows are
cut by the training rule: every hop, plus one aligned to the end of the recording.

The CSV has one row per window (``start_s``, ``end_s``, ``label``, ``prob_<class>``); the PNG draws each
class's probability over time (at the window centres) above a bar of the labels.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from lancet.core.atomic import atomic_path
from lancet.core.csv_safe import write_safe_csv
from lancet.core.errors import LancetError
from lancet.features.params import SegmentParams

#: Above this length the time axis is in minutes.
MINUTES_AFTER_S = 300.0


@dataclass(frozen=True)
class TimelineRow:
    """One window: its span in the recording (seconds), label and class probabilities."""

    start_s: float
    end_s: float
    label: str
    probs: tuple[float, ...]

    @property
    def centre_s(self) -> float:
        return 0.5 * (self.start_s + self.end_s)


#: Longest timeline window or hop (one hour, the extraction's longest segment): a window is held whole.
MAX_WINDOW_S = 3600.0


def timeline_geometry(seg: SegmentParams, window_s: float | None = None, hop_s: float | None = None) -> SegmentParams:
    """The windows of a timeline: ``window_s`` / ``hop_s``, by default the training segment's.

    Example:
        >>> g = timeline_geometry(SegmentParams(segment_s=2.0, hop_s=1.0), hop_s=0.5)
        >>> g.segment_s, g.hop_s, g.short
        (2.0, 0.5, 'pad')
    """
    window = seg.segment_s if window_s is None else float(window_s)
    hop = seg.hop_s if hop_s is None else float(hop_s)
    for flag, value in (("--window-s", window), ("--hop-s", hop)):
        if not (math.isfinite(value) and value > 0) or round(value * seg.sample_rate) < 1:
            raise LancetError(f"{flag} {value:g}: must be a positive number of seconds")
        if value > MAX_WINDOW_S:  # a window is held in memory whole: 1e9 s would ask for 58 TiB
            raise LancetError(f"{flag} {value:g}: must be at most {MAX_WINDOW_S:g} s")
    return SegmentParams(segment_s=window, hop_s=hop, tail_min_s=seg.tail_min_s, short="pad",
                         sample_rate=seg.sample_rate)


def rows_from_probs(spans: Sequence[tuple[int, int]], probs: np.ndarray, class_names: Sequence[str],
                    sample_rate: int) -> list[TimelineRow]:
    """Rows of windows given as (start sample, real samples) with their probabilities (n, classes)."""
    return [TimelineRow(start / sample_rate, (start + n_real) / sample_rate, class_names[int(np.argmax(p))],
                        tuple(float(v) for v in p)) for (start, n_real), p in zip(spans, probs)]


def timeline_stem(audio_path: str | os.PathLike, used: set[str]) -> str:
    """A file name for a recording's timeline: its stem, made safe, numbered when two inputs share it.

    Example:
        >>> used = set()
        >>> timeline_stem("a/talk.wav", used), timeline_stem("b/talk.flac", used), timeline_stem("x\\ny.wav", used)
        ('talk', 'talk_2', 'x_y')
    """
    stem = re.sub(r"[\x00-\x1f\x7f/\\]", "_", Path(audio_path).stem) or "audio"
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return name


def write_timeline_csv(path: Path, rows: Sequence[TimelineRow], class_names: Sequence[str]) -> None:
    write_safe_csv(path, ["start_s", "end_s", "label"] + [f"prob_{c}" for c in class_names],
                   ([round(r.start_s, 4), round(r.end_s, 4), r.label] + [round(p, 6) for p in r.probs] for r in rows))


def plot_timeline(path: Path, rows: Sequence[TimelineRow], class_names: Sequence[str], title: str,
                  reference: Sequence[tuple[float, float, str]] | None = None) -> None:
    """Class probabilities over time (one line per class, at window centres) above the label bar; with
    ``reference`` (start s, end s, class) spans, a bar of what the recording really holds under it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = max(r.end_s for r in rows)
    scale, unit = (60.0, "min") if end > MINUTES_AFTER_S else (1.0, "s")
    colours = plt.get_cmap("tab10").colors
    ratios = [5, 1] + ([1] if reference else [])
    fig, axes = plt.subplots(len(ratios), 1, figsize=(10, 3.3 + 0.5 * len(ratios)), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    top, bar = axes[0], axes[1]
    centres = np.array([r.centre_s for r in rows]) / scale
    probs = np.array([r.probs for r in rows])
    for k, name in enumerate(class_names):
        top.plot(centres, probs[:, k], color=colours[k % len(colours)], linewidth=1.4, label=name)
    top.set_ylim(0, 1)
    top.set_ylabel("probability")
    top.grid(alpha=0.3)
    top.legend(fontsize=7, ncol=len(class_names), loc="upper right", framealpha=0.8)
    top.set_title(title, fontsize=9)
    # the label bar tiles the time axis: each window owns the time up to halfway to its neighbours
    edges = np.concatenate([[rows[0].start_s], 0.5 * (centres[1:] + centres[:-1]) * scale, [end]]) / scale
    index = {c: k for k, c in enumerate(class_names)}
    for r, left, right in zip(rows, edges[:-1], edges[1:]):
        bar.axvspan(left, right, color=colours[index[r.label] % len(colours)], linewidth=0)
    for start, stop, label in reference or []:
        axes[2].axvspan(start / scale, stop / scale, color=colours[index[label] % len(colours)], linewidth=0)
    for ax, name in zip(axes[1:], ("label", "reference")):
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlim(rows[0].start_s / scale, end / scale)
    axes[-1].set_xlabel(f"time ({unit})")
    fig.tight_layout()
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
