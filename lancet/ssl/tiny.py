"""Tiny random upstreams (WavLM, HuBERT, wav2vec 2.0) written as checkpoint folders, for tests and benchmarks.

The same code paths as a real checkpoint (``save_pretrained`` with a matching ``Wav2Vec2FeatureExtractor``,
loaded by :func:`lancet.ssl.upstream.load_upstream`), at a size that runs in milliseconds on a CPU and needs
no download: 2 transformer layers of 32 units over a 4-layer CNN of 32 channels with the real models'
stride of 320 samples (50 frames per second) and a receptive field of 345 samples (theirs: 400).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lancet.core.errors import LancetError
from lancet.ssl.upstream import transformers_module

#: Architectures :func:`save_tiny_upstream` writes: transformers' config class of each.
TINY_ARCHS = {"wav2vec2": "Wav2Vec2Config", "hubert": "HubertConfig", "wavlm": "WavLMConfig"}
TINY_SIZES: dict[str, Any] = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    conv_dim=(32, 32, 32, 32), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
)


def save_tiny_upstream(folder: str | os.PathLike, arch: str = "wavlm", *, layer_norm: bool = False,
                       do_normalize: bool = True, seed: int = 0, **overrides: Any) -> Path:
    """Write a randomly initialised ``arch`` checkpoint (weights, config, feature extractor) into ``folder``.

    ``layer_norm``: the large models' CNN with per-frame layer norm and pre-LN transformer
    (``feat_extract_norm="layer"``, ``do_stable_layer_norm=True``); default the base models' group norm.
    ``overrides`` go to the config (e.g. ``hidden_size=768`` with the base sizes for a benchmark).
    """
    if arch not in TINY_ARCHS:
        raise LancetError(f"unknown tiny upstream {arch!r}; choose one of {', '.join(TINY_ARCHS)}")
    tf = transformers_module()
    sizes = {**TINY_SIZES, "feat_extract_norm": "layer" if layer_norm else "group", "do_stable_layer_norm": layer_norm,
             **overrides}
    config = getattr(tf, TINY_ARCHS[arch])(**sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = tf.AutoModel.from_config(config)
    folder = Path(folder)
    bars = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # "Writing model shards" of a 40 k-parameter model: noise in test logs
    try:
        model.save_pretrained(folder)
    finally:
        if bars:
            tf.utils.logging.enable_progress_bar()
    # the extractor's settings are what load_upstream reads: 16 kHz mono, normalisation as asked
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=do_normalize,
                                return_attention_mask=layer_norm).save_pretrained(folder)
    return folder
