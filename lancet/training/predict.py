"""Label audio files with trained models: same features, same normalisation, pooled segments.

The pieces: :mod:`~lancet.training.predictor` rebuilds one ``best.pt``; :mod:`~lancet.training.ensemble`
lets the fold models of a run (or any ``best.pt`` files) vote together; :mod:`~lancet.training.recording`
streams one recording through them in bounded memory; :mod:`~lancet.training.timeline` labels windows over
time; :mod:`~lancet.training.prediction_table` writes ``--out``. This module ties them together for
``predict.py`` and ``train_LANCET.py --predict``.

A clip with no speech energy or shorter than :data:`MIN_CLIP_S` is labelled as well, with a warning
(:mod:`~lancet.training.audio_checks`). A folder stands for the audio files directly inside it
(:data:`~lancet.core.audio_stream.AUDIO_SUFFIXES`), in name order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from lancet.core.audio import load_audio
from lancet.core.audio_stream import AUDIO_SUFFIXES, BLOCK_S, open_audio_stream
from lancet.core.checks import check_number
from lancet.core.errors import LancetError
from lancet.features.compute import compute_features
from lancet.features.params import params_from_record
from lancet.features.segment import segment_audio, valid_frames

from .audio_checks import MIN_CLIP_S, SILENCE_DBFS, audio_warnings, rms_dbfs  # noqa: F401 (the module's API)
from .ensemble import Ensemble, load_ensemble
from .prediction_table import check_out_path, write_predictions
from .predictor import OLD_FORMAT, Predictor, load_predictor  # noqa: F401 (the module's API)
from .recording import BATCH_SEGMENTS, label_recording, passes
from .timeline import MAX_WINDOW_S, plot_timeline, timeline_geometry, timeline_stem, write_timeline_csv


def expand_inputs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Audio paths from files and folders (a folder: its audio files, sorted); missing ones are an error."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
            if not files:
                raise LancetError(f"{p}: the folder holds no .wav files (nor other audio: "
                                  f"{', '.join(sorted(AUDIO_SUFFIXES))})")
            out.extend(files)
        elif p.is_file():
            out.append(p)
        else:
            raise LancetError(f"{p}: audio file not found")
    return out


def utterance_features(path: str | os.PathLike, record: dict,
                       warnings: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(segments (n, F, T) float32, valid frames (n,)) of a whole file read at once, with the training
    feature parameters: the reference the streamed pass (:mod:`~lancet.training.recording`) equals.

    Reasons to distrust the result (:func:`audio_warnings`) are appended to ``warnings``.
    """
    params, seg = params_from_record(record)
    audio = load_audio(path, sr=seg.sample_rate)
    if warnings is not None:
        warnings.extend(audio_warnings(audio, seg.sample_rate))
    segments, _, real = segment_audio(audio, seg)
    if len(segments) == 0:
        raise LancetError(f"{path}: too short to give one {seg.segment_s:g} s segment "
                          f"({len(audio) / seg.sample_rate:.2f} s; the features were extracted with short='drop')")
    feats = compute_features(segments, params, seg.sample_rate)
    lengths = np.array([valid_frames(params, r, feats.shape[-1]) for r in real], dtype=np.int64)
    return feats, lengths


def predict_file(predictor: Predictor | Ensemble, path: str | os.PathLike, pooling: str | None = None) -> dict:
    """The label and class probabilities of one file (see :func:`~lancet.training.recording.label_recording`)."""
    ens = predictor if isinstance(predictor, Ensemble) else Ensemble([predictor])
    result = label_recording(ens, path, pooling)
    result.pop("timeline")
    return result


def predict_files(checkpoint: str | os.PathLike | Sequence[str | os.PathLike], paths: Sequence[str | os.PathLike],
                  device: str = "auto", pooling: str | None = None, model: str | None = None,
                  window_s: float | None = None, hop_s: float | None = None, timeline: bool = False,
                  block_s: float = BLOCK_S, progress: bool = False,
                  ensemble: Ensemble | None = None) -> tuple[list[dict], list[str]]:
    """Predict every file (a folder: its audio files) with the models of ``checkpoint`` (best.pt files or
    run folders, :func:`~lancet.training.ensemble.load_ensemble`); returns (results, class names).

    Every file's header is read before any model runs, so an unreadable file stops the work at once.
    With ``timeline``, each result's ``timeline`` holds its windows (``window_s``/``hop_s``, by default
    the training segment's).
    """
    if not paths:
        raise LancetError("--predict: give at least one audio file")
    files = expand_inputs(paths)
    ens = ensemble or load_ensemble(checkpoint, model, device)
    _, seg = ens.params
    geometry = timeline_geometry(seg, window_s, hop_s) if timeline else None
    total = sum(open_audio_stream(f, seg.sample_rate, block_s).duration_s for f in files) * passes(ens)
    results = []
    with tqdm(total=round(total, 1), unit="s", desc="audio", disable=not progress, dynamic_ncols=True,
              bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]") as bar:
        for f in files:
            r = label_recording(ens, f, pooling, geometry, block_s, BATCH_SEGMENTS, on_seconds=bar.update)
            if not timeline:
                r.pop("timeline")
            results.append(r)
    return results, ens.class_names


def format_predictions(results: list[dict], class_names: Sequence[str]) -> str:
    """The predictions as a table (one row per file), after one ``warning:`` line per doubtful clip."""
    head = ["file", "prediction", "segments"] + list(class_names)
    rows = [[_printable(Path(r["path"]).name), r["label"], str(r["n_segments"])] + [f"{s:.3f}" for s in r["scores"]]
            for r in results]
    widths = [max(len(row[i]) for row in [head] + rows) for i in range(len(head))]
    notes = [f"warning: {_printable(r['path'])}: {note}" for r in results for note in r.get("warnings", [])]
    return "\n".join(notes + ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [head] + rows])


def _printable(name: str) -> str:
    """A file name on one line of a terminal table (a newline or tab in it would break the columns)."""
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in name)


def write_timelines(results: Sequence[dict], class_names: Sequence[str], folder: str | os.PathLike,
                    describe: str, log: Callable[[str], None] = print) -> list[Path]:
    """``<folder>/<stem>.csv`` and ``.png`` for each result that has two windows or more; returns the files."""
    written: list[Path] = []
    used: set[str] = set()
    single = [r for r in results if len(r.get("timeline") or []) < 2]
    if single:
        log(f"timeline: {len(single)} recording(s) give a single window and have no timeline "
            f"(e.g. {_printable(single[0]['path'])}, {single[0]['duration_s']:.2f} s)")
    for r in results:
        if len(r.get("timeline") or []) < 2:
            continue
        stem = timeline_stem(r["path"], used)
        csv_path, png_path = Path(folder) / f"{stem}.csv", Path(folder) / f"{stem}.png"
        write_timeline_csv(csv_path, r["timeline"], class_names)
        plot_timeline(png_path, r["timeline"], class_names, f"{_printable(Path(r['path']).name)} — {describe}")
        written += [csv_path, png_path]
    return written


def run_predictions(checkpoints: Sequence[str | os.PathLike], inputs: Sequence[str | os.PathLike],
                    model: str | None = None, device: str = "auto", pooling: str | None = None,
                    out: str | os.PathLike | None = None, timeline_dir: str | os.PathLike | None = None,
                    window_s: float | None = None, hop_s: float | None = None, block_s: float = BLOCK_S,
                    progress: bool = True, log: Callable[[str], None] = print) -> list[dict]:
    """``predict.py`` end to end: label, print the table, write ``--out`` and the timelines."""
    if timeline_dir is None and (window_s is not None or hop_s is not None):
        raise LancetError("--window-s/--hop-s shape the windows of --timeline only (a file's label always pools the "
                          "training segments); add --timeline, or leave them out")
    check_number("--block-s", block_s, above=0, maximum=MAX_WINDOW_S)
    if out is not None:
        check_out_path(out)  # before hours of work, not after
    ens = load_ensemble(checkpoints, model, device)
    results, names = predict_files(checkpoints, inputs, pooling=pooling, window_s=window_s, hop_s=hop_s,
                                   timeline=timeline_dir is not None, block_s=block_s, progress=progress,
                                   ensemble=ens)
    log(ens.describe())
    log(format_predictions(results, names))
    if out is not None:
        log(f"predictions: {write_predictions(out, results, names, [p.source for p in ens.predictors])}")
    if timeline_dir is not None:
        files = write_timelines(results, names, timeline_dir, ens.describe(), log)
        if files:
            log(f"timelines: {len(files) // 2} recording(s) in {timeline_dir} (CSV and PNG)")
    return results
