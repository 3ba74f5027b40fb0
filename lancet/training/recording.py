"""One recording labelled in a streamed pass: the file's label from its segments, and its timeline.

The audio is read in blocks (:mod:`lancet.core.audio_stream`) and cut into the training segments as it
arrives (:class:`~lancet.training.windows.Windower`); every ``batch`` segments go through the features and
every model that votes, and only their class probabilities are kept (a few numbers per segment). A
two-hour recording therefore never sits in memory, neither as audio nor as features: memory holds one
block, one window and one batch of features whatever the length.

The file's label pools its segments per model as that model was evaluated (``mean`` of the softmax or
``vote``), then averages the models' class probabilities; the windows of a timeline
(:mod:`lancet.training.timeline`) come from the same pass. Models trained with ``--norm utterance``
normalise by the statistics of the whole file, so for them a first pass gathers those statistics and a
second one predicts (twice the reading and feature work, still in bounded memory).
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, Sequence

import numpy as np

from lancet.core.audio_stream import BLOCK_S, AudioStream, open_audio_stream
from lancet.core.errors import LancetError
from lancet.features.compute import compute_features
from lancet.features.params import SegmentParams
from lancet.features.segment import segment_audio, valid_frames
from lancet.ssl import extract_layer_means, pad_waves

from .audio_checks import Level
from .ensemble import Ensemble
from .evaluate import pool_utterances
from .feature_norm import MIN_STD, utterance_stats
from .timeline import TimelineRow, rows_from_probs
from .windows import Window, Windower

#: Segments put through the features and the models at once: 32 log-Mel segments are 3.3 MB.
BATCH_SEGMENTS = 32


class FrameStats:
    """Per-bin mean and std over the valid frames of segments added batch by batch: what
    :func:`~lancet.training.feature_norm.utterance_stats` gives for one utterance, without holding it.

    Sums are taken around the first batch's mean, in float64, so the one-pass variance keeps its digits
    on log features.
    """

    def __init__(self) -> None:
        self.shift: np.ndarray | None = None
        self.s1 = self.s2 = None
        self.count = 0.0

    def add(self, feats: np.ndarray, lengths: np.ndarray) -> None:
        x = np.asarray(feats, dtype=np.float64)
        valid = (np.arange(x.shape[-1])[None, :] < np.maximum(np.asarray(lengths), 1)[:, None])[:, None, :]
        if self.shift is None:
            self.shift = np.where(valid, x, 0.0).sum(axis=(0, 2)) / valid.sum()
            self.s1, self.s2 = np.zeros_like(self.shift), np.zeros_like(self.shift)
        d = np.where(valid, x - self.shift[None, :, None], 0.0)
        self.s1 += d.sum(axis=(0, 2))
        self.s2 += np.square(d).sum(axis=(0, 2))
        self.count += float(valid.sum())

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (1, F), std (1, F)) float32, the std floored as in training."""
        mean_d = self.s1 / self.count
        var = np.maximum(self.s2 / self.count - np.square(mean_d), 0.0)
        return ((self.shift + mean_d)[None].astype(np.float32),
                np.maximum(np.sqrt(var), MIN_STD)[None].astype(np.float32))


def window_features(ens: Ensemble, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, F, T), valid frames (n,)) of training-length windows; for models over an upstream, each
    window's real audio as one utterance: its per-layer means (n, L, H) and frames, or the audio zero-padded
    (n, samples) and its samples."""
    params, seg = ens.params
    if ens.input == "features":
        feats = compute_features(np.stack([w.audio for w in windows]), params, seg.sample_rate)
        lengths = np.array([valid_frames(params, w.n_real, feats.shape[-1]) for w in windows], dtype=np.int64)
        return feats, lengths
    audio = [w.audio[:w.n_real] for w in windows]
    if ens.input == "audio":
        x, n = pad_waves(audio)
        return x.numpy(), n.numpy()
    means, frames = extract_layer_means(ens.upstream, audio, amp=ens.predictors[0].amp_dtype)
    return means, frames


def _windows(stream: AudioStream, windowers: Sequence[Windower],
             on_block: Callable[[np.ndarray], None] | None = None) -> Iterator[tuple[int, Window]]:
    """(which windower, window) for every window of every windower, from one read of ``stream``."""
    for block in stream.blocks():
        if on_block is not None:
            on_block(block)
        for i, w in enumerate(windowers):
            for window in w.push(block):
                yield i, window
    for i, w in enumerate(windowers):
        for window in w.finish():
            yield i, window


def _batched(items: Iterator[tuple[int, Window]], n: int, size: int) -> Iterator[tuple[int, list[Window]]]:
    """Group the windows of each of ``n`` kinds into lists of ``size`` (the last ones shorter)."""
    pending: list[list[Window]] = [[] for _ in range(n)]
    for i, window in items:
        pending[i].append(window)
        if len(pending[i]) >= size:
            yield i, pending[i]
            pending[i] = []
    for i, rest in enumerate(pending):
        if rest:
            yield i, rest


def file_stats(ens: Ensemble, stream: AudioStream, batch: int,
               on_seconds: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``--norm utterance`` statistics of the whole recording (one streamed pass over its segments)."""
    _, seg = ens.params
    stats = FrameStats()
    seconds = None if on_seconds is None else (lambda block: on_seconds(len(block) / seg.sample_rate))
    for _, windows in _batched(_windows(stream, [Windower.for_segments(seg)], seconds), 1, batch):
        stats.add(*window_features(ens, windows))
    if stats.shift is None:
        raise _too_short(stream.path, seg, stream.duration_s)
    return stats.result()


def excerpt_probs(ens: Ensemble, windows: Sequence[Window]) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Each window labelled as a file holding only that excerpt: (spans, probabilities (n, classes)).

    A window's segments are cut by the training rule, their softmax outputs averaged, then averaged over
    the models; under ``--norm utterance`` each window is normalised by its own statistics. Windows that
    give no segment (shorter than one with ``short='drop'``) are left out.
    """
    _, seg = ens.params
    cuts = [segment_audio(w.audio[:w.n_real], seg) for w in windows]
    owners = np.concatenate([np.full(len(c[0]), k, np.int64) for k, c in enumerate(cuts)])
    if not len(owners):
        return [], np.zeros((0, len(ens.class_names)))
    parts = [Window(s, a, r) for c in cuts for a, s, r in zip(c[0], c[1], c[2])]
    feats, lengths = window_features(ens, parts)
    stats = None
    if ens.needs_utterance_stats:
        mean, std = utterance_stats(feats, lengths, owners, len(windows))
        stats = (mean[owners], std[owners])
    probs = ens.segment_probs(feats, lengths, stats).mean(axis=0)          # over the models
    pooled, _ = pool_utterances(probs, owners, len(windows), "mean")        # over each window's segments
    kept = np.unique(owners)
    return [(windows[k].start, windows[k].n_real) for k in kept], pooled[kept]


def vote(ens: Ensemble, probs: np.ndarray, pooling: str | None = None) -> tuple[np.ndarray, int]:
    """(class probabilities, label index) of a file from its segments' probabilities (models, n, classes).

    Each model pools the segments as it was evaluated (or by ``pooling``); the models' pooled
    probabilities are averaged; a tie is broken by the higher mean softmax, as ``--pooling vote`` does.
    """
    n = probs.shape[1]
    utt = np.zeros(n, np.int64)
    pooled = np.stack([pool_utterances(p, utt, 1, pooling or pred.pooling)[0][0]
                       for p, pred in zip(probs, ens.predictors)]).mean(axis=0)
    tie_break = probs.astype(np.float64).mean(axis=(0, 1))
    best = np.where(pooled == pooled.max(), tie_break, -np.inf)
    return pooled, int(np.argmax(best))


def passes(ens: Ensemble) -> int:
    """How many times a recording is read: twice for models that need the whole file's statistics."""
    return 2 if ens.needs_utterance_stats else 1


def label_recording(ens: Ensemble, path: str | os.PathLike, pooling: str | None = None,
                    timeline: SegmentParams | None = None, block_s: float = BLOCK_S, batch: int = BATCH_SEGMENTS,
                    on_seconds: Callable[[float], None] | None = None) -> dict:
    """Label ``path`` with every model of ``ens``, streaming it (see the module docstring).

    ``timeline``: the window geometry (:func:`~lancet.training.timeline.timeline_geometry`) to also label
    windows. ``on_seconds(s)`` is called as audio is read (progress bars). Returns a dict with ``path``,
    ``label``, ``scores`` (class probabilities), ``n_segments``, ``duration_s``, ``models``, ``warnings``
    and ``timeline`` (a list of :class:`~lancet.training.timeline.TimelineRow`, or None).
    """
    _, seg = ens.params
    stream = open_audio_stream(path, seg.sample_rate, block_s)
    stats = file_stats(ens, stream, batch, on_seconds) if ens.needs_utterance_stats else None
    # with the training geometry and no file statistics, the timeline's windows are the file's segments
    shared = timeline is not None and not ens.needs_utterance_stats and _same_windows(timeline, seg)
    windowers = [Windower.for_segments(seg)]
    if timeline is not None and not shared:
        windowers.append(Windower.for_segments(timeline))
    level = Level(seg.sample_rate)

    def on_block(block: np.ndarray) -> None:
        level.add(block)
        if on_seconds is not None:
            on_seconds(len(block) / seg.sample_rate)

    seg_probs: list[np.ndarray] = []
    spans: list[tuple[int, int]] = []
    window_spans: list[tuple[int, int]] = []
    window_probs: list[np.ndarray] = []
    for kind, windows in _batched(_windows(stream, windowers, on_block), len(windowers), batch):
        if kind == 0:
            feats, lengths = window_features(ens, windows)
            file_level = None if stats is None else (np.repeat(stats[0], len(windows), 0),
                                                     np.repeat(stats[1], len(windows), 0))
            seg_probs.append(ens.segment_probs(feats, lengths, file_level))
            spans.extend((w.start, w.n_real) for w in windows)
        else:
            s, p = excerpt_probs(ens, windows)
            window_spans.extend(s)
            window_probs.append(p)
    if not seg_probs:
        raise _too_short(stream.path, seg, level.seconds)
    probs = np.concatenate(seg_probs, axis=1)
    scores, label = vote(ens, probs, pooling)
    rows: list[TimelineRow] | None = None
    if shared:
        rows = rows_from_probs(spans, probs.mean(axis=0), ens.class_names, seg.sample_rate)
    elif timeline is not None:
        rows = rows_from_probs(window_spans, np.concatenate(window_probs) if window_probs else np.zeros((0, 0)),
                               ens.class_names, seg.sample_rate)
    return {"path": str(path), "label": ens.class_names[label], "scores": scores.tolist(),
            "n_segments": int(probs.shape[1]), "duration_s": level.seconds, "models": len(ens),
            "warnings": level.warnings(), "timeline": rows}


def _same_windows(a: SegmentParams, b: SegmentParams) -> bool:
    return (a.segment_samples, a.hop_samples, a.tail_min_samples) == (b.segment_samples, b.hop_samples,
                                                                      b.tail_min_samples)


def _too_short(path, seg: SegmentParams, seconds: float) -> LancetError:
    return LancetError(f"{path}: too short to give one {seg.segment_s:g} s segment ({seconds:.2f} s; the features "
                       f"were extracted with short='drop')")
