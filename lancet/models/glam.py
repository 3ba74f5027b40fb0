"""GLAM baseline (Zhu et al., "Speech emotion recognition with global-aware fusion on multi-scale
feature representation", ICASSP 2022): multi-scale residual CNN + one gMLP block.

Layer by layer as the ``gMLPResMultiConv3`` ("GLAM") class kept in the LANCET repository's
``models.py``, written anew with our own gMLP (no g-mlp-pytorch). Its last layers depend on the input
size: the gMLP width is (F // 2) * (T // 4) and the classifier reads 128 times that. They are sized
from ``n_freq``/``n_frames`` at construction. At run time a shorter input is zero-padded on the right
to ``n_frames`` (so a padded segment with ``lengths`` and the bare short segment give the same
output), and a longer one is average-pooled to the expected grid after the convolutions.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from lancet.core.checks import Range
from lancet.models.layers import GMLPBlock, check_input, frame_mask
from lancet.models.lancet import _check_sizes


class ConvBNReLU2d(nn.Module):
    """2-D convolution ('same' padding for odd kernels), batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int]) -> None:
        super().__init__()
        padding = (kernel_size[0] // 2, kernel_size[1] // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class DualStem(nn.Module):
    """Two parallel 1 -> 16 convolutions, kernel (3, 1) across frequency and (1, 3) across time,
    each with batch norm and ReLU, concatenated along the frequency axis: (B,1,F,T) -> (B,16,2F,T)."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.freq = ConvBNReLU2d(1, channels, (3, 1))
        self.time = ConvBNReLU2d(1, channels, (1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.freq(x), self.time(x)), dim=2)


class ResMultiScaleBlock(nn.Module):
    """Multi-scale residual block: a 3x3 and a 5x5 conv C -> C, each added to the input,
    concatenated to 2C channels, batch norm, ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv5 = nn.Conv2d(channels, channels, 5, padding=2)
        self.bn = nn.BatchNorm2d(2 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat((self.conv3(x) + x, self.conv5(x) + x), dim=1)))


class GLAM(nn.Module):
    """GLAM classifier. Input (B, 1, n_freq, T), output logits (B, n_classes).

    DualStem -> ResMultiScale(16) -> max-pool 2x2 -> ResMultiScale(32) -> max-pool 2x2 ->
    ResMultiScale(64) -> 5x5 conv 128 -> 128, BN, ReLU -> each channel's map flattened ->
    gMLP block over the 128 channels as the sequence (tanh gate) -> ReLU -> flatten -> Linear.
    ``n_freq`` >= 2; ``n_frames`` below 4 is raised to 4 (zero-padded). Options: ``ff_mult`` (4).
    """

    def __init__(self, n_classes: int = 4, n_freq: int = 26, n_frames: int = 63, *,
                 ff_mult: Annotated[int, Range(1, 16)] = 4) -> None:
        super().__init__()
        _check_sizes("GLAM", n_classes, n_freq, n_frames, min_freq=2)
        self.n_classes, self.n_freq = n_classes, n_freq
        self.n_frames = max(n_frames, 4)
        self.grid = (n_freq // 2, self.n_frames // 4)  # after the stem (2F) and two 2x2 pools
        self.stem = DualStem(16)
        self.block1 = ResMultiScaleBlock(16)
        self.block2 = ResMultiScaleBlock(32)
        self.block3 = ResMultiScaleBlock(64)
        self.pool = nn.MaxPool2d(2)
        self.head_conv = ConvBNReLU2d(128, 128, (5, 5))
        dim = self.grid[0] * self.grid[1]
        self.gmlp = GMLPBlock(dim, seq_len=128, ff_mult=ff_mult, act=nn.Tanh())
        self.classifier = nn.Linear(128 * dim, n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, self.n_freq, "GLAM")
        mask = frame_mask(lengths, x.shape[-1], x.device)
        if mask is not None:
            x = x * mask.unsqueeze(1).to(x.dtype)  # (B,1,1,T): zero the padded frames
        if x.shape[-1] < self.n_frames:
            x = F.pad(x, (0, self.n_frames - x.shape[-1]))
        x = self.block1(self.stem(x))
        x = self.block2(self.pool(x))
        x = self.block3(self.pool(x))
        x = self.head_conv(x)
        if tuple(x.shape[-2:]) != self.grid:
            x = F.adaptive_avg_pool2d(x, self.grid)
        x = F.relu(self.gmlp(x.flatten(2)))  # (B, 128, dim): channels are the sequence
        return self.classifier(x.flatten(1))
