"""Classifier heads over an upstream's hidden states: SUPERB's frozen probe and attentive statistics pooling.

Both heads start with SUPERB's learned softmax weights over all hidden layers. They take either the frames
of every layer (``forward_frames(hidden_states, mask)``: the on-the-fly and fine-tuning paths,
:mod:`lancet.ssl.finetune`); :class:`SuperbProbe` also takes the stored per-layer means
(``forward(x)``: :mod:`lancet.ssl.stats`), which gives the same logits because everything before its
classifier is linear.

Shapes: ``B`` utterances, ``L`` hidden states (layers + 1), ``T`` frames, ``H`` hidden units, ``P`` the
projection (256 by default, transformers' ``classifier_proj_size``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lancet.core.errors import LancetError
from lancet.ssl.masks import masked_mean

#: transformers' ``classifier_proj_size`` default, the projection of SUPERB-style heads.
PROJ_SIZE = 256


class WeightedLayerSum(nn.Module):
    """``sum_l softmax(w)_l x_l`` over the layer axis; the weights start equal (transformers' ``layer_weights``)."""

    def __init__(self, n_layers: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(n_layers) / n_layers)

    def forward(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """``x`` holds the L layers along ``dim``; that axis is summed away."""
        shape = [1] * x.dim()
        shape[dim] = -1
        return (x * nn.functional.softmax(self.weights, dim=-1).view(shape)).sum(dim=dim)


class SuperbProbe(nn.Module):
    """SUPERB's frozen-upstream head, exactly as transformers' ``*ForSequenceClassification`` with
    ``use_weighted_layer_sum=True``: softmax-weighted sum of all hidden states, linear projection H -> P,
    mean over the valid frames, linear classifier P -> classes.

    Constructed like every model of the toolkit, ``SuperbProbe(n_classes, n_freq, n_frames)``, where a
    stored statistic's (F, T) is (layers, hidden): ``n_freq`` = L hidden states, ``n_frames`` = H units.
    ``forward(x, lengths=None)`` takes the statistics (B, 1, L, H) or (B, L, H); ``lengths`` is ignored
    (a statistic has no padding). ``forward_frames`` takes the frames themselves.

    Example:
        >>> probe = SuperbProbe(n_classes=4, n_freq=3, n_frames=8, proj_size=5)
        >>> probe(torch.zeros(2, 1, 3, 8)).shape
        torch.Size([2, 4])
    """

    def __init__(self, n_classes: int = 4, n_freq: int = 13, n_frames: int = 768, proj_size: int = PROJ_SIZE) -> None:
        super().__init__()
        for name, value in (("n_classes", n_classes), ("n_freq (layers)", n_freq), ("n_frames (hidden size)", n_frames),
                            ("proj_size", proj_size)):
            if int(value) < 1:
                raise LancetError(f"SuperbProbe: {name} must be at least 1, got {value}")
        self.n_layers, self.hidden_size = int(n_freq), int(n_frames)
        self.layer_sum = WeightedLayerSum(self.n_layers)
        self.projector = nn.Linear(self.hidden_size, int(proj_size))
        self.classifier = nn.Linear(int(proj_size), int(n_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, classes) from per-layer means (B, 1, L, H) or (B, L, H)."""
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() != 3 or x.shape[1:] != (self.n_layers, self.hidden_size):
            raise LancetError(f"SuperbProbe: expected per-layer means (batch, 1, {self.n_layers}, {self.hidden_size}), "
                              f"got {tuple(x.shape)}; build it with the store's (layers, hidden) shape")
        x = x.to(self.projector.weight.dtype)  # a float16 store's statistics into float32 weights
        return self.classifier(self.projector(self.layer_sum(x, dim=1)))

    def forward_frames(self, hidden_states: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) from the L hidden states (B, T, H) and the frame mask (B, T), in transformers' order."""
        stacked = torch.stack(tuple(hidden_states), dim=1)  # (B, L, T, H)
        frames = self.projector(self.layer_sum(stacked, dim=1))  # (B, T, P)
        return self.classifier(masked_mean(frames, mask))

    @torch.no_grad()
    def load_transformers_head(self, model: nn.Module) -> "SuperbProbe":
        """Copy ``layer_weights``, ``projector`` and ``classifier`` of a transformers sequence classifier."""
        if getattr(model, "layer_weights", None) is None:
            raise LancetError(f"{type(model).__name__}: no layer_weights (build it with use_weighted_layer_sum=True)")
        self.layer_sum.weights.copy_(model.layer_weights)
        self.projector.load_state_dict(model.projector.state_dict())
        self.classifier.load_state_dict(model.classifier.state_dict())
        return self


class AttentiveStatsPooling(nn.Module):
    """Attentive statistics pooling (Okabe, Koshinaka & Shinoda, Interspeech 2018) over the valid frames.

    Scores ``e_t = v . tanh(W h_t + b)``, weights ``a = softmax(e)`` over the valid frames only, and the
    weighted mean and standard deviation ``sqrt(sum_t a_t h_t^2 - mu^2)`` concatenated: (B, 2 D).
    The paper's scalar bias k of the score cancels in the softmax and is left out.
    """

    def __init__(self, dim: int, attention_dim: int = 128, min_var: float = 1e-5) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1, bias=False))
        self.min_var = min_var  # floors the variance: its sqrt has an infinite gradient at 0 (a constant input)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, T, D), ``mask`` (B, T) -> (B, 2 D)."""
        scores = self.score(x).squeeze(-1).float()
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)  # (B, T, 1); padded frames get exactly 0
        x = torch.where(mask.unsqueeze(-1), x.float(), torch.zeros((), device=x.device))
        mean = (weights * x).sum(dim=1)
        var = (weights * x.square()).sum(dim=1) - mean.square()
        return torch.cat([mean, var.clamp(min=self.min_var).sqrt()], dim=1)


class AttentiveStatsHead(nn.Module):
    """A head over frames: weighted layer sum, projection H -> P, attentive statistics pooling, classifier 2P -> classes.

    For the on-the-fly path (it needs the frames, so no stored statistic can stand in for them).

    Example:
        >>> head = AttentiveStatsHead(n_classes=4, n_layers=3, hidden_size=8, proj_size=6)
        >>> h = [torch.randn(2, 5, 8) for _ in range(3)]
        >>> head.forward_frames(h, torch.ones(2, 5, dtype=torch.bool)).shape
        torch.Size([2, 4])
    """

    def __init__(self, n_classes: int = 4, n_layers: int = 13, hidden_size: int = 768, proj_size: int = PROJ_SIZE,
                 attention_dim: int = 128) -> None:
        super().__init__()
        self.n_layers, self.hidden_size = int(n_layers), int(hidden_size)
        self.layer_sum = WeightedLayerSum(self.n_layers)
        self.projector = nn.Linear(self.hidden_size, int(proj_size))
        self.pooling = AttentiveStatsPooling(int(proj_size), int(attention_dim))
        self.classifier = nn.Linear(2 * int(proj_size), int(n_classes))

    def forward_frames(self, hidden_states: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) from the L hidden states (B, T, H) and the frame mask (B, T)."""
        frames = self.projector(self.layer_sum(torch.stack(tuple(hidden_states), dim=1), dim=1))
        return self.classifier(self.pooling(frames, mask).to(frames.dtype))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Refused: a per-layer mean has lost the frames this head weighs (one-line :class:`LancetError`)."""
        raise LancetError("SSLAttentive: attentive pooling needs the upstream's frames, which stored per-layer means "
                          "do not hold; train it with --finetune (--finetune-layers 0 keeps the upstream frozen)")


def attentive_stats_head(n_classes: int = 4, n_freq: int = 13, n_frames: int = 768, proj_size: int = PROJ_SIZE,
                         attention_dim: int = 128) -> AttentiveStatsHead:
    """:class:`AttentiveStatsHead` built like every model of the registry: a store's (layers, hidden) as
    (``n_freq``, ``n_frames``).

    Example:
        >>> attentive_stats_head(4, 3, 8, proj_size=6).hidden_size
        8
    """
    return AttentiveStatsHead(n_classes, n_freq, n_frames, proj_size, attention_dim)
