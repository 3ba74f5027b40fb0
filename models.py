"""Models for speech emotion recognition (thin re-export; the code lives in ``lancet/models/``).

    from models import build_model
    model = build_model("LANCET", n_classes=4, n_freq=128, n_frames=201)
    logits = model(x, lengths)   # x: (batch, 1, freq, time); lengths: (batch,) valid frames or None

``MODELS`` maps "LANCET", "GLAM" and "TCNet" to their classes. See docs/MODELS.md for the layers,
parameter counts and costs.
"""

from lancet.models import FEATURE_SHAPES, GLAM, LANCET, MODELS, TCNet, build_model, count_parameters

__all__ = ["LANCET", "GLAM", "TCNet", "MODELS", "FEATURE_SHAPES", "build_model", "count_parameters"]
