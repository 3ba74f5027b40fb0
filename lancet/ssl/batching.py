"""Batches of whole utterances for an upstream: sorted by length, so that little of a batch is padding.

A transformer upstream costs about as much for a padded frame as for a real one, so a batch of a 2 s and a
15 s utterance spends 87 % of the short one's work on zeros. Sorting the utterances of a window by length
and cutting batches under a budget of padded samples (the longest utterance times the batch size) keeps
the padding small and the memory bounded: long utterances go in small batches, short ones in large ones.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def plan_batches(lengths: Sequence[int], max_samples: int, max_items: int = 64, sort: bool = True) -> list[list[int]]:
    """Indices of ``lengths`` cut into batches of at most ``max_items`` whose padded size
    (longest length x batch size) stays within ``max_samples`` (a longer utterance still gets a batch
    of its own). ``sort``: longest first, so each batch holds similar lengths; else in the given order.

    Example:
        >>> plan_batches([5, 100, 7, 90, 6], max_samples=200)
        [[1, 3], [2, 4, 0]]
        >>> plan_batches([5, 100, 7, 90, 6], max_samples=200, sort=False)  # 386 padded samples, not 221
        [[0, 1], [2, 3], [4]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -int(lengths[i])) if sort else list(range(len(lengths)))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        n = int(lengths[i])
        wider = max(longest, n)
        if current and (len(current) + 1 > max_items or wider * (len(current) + 1) > max_samples):
            batches.append(current)
            current, wider = [], n
        current.append(i)
        longest = wider
    if current:
        batches.append(current)
    return batches


def pad_waves(waves: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D waveforms to the longest: (B, S) float32 and their lengths (B,) int64.

    Example:
        >>> x, n = pad_waves([np.ones(2, np.float32), np.ones(3, np.float32)])
        >>> x.tolist(), n.tolist()
        ([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]], [2, 3])
    """
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    out = torch.zeros((len(waves), int(lengths.max()) if len(waves) else 0), dtype=torch.float32)
    for row, wave in zip(out, waves):
        row[: len(wave)] = torch.as_tensor(wave, dtype=torch.float32)
    return out, lengths
