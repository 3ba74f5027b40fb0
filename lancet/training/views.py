"""Several views of the same segments in one batch: a clean one and noisy copies, and the agreement between them.

With ``--online-paired`` an epoch's table holds ``V`` views of the same ``n`` segments in view-major order
(row ``v * n + i`` is view ``v`` of segment ``i``; view 0 is clean, the others fresh noisy copies). A batch
takes the same ``B`` segments in every view, mixed by mixup with the same weight and partner in each view
so that the views stay aligned, and the loss adds a consistency term between the clean view's predictions
and each noisy one (``--consistency kl|js``, weight ``--consistency-weight``): the noise-robust keyword
spotting and ASR recipe of training a model to answer the same with and without noise.

Example:
    >>> view_rows(np.array([2, 0]), n=3, views=2).tolist()
    [2, 0, 5, 3]
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CONSISTENCY = ("off", "kl", "js")


def view_rows(anchors: np.ndarray, n: int, views: int) -> np.ndarray:
    """The table rows of segments ``anchors`` in every view, view-major: ``views * len(anchors)`` rows."""
    return np.concatenate([np.asarray(anchors, dtype=np.int64) + v * n for v in range(views)])


def view_permutation(perm: torch.Tensor, views: int) -> torch.Tensor:
    """A permutation of ``B`` segments applied inside each of ``views`` blocks of a view-major batch.

    Example:
        >>> view_permutation(torch.tensor([1, 0]), 2).tolist()
        [1, 0, 3, 2]
    """
    b = perm.shape[0]
    return torch.cat([perm + v * b for v in range(views)])


def consistency(logits: torch.Tensor, views: int, kind: str) -> torch.Tensor:
    """How far the noisy views' predictions are from the clean view's (mean over segments and noisy views).

    ``kl``: KL(p_clean || p_noisy) with the clean prediction held fixed (only the noisy view is pulled
    towards it); ``js``: the Jensen-Shannon divergence, symmetric and bounded by log 2. Zero when the
    views agree. ``logits``: (views * B, classes), view-major.

    Example:
        >>> same = torch.tensor([[2.0, 0.0], [0.0, 1.0]]).repeat(2, 1)
        >>> [abs(float(consistency(same, 2, kind))) < 1e-6 for kind in ("kl", "js")]
        [True, True]
    """
    logp = F.log_softmax(logits.float(), dim=-1).view(views, -1, logits.shape[-1])
    clean, noisy = logp[:1], logp[1:]
    if kind == "kl":
        target = clean.detach()
        return (target.exp() * (target - noisy)).sum(-1).mean()
    if kind == "js":
        mean = torch.logsumexp(torch.stack(torch.broadcast_tensors(clean, noisy)), dim=0) - np.log(2.0)
        kl = lambda p: (p.exp() * (p - mean)).sum(-1)  # noqa: E731
        return (0.5 * (kl(clean) + kl(noisy))).mean()
    raise ValueError(f"unknown consistency {kind!r}; choose one of {', '.join(CONSISTENCY)}")
