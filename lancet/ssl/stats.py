"""Per-layer masked means of each utterance: the sufficient statistic of SUPERB's frozen probe.

SUPERB's head (weighted sum of all hidden layers, linear projection, mean over the valid frames, linear
classifier) is linear up to the classifier, so the mean over frames commutes with everything before it:
``classifier(proj(sum_l w_l mean_t h_lt))`` is the head. Storing ``mean_t h_lt`` for every layer l, a
(layers, hidden) array per utterance (13 x 768 for a base model, 40 kB in float32), lets a probe train
for many folds, seeds and noise conditions without running the upstream again.

The unit is the **whole utterance**, not the CNNs' 2 s segments: SUPERB's emotion task pools each whole
utterance, the transformer's attention sees the whole utterance, and a mean over all valid frames is one
statistic. In the feature store this is one "segment" per utterance (``start_s`` 0) holding the
(L, H) statistic, with ``valid_frames`` = the number of upstream frames it averages.

Extraction batches utterances sorted by length within a read-ahead window (:mod:`lancet.ssl.batching`)
and yields results in the input order, so a store can be written sequentially; on CUDA under bf16/fp16
autocast (means accumulated in float32), on the CPU with all usable cores.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from itertools import islice
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from lancet.core.device import autocast_context, resolve_amp
from lancet.core.errors import LancetError
from lancet.core.workers import available_cpus
from lancet.ssl.batching import pad_waves, plan_batches
from lancet.ssl.masks import masked_mean
from lancet.ssl.upstream import Upstream

#: Padded seconds of audio per batch: on a GPU large batches fill the device (a base model's hidden states
#: for 320 s are 13 x 16,000 x 768 floats, 0.6 GB); on a CPU batching gains little and memory matters more.
BATCH_SECONDS = {"cpu": 32.0, "cuda": 320.0}
#: Utterances read ahead and sorted by length before they are cut into batches.
WINDOW = 512


@dataclass
class UtteranceStats:
    """One utterance's statistic: ``means`` (layers, hidden) float32 and the ``frames`` it averages."""

    means: np.ndarray
    frames: int


def layer_means(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """(B, L, H) float32: the mean of every hidden state (B, T, H) over the valid frames of ``mask`` (B, T).

    Example:
        >>> h = [torch.ones(1, 3, 2), torch.arange(6.0).reshape(1, 3, 2)]
        >>> layer_means(h, torch.tensor([[True, True, False]])).tolist()
        [[[1.0, 1.0], [1.0, 2.0]]]
    """
    return torch.stack([masked_mean(h.float(), mask) for h in hidden_states], dim=1)


@contextlib.contextmanager
def cpu_threads(threads: int | None, device: torch.device):
    """Run torch on ``threads`` CPU threads (None: every usable core) inside the block; nothing on CUDA."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(available_cpus() if not threads else int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def iter_layer_means(upstream: Upstream, waves: Iterable[np.ndarray], *, amp: str | torch.dtype | None = "auto",
                     batch_seconds: float | None = None, max_items: int = 64, window: int = WINDOW,
                     sort: bool = True, threads: int | None = None) -> Iterator[UtteranceStats]:
    """An :class:`UtteranceStats` for every 16 kHz waveform of ``waves``, in the same order.

    Runs on the upstream's device, autocast as ``amp`` says: a dtype, None, or a ``--amp`` word for
    :func:`lancet.core.device.resolve_amp` (the default ``auto``: bf16 where the GPU has it, else fp16;
    full precision on the CPU). ``window`` utterances are read ahead,
    sorted by length (``sort=False``: kept in order, for comparison) and cut into batches of at most
    ``batch_seconds`` of padded audio (default :data:`BATCH_SECONDS`) and ``max_items`` utterances.
    ``threads``: CPU threads (default: every usable core). An utterance shorter than
    ``upstream.min_samples`` is a :class:`LancetError`: leave those out first.
    """
    device = upstream.device
    amp_dtype = resolve_amp(amp, device) if isinstance(amp, str) else amp
    seconds = batch_seconds if batch_seconds is not None else BATCH_SECONDS.get(device.type, BATCH_SECONDS["cuda"])
    max_samples = max(1, int(seconds * upstream.sample_rate))
    items = iter(waves)
    was_training = upstream.training
    upstream.eval()
    try:
        while chunk := list(islice(items, max(1, window))):
            results: list[UtteranceStats | None] = [None] * len(chunk)
            for batch in plan_batches([len(w) for w in chunk], max_samples, max_items, sort):
                for i, stats in zip(batch, _batch_means(upstream, [chunk[i] for i in batch], amp_dtype, threads)):
                    results[i] = stats
            yield from results  # type: ignore[misc]
    finally:
        upstream.train(was_training)


def _batch_means(upstream: Upstream, waves: list[np.ndarray], amp_dtype: torch.dtype | None,
                 threads: int | None) -> list[UtteranceStats]:
    device = upstream.device
    short = [len(w) for w in waves if len(w) < upstream.min_samples]
    if short:
        raise LancetError(f"upstream {upstream.source}: an utterance of {short[0]} samples is shorter than the "
                          f"model's first frame ({upstream.min_samples} samples); leave such utterances out")
    x, lengths = pad_waves(waves)
    x = x.to(device, non_blocking=True)
    lengths = lengths.to(device)
    with cpu_threads(threads, device), torch.inference_mode(), autocast_context(device, amp_dtype):
        out = upstream(x, lengths)
        means = layer_means(out.hidden_states, out.mask)
    means_np = means.float().cpu().numpy()
    frames = out.frames.cpu().tolist()
    return [UtteranceStats(means_np[i], int(frames[i])) for i in range(len(waves))]


def extract_layer_means(upstream: Upstream, waves: Sequence[np.ndarray], **options) -> tuple[np.ndarray, np.ndarray]:
    """(N, L, H) float32 statistics and (N,) frame counts of ``waves``; options as :func:`iter_layer_means`."""
    stats = list(iter_layer_means(upstream, waves, **options))
    if not stats:
        return np.zeros((0, upstream.n_layers, upstream.hidden_size), np.float32), np.zeros(0, np.int64)
    return np.stack([s.means for s in stats]), np.array([s.frames for s in stats], dtype=np.int64)
