"""TC-Net baseline: three parallel multi-dilation temporal blocks over MFCC channels.

Re-implements the TC-Net of the LANCET repository (the TC-Net paper, Ishaq, Khan & Kwon 2023, has no
public code). A core there is the Conv-TasNet block (1x1 conv, PReLU, batch norm, depthwise dilated
conv, PReLU, batch norm, 1x1 conv) with C -> C channels; here its output is added to its input as the
spec describes (the original's executed definition returns it without the residual; pass
``residual=False`` to reproduce that). Pooling ignores padded frames.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from lancet.core.checks import Range
from lancet.models.layers import apply_mask, check_input, frame_mask, masked_mean, same_pad_1d
from lancet.models.lancet import _check_sizes


class TCNetCore(nn.Module):
    """One dilated temporal core: 1x1 conv C -> H, PReLU, BN, depthwise dilated conv H -> H ('same'
    length), PReLU, BN, 1x1 conv H -> C, optionally added to the input."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, dilation: int, residual: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.residual = kernel_size, dilation, residual
        self.expand = nn.Conv1d(channels, hidden, 1)
        self.act1 = nn.PReLU()
        self.norm1 = nn.BatchNorm1d(hidden)
        self.depthwise = nn.Conv1d(hidden, hidden, kernel_size, dilation=dilation, groups=hidden)
        self.act2 = nn.PReLU()
        self.norm2 = nn.BatchNorm1d(hidden)
        self.project = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = apply_mask(self.norm1(self.act1(self.expand(x))), mask)
        y = self.depthwise(same_pad_1d(y, self.kernel_size, self.dilation))
        y = self.project(self.norm2(self.act2(y)))
        return x + y if self.residual else y


class TemporalBlock(nn.Module):
    """Three cores in sequence with dilations 1, 2, 4 and one kernel size."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, residual: bool = True) -> None:
        super().__init__()
        self.cores = nn.ModuleList(TCNetCore(channels, hidden, kernel_size, d, residual) for d in (1, 2, 4))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for core in self.cores:
            x = core(x, mask)
        return x


class TCNet(nn.Module):
    """TC-Net classifier. Input (B, 1, n_freq, T), output logits (B, n_classes).

    Three temporal blocks (kernel sizes 3, 5, 9) read the same input; each is averaged over the valid
    frames; the concatenation (3 * n_freq) goes through Linear -> 128, ReLU, Linear -> classes.
    ``n_frames`` is ignored. Options: ``kernel_sizes`` ((3, 5, 9)), ``hid_channels`` (n_freq),
    ``fc_hidden`` (128), ``residual`` (True).
    """

    def __init__(
        self,
        n_classes: int = 4,
        n_freq: int = 26,
        n_frames: int = 63,
        *,
        kernel_sizes: Annotated[tuple[int, ...], Range(1, 255)] = (3, 5, 9),
        hid_channels: Annotated[int | None, Range(1, 4096)] = None,
        fc_hidden: Annotated[int, Range(1, 4096)] = 128,
        residual: bool = True,
    ) -> None:
        super().__init__()
        _check_sizes("TCNet", n_classes, n_freq, n_frames)
        self.n_classes, self.n_freq, self.n_frames = n_classes, n_freq, n_frames
        hidden = hid_channels or n_freq
        self.blocks = nn.ModuleList(TemporalBlock(n_freq, hidden, k, residual) for k in kernel_sizes)
        self.fc1 = nn.Linear(n_freq * len(self.blocks), fc_hidden)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(fc_hidden, n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, self.n_freq, "TCNet")
        x = x.squeeze(1)
        mask = frame_mask(lengths, x.shape[-1], x.device)
        x = apply_mask(x, mask)
        pooled = [masked_mean(block(x, mask), mask) for block in self.blocks]
        return self.fc2(self.act(self.fc1(torch.cat(pooled, dim=-1))))
