"""Cut an utterance into fixed-length segments.

Rule (lengths in samples; defaults: segment L = 2 s, hop H = 1 s, tail_min = 0.5 s):

* An utterance of at least L samples gives the regular segments starting at 0, H, 2H, ... that fit
  completely (the published code's rule). If the audio left after the last regular segment is longer
  than ``tail_min``, one more segment *aligned to the end* (start = n - L) is added, so no more than
  ``tail_min`` of speech is ever lost. With H = 1 s the uncovered tail is always shorter than 1 s, so
  ``tail_min >= hop`` reproduces the original (tail dropped).
* An utterance shorter than L is zero-padded at the end to L (one segment) when ``short == "pad"``
  (this project's default). The published code *drops* such utterances; ``short == "drop"`` does too.

Each segment records how many samples of real audio it holds; :func:`valid_frames` turns that into
the number of feature frames whose centre lies inside the real audio (all T frames for a full segment).
"""

from __future__ import annotations

import math

import numpy as np

from lancet.features.params import FeatureParams, SegmentParams


def segment_starts(n_samples: int, seg: SegmentParams) -> list[int]:
    """Start sample of every segment of an utterance of ``n_samples`` samples (may be empty)."""
    length, hop = seg.segment_samples, seg.hop_samples
    if n_samples <= 0:
        return []
    if n_samples < length:
        return [0] if seg.short == "pad" else []
    starts = list(range(0, n_samples - length + 1, hop))
    tail = n_samples - (starts[-1] + length)
    if tail > 0 and tail > seg.tail_min_samples:
        starts.append(n_samples - length)
    return starts


def segment_audio(audio: np.ndarray, seg: SegmentParams) -> tuple[np.ndarray, list[int], list[int]]:
    """Return (segments (n, L) float32, start samples, real samples per segment)."""
    audio = np.asarray(audio, dtype=np.float32)
    n = audio.shape[0]
    length = seg.segment_samples
    starts = segment_starts(n, seg)
    out = np.zeros((len(starts), length), dtype=np.float32)
    real = []
    for i, s in enumerate(starts):
        chunk = audio[s : s + length]
        out[i, : chunk.shape[0]] = chunk
        real.append(int(chunk.shape[0]))
    return out, starts, real


def valid_frames(params: FeatureParams, n_real: int, n_frames: int) -> int:
    """Frames (of ``n_frames``) whose centre sample lies within the first ``n_real`` samples; >= 1."""
    offset = params.frame_centre(0)
    count = math.floor((n_real - offset) / params.hop_length) + 1
    return int(min(max(count, 1), n_frames))
