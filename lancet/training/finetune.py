"""Fine-tuning a self-supervised upstream under a head (``--finetune``): the parameter groups and their schedules.

The head learns at ``--lr`` from the first epoch, like every model of the recipe; the upstream's trainable
layers at ``--finetune-lr`` (a pretrained transformer moved at a CNN's learning rate forgets what it knew),
rising linearly over the first ``--finetune-warmup-epochs`` epochs (epoch k of them at (k + 1) / (N + 1)
of it) while the randomly initialised head settles. Both then decay as the recipe says, each floored at
``--lr-floor``. Everything else about the step is the recipe's (:func:`lancet.training.fit.train_step`).
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from lancet.ssl import UpstreamClassifier


def warmup(epochs: int) -> Callable[[int], float]:
    """The upstream's learning-rate factor of epoch ``e`` (0-based) during a warm-up of ``epochs`` epochs.

    Example:
        >>> [round(warmup(2)(e), 3) for e in range(4)], warmup(0)(0)
        ([0.333, 0.667, 1.0, 1.0], 1.0)
    """
    return lambda e: min(1.0, (e + 1) / (epochs + 1)) if epochs > 0 else 1.0


def parameter_groups(model: nn.Module, s) -> tuple[list[dict], list[Callable[[int], float]]]:
    """(optimizer parameter groups, the learning-rate factor of each per epoch) of ``model`` under settings ``s``
    (:class:`~lancet.training.config.TrainSettings`): one group for a plain model; the head and the upstream's
    trainable parameters for an :class:`~lancet.ssl.UpstreamClassifier` (frozen parameters never enter)."""
    def decay(base: float) -> Callable[[int], float]:
        floor = s.lr_floor / base if base > 0 else 0.0
        return lambda e: max(s.lr_decay ** e, floor)

    if not isinstance(model, UpstreamClassifier):
        return [{"params": list(model.parameters()), "lr": s.lr}], [decay(s.lr)]
    groups = [{"params": [p for p in model.head.parameters() if p.requires_grad], "lr": s.lr}]
    schedules = [decay(s.lr)]
    upstream = [p for p in model.upstream.parameters() if p.requires_grad]
    if upstream:
        rise, fall = warmup(s.finetune_warmup_epochs), decay(s.finetune_lr)
        groups.append({"params": upstream, "lr": s.finetune_lr})
        schedules.append(lambda e: rise(e) * fall(e))
    return groups, schedules
