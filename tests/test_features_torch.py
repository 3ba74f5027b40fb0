"""The batched torch feature path (GPU extraction; verified here on CPU torch, and on CUDA where present):
every value within 1e-3 log10 units of librosa, including quiet bands just above the floor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lancet.features import TorchFeatures, librosa_reference, make_params
from lancet.features.params import SegmentParams
from lancet.features.segment import segment_audio

SR = 16000
EMODB = Path(__file__).resolve().parents[2] / "shared" / "data" / "emodb" / "wav"
TO_LOG10 = {"mel": 1.0, "mfcc": 0.1, "spectrogram": 0.1}  # mel is log10; MFCC and spectrogram are in dB


def _segments() -> np.ndarray:
    """Real speech when ../shared has EmoDB (resampled 22.05 -> 16 kHz: empty top bands), else synthetic;
    plus a zero-padded and a very quiet segment, where float32 FFT noise shows most."""
    wavs = sorted(EMODB.glob("*.wav"))[:6]
    if wavs:
        from lancet.core.audio import load_audio

        x = np.concatenate([segment_audio(load_audio(w), SegmentParams())[0] for w in wavs])[:10]
    else:
        rng = np.random.default_rng(1)
        t = np.arange(32000) / SR
        x = np.stack([0.2 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.01 * rng.standard_normal(32000)
                      for _ in range(6)]).astype(np.float32)
    x = x.copy()
    x[0, 20000:] = 0.0
    x[1] *= 1e-3
    return x


def _worst(kind: str, device: str, precision: str = "float64") -> float:
    params = make_params(kind)
    x = _segments()
    ours = TorchFeatures(params, SR, device=device, precision=precision)(x).astype(np.float64)
    ref = np.stack([librosa_reference(s, params, SR) for s in x]).astype(np.float64)
    assert ours.shape == ref.shape
    return float(np.abs(ours - ref).max() * TO_LOG10[kind])


@pytest.mark.parametrize("kind", ["mel", "mfcc", "spectrogram"])
def test_torch_path_within_1e3_of_librosa_everywhere(kind):
    assert _worst(kind, "cpu") < 1e-4  # float64: far inside the 1e-3 target


def test_float32_is_what_missed_the_target():
    """The reason for float64: in float32 the FFT's rounding noise moves quiet values (kept as a check
    that the test above can tell the difference; float32 stays available for memory-starved devices)."""
    if not sorted(EMODB.glob("*.wav")):
        pytest.skip("../shared/data/emodb absent: the synthetic segments do not expose float32 noise")
    assert _worst("mel", "cpu", "float32") > _worst("mel", "cpu", "float64") * 10


def test_large_batches_are_chunked_with_identical_results(monkeypatch):
    params = make_params("mel")
    x = _segments()
    whole = TorchFeatures(params, SR, device="cpu")(x)
    monkeypatch.setattr(TorchFeatures, "CHUNK_BYTES", 1)  # one segment per chunk
    np.testing.assert_array_equal(TorchFeatures(params, SR, device="cpu")(x), whole)


def test_float16_output():
    params = make_params("mel")
    x = _segments()[:3]
    f = TorchFeatures(params, SR, device="cpu")
    half = f.submit(x, "float16").result()
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), f(x), atol=1e-2, rtol=1e-3)


def test_cuda_path_within_1e3_of_librosa():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the same code is checked on CPU torch above")
    torch.backends.cuda.matmul.allow_tf32 = True  # as the trainer sets it: the features must not use TF32
    for kind in TO_LOG10:
        assert _worst(kind, "cuda") < 1e-3, kind
