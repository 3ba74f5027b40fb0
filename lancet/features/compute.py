"""Compute features of a batch of equal-length segments: numpy (CPU) and torch (GPU or CPU) paths.

Both paths reproduce librosa's numbers (same padding, window, FFT size, Mel filterbank and DCT) for
every segment *independently*, as the published code did (it called librosa once per segment, so
``power_to_db``'s ``top_db`` and the spectrogram's max normalisation are per segment). Batching all
segments of an utterance into one FFT call and building the Mel filterbank once are where the speed
comes from. :func:`librosa_reference` is the plain per-segment librosa computation, used by the tests
and by the benchmark's naive baseline.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft

from lancet.features.params import FeatureParams, MelParams, MfccParams, SpectrogramParams


# ---------------------------------------------------------------------------------------------------
# Cached constants (window, Mel filterbank, DCT matrix), identical for both paths
# ---------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def fft_window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    """librosa's STFT window: periodic ``window`` of ``win_length``, zero-padded centrally to ``n_fft``."""
    import librosa

    w = librosa.filters.get_window(window, win_length, fftbins=True)
    return librosa.util.pad_center(w, size=n_fft).astype(np.float32)


@functools.lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa.filters.mel (Slaney scale and norm, librosa's defaults), float32 (n_mels, 1 + n_fft/2)."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax or None, dtype=np.float32)


@functools.lru_cache(maxsize=16)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Rows of the orthonormal DCT-II (scipy.fft.dct(type=2, norm='ortho')), shape (n_mfcc, n_mels)."""
    return scipy.fft.dct(np.eye(n_mels, dtype=np.float64), type=2, norm="ortho", axis=0)[:n_mfcc].astype(np.float32)


def _power(spec: np.ndarray, power: float) -> np.ndarray:
    if power == 2.0:
        return np.square(spec.real) + np.square(spec.imag)
    return np.abs(spec) ** power


# ---------------------------------------------------------------------------------------------------
# numpy path
# ---------------------------------------------------------------------------------------------------
def _stft_centred(x: np.ndarray, n_fft: int, hop: int, window: np.ndarray) -> np.ndarray:
    """STFT of each row like librosa.stft(center=True, pad_mode='constant'): (n, 1 + n_fft/2, T)."""
    pad = n_fft // 2
    xp = np.pad(x, ((0, 0), (pad, pad)))
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft, axis=-1)[:, ::hop, :]
    spec = scipy.fft.rfft(frames * window, axis=-1)  # (n, T, bins), complex64 for float32 input
    return spec.transpose(0, 2, 1)


def _mel_power(x: np.ndarray, p: MelParams | MfccParams, sr: int) -> np.ndarray:
    window = fft_window(p.window, p.win_length, p.n_fft)
    power = _power(_stft_centred(x, p.n_fft, p.hop_length, window), p.power)
    basis = mel_basis(sr, p.n_fft, p.n_mels, p.fmin, p.fmax)
    return np.matmul(basis, power)  # (n, n_mels, T)


def _psf_frames(x: np.ndarray, p: SpectrogramParams) -> np.ndarray:
    """python_speech_features.framesig: frames from sample 0, last one zero-padded: (n, T, win)."""
    n_frames = p.frames(x.shape[-1])
    needed = (n_frames - 1) * p.hop_length + p.win_length
    if needed > x.shape[-1]:
        x = np.pad(x, ((0, 0), (0, needed - x.shape[-1])))
    return np.lib.stride_tricks.sliding_window_view(x, p.win_length, axis=-1)[:, : n_frames * p.hop_length : p.hop_length, :]


def _window_plain(window: str, length: int) -> np.ndarray:
    return fft_window(window, length, length)


def compute_features(segments: np.ndarray, params: FeatureParams, sr: int = 16000) -> np.ndarray:
    """Features of ``segments`` (n, L) as float32 (n, F, T), each segment computed independently."""
    x = np.ascontiguousarray(segments, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if isinstance(params, MelParams):
        return np.log10(np.maximum(_mel_power(x, params, sr), params.log_floor)).astype(np.float32, copy=False)
    if isinstance(params, MfccParams):
        db = 10.0 * np.log10(np.maximum(_mel_power(x, params, sr), 1e-10))
        if params.top_db:
            db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - params.top_db)
        out = scipy.fft.dct(db, type=2, norm="ortho", axis=-2)[:, : params.n_mfcc, :]
        return out.astype(np.float32, copy=False)
    if isinstance(params, SpectrogramParams):
        frames = _psf_frames(x, params)
        # zero-pad into a contiguous buffer ourselves: scipy's FFT is ~2x faster on it than with n=
        buf = np.zeros((*frames.shape[:2], params.n_fft), dtype=np.float32)
        np.multiply(frames, _window_plain(params.window, params.win_length), out=buf[:, :, : params.win_length])
        power = _power(scipy.fft.rfft(buf, axis=-1, overwrite_x=True), 2.0) / params.n_fft
        # log10 is monotonic: the maximum in dB over all bins is the log of the maximum power, so only
        # the kept bins need a logarithm.
        db = 10.0 * np.log10(np.maximum(power[:, :, : params.n_bins], params.floor))
        if params.ref == "max":
            db -= 10.0 * np.log10(np.maximum(power.max(axis=(1, 2), keepdims=True), params.floor))
        return np.ascontiguousarray(db.transpose(0, 2, 1), dtype=np.float32)
    raise TypeError(f"unknown parameter type {type(params).__name__}")


# ---------------------------------------------------------------------------------------------------
# torch path (CUDA when present; runs on CPU too, which is how the tests verify it)
# ---------------------------------------------------------------------------------------------------
class TorchFeatures:
    """Batched torch implementation of :func:`compute_features` on ``device``."""

    def __init__(self, params: FeatureParams, sr: int = 16000, device: str = "cuda"):
        import torch

        self.torch = torch
        self.params = params
        self.sr = sr
        self.device = torch.device(device)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        if isinstance(params, (MelParams, MfccParams)):
            self.window = t(fft_window(params.window, params.win_length, params.n_fft))
            self.basis = t(mel_basis(sr, params.n_fft, params.n_mels, params.fmin, params.fmax))
            if isinstance(params, MfccParams):
                self.dct = t(dct_matrix(params.n_mfcc, params.n_mels))
        elif isinstance(params, SpectrogramParams):
            self.window = t(_window_plain(params.window, params.win_length))
        else:
            raise TypeError(f"unknown parameter type {type(params).__name__}")

    def _mel_power(self, x):
        p = self.params
        spec = self.torch.stft(
            x, n_fft=p.n_fft, hop_length=p.hop_length, win_length=p.n_fft, window=self.window,
            center=True, pad_mode="constant", return_complex=True,
        )
        power = spec.real.square() + spec.imag.square() if p.power == 2.0 else spec.abs().pow(p.power)
        return self.torch.matmul(self.basis, power)

    def __call__(self, segments: np.ndarray) -> np.ndarray:
        torch, p = self.torch, self.params
        x = torch.from_numpy(np.ascontiguousarray(segments, dtype=np.float32)).to(self.device)
        if x.ndim == 1:
            x = x[None]
        with torch.no_grad():
            if isinstance(p, MelParams):
                out = torch.log10(torch.clamp(self._mel_power(x), min=p.log_floor))
            elif isinstance(p, MfccParams):
                db = 10.0 * torch.log10(torch.clamp(self._mel_power(x), min=1e-10))
                if p.top_db:
                    db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - p.top_db)
                out = torch.matmul(self.dct, db)
            else:
                n_frames = p.frames(x.shape[-1])
                needed = (n_frames - 1) * p.hop_length + p.win_length
                if needed > x.shape[-1]:
                    x = torch.nn.functional.pad(x, (0, needed - x.shape[-1]))
                frames = x.unfold(-1, p.win_length, p.hop_length)[:, :n_frames] * self.window
                spec = torch.fft.rfft(frames, n=p.n_fft, dim=-1)
                power = (spec.real.square() + spec.imag.square()) / p.n_fft
                db = 10.0 * torch.log10(torch.clamp(power, min=p.floor))
                if p.ref == "max":
                    db = db - db.amax(dim=(1, 2), keepdim=True)
                out = db[:, :, : p.n_bins].transpose(1, 2)
        return out.float().contiguous().cpu().numpy()


# ---------------------------------------------------------------------------------------------------
# plain librosa, one segment at a time (the reference and the naive baseline)
# ---------------------------------------------------------------------------------------------------
def librosa_reference(segment: np.ndarray, params: FeatureParams, sr: int = 16000) -> np.ndarray:
    """Features of one segment (L,) with librosa's own functions, float32 (F, T)."""
    import librosa

    y = np.asarray(segment, dtype=np.float32)
    if isinstance(params, (MelParams, MfccParams)):
        S = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.win_length,
            window=params.window, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax or None,
            power=params.power,
        )
        if isinstance(params, MelParams):
            return np.log10(np.maximum(S, params.log_floor)).astype(np.float32)
        S_db = librosa.power_to_db(S, top_db=params.top_db or None)
        return librosa.feature.mfcc(S=S_db, sr=sr, n_mfcc=params.n_mfcc).astype(np.float32)
    if isinstance(params, SpectrogramParams):
        # librosa's centred frame t has its window centred at t*hop; the published (framesig) frame k
        # is centred at k*hop + win/2, i.e. it is librosa's frame k + win/(2*hop).
        shift, rem = divmod(params.win_length // 2, params.hop_length)
        if rem or params.win_length % 2:
            raise NotImplementedError("librosa_reference needs win_length/2 to be a multiple of hop_length")
        stft = librosa.stft(
            y, n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.win_length,
            window=params.window, center=True, pad_mode="constant",
        )
        n_frames = params.frames(y.shape[0])
        power = np.abs(stft[:, shift : shift + n_frames]) ** 2 / params.n_fft
        db = 10.0 * np.log10(np.maximum(power, params.floor))
        if params.ref == "max":
            db -= db.max()
        return db[: params.n_bins].astype(np.float32)
    raise TypeError(f"unknown parameter type {type(params).__name__}")
