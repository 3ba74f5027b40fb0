"""The upstream behind an ``ssl`` store, loaded again for what the stored statistics cannot do.

Training a probe on stored per-layer means needs no upstream; online noise (the statistics of each epoch's
mixtures), fine-tuning and prediction on new audio do. The upstream is then loaded from local files only
(``--upstream``, or the source the store recorded) and held to the store's identity: the same architecture,
sizes, input normalisation, weights (their SHA-256) and transformers release as the statistics it will sit
beside, so a model never meets features of another checkpoint. Any difference is one line naming it.
"""

from __future__ import annotations

from typing import Callable

from lancet.core.errors import LancetError
from lancet.features.extract_ssl import ssl_params
from lancet.features.params import SslParams
from lancet.ssl import Upstream, load_upstream

#: What must agree between a loaded upstream and the store's record (the precision of a pass may differ).
IDENTITY_FIELDS = ("model_type", "n_layers", "hidden_size", "feat_extract_norm", "do_normalize", "weights_sha256",
                   "transformers")


def recorded_upstream(record: dict, where: str) -> SslParams:
    """The :class:`SslParams` a store's params.json (or a checkpoint's copy of it) records."""
    try:
        return SslParams(**{k: v for k, v in dict(record["params"]).items() if k in SslParams.__dataclass_fields__})
    except (KeyError, TypeError):
        raise LancetError(f"{where}: no self-supervised upstream recorded (not an ssl feature store)") from None


def check_identity(upstream: Upstream, recorded: SslParams, where: str, flag: str = "--upstream") -> None:
    """One-line :class:`LancetError` unless ``upstream`` is the one the statistics of ``where`` came from."""
    found = ssl_params(upstream, None)
    for name in IDENTITY_FIELDS:
        mine, theirs = getattr(found, name), getattr(recorded, name)
        if mine != theirs:
            what = {"weights_sha256": "weights", "transformers": "transformers release"}.get(name, name)
            shown = (str(mine)[:12], str(theirs)[:12]) if name == "weights_sha256" else (mine, theirs)
            hint = ("install the release it was extracted with, or extract again" if name == "transformers"
                    else "give the checkpoint it was extracted with, or extract again")
            raise LancetError(f"{flag} {upstream.source}: {what} {shown[0]}, but {where} records {shown[1]} "
                              f"(upstream {recorded.upstream}); {hint}")


def load_recorded_upstream(record: dict, where: str, source: str | None = None, flag: str = "--upstream",
                           log: Callable[[str], None] | None = None) -> Upstream:
    """The upstream of a store (``source``, or the one it records), local files only, checked against it."""
    recorded = recorded_upstream(record, where)
    chosen = source or recorded.upstream
    upstream = load_upstream(chosen, revision=(recorded.revision or None) if not source else None, log=log)
    check_identity(upstream, recorded, where, flag)
    return upstream
