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
import scipy.signal

from lancet.features.params import FeatureParams, MelParams, MfccParams, PcenParams, SpectrogramParams


# ---------------------------------------------------------------------------------------------------
# Cached constants (window, Mel filterbank, DCT matrix), identical for both paths
# ---------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def fft_window(window: str, win_length: int, n_fft: int, dtype: str = "float32") -> np.ndarray:
    """librosa's STFT window: periodic ``window`` of ``win_length``, zero-padded centrally to ``n_fft``."""
    import librosa

    w = librosa.filters.get_window(window, win_length, fftbins=True)
    return librosa.util.pad_center(w, size=n_fft).astype(dtype)


@functools.lru_cache(maxsize=16)
def mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa.filters.mel (Slaney scale and norm, librosa's defaults), float32 (n_mels, 1 + n_fft/2)."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax or None, dtype=np.float32)


@functools.lru_cache(maxsize=16)
def dct_matrix(n_mfcc: int, n_mels: int, dtype: str = "float32") -> np.ndarray:
    """Rows of the orthonormal DCT-II (scipy.fft.dct(type=2, norm='ortho')), shape (n_mfcc, n_mels)."""
    return scipy.fft.dct(np.eye(n_mels, dtype=np.float64), type=2, norm="ortho", axis=0)[:n_mfcc].astype(dtype)


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


def _mel_power(x: np.ndarray, p: MelParams | MfccParams | PcenParams, sr: int) -> np.ndarray:
    window = fft_window(p.window, p.win_length, p.n_fft)
    power = _power(_stft_centred(x, p.n_fft, p.hop_length, window), p.power)
    basis = mel_basis(sr, p.n_fft, p.n_mels, p.fmin, p.fmax)
    return np.matmul(basis, power)  # (n, n_mels, T)


def pcen(mel: np.ndarray, p: PcenParams, sr: int) -> np.ndarray:
    """Per-channel energy normalisation of Mel magnitudes (n, F, T) along time, as librosa.pcen computes it:
    the smoother ``M_t = b E_t + (1 - b) M_{t-1}`` starts from its steady state for a unit input (M_{-1} = 1),
    then ``bias**r * expm1(r * log1p(E * (eps + M)**-gain / bias))`` (in logs, so no overflow)."""
    E = mel.astype(np.float64) * p.scale
    b = p.smoothing(sr)
    M, _ = scipy.signal.lfilter([b], [1.0, b - 1.0], E, axis=-1, zi=np.full(E.shape[:-1] + (1,), 1.0 - b))
    smooth = np.exp(-p.gain * (np.log(p.eps) + np.log1p(M / p.eps)))
    return p.bias ** p.root * np.expm1(p.root * np.log1p(E * smooth / p.bias))


def _psf_frames(x: np.ndarray, p: SpectrogramParams) -> np.ndarray:
    """python_speech_features.framesig: frames from sample 0, last one zero-padded: (n, T, win)."""
    n_frames = p.frames(x.shape[-1])
    needed = (n_frames - 1) * p.hop_length + p.win_length
    if needed > x.shape[-1]:
        x = np.pad(x, ((0, 0), (0, needed - x.shape[-1])))
    return np.lib.stride_tricks.sliding_window_view(x, p.win_length, axis=-1)[:, : n_frames * p.hop_length : p.hop_length, :]


def _window_plain(window: str, length: int, dtype: str = "float32") -> np.ndarray:
    return fft_window(window, length, length, dtype)


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
    if isinstance(params, PcenParams):
        return pcen(_mel_power(x, params, sr), params, sr).astype(np.float32)
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
    """Batched torch implementation of :func:`compute_features` on ``device``.

    Why float64 by default: a float32 FFT leaves rounding noise of about 1e-7 of a frame's energy,
    which in quiet bands just above the floor (log10 near -9.9) moved values by up to 2.9e-3 log10
    units from librosa; librosa itself runs its FFT in float64 (a float64 window times the frames) and
    rounds afterwards. Computing the FFT, power, Mel sum and logarithm in float64 keeps every value
    within 1e-5 of librosa, at a cost a GPU hardly notices (the work is memory-bound). Matrix products
    run in the precision asked for: TF32 is never used for them.

    :meth:`submit` queues a batch and returns at once on CUDA (results copied back to pinned memory
    asynchronously), so the caller can receive the next batch from its audio workers meanwhile.

    Shapes: segments (n, L) float32 -> features (n, F, T) float32.

    Example:
        >>> from lancet.features.params import make_params
        >>> f = TorchFeatures(make_params("mel"), 16000, device="cpu")
        >>> f(np.zeros((2, 32000), np.float32)).shape
        (2, 128, 201)
    """

    # largest intermediate (the complex spectrum) per chunk of a batch: bounds device memory
    CHUNK_BYTES = 1 << 30

    def __init__(self, params: FeatureParams, sr: int = 16000, device: str = "cuda", precision: str = "float64"):
        import torch

        if precision not in ("float64", "float32"):
            raise ValueError(f"precision must be float64 or float32, not {precision!r}")
        self.torch = torch
        self.params = params
        self.sr = sr
        self.device = torch.device(device)
        self.dtype = getattr(torch, precision)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device, self.dtype)  # noqa: E731
        if isinstance(params, (MelParams, MfccParams, PcenParams)):
            self.window = t(fft_window(params.window, params.win_length, params.n_fft, precision))
            self.basis = t(mel_basis(sr, params.n_fft, params.n_mels, params.fmin, params.fmax))  # librosa's float32 values
            if isinstance(params, MfccParams):
                self.dct = t(dct_matrix(params.n_mfcc, params.n_mels, precision))
            bins, frame = params.n_fft // 2 + 1, params.hop_length
        elif isinstance(params, SpectrogramParams):
            self.window = t(_window_plain(params.window, params.win_length, precision))
            bins, frame = params.n_fft // 2 + 1, params.hop_length
        else:
            raise TypeError(f"unknown parameter type {type(params).__name__}")
        self._spectrum_bytes_per_sample = 2 * self.window.element_size() * bins / frame  # complex spectrum per input sample

    def _matmul(self, a, b):
        """A product in the working precision (no TF32 even where the trainer allows it globally)."""
        torch = self.torch
        if self.device.type == "cuda" and self.dtype == torch.float32:
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = False
            try:
                return torch.matmul(a, b)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old
        return torch.matmul(a, b)

    def _mel_power(self, x):
        p = self.params
        spec = self.torch.stft(
            x, n_fft=p.n_fft, hop_length=p.hop_length, win_length=p.n_fft, window=self.window,
            center=True, pad_mode="constant", return_complex=True,
        )
        power = spec.real.square() + spec.imag.square() if p.power == 2.0 else spec.abs().pow(p.power)
        return self._matmul(self.basis, power)

    def _compute(self, x):
        """(n, L) in the working precision on the device -> (n, F, T), same precision."""
        torch, p = self.torch, self.params
        if isinstance(p, MelParams):
            return torch.log10(torch.clamp(self._mel_power(x), min=p.log_floor))
        if isinstance(p, MfccParams):
            db = 10.0 * torch.log10(torch.clamp(self._mel_power(x), min=1e-10))
            if p.top_db:
                db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - p.top_db)
            return self._matmul(self.dct, db)
        if isinstance(p, PcenParams):
            return self._pcen(self._mel_power(x))
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
        return db[:, :, : p.n_bins].transpose(1, 2)

    def _pcen(self, mel):
        """:func:`pcen` on the device: the smoother as a loop over frames (a few hundred small steps)."""
        torch, p = self.torch, self.params
        E = mel * p.scale
        b = p.smoothing(self.sr)
        M = torch.empty_like(E)
        state = torch.ones_like(E[..., 0])
        for k in range(E.shape[-1]):
            state = b * E[..., k] + (1.0 - b) * state
            M[..., k] = state
        smooth = torch.exp(-p.gain * (np.log(p.eps) + torch.log1p(M / p.eps)))
        return p.bias ** p.root * torch.expm1(p.root * torch.log1p(E * smooth / p.bias))

    def submit(self, segments, out_dtype: str = "float32") -> "PendingFeatures":
        """Queue the features of ``segments`` (n, L), numpy or a CPU tensor (a pinned one is copied to the
        device asynchronously: keep it unchanged until :meth:`PendingFeatures.result` returns)."""
        torch = self.torch
        if isinstance(segments, torch.Tensor):  # e.g. a pinned batch buffer: copied to the device asynchronously
            x = segments.float()
        else:
            x = torch.from_numpy(np.ascontiguousarray(segments, dtype=np.float32))
        if x.ndim == 1:
            x = x[None]
        step = max(1, int(self.CHUNK_BYTES // max(1.0, self._spectrum_bytes_per_sample * x.shape[-1])))
        outs = []
        with torch.no_grad():
            for i in range(0, x.shape[0], step):
                chunk = x[i:i + step].to(self.device, non_blocking=x.is_pinned()).to(self.dtype)
                outs.append(self._compute(chunk).to(getattr(torch, out_dtype)))
            out = outs[0] if len(outs) == 1 else torch.cat(outs)
            if self.device.type != "cuda":
                return PendingFeatures(out.contiguous(), None)
            host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
            host.copy_(out, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        return PendingFeatures(host, event)

    def __call__(self, segments: np.ndarray) -> np.ndarray:
        return self.submit(segments).result()


class PendingFeatures:
    """Features on their way back from the device; :meth:`result` waits for them."""

    def __init__(self, host, event) -> None:
        self.host, self.event = host, event

    def result(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.host.numpy()


# ---------------------------------------------------------------------------------------------------
# plain librosa, one segment at a time (the reference and the naive baseline)
# ---------------------------------------------------------------------------------------------------
def librosa_reference(segment: np.ndarray, params: FeatureParams, sr: int = 16000) -> np.ndarray:
    """Features of one segment (L,) with librosa's own functions, float32 (F, T)."""
    import librosa

    y = np.asarray(segment, dtype=np.float32)
    if isinstance(params, PcenParams):
        S = librosa.feature.melspectrogram(
            y=y, sr=sr, n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.win_length,
            window=params.window, n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax or None,
            power=params.power,
        )
        return librosa.pcen(S * params.scale, sr=sr, hop_length=params.hop_length, gain=params.gain,
                            bias=params.bias, power=params.root, time_constant=params.time_constant,
                            eps=params.eps).astype(np.float32)
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
