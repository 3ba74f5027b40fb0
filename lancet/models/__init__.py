"""The three speech-emotion models (LANCET and the GLAM / TC-Net baselines) and their registry.

All take (batch, 1, freq, time) feature segments and return logits (batch, n_classes) from
``forward(x, lengths=None)``, where ``lengths`` (batch,) counts the valid frames. Constructors share
one signature ``Model(n_classes=4, n_freq=..., n_frames=..., **options)``. See docs/MODELS.md.
"""

from lancet.models.glam import GLAM
from lancet.models.lancet import LANCET
from lancet.models.registry import FEATURE_SHAPES, MODELS, build_model, count_parameters, parse_model_options
from lancet.models.tcnet import TCNet

__all__ = ["LANCET", "GLAM", "TCNet", "MODELS", "FEATURE_SHAPES", "build_model", "count_parameters", "parse_model_options"]
