"""One trained model ready to label audio: the ``best.pt`` of a unit rebuilt with what it was trained with.

A checkpoint carries the model's name, options and weights, its classes, the feature parameters and the
fold's normalisation (``--norm`` mode and the training speakers' statistics); :func:`load_predictor`
rebuilds all of it, and :func:`segment_probs` turns feature segments into class probabilities exactly as
evaluation did on stored features.

A model over a self-supervised upstream (``--features ssl``) reads per-layer statistics (``input``
``statistics``: the upstream that computes them from audio is loaded beside it) or audio (``audio``: a
fine-tuned upstream is part of the model); either way the upstream is loaded from local files only and held
to the identity the checkpoint records (:mod:`lancet.training.ssl_upstream`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from lancet.core.device import autocast_context, resolve_amp, resolve_device
from lancet.core.errors import LancetError
from lancet.models import MODELS, build_model
from lancet.ssl import Upstream, UpstreamClassifier

from .checkpoint import load_checkpoint
from .evaluate import to_model_input
from .feature_norm import Normaliser, normalise_utterance
from .ssl_upstream import load_recorded_upstream

#: Checkpoints of this format were written when LANCET's attention used 'same' padding.
OLD_FORMAT = "lancet-checkpoint-1"
#: What a best checkpoint must hold to be used for prediction.
NEEDED = ("model_name", "model_state", "class_names", "norm_mean", "norm_std", "feature_params", "n_freq", "n_frames")


@dataclass
class Predictor:
    model: torch.nn.Module
    class_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    feature_record: dict
    pooling: str
    device: torch.device
    amp_dtype: torch.dtype | None
    n_frames: int
    norm: str = "global"   # --norm the model was trained with (lancet.training.feature_norm)
    model_name: str = ""
    source: str = ""       # the checkpoint file
    input: str = "features"  # features | statistics (per-layer means of an upstream) | audio (a fine-tuned upstream)
    upstream: Upstream | None = None  # statistics: the upstream that computes them (None: not loaded)


def load_predictor(checkpoint: str | os.PathLike, device: str = "auto", amp: str = "off", featurise: bool = True,
                   upstreams: dict[str, Upstream] | None = None) -> Predictor:
    """Rebuild the model of a ``best.pt`` written by the trainer, on ``device``.

    ``featurise``: also load what turns audio into the model's input where that is a model of its own (the
    upstream of a head on per-layer statistics; False when stored features are fed); ``upstreams``: ones
    already loaded, by weights hash (an ensemble of fold models shares one)."""
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location=dev)
    missing = [k for k in NEEDED if k not in ckpt]
    if missing:
        raise LancetError(f"{checkpoint}: not a LANCET best checkpoint (missing {', '.join(missing)})")
    options = dict(ckpt.get("model_options", {}))
    entry = MODELS.get(ckpt["model_name"])
    if entry is not None and ckpt.get("format", OLD_FORMAT) == OLD_FORMAT:
        for key, value in entry.old_checkpoint_options.items():  # defaults that changed since it was trained
            options.setdefault(key, value)
    model = build_model(ckpt["model_name"], len(ckpt["class_names"]), ckpt["n_freq"], ckpt["n_frames"], **options)
    reads = str(ckpt.get("input", "features"))
    upstream = None
    if reads == "audio":  # the upstream it fine-tuned, from the checkpoint it started from
        model = UpstreamClassifier(load_recorded_upstream(ckpt["feature_params"], str(checkpoint), flag="upstream"),
                                   model, ckpt.get("finetune_layers"))
    elif reads == "statistics" and featurise:
        upstream = _shared_upstream(ckpt["feature_params"], str(checkpoint), upstreams).to(dev)
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:  # sizes that disagree with the recorded model: a foreign or edited file
        first = str(exc).strip().splitlines()
        raise LancetError(f"{checkpoint}: its weights do not fit a {ckpt['model_name']} of the recorded sizes "
                          f"({first[-1].strip() if first else 'size mismatch'})") from None
    if not all(bool(torch.isfinite(w).all()) for w in model.state_dict().values() if w.is_floating_point()):
        raise LancetError(f"{checkpoint}: holds weights that are not finite (a diverged training); it cannot predict")
    model.to(dev).eval()
    return Predictor(model=model, class_names=list(ckpt["class_names"]),
                     mean=torch.as_tensor(np.asarray(ckpt["norm_mean"], np.float32).reshape(-1, 1), device=dev),
                     std=torch.as_tensor(np.asarray(ckpt["norm_std"], np.float32).reshape(-1, 1), device=dev),
                     feature_record=dict(ckpt["feature_params"]), pooling=ckpt.get("pooling", "mean"),
                     device=dev, amp_dtype=resolve_amp(amp, dev), n_frames=int(ckpt["n_frames"]),
                     norm=str(ckpt.get("norm", "global")), model_name=str(ckpt["model_name"]), source=str(checkpoint),
                     input=reads, upstream=upstream)


def _shared_upstream(record: dict, where: str, upstreams: dict[str, Upstream] | None) -> Upstream:
    """The upstream a store record names, loaded once per weights hash when ``upstreams`` keeps them."""
    key = str(record.get("params", {}).get("weights_sha256", ""))
    if upstreams is not None and key in upstreams:
        return upstreams[key]
    upstream = load_recorded_upstream(record, where, flag="upstream")
    if upstreams is not None:
        upstreams[key] = upstream
    return upstream


def model_input(predictor: Predictor, feats: np.ndarray, lengths: np.ndarray,
                stats: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
    """Segments (n, F, T) normalised as the model was trained -> (n, 1, F, T) on its device.

    ``stats``: per-segment (mean, std) of shape (n, F) for ``--norm utterance`` (the statistics of the
    utterance each segment belongs to); without them the segments are taken as one utterance.
    """
    dev = predictor.device
    if predictor.norm == "global":
        return to_model_input(torch.from_numpy(np.ascontiguousarray(feats)).to(dev), predictor.mean, predictor.std)
    if predictor.norm != "utterance" or stats is None:
        return normalise_utterance(feats, lengths, predictor.norm, predictor.mean, predictor.std, dev)
    norm = Normaliser("utterance", predictor.mean.cpu().numpy(), predictor.std.cpu().numpy(), dev)
    norm.seg_mean = torch.as_tensor(np.asarray(stats[0], np.float32), device=dev)
    norm.seg_std = torch.as_tensor(np.asarray(stats[1], np.float32), device=dev)
    return norm(torch.as_tensor(np.asarray(feats), device=dev), torch.as_tensor(np.asarray(lengths), device=dev),
                np.arange(len(feats)))


@torch.no_grad()
def segment_probs(predictor: Predictor, feats: np.ndarray, lengths: np.ndarray,
                  stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Softmax probabilities (n, classes) of feature segments (n, F, T) with ``lengths`` valid frames."""
    if predictor.input != "audio" and feats.shape[-1] != predictor.n_frames:
        raise LancetError(f"{predictor.source}: features have {feats.shape[-1]} frames, the model expects "
                          f"{predictor.n_frames}")
    x = model_input(predictor, feats, lengths, stats)
    with autocast_context(predictor.device, predictor.amp_dtype):
        logits = predictor.model(x, lengths=torch.from_numpy(np.asarray(lengths, np.int64)).to(predictor.device))
    return torch.softmax(logits.float(), dim=-1).cpu().numpy()
