"""The speech-emotion models (LANCET and the GLAM / TC-Net baselines) and their registry.

All take (batch, 1, freq, time) feature segments and return logits (batch, n_classes) from
``forward(x, lengths=None)``, where ``lengths`` (batch,) counts the valid frames. Constructors share
one signature ``Model(n_classes=4, n_freq=..., n_frames=..., **options)``. ``MODELS`` maps each name to
its :class:`ModelEntry`; the published input shapes are in ``lancet.features.FEATURE_SHAPES``, keyed by
the entry's ``input_kind``. See docs/MODELS.md.
"""

from lancet.models.glam import GLAM
from lancet.models.lancet import LANCET
from lancet.models.registry import MODELS, ModelEntry, build_model, count_parameters, parse_model_options
from lancet.models.tcnet import TCNet

__all__ = ["LANCET", "GLAM", "TCNet", "MODELS", "ModelEntry", "build_model", "count_parameters", "parse_model_options"]
