"""Feature extraction (log-Mel, MFCC, spectrogram) and the feature store.

Reading (used by the trainer): ``open_features(folder) -> FeatureStore`` with ``.kind``, ``.params``,
``.conditions``, ``.shape``, ``.segments(condition)`` (mmap) and ``.index(condition)``;
``compute_norm_stats(x) -> (mean, std)`` and ``normalise(x, mean, std)``.
Writing: ``extract_features(manifest, out, kind=...)``, run by ``feature_extraction/*.py``; the ``ssl`` kind (a
self-supervised upstream's per-layer means) by ``lancet.features.extract_ssl.extract_ssl_features``, kept out of
this package's imports (it loads torch, which the CPU extraction workers must not pay for).
The kinds: ``KINDS`` (name -> :class:`FeatureKind`), their default segment shapes ``FEATURE_SHAPES``.
"""

from lancet.features.compute import TorchFeatures, compute_features, librosa_reference
from lancet.features.extract import ExtractSummary, extract_features, read_combined_manifest
from lancet.features.params import (
    FEATURE_SHAPES, KINDS, FeatureKind, MelParams, MfccParams, SegmentParams, SpectrogramParams, feature_shape,
    make_params,
)
from lancet.features.segment import segment_audio, segment_starts, valid_frames
from lancet.features.store import FeatureStore, compute_norm_stats, normalise, open_features

__all__ = [
    "FeatureStore", "open_features", "compute_norm_stats", "normalise",
    "extract_features", "ExtractSummary", "read_combined_manifest",
    "compute_features", "TorchFeatures", "librosa_reference",
    "MelParams", "MfccParams", "SpectrogramParams", "SegmentParams", "KINDS", "FeatureKind", "FEATURE_SHAPES",
    "make_params", "feature_shape",
    "segment_audio", "segment_starts", "valid_frames",
]
