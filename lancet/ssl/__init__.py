"""Self-supervised speech upstreams (WavLM, HuBERT, wav2vec 2.0) for the SER baselines, between the steps and the corpora.

Features (the stored per-layer statistics) and models (the probe, fine-tuning) both need the upstream, and
the two layers may not import each other, so it lives here, on :mod:`lancet.core` only. transformers is
imported on first use (:func:`~lancet.ssl.upstream.load_upstream`), never by importing this package.

- :mod:`~lancet.ssl.upstream`: :func:`load_upstream` -> :class:`Upstream` (normalisation, frame counts, every
  utterance of a batch computed as if alone, all hidden states);
- :mod:`~lancet.ssl.batching`: batches sorted by length under a budget of padded samples;
- :mod:`~lancet.ssl.stats`: the per-layer masked means of each utterance (SUPERB's sufficient statistic);
- :mod:`~lancet.ssl.heads`: :class:`SuperbProbe` (frozen probe, from frames or statistics),
  :class:`AttentiveStatsHead` (attentive statistics pooling over frames);
- :mod:`~lancet.ssl.finetune`: :class:`UpstreamClassifier` (upstream + head; frozen, top-N or full fine-tuning);
- :mod:`~lancet.ssl.tiny`: tiny random checkpoints for tests and benchmarks.
"""

from lancet.ssl.batching import pad_waves, plan_batches
from lancet.ssl.finetune import UpstreamClassifier, trainable_upstream_names
from lancet.ssl.heads import AttentiveStatsHead, AttentiveStatsPooling, SuperbProbe, WeightedLayerSum
from lancet.ssl.masks import frame_mask, masked_mean
from lancet.ssl.stats import UtteranceStats, extract_layer_means, iter_layer_means, layer_means
from lancet.ssl.tiny import TINY_ARCHS, save_tiny_upstream
from lancet.ssl.upstream import Upstream, UpstreamOutput, download_command, load_upstream

__all__ = ["AttentiveStatsHead", "AttentiveStatsPooling", "SuperbProbe", "TINY_ARCHS", "Upstream", "UpstreamClassifier",
           "UpstreamOutput", "UtteranceStats", "WeightedLayerSum", "download_command", "extract_layer_means",
           "frame_mask", "iter_layer_means", "layer_means", "load_upstream", "masked_mean", "pad_waves",
           "plan_batches", "save_tiny_upstream", "trainable_upstream_names"]
