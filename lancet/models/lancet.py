"""LANCET: multiscale channel attention + Conv-TasNet-style TCN + frame-wise attention pooling.

Layer by layer as the published LANCET ``models.py`` (YassinTERRAF/LANCET), written anew; see
docs/MODELS.md. The channel attention is the published one (unpadded convolutions averaged over
the T - k + 1 windows); ``attention_padding='same'`` pads them instead, for segments shorter than its
largest kernel (10 frames). Differences: every time-mixing step honours ``lengths`` so padded frames
change nothing; the original's unused output head (PReLU + 1x1 conv) is left out.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from torch import nn

from lancet.core.checks import Range
from lancet.core.errors import LancetError
from lancet.models.layers import (
    ATTENTION_PADDINGS,
    FrameAttentionPooling,
    GlobalLayerNorm,
    MultiscaleChannelAttention,
    apply_mask,
    check_input,
    frame_mask,
    same_pad_1d,
)


class Bottleneck(nn.Module):
    """Global layer norm over (channels, time), then a 1x1 convolution C_in -> C_out."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = GlobalLayerNorm(in_channels)
        self.conv = nn.Conv1d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(self.norm(x, mask))


class TCNBlock(nn.Module):
    """Conv-TasNet 1-D block with a residual: 1x1 conv C -> H, PReLU, gLN, depthwise dilated conv
    H -> H ('same' length), PReLU, gLN, 1x1 conv H -> C, added to the input."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.dilation = dilation
        self.expand = nn.Conv1d(channels, hidden, 1)
        self.act1 = nn.PReLU()
        self.norm1 = GlobalLayerNorm(hidden)
        self.depthwise = nn.Conv1d(hidden, hidden, kernel_size, dilation=dilation, groups=hidden)
        self.act2 = nn.PReLU()
        self.norm2 = GlobalLayerNorm(hidden)
        self.project = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.norm1(self.act1(self.expand(x)), mask)
        y = apply_mask(y, mask)  # padded frames look like the conv's zero padding
        y = self.depthwise(same_pad_1d(y, self.kernel_size, self.dilation))
        y = self.norm2(self.act2(y), mask)
        return x + self.project(y)


class TCN(nn.Module):
    """``n_repeats`` x ``n_blocks`` TCN blocks; block b of each repeat has dilation 2**b."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, n_blocks: int, n_repeats: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TCNBlock(channels, hidden, kernel_size, 2**b) for _ in range(n_repeats) for b in range(n_blocks)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return x


class LANCET(nn.Module):
    """LANCET classifier. Input (B, 1, n_freq, T), output logits (B, n_classes).

    ``n_frames`` is the segment length the model is built for: with the published unpadded
    attention it must reach the largest attention kernel (10), and any T >= 10 works; with
    ``attention_padding='same'`` any T >= 1 works. Options: ``bn_chan`` (64), ``hid_chan`` (128),
    ``n_blocks`` (5), ``n_repeats`` (3), ``kernel_size`` (3), ``attn_kernels`` ((3, 5, 10)),
    ``se_reduction`` (2), ``attention_padding`` ('valid' as published, or 'same').

    Example: ``LANCET()(torch.randn(2, 1, 128, 201)).shape == (2, 4)``
    """

    def __init__(
        self,
        n_classes: int = 4,
        n_freq: int = 128,
        n_frames: int = 201,
        *,
        bn_chan: Annotated[int, Range(1, 1024)] = 64,
        hid_chan: Annotated[int, Range(1, 4096)] = 128,
        n_blocks: Annotated[int, Range(0, 16)] = 5,
        n_repeats: Annotated[int, Range(0, 16)] = 3,
        kernel_size: Annotated[int, Range(1, 255)] = 3,
        attn_kernels: Annotated[tuple[int, ...], Range(1, 255)] = (3, 5, 10),
        se_reduction: Annotated[int, Range(1, 64)] = 2,
        attention_padding: Literal["valid", "same"] = "valid",
    ) -> None:
        super().__init__()
        _check_sizes("LANCET", n_classes, n_freq, n_frames)
        if attention_padding not in ATTENTION_PADDINGS:
            raise LancetError(f"LANCET: attention_padding={attention_padding!r}; choose one of {', '.join(ATTENTION_PADDINGS)}")
        if attention_padding == "valid" and n_frames < max(attn_kernels):
            raise LancetError(f"LANCET: segments of {n_frames} frames are shorter than the largest attention kernel "
                              f"({max(attn_kernels)}); use --model-options attention_padding=same")
        self.n_classes, self.n_freq, self.n_frames = n_classes, n_freq, n_frames
        self.attention = MultiscaleChannelAttention(n_freq, tuple(attn_kernels), se_reduction, attention_padding)
        self.bottleneck = Bottleneck(n_freq, bn_chan)
        self.tcn = TCN(bn_chan, hid_chan, kernel_size, n_blocks, n_repeats)
        self.pooling = FrameAttentionPooling(bn_chan)
        self.classifier = nn.Linear(bn_chan, n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, self.n_freq, "LANCET")
        x = x.squeeze(1)  # (B, F, T)
        mask = frame_mask(lengths, x.shape[-1], x.device)
        x = self.attention(x, mask)
        x = self.bottleneck(x, mask)
        x = self.tcn(x, mask)
        return self.classifier(self.pooling(x, mask))


def _check_sizes(model: str, n_classes: int, n_freq: int, n_frames: int, min_freq: int = 1) -> None:
    """Raise :class:`LancetError` for non-positive sizes."""
    for name, value, low in (("n_classes", n_classes, 1), ("n_freq", n_freq, min_freq), ("n_frames", n_frames, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise LancetError(f"{model}: {name} must be an integer >= {low}, got {value!r}")
