"""Frame masks and masked means over the frames of an upstream's output.

Shapes: ``B`` utterances, ``T`` frames (the longest in the batch), ``H`` hidden units. A mask is a boolean
(B, T) tensor, True on the valid frames of each utterance, as transformers' own frame-level attention mask.
"""

from __future__ import annotations

import torch


def frame_mask(frames: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, T) boolean mask, True where frame t < frames[b].

    Example:
        >>> frame_mask(torch.tensor([3, 1]), 4).int().tolist()
        [[1, 1, 1, 0], [1, 0, 0, 0]]
    """
    steps = torch.arange(n_frames, device=frames.device)
    return steps[None, :] < frames.reshape(-1, 1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, T, H) over the valid frames of ``mask`` (B, T); returns (B, H).

    Padded frames are zeroed (not multiplied: a padded frame may hold inf or nan after a layer that saw
    only padding) and the sum divided by the number of valid frames, as transformers' classification heads do.

    Example:
        >>> x = torch.tensor([[[1.0], [3.0], [100.0]]])
        >>> masked_mean(x, torch.tensor([[True, True, False]])).tolist()
        [[2.0]]
    """
    kept = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return kept.sum(dim=1) / mask.sum(dim=1, keepdim=True).to(x.dtype)
