"""PCEN features (a feature kind like the others): equal to the reference formula, stored, read and trained on."""

from __future__ import annotations

import numpy as np
import pytest

from lancet.core.errors import LancetError
from lancet.features import TorchFeatures, compute_features, librosa_reference, make_params, open_features
from lancet.features.params import FEATURE_SHAPES, KINDS

from test_features import _extract, _segments_for_equality, corpus  # noqa: F401  (the module's fixture)


def _by_formula(x: np.ndarray, sr: int = 16000) -> np.ndarray:
    """PCEN written out from its definition (Wang et al. 2017), one frame at a time, independent of our code."""
    import librosa

    p = make_params("pcen")
    S = librosa.feature.melspectrogram(y=x, sr=sr, n_fft=400, hop_length=160, win_length=400, n_mels=128,
                                       power=1.0).astype(np.float64) * 2.0 ** 31
    t = p.time_constant * sr / 160
    b = (np.sqrt(1 + 4 * t * t) - 1) / (2 * t * t)
    out = np.empty_like(S)
    m = np.ones(S.shape[0])
    for k in range(S.shape[1]):
        m = (1 - b) * m + b * S[:, k]
        out[:, k] = (S[:, k] / (p.eps + m) ** p.gain + p.bias) ** p.root - p.bias ** p.root
    return out


def test_pcen_equals_the_formula_and_librosa():
    x = _segments_for_equality()
    params = make_params("pcen")
    ours = compute_features(x, params)
    torch_path = TorchFeatures(params, 16000, device="cpu")(x)
    for seg, a, c in zip(x, ours, torch_path):
        ref = _by_formula(seg)
        assert a.shape == (128, 201) == ref.shape
        scale = np.abs(ref).max()
        assert np.abs(a - ref).max() <= 1e-5 * scale + 1e-6           # float32 Mel, float64 PCEN
        assert np.abs(c - ref).max() <= 1e-5 * scale + 1e-6
        assert np.abs(a - librosa_reference(seg, params)).max() <= 1e-5 * scale + 1e-6


def test_pcen_takes_out_a_change_of_level_that_log_mel_keeps():
    """The point of PCEN: a gain change (a louder microphone) shifts every log-Mel value, PCEN hardly."""
    rng = np.random.default_rng(1)
    t = np.arange(32000) / 16000
    x = (0.1 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    late = slice(100, 201)  # once the smoother has followed the new level
    pcen = [compute_features(g * x[None], make_params("pcen"))[0][:, late] for g in (1.0, 8.0)]
    logmel = [compute_features(g * x[None], make_params("mel"))[0][:, late] for g in (1.0, 8.0)]
    pcen_change = np.abs(pcen[1] - pcen[0]).mean() / np.abs(pcen[0]).mean()
    log_change = np.abs(logmel[1] - logmel[0]).mean() / np.abs(logmel[0]).mean()
    assert pcen_change < 0.2 * log_change


def test_pcen_is_stored_like_the_other_kinds(corpus, tmp_path):  # noqa: F811
    assert KINDS["pcen"].script == "extract_features_iemocap_pcen.py" and FEATURE_SHAPES["pcen"] == (128, 201)
    _extract(corpus, tmp_path / "pcen", kind="pcen")
    store = open_features(tmp_path / "pcen")
    assert store.kind == "pcen" and store.shape == (128, 201) and set(store.conditions) == {"clean", "white_0dB"}
    x = store.segments("clean")
    assert x.dtype == np.float32 and np.isfinite(x).all() and x.shape[1:] == (128, 201)
    assert store.params["params"]["time_constant"] == 0.4


@pytest.mark.parametrize("flag,value,message", [("fmin", 9000.0, "--fmin 9000: must lie below the Nyquist"),
                                                ("window", "hanning-ish", "--window 'hanning-ish'"),
                                                ("time_constant", 0.0, "--time-constant")])
def test_impossible_settings_are_one_line(flag, value, message):
    with pytest.raises(LancetError, match=message):
        make_params("pcen", **{flag: value})
