"""SpecAugment (Park et al., Interspeech 2019): random time and frequency masks on a training batch.

Masks are drawn per segment with a numpy generator (the loop's, so a resumed run draws the same masks)
and applied on the device in one batched ``torch.where``: no loop over the batch. Time masks lie inside
the segment's *valid* frames only and neither kind touches the padding, a mask's width is uniform in
``0..max_width``, and masked cells are set to ``value`` (0 = the mean of normalised features). Time
warping is left out (the SpecAugment paper found it the least useful and the most costly).

Example::

    >>> import numpy as np, torch
    >>> x = torch.ones(2, 1, 8, 10)
    >>> y = spec_augment(x, torch.tensor([10, 4]), np.random.default_rng(0), time_masks=1, time_width=3,
    ...                  freq_masks=1, freq_width=2)
    >>> tuple(y.shape), bool((y[1, 0, :, 4:] == 1).all())     # nothing masked beyond 4 valid frames
    ((2, 1, 8, 10), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Defaults for short (2 s) segments: two masks of each kind, as SpecAugment's LibriSpeech "LD" policy,
# with widths scaled to a 128-band, 201-frame log-Mel segment (F = 27 of 80 bands there, T = 100 frames
# of ~1000): about a fifth of the bands and a tenth of the frames per mask.
TIME_MASKS = 2
TIME_WIDTH = 0.1     # fraction of the segment's frames (or an int: frames)
FREQ_MASKS = 2
FREQ_WIDTH = 0.15    # fraction of the bins (or an int: bins)


@dataclass(frozen=True)
class SpecAugmentSettings:
    """How many masks of each kind and how wide at most (ints: frames/bins; floats < 1: fractions)."""

    time_masks: int = TIME_MASKS
    time_width: float = TIME_WIDTH
    freq_masks: int = FREQ_MASKS
    freq_width: float = FREQ_WIDTH


def _width(w: float, size: int) -> int:
    return int(round(w * size)) if isinstance(w, float) and w < 1 else int(w)


def draw_masks(batch: int, n_freq: int, n_frames: int, lengths: np.ndarray, rng: np.random.Generator,
               time_masks: int, time_width: float, freq_masks: int, freq_width: float) -> tuple[np.ndarray, ...]:
    """Mask intervals ``[start, start + width)`` per segment: (time starts, time widths, freq starts, freq widths),
    each (batch, n_masks) int64. Time masks stay inside the first ``lengths[b]`` frames."""
    lengths = np.clip(np.asarray(lengths, dtype=np.int64), 1, n_frames)
    tw = min(_width(time_width, n_frames), n_frames)
    fw = min(_width(freq_width, n_freq), n_freq)
    t_w = np.minimum(rng.integers(0, tw + 1, size=(batch, time_masks)), lengths[:, None])
    t_s = (rng.random((batch, time_masks)) * (lengths[:, None] - t_w + 1)).astype(np.int64)
    f_w = rng.integers(0, fw + 1, size=(batch, freq_masks))
    f_s = (rng.random((batch, freq_masks)) * (n_freq - f_w + 1)).astype(np.int64)
    return t_s, t_w, f_s, f_w


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, rng: np.random.Generator, time_masks: int = TIME_MASKS,
                 time_width: float = TIME_WIDTH, freq_masks: int = FREQ_MASKS, freq_width: float = FREQ_WIDTH,
                 value: float = 0.0, return_mask: bool = False):
    """Mask a batch ``(B, F, T)`` or ``(B, 1, F, T)`` -> same shape (and the boolean mask if asked)."""
    b, n_freq, n_frames = x.shape[0], x.shape[-2], x.shape[-1]
    t_s, t_w, f_s, f_w = draw_masks(b, n_freq, n_frames, lengths.detach().cpu().numpy(), rng,
                                    time_masks, time_width, freq_masks, freq_width)
    dev = x.device
    to = lambda a: torch.from_numpy(a).to(dev, non_blocking=True)  # noqa: E731
    t = torch.arange(n_frames, device=dev)
    f = torch.arange(n_freq, device=dev)
    # (B, masks, T) -> any over masks -> (B, T); the same for frequency
    t_mask = ((t[None, None, :] >= to(t_s)[..., None]) & (t[None, None, :] < to(t_s + t_w)[..., None])).any(dim=1)
    f_mask = ((f[None, None, :] >= to(f_s)[..., None]) & (f[None, None, :] < to(f_s + f_w)[..., None])).any(dim=1)
    valid = t[None, :] < torch.as_tensor(lengths, device=dev)[:, None]
    mask = (t_mask[:, None, :] | f_mask[:, :, None]) & valid[:, None, :]  # (B, F, T); padding is never touched
    if x.dim() == 4:
        mask = mask[:, None]
    out = x.masked_fill(mask, value)
    return (out, mask) if return_mask else out
