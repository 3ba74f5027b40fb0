"""Training data over memory-mapped feature stores: segment tables, batches, mixup.

A :class:`SegmentTable` holds the segments of some utterances from one or more conditions of a store.
The feature arrays are opened once (``np.load(mmap_mode="r")`` through the store) and never reloaded:
a table copies its rows into RAM once when they fit in the RAM budget, and otherwise indexes the
memory map batch by batch (sorted rows, so reads stay sequential where they can).
Normalisation is applied on the device, batch by batch, with the fold's training statistics.
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from lancet.core.errors import LancetError


@dataclass
class ConditionIndex:
    """A condition's segment index as arrays (parsed once per run)."""

    condition: str
    ids: np.ndarray           # object array of utterance ids
    rows: np.ndarray          # int64 row in the condition's .npy
    classes: np.ndarray       # object array of class names
    valid_frames: np.ndarray  # int64
    sessions: np.ndarray      # object array
    speakers: np.ndarray      # object array
    improvised: np.ndarray    # object array (as in the index)
    labels: np.ndarray | None  # raw IEMOCAP labels when the index has a 'label' column

    def utterance_rows(self) -> list[dict]:
        """One index-like dict per utterance (its first segment), for :func:`utterances_from_index`."""
        _, first = np.unique(self.ids, return_index=True)
        out = []
        for i in np.sort(first):
            row = {"id": self.ids[i], "session": self.sessions[i], "speaker": self.speakers[i],
                   "class": self.classes[i], "improvised": self.improvised[i]}
            if self.labels is not None:
                row["label"] = self.labels[i]
            out.append(row)
        return out


class StoreView:
    """A feature store plus parsed per-condition indexes, shared by every fold of a run."""

    def __init__(self, store, where: str = "features") -> None:
        self.store = store
        self.where = where
        self._index: dict[str, ConditionIndex] = {}
        self._arrays: dict[str, np.ndarray] = {}

    @property
    def conditions(self) -> list[str]:
        return list(self.store.conditions)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.store.shape)

    def segments(self, condition: str) -> np.ndarray:
        if condition not in self._arrays:
            self._arrays[condition] = self.store.segments(condition)
        return self._arrays[condition]

    def index(self, condition: str) -> ConditionIndex:
        if condition not in self._index:
            rows = self.store.index(condition)
            n_frames = self.shape[1]
            col = lambda name: np.array([str(r.get(name, "")) for r in rows], dtype=object)  # noqa: E731
            has_label = bool(rows) and "label" in rows[0]
            idx = ConditionIndex(
                condition=condition,
                ids=col("id"),
                rows=np.array([int(r.get("row", i)) for i, r in enumerate(rows)], dtype=np.int64),
                classes=col("class"),
                valid_frames=np.array([int(float(r.get("valid_frames") or n_frames)) for r in rows], dtype=np.int64),
                sessions=col("session"),
                speakers=col("speaker"),
                improvised=col("improvised"),
                labels=col("label") if has_label else None,
            )
            n = self.segments(condition).shape[0]
            if len(idx.rows) and (idx.rows.min() < 0 or idx.rows.max() >= n):
                raise LancetError(f"{self.where}/{condition}.csv: row numbers outside the {n} segments of {condition}.npy")
            self._index[condition] = idx
        return self._index[condition]


class SegmentTable:
    """Segments (features, valid lengths, labels, utterance keys) drawn from one or more conditions."""

    def __init__(self, sources: list[np.ndarray], part: np.ndarray, local: np.ndarray, labels: np.ndarray,
                 lengths: np.ndarray, utt: np.ndarray, utt_keys: list[tuple[str, str]], conditions: list[str],
                 views: int = 1) -> None:
        """``views`` > 1: the rows are that many views of the same segments, view-major (lancet.training.views)."""
        self.views = views
        self.sources = sources
        self.part = part
        self.local = local
        self.labels = labels
        self.lengths = lengths
        self.utt = utt
        self.utt_keys = utt_keys
        self.conditions = conditions

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def in_ram(self) -> bool:
        return all(not isinstance(s, np.memmap) for s in self.sources)

    def utterance_labels(self) -> np.ndarray:
        """The label of each utterance key (every segment of an utterance has the same label)."""
        out = np.full(len(self.utt_keys), -1, dtype=np.int64)
        out[self.utt] = self.labels
        return out

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """The feature arrays of segments ``idx`` (in that order), as stored (float32 or float16)."""
        idx = np.asarray(idx, dtype=np.int64)
        first = self.sources[int(self.part[idx[0]])] if len(idx) else self.sources[0]
        out = np.empty((len(idx),) + first.shape[1:], dtype=first.dtype)
        parts = self.part[idx]
        for p in np.unique(parts):
            where = np.nonzero(parts == p)[0]
            rows = self.local[idx[where]]
            order = np.argsort(rows, kind="stable")
            out[where[order]] = self.sources[int(p)][rows[order]]
        return out

    def plan_batches(self, batch_size: int, shuffle: bool, rng: np.random.Generator | None,
                     min_last: int = 1) -> list[np.ndarray]:
        """The rows of each batch of an epoch (with ``views`` > 1: of view 0, the anchors of every view's rows):
        :func:`batch_indices` of ``batch_size`` segments. A table of other units (whole utterances of audio,
        :mod:`lancet.training.audio_table`) plans its own."""
        return batch_indices(len(self) // self.views, batch_size, shuffle, rng, min_last)

    def sample(self, max_bytes: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(features float32, valid frames) of all segments, or of a random subsample of at most ``max_bytes``."""
        n = len(self)
        if n == 0:
            raise LancetError("no segments to compute normalisation statistics from")
        per = int(np.prod(self.sources[0].shape[1:])) * 4
        keep = max(1, min(n, int(max_bytes // per)))
        idx = np.arange(n) if keep >= n else np.sort(rng.choice(n, size=keep, replace=False))
        return self.gather(idx).astype(np.float32, copy=False), self.lengths[idx]


def build_table(view: StoreView, conditions: Sequence[str], utt_ids: set[str] | frozenset[str],
                class_to_label: Mapping[str, int], ram_budget_bytes: float | None = None) -> SegmentTable:
    """The segments of ``utt_ids`` in each of ``conditions``; copied to RAM if they fit ``ram_budget_bytes``."""
    sources, parts, locals_, labels, lengths, utts = [], [], [], [], [], []
    utt_keys: list[tuple[str, str]] = []
    key_code: dict[tuple[str, str], int] = {}
    selected: list[tuple[np.ndarray, np.ndarray]] = []
    for p, condition in enumerate(conditions):
        idx = view.index(condition)
        ids = utt_ids.get(condition, frozenset()) if isinstance(utt_ids, Mapping) else utt_ids  # per condition (noise pools)
        keep = np.fromiter((i in ids for i in idx.ids), dtype=bool, count=len(idx.ids))
        keep &= np.fromiter((c in class_to_label for c in idx.classes), dtype=bool, count=len(idx.classes))
        sel = np.nonzero(keep)[0]
        rows = idx.rows[sel]
        selected.append((rows, sel))
        parts.append(np.full(len(sel), p, dtype=np.int32))
        labels.append(np.array([class_to_label[c] for c in idx.classes[sel]], dtype=np.int64))
        lengths.append(idx.valid_frames[sel])
        codes = np.empty(len(sel), dtype=np.int64)
        for j, uid in enumerate(idx.ids[sel]):
            key = (condition, uid)
            code = key_code.get(key)
            if code is None:
                code = key_code[key] = len(utt_keys)
                utt_keys.append(key)
            codes[j] = code
        utts.append(codes)
    arrays = [view.segments(c) for c in conditions]
    bytes_needed = sum(len(r) * int(np.prod(a.shape[1:])) * a.dtype.itemsize for (r, _), a in zip(selected, arrays))
    to_ram = ram_budget_bytes is not None and bytes_needed <= ram_budget_bytes
    for (rows, _), arr in zip(selected, arrays):
        if to_ram:
            order = np.argsort(rows, kind="stable")
            ram = np.empty((len(rows),) + arr.shape[1:], dtype=arr.dtype)
            if len(rows):
                ram[order] = arr[rows[order]]
            sources.append(ram)
            locals_.append(np.arange(len(rows), dtype=np.int64))
        else:
            sources.append(arr)
            locals_.append(rows)
    return SegmentTable(
        sources=sources,
        part=np.concatenate(parts) if parts else np.zeros(0, np.int32),
        local=np.concatenate(locals_) if locals_ else np.zeros(0, np.int64),
        labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        lengths=np.concatenate(lengths) if lengths else np.zeros(0, np.int64),
        utt=np.concatenate(utts) if utts else np.zeros(0, np.int64),
        utt_keys=utt_keys,
        conditions=list(conditions),
    )


@dataclass
class Batch:
    x: torch.Tensor        # (B, F, T) as stored (float32/float16), on CPU (pinned when asked)
    lengths: torch.Tensor  # (B,) int64
    labels: torch.Tensor   # (B,) int64
    index: np.ndarray      # segment indices into the table


def _make_batch(table: SegmentTable, idx: np.ndarray, pin: bool) -> Batch:
    x = torch.from_numpy(table.gather(idx))
    lengths = torch.from_numpy(table.lengths[idx].copy())
    labels = torch.from_numpy(table.labels[idx].copy())
    if pin:
        x, lengths, labels = x.pin_memory(), lengths.pin_memory(), labels.pin_memory()
    return Batch(x=x, lengths=lengths, labels=labels, index=idx)


def batch_indices(n: int, batch_size: int, shuffle: bool, rng: np.random.Generator | None,
                  min_last: int = 1) -> list[np.ndarray]:
    """Split ``range(n)`` into batches (shuffled with ``rng`` if asked); a last batch smaller than
    ``min_last`` is dropped (batch norm cannot train on a batch of one)."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    out = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if out and len(out[-1]) < min_last and len(out) > 1:
        out.pop()
    return out


def iter_batches(table: SegmentTable, batches: list[np.ndarray], workers: int = 0, pin: bool = False) -> Iterator[Batch]:
    """Yield the batches in order; with ``workers`` > 0, threads gather the next ones ahead (prefetch)."""
    if workers <= 0:
        for idx in batches:
            yield _make_batch(table, idx, pin)
        return
    ahead = max(2, 2 * workers)
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lancet-batches") as pool:
        pending: list[cf.Future] = []
        it = iter(batches)
        for idx in it:
            pending.append(pool.submit(_make_batch, table, idx, pin))
            if len(pending) >= ahead:
                break
        while pending:
            fut = pending.pop(0)
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_make_batch, table, nxt, pin))
            yield fut.result()


def one_hot(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, n_classes).float()


def draw_mixup(n: int, alpha: float, rng: np.random.Generator) -> tuple[float, np.ndarray | None]:
    """(lam, permutation) of one batch of ``n`` segments: lam ~ Beta(alpha, alpha), then a permutation, drawn in
    that order from ``rng``; ``(1.0, None)`` (no draw) when ``alpha <= 0`` or the batch has one segment.

    Example:
        >>> lam, perm = draw_mixup(4, 0.5, np.random.default_rng(0))
        >>> 0.0 <= lam <= 1.0, sorted(perm.tolist())
        (True, [0, 1, 2, 3])
    """
    if alpha <= 0 or n < 2:
        return 1.0, None
    lam = float(rng.beta(alpha, alpha))
    return lam, rng.permutation(n)


def mix(x: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor, w0, w1,
        perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``w0 * batch + w1 * batch[perm]`` for the inputs and the one-hot targets: the one mixup of the plain and
    the compiled path. A mixed segment holds real audio wherever either source does, so its length is the
    larger of the two."""
    return w0 * x + w1 * x[perm], w0 * targets + w1 * targets[perm], torch.maximum(lengths, lengths[perm])


def mixup(x: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor, alpha: float,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix a batch with a shuffled copy of itself (:func:`draw_mixup`, then :func:`mix`); returns lam too.

    ``alpha <= 0`` returns the batch unchanged (lam = 1).
    """
    lam, perm = draw_mixup(x.shape[0], alpha, rng)
    if perm is None:
        return x, targets, lengths, 1.0
    x, targets, lengths = mix(x, targets, lengths, lam, 1.0 - lam, torch.from_numpy(perm).to(x.device))
    return x, targets, lengths, lam


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency class weights, n / (K * n_c), for classes present in ``labels`` (absent: 0)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes, dtype=np.float64)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return w.astype(np.float32)
