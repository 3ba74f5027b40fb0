"""The ``ssl`` feature kind: per-layer means of a self-supervised upstream over each whole utterance, stored.

The extraction driver (:mod:`lancet.features.extract`) does what it does for every kind: one array and one
index per condition, resumable, checksummed, params.json. Here its worker pool only decodes each utterance
whole, and this process streams the audio through the upstream (:func:`lancet.ssl.iter_layer_means`: batches
sorted by length; bf16/fp16 autocast on a GPU, the CPU's threads otherwise), one row of (layers, hidden) per
utterance with ``valid_frames`` = the upstream frames it averages and ``start_s`` 0. An utterance shorter
than the upstream's first frame is counted as too short and left out.

params.json records the upstream's identity (source, revision, architecture, a hash of the weights, the
transformers release) and the precision of the pass (:class:`~lancet.features.params.SslParams`), so a rerun
with another checkpoint into the same folder is refused, as is a cross-corpus test store of other weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from lancet.core.device import resolve_amp, resolve_device
from lancet.core.checks import check_number
from lancet.core.workers import available_cpus
from lancet.features.extract import ConditionStream, ExtractSummary, StreamFactory, extract_features
from lancet.features.params import SslParams
from lancet.features.store import NpyStreamWriter
from lancet.ssl import Upstream, iter_layer_means, load_upstream
from lancet.ssl.stats import WINDOW
from lancet.ssl.upstream import looks_like_path

#: Utterances held before they go through the upstream together (sorted by length): the GPU's read-ahead, and
#: on a CPU a window that keeps the progress bar moving (a base model takes 1-3 s per second of audio there).
WINDOWS = {"cpu": 64, "cuda": WINDOW}
#: Decoding a 16 kHz wav costs little next to the upstream: two reading processes keep it fed.
DEFAULT_WORKERS = 2


def precision_name(amp_dtype: torch.dtype | None) -> str:
    """How params.json names the precision of the pass.

    Example:
        >>> precision_name(None), precision_name(torch.bfloat16)
        ('float32', 'bfloat16')
    """
    return "float32" if amp_dtype is None else str(amp_dtype).removeprefix("torch.")


def upstream_source(source: str | os.PathLike) -> str:
    """The name a store records: a folder as its absolute path (the same folder named two ways is one
    upstream), a hub name as given.

    Example:
        >>> upstream_source("microsoft/wavlm-base-plus")
        'microsoft/wavlm-base-plus'
    """
    text = str(source)
    folder = Path(text).expanduser()
    return str(folder.resolve()) if folder.is_dir() or looks_like_path(text) else text


def ssl_params(upstream: Upstream, amp_dtype: torch.dtype | None) -> SslParams:
    """The kind's parameters for ``upstream`` computed at ``amp_dtype`` (None: float32)."""
    identity = upstream.identity()
    identity["source"] = upstream_source(upstream.source)
    return SslParams.from_identity(identity, upstream.min_samples, precision_name(amp_dtype))


class SslConditionStream(ConditionStream):
    """Whole utterances from the workers -> per-layer means, ``window`` utterances at a time, one row each."""

    def __init__(self, writer: NpyStreamWriter, cond: str, sample_rate: int, upstream: Upstream,
                 amp_dtype: torch.dtype | None, batch_seconds: float | None, threads: int | None, window: int) -> None:
        super().__init__(writer, cond, sample_rate)
        self.upstream, self.amp_dtype, self.batch_seconds, self.threads = upstream, amp_dtype, batch_seconds, threads
        self.window = window
        self.pending: list[tuple[dict[str, str], np.ndarray]] = []

    def add(self, row: dict[str, str], arr: np.ndarray, starts: Sequence[int], real: Sequence[int]) -> None:
        self.pending.append((row, arr))
        if len(self.pending) >= self.window:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        waves = [audio for _, audio in self.pending]
        stats = list(iter_layer_means(self.upstream, waves, amp=self.amp_dtype, batch_seconds=self.batch_seconds,
                                      window=len(waves), threads=self.threads))
        self.writer.append(np.stack([s.means for s in stats]))
        for (row, _), s in zip(self.pending, stats):
            self.index_row(row, 0, s.frames)
        self.pending = []


class SslStreams(StreamFactory):
    """The upstream on its device, opened once for every condition of a run."""

    def __init__(self, upstream: Upstream, device: torch.device, amp_dtype: torch.dtype | None,
                 batch_seconds: float | None, threads: int | None) -> None:
        self.upstream = upstream.to(device)
        self.device = str(device)
        self.amp_dtype, self.batch_seconds, self.threads = amp_dtype, batch_seconds, threads
        self.window = WINDOWS.get(device.type, WINDOW)

    def open(self, writer: NpyStreamWriter, cond: str, sample_rate: int) -> SslConditionStream:
        return SslConditionStream(writer, cond, sample_rate, self.upstream, self.amp_dtype, self.batch_seconds,
                                  self.threads, self.window)


def extract_ssl_features(manifest: str | os.PathLike, out: str | os.PathLike, upstream: str | os.PathLike, *,
                         revision: str | None = None, device: str = "auto", amp: str = "auto",
                         threads: int | None = None, batch_seconds: float | None = None, dtype: str = "float32",
                         allow_download: bool = False, workers: int | None = DEFAULT_WORKERS,
                         conditions: Sequence[str] | None = None, overwrite: bool = False, progress: bool = True,
                         wait: bool = False, log: Callable[[str], None] = print,
                         loaded: Upstream | None = None) -> ExtractSummary:
    """Store the per-layer means of ``upstream`` (a checkpoint folder or a hub name in the local cache) for every
    (or the chosen) condition of ``manifest`` in ``out``; see the module docstring.

    ``device``/``amp``: as every ``--device``/``--amp`` flag (autocast bf16, else fp16, on CUDA; float32 on
    the CPU); ``threads``: CPU threads of the upstream (default every usable core); ``batch_seconds``:
    padded seconds of audio per batch (default per device, :data:`lancet.ssl.stats.BATCH_SECONDS`);
    ``allow_download``: fetch a hub checkpoint missing from the cache. ``loaded``: an upstream already loaded
    from ``upstream`` (tests, benchmarks).
    """
    if threads is not None:
        check_number("--threads", threads, minimum=0, integer=True)
    if batch_seconds is not None:
        check_number("--batch-seconds", batch_seconds, above=0)
    dev = resolve_device(device)
    amp_dtype = resolve_amp(amp, dev)
    up = loaded if loaded is not None else load_upstream(upstream, allow_download=allow_download, revision=revision,
                                                         log=log)
    params = ssl_params(up, amp_dtype)
    log(f"upstream {params.upstream}: {params.model_type}, {params.n_layers - 1} layers x {params.hidden_size}, "
        f"weights {params.weights_sha256[:12]}, transformers {params.transformers}, {params.precision} on {dev}")
    if dev.type == "cpu":
        log(f"the upstream runs on the CPU ({threads or available_cpus()} thread(s)): a base model computes "
            f"about 1-3 s of audio per second there (docs/SSL.md); a GPU takes a corpus in minutes")
    streams = SslStreams(up, dev, amp_dtype, batch_seconds, threads or None)
    return extract_features(manifest, out, params=params, dtype=dtype, workers=workers, conditions=conditions,
                            overwrite=overwrite, progress=progress, wait=wait, log=log, streams=streams)

