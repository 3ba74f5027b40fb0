"""Building blocks shared by the three models: masks, global layer norm, attention, gMLP.

Shapes: ``B`` batch, ``C`` channels, ``T`` frames. A *mask* is a boolean tensor (B, 1, T) that is
True on valid frames and False on padding; ``None`` means every frame is valid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lancet.core.errors import LancetError


def _tracing() -> bool:
    """True while torch.jit.trace, torch.export/dynamo or the ONNX exporter is recording."""
    return bool(
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
    )


def check_input(x: torch.Tensor, n_freq: int, model: str) -> None:
    """Raise :class:`LancetError` unless ``x`` is (batch, 1, n_freq, time) with time >= 1.

    Skipped while tracing/exporting, where Python checks on shapes would be baked in.
    """
    if _tracing():
        return
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != n_freq or x.shape[3] < 1 or x.shape[0] < 1:
        raise LancetError(
            f"{model}: expected input (batch, 1, {n_freq}, time), got {tuple(x.shape)}; "
            f"build the model with n_freq matching the features"
        )


def frame_mask(lengths: torch.Tensor | None, n_frames: int, device: torch.device) -> torch.Tensor | None:
    """Boolean mask (B, 1, T), True where frame t < lengths[b]; None when ``lengths`` is None.

    Lengths are clamped to [1, n_frames], so a segment always keeps at least one frame.
    """
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=device).reshape(-1)
    lengths = lengths.round().long().clamp(1, n_frames)
    steps = torch.arange(n_frames, device=device)
    return (steps[None, :] < lengths[:, None]).unsqueeze(1)


def apply_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padded frames of ``x`` (B, C, T); identity when ``mask`` is None."""
    return x if mask is None else x * mask.to(x.dtype)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over time of ``x`` (B, C, T) counting valid frames only; returns (B, C)."""
    if mask is None:
        return x.mean(dim=-1)
    m = mask.to(x.dtype)
    return (x * m).sum(dim=-1) / m.sum(dim=-1).clamp_min(1.0)


def same_pad_1d(x: torch.Tensor, kernel_size: int, dilation: int = 1) -> torch.Tensor:
    """Zero-pad time so a stride-1 convolution keeps the length, also for even kernels.

    The extra frame of an even kernel goes on the right (as PyTorch's ``padding='same'``).
    """
    total = dilation * (kernel_size - 1)
    left = total // 2
    return F.pad(x, (left, total - left))


class GlobalLayerNorm(nn.Module):
    """Global layer norm (Conv-TasNet gLN): one mean/variance over (channels, time) per example,
    then a per-channel scale and shift. Same as ``nn.GroupNorm(1, C)``; with a mask the statistics
    use valid frames only, so padding does not change the result."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return F.group_norm(x, 1, self.weight, self.bias, self.eps)
        m = mask.to(x.dtype)
        count = m.sum(dim=(1, 2), keepdim=True).clamp_min(1.0) * x.shape[1]
        mean = (x * m).sum(dim=(1, 2), keepdim=True) / count
        var = (((x - mean) * m) ** 2).sum(dim=(1, 2), keepdim=True) / count
        y = (x - mean) / torch.sqrt(var + self.eps)
        return y * self.weight[None, :, None] + self.bias[None, :, None]


ATTENTION_PADDINGS = ("valid", "same")


def window_mask(mask: torch.Tensor | None, kernel_size: int) -> torch.Tensor | None:
    """Mask (B, 1, T - k + 1) of the windows of an unpadded ('valid') convolution of width ``k``.

    A window is valid only when all of its k frames are; an example with fewer than k valid frames
    keeps its first window (zeros past its end), so every example has at least one.
    """
    if mask is None:
        return None
    full = F.avg_pool1d(mask.to(torch.float32), kernel_size, stride=1) > 1.0 - 0.5 / kernel_size
    first = torch.zeros_like(full)
    first[..., 0] = True
    return full | (first & ~full.any(dim=-1, keepdim=True))


class MultiscaleChannelAttention(nn.Module):
    """LANCET's multiscale channel-wise attention (an SE gate with multiscale descriptors).

    Frequency bins are channels. Depthwise convolutions along time with several kernel sizes
    (3, 5, 10), each followed by average pooling over time and ReLU, give one descriptor per scale
    and channel; a linear layer fuses the scales into one descriptor per channel; an SE bottleneck
    C -> C/r (ReLU) -> C (sigmoid) turns them into a gate that multiplies the input.

    ``padding='valid'`` (the default) is the published layer: no padding, so a kernel k averages
    the T - k + 1 windows that lie inside the segment (with a mask, those whose frames are all
    valid; see :func:`window_mask`), and inputs shorter than the largest kernel are a ``ValueError``.
    ``padding='same'`` zero-pads to T outputs and averages the valid frames (works for any T).

    Example: ``MultiscaleChannelAttention(128)(torch.randn(2, 128, 201)).shape == (2, 128, 201)``
    """

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...] = (3, 5, 10), reduction: int = 2,
                 padding: str = "valid") -> None:
        super().__init__()
        if padding not in ATTENTION_PADDINGS:
            raise ValueError(f"attention padding {padding!r}: choose {' or '.join(ATTENTION_PADDINGS)}")
        self.padding = padding
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, k, groups=channels) for k in self.kernel_sizes
        )
        self.fuse = nn.Linear(len(self.kernel_sizes), 1)
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)

    def gate(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The per-channel gate in (0, 1): (B, C, T) -> (B, C). ``x`` must be zero on padded frames."""
        longest = max(self.kernel_sizes)
        if self.padding == "valid" and not _tracing() and x.shape[-1] < longest:
            raise ValueError(
                f"LANCET channel attention: {x.shape[-1]} frames is shorter than its largest kernel ({longest}); "
                f"build the model with attention_padding='same' (--model-options attention_padding=same)"
            )
        descriptors = []
        for conv, k in zip(self.convs, self.kernel_sizes):
            if self.padding == "same":
                y, m = conv(same_pad_1d(x, k)), mask
            else:
                y, m = conv(x), window_mask(mask, k)
            descriptors.append(F.relu(masked_mean(y, m)))
        d = self.fuse(torch.stack(descriptors, dim=-1)).squeeze(-1)  # (B, C)
        return torch.sigmoid(self.excite(F.relu(self.squeeze(d))))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = apply_mask(x, mask)
        return x * self.gate(x, mask).unsqueeze(-1)


class FrameAttentionPooling(nn.Module):
    """Frame-wise attention pooling: score s_t = tanh(w . x_t) with a learned vector w, softmax over
    the valid frames, and the weighted sum of the frames. (B, C, T) -> (B, C)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = torch.tanh(torch.einsum("bct,c->bt", x, self.w))
        if mask is not None:
            scores = scores.masked_fill(~mask[:, 0, :], torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)
        return torch.einsum("bct,bt->bc", x, weights)


class SpatialGatingUnit(nn.Module):
    """gMLP spatial gating unit: split features in halves (u, v), layer-norm v, mix v across the
    sequence positions with a learned (seq x seq) projection (bias initialised to 1, weights near 0),
    apply the activation and gate u with it. (B, S, D) -> (B, S, D/2)."""

    def __init__(self, dim: int, seq_len: int, act: nn.Module | None = None, init_eps: float = 1e-3) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim // 2)
        self.proj = nn.Conv1d(seq_len, seq_len, 1)
        self.act = act if act is not None else nn.Identity()
        bound = init_eps / seq_len
        nn.init.uniform_(self.proj.weight, -bound, bound)
        nn.init.constant_(self.proj.bias, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)
        v = self.proj(self.norm(v))
        return self.act(v) * u


class GMLPBlock(nn.Module):
    """One residual gMLP block: x + W_out(SGU(GELU(W_in(LayerNorm(x))))), with hidden width
    ``ff_mult * dim``. (B, S, D) -> (B, S, D); S (the sequence) is fixed at construction."""

    def __init__(self, dim: int, seq_len: int, ff_mult: int = 4, act: nn.Module | None = None) -> None:
        super().__init__()
        hidden = dim * ff_mult
        self.norm = nn.LayerNorm(dim)
        self.proj_in = nn.Linear(dim, hidden)
        self.sgu = SpatialGatingUnit(hidden, seq_len, act)
        self.proj_out = nn.Linear(hidden // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.gelu(self.proj_in(self.norm(x)))
        return x + self.proj_out(self.sgu(y))
