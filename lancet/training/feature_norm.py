"""Feature normalisation modes: ``global``, ``utterance`` (CMVN) and ``segment``.

* ``global`` — per frequency bin, the fold's training statistics (:func:`lancet.features.compute_norm_stats`),
  as the published trainer: shifts with the noise when the test noise differs from training.
* ``utterance`` — per frequency bin, the mean and standard deviation over the *valid* frames of all the
  utterance's segments (cepstral mean and variance normalisation, CMVN). A stationary noise floor moves
  the utterance's own mean with it, so it is largely removed. Frames shared by overlapping segments count
  once per segment. The statistics come from the same stored (or online-computed) segments in training
  and evaluation, so both see the same transform.
* ``segment`` — the same over the valid frames of each segment alone.

In every mode the padded frames of a short utterance (beyond ``valid_frames``) are set to 0 after
normalising in the ``utterance`` and ``segment`` modes (0 is the normalised mean), and normalised with
the global statistics in ``global`` mode (unchanged from before). Standard deviations are floored at
``MIN_STD`` so that silence never divides by zero.

Example::

    >>> import numpy as np
    >>> x = np.array([[[1.0, 3.0, 0.0]]])            # one segment, one bin, 2 valid frames + padding
    >>> m, s = segment_stats(x, np.array([2]))
    >>> float(m[0, 0]), float(s[0, 0])
    (2.0, 1.0)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

NORM_MODES = ("global", "utterance", "segment")
MIN_STD = 1e-5


def _valid_mask(lengths: np.ndarray, n_frames: int) -> np.ndarray:
    """(n, T) boolean mask of the valid frames of each segment."""
    return np.arange(n_frames)[None, :] < np.asarray(lengths, dtype=np.int64)[:, None]


def segment_stats(x: np.ndarray, lengths: Sequence[int], min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment, per-bin mean and std over valid frames: (n, F, T), (n,) -> (n, F), (n, F) float32."""
    x = np.asarray(x, dtype=np.float64)
    n, _, t = x.shape
    mask = _valid_mask(np.maximum(np.asarray(lengths), 1), t)[:, None, :]
    count = mask.sum(axis=-1)
    mean = np.where(mask, x, 0.0).sum(axis=-1) / count
    var = np.where(mask, np.square(x - mean[..., None]), 0.0).sum(axis=-1) / count
    return mean.astype(np.float32), np.maximum(np.sqrt(var), min_std).astype(np.float32)


def utterance_stats(x: np.ndarray, lengths: Sequence[int], utt: Sequence[int], n_utts: int | None = None,
                    min_std: float = MIN_STD, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance, per-bin mean and std over the valid frames of all its segments.

    ``x`` (n, F, T) may be a memory map (read ``chunk`` segments at a time); ``utt`` gives each segment's
    utterance code in ``0..n_utts-1``. Returns (n_utts, F), (n_utts, F) float32; an utterance without
    segments gets mean 0 and std 1.

    Example::

        >>> x = np.array([[[1.0, 1.0]], [[3.0, 0.0]]])   # two segments of one utterance; 2nd has 1 valid frame
        >>> m, s = utterance_stats(x, [2, 1], [0, 0])
        >>> round(float(m[0, 0]), 4), round(float(s[0, 0]), 4)
        (1.6667, 0.9428)
    """
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    utt = np.asarray(utt, dtype=np.int64)
    n, f, t = x.shape
    n_utts = int(utt.max()) + 1 if n_utts is None else int(n_utts)
    s1 = np.zeros((n_utts, f), dtype=np.float64)
    s2 = np.zeros((n_utts, f), dtype=np.float64)
    cnt = np.zeros(n_utts, dtype=np.float64)
    for start in range(0, n, chunk):
        block = np.asarray(x[start:start + chunk], dtype=np.float64)
        mask = _valid_mask(lengths[start:start + chunk], t)[:, None, :]
        vals = np.where(mask, block, 0.0)
        codes = utt[start:start + chunk]
        np.add.at(s1, codes, vals.sum(axis=-1))
        np.add.at(s2, codes, np.square(vals).sum(axis=-1))
        np.add.at(cnt, codes, mask[:, 0, :].sum(axis=-1))
    have = cnt > 0
    mean = np.zeros_like(s1)
    mean[have] = s1[have] / cnt[have, None]
    # two-pass variance: subtract the mean in a second sweep (the one-pass form loses digits on log features)
    m2 = np.zeros_like(s1)
    for start in range(0, n, chunk):
        block = np.asarray(x[start:start + chunk], dtype=np.float64)
        mask = _valid_mask(lengths[start:start + chunk], t)[:, None, :]
        codes = utt[start:start + chunk]
        np.add.at(m2, codes, np.where(mask, np.square(block - mean[codes][..., None]), 0.0).sum(axis=-1))
    std = np.ones_like(s1)
    std[have] = np.sqrt(m2[have] / cnt[have, None])
    return mean.astype(np.float32), np.maximum(std, min_std).astype(np.float32)


class Normaliser:
    """Turns a batch of stored features (B, F, T) into normalised model input (B, 1, F, T) on the device.

    ``mean``/``std`` are the fold's global training statistics (F,), kept in every mode (the checkpoint
    carries them). In ``utterance`` mode :meth:`bind` attaches one table's per-segment utterance
    statistics (looked up by the batch's segment indices).
    """

    def __init__(self, mode: str, mean: np.ndarray, std: np.ndarray, device: torch.device | str = "cpu") -> None:
        if mode not in NORM_MODES:
            raise ValueError(f"unknown normalisation {mode!r}; choose one of {', '.join(NORM_MODES)}")
        self.mode = mode
        self.device = torch.device(device)
        self.mean = torch.as_tensor(np.asarray(mean, np.float32).reshape(-1, 1), device=self.device)
        self.std = torch.as_tensor(np.asarray(std, np.float32).reshape(-1, 1), device=self.device)
        self.seg_mean: torch.Tensor | None = None
        self.seg_std: torch.Tensor | None = None

    def bind(self, table) -> "Normaliser":
        """A normaliser for the segments of ``table`` (a :class:`lancet.training.data.SegmentTable`).

        In ``utterance`` mode this computes each utterance's statistics from the table's own segments
        (one pass over them); the other modes return ``self`` unchanged.
        """
        if self.mode != "utterance":
            return self
        out = Normaliser.__new__(Normaliser)
        out.mode, out.device, out.mean, out.std = self.mode, self.device, self.mean, self.std
        mean, std = table_utterance_stats(table)
        # (n_segments, F): each segment carries its utterance's statistics, gathered per batch by index
        out.seg_mean = torch.as_tensor(mean[table.utt], device=self.device)
        out.seg_std = torch.as_tensor(std[table.utt], device=self.device)
        return out

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor, index: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
        """(B, F, T) -> float32 (B, 1, F, T); ``index`` = the batch's segment indices (utterance mode)."""
        x = x.float()
        if self.mode == "global":
            return ((x - self.mean) / self.std).unsqueeze(1)
        if self.mode == "segment":
            mean, std = segment_stats_torch(x, lengths)
        else:
            if self.seg_mean is None:
                raise RuntimeError("utterance normalisation needs bind(table) before use")
            idx = torch.as_tensor(np.asarray(index), device=self.device, dtype=torch.long)
            mean, std = self.seg_mean[idx], self.seg_std[idx]
        valid = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
        out = (x - mean[..., None]) / std[..., None]
        return torch.where(valid[:, None, :], out, torch.zeros((), device=x.device)).unsqueeze(1)


def segment_stats_torch(x: torch.Tensor, lengths: torch.Tensor, min_std: float = MIN_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """Torch twin of :func:`segment_stats` on the device: (B, F, T), (B,) -> (B, F), (B, F)."""
    valid = (torch.arange(x.shape[-1], device=x.device)[None, :] < lengths.to(x.device).clamp(min=1)[:, None])[:, None, :]
    count = valid.sum(dim=-1).to(x.dtype)
    mean = torch.where(valid, x, 0.0).sum(dim=-1) / count
    var = torch.where(valid, (x - mean[..., None]).square(), 0.0).sum(dim=-1) / count
    return mean, var.sqrt().clamp(min=min_std)


def table_utterance_stats(table) -> tuple[np.ndarray, np.ndarray]:
    """:func:`utterance_stats` of every utterance key of a segment table (reads each source once)."""
    n_utts = len(table.utt_keys)
    f = table.sources[0].shape[1] if table.sources else 0
    s_mean = np.zeros((n_utts, f), np.float32)
    s_std = np.ones((n_utts, f), np.float32)
    for p, src in enumerate(table.sources):
        sel = np.nonzero(table.part == p)[0]
        if not len(sel):
            continue
        rows = table.local[sel]
        order = np.argsort(rows, kind="stable")
        sel, rows = sel[order], rows[order]
        codes = table.utt[sel]
        uniq, local_codes = np.unique(codes, return_inverse=True)
        # Gather in chunks: a memory-mapped source is read sequentially, never loaded whole.
        m, s = _chunked_stats(src, rows, table.lengths[sel], local_codes, len(uniq))
        s_mean[uniq], s_std[uniq] = m, s
    return s_mean, s_std


def _chunked_stats(src: np.ndarray, rows: np.ndarray, lengths: np.ndarray, codes: np.ndarray, n_utts: int,
                   chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(src, np.memmap) or len(rows) != src.shape[0] or not np.array_equal(rows, np.arange(len(rows))):
        class _Rows:  # lazily indexed view, so utterance_stats reads chunk by chunk
            shape = (len(rows),) + src.shape[1:]

            def __getitem__(self, sl):
                return src[rows[sl]]
        return utterance_stats(_Rows(), lengths, codes, n_utts, chunk=chunk)
    return utterance_stats(src, lengths, codes, n_utts, chunk=chunk)


def normalise_utterance(feats: np.ndarray, lengths: np.ndarray, mode: str, mean: np.ndarray | torch.Tensor,
                        std: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """All segments (n, F, T) of *one* utterance -> model input (n, 1, F, T), as :class:`Normaliser` does for
    a table (used by prediction, where a file is one utterance)."""
    mean = mean.detach().cpu().numpy() if isinstance(mean, torch.Tensor) else mean
    std = std.detach().cpu().numpy() if isinstance(std, torch.Tensor) else std
    norm = Normaliser(mode, mean, std, device)
    n = len(feats)
    if mode == "utterance":
        m, s = utterance_stats(feats, lengths, np.zeros(n, np.int64), 1)
        norm.seg_mean = torch.as_tensor(np.repeat(m, n, axis=0), device=norm.device)
        norm.seg_std = torch.as_tensor(np.repeat(s, n, axis=0), device=norm.device)
    return norm(torch.as_tensor(np.asarray(feats), device=norm.device),
                torch.as_tensor(np.asarray(lengths), device=norm.device), np.arange(n))
