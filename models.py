"""Models for speech emotion recognition (thin re-export; the code lives in ``lancet/models/``).

    from models import build_model
    model = build_model("LANCET", n_classes=4, n_freq=128, n_frames=201)
    logits = model(x, lengths)   # x: (batch, 1, freq, time); lengths: (batch,) valid frames or None

``MODELS`` maps each model name to its registry entry (class, published input kind, paper);
``FEATURE_SHAPES[MODELS[name].input_kind]`` is the (n_freq, n_frames) it was published with. See
docs/MODELS.md for the layers, parameter counts and costs, docs/EXTENDING.md to add a model.
"""

from lancet.features.params import FEATURE_SHAPES
from lancet.models import GLAM, LANCET, MODELS, ModelEntry, TCNet, build_model, count_parameters

__all__ = ["LANCET", "GLAM", "TCNet", "MODELS", "ModelEntry", "FEATURE_SHAPES", "build_model", "count_parameters"]
