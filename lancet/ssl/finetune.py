"""Upstream and head in one module: raw 16 kHz audio in, logits out, for on-the-fly heads and fine-tuning.

What trains (``train_layers``):

* ``None``: fine-tuning as usual: everything but the convolutional feature encoder (frozen, as in
  wav2vec 2.0's and SUPERB's fine-tuning recipes), i.e. the CNN-feature projection, the positional
  convolution and every transformer layer; transformers' own time masking of the projected features
  (SpecAugment, ``mask_time_prob`` of the checkpoint's config, 0.05 for the base models) applies in training
  mode as in its recipes (it draws from numpy's global generator: a resumable run must save that state);
* ``N`` >= 1: only the top N transformer layers (and, for pre-LN models, the final layer norm that
  follows them); everything below is a fixed feature extractor in eval mode, without dropout;
* ``0``: the upstream is frozen and runs without gradients; only the head trains (the on-the-fly
  counterpart of a stored-statistics probe, and the only way to train a head that needs frames).

The head is any module with ``forward_frames(hidden_states, mask)`` (:mod:`lancet.ssl.heads`). With
noisy audio made on the training device each batch, this is also the path of online-noise training.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from lancet.core.errors import LancetError
from lancet.ssl.upstream import Upstream


def trainable_upstream_names(upstream: Upstream, train_layers: int | None) -> set[str]:
    """Names (in ``upstream.model``) of the parameters that train for ``train_layers`` (see the module docstring)."""
    model = upstream.model
    names = [name for name, _ in model.named_parameters()]
    n_layers = upstream.n_layers - 1
    if train_layers is None:
        return {n for n in names if not n.startswith("feature_extractor.")}
    if not 0 <= int(train_layers) <= n_layers:
        raise LancetError(f"upstream {upstream.source}: train_layers must be between 0 and its {n_layers} "
                          f"transformer layers, not {train_layers}")
    top = {f"encoder.layers.{k}." for k in range(n_layers - int(train_layers), n_layers)}
    keep = {n for n in names if any(n.startswith(prefix) for prefix in top)}
    if train_layers and getattr(model.config, "do_stable_layer_norm", False):  # pre-LN: the last layer norm is on top
        keep |= {n for n in names if n.startswith("encoder.layer_norm.")}
    return keep


class UpstreamClassifier(nn.Module):
    """``forward(waves, lengths)``: audio (B, S) zero-padded at 16 kHz, samples per utterance (B,) -> logits."""

    def __init__(self, upstream: Upstream, head: nn.Module, train_layers: int | None = None) -> None:
        super().__init__()
        if not hasattr(head, "forward_frames"):
            raise LancetError(f"{type(head).__name__}: a head over frames needs forward_frames(hidden_states, mask)")
        self.upstream, self.head, self.train_layers = upstream, head, train_layers
        # transformers' own switch where the encoder has one (it also stops the encoder's gradient-checkpointing
        # hook from asking for gradients); the loop below freezes it either way
        freeze = getattr(upstream.model.feature_extractor, "_freeze_parameters", None)
        if freeze is not None:
            freeze()
        trainable = trainable_upstream_names(upstream, train_layers)
        for name, param in upstream.model.named_parameters():
            param.requires_grad = name in trainable
        self.train(self.training)

    def train(self, mode: bool = True) -> "UpstreamClassifier":
        """Train mode for the head and the trainable part only: frozen layers stay in eval mode (no dropout)."""
        super().train(mode)
        model = self.upstream.model
        if self.train_layers is None:
            model.feature_extractor.eval()
        else:
            model.eval()  # also keeps transformers' own time masking (SpecAugment) off below the trained layers
            n_layers = self.upstream.n_layers - 1
            for layer in list(model.encoder.layers)[n_layers - self.train_layers:]:
                layer.train(mode)
        return self

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of audio (B, S) or (B, 1, S), the trainer's (batch, channel, ...) input."""
        if waves.dim() == 3 and waves.shape[1] == 1:
            waves = waves[:, 0]
        frozen = self.train_layers == 0
        with torch.no_grad() if frozen else contextlib.nullcontext():
            out = self.upstream(waves, lengths)
        return self.head.forward_frames(out.hidden_states, out.mask)

    def frozen_keys(self) -> set[str]:
        """State-dict names of the upstream that do not train (its CNN, the layers below the trained ones,
        its buffers): they are the checkpoint's own, so :meth:`state_dict` leaves them out."""
        return ({f"upstream.model.{n}" for n, p in self.upstream.model.named_parameters() if not p.requires_grad}
                | {f"upstream.model.{n}" for n, _ in self.upstream.model.named_buffers()})

    def state_dict(self, *, destination=None, prefix: str = "", keep_vars: bool = False):
        """The head and the upstream's trainable parameters only: a fine-tuning checkpoint of the top layers holds
        those layers, not a copy of the whole upstream (whose identity the trainer records beside it)."""
        out = super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        for name in self.frozen_keys():
            out.pop(prefix + name, None)
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load what :meth:`state_dict` wrote over the upstream as loaded; with ``strict`` every trainable
        parameter and nothing else must be there."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        frozen = self.frozen_keys()
        missing = [k for k in result.missing_keys if k not in frozen]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}: missing keys {missing[:5]}, "
                               f"unexpected keys {list(result.unexpected_keys)[:5]}")
        return result
