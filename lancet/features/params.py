"""Feature parameters: one dataclass per feature kind, plus the segmenting settings.

Defaults follow the published LANCET code (16 kHz, 2 s segments, 1 s hop):

* ``mel``: ``librosa.feature.melspectrogram`` with n_fft 400, hop 160, 128 Mel bands (power 2, Hann
  window, ``center=True``, librosa defaults otherwise), then ``log10(max(S, log_floor))`` -> 128 x 201.
* ``mfcc``: ``librosa.feature.mfcc`` with 26 coefficients and librosa's default STFT (n_fft 2048,
  hop 512, 128 Mel bands, ``power_to_db`` with top_db 80 computed per segment, DCT-II ortho) -> 26 x 63.
* ``spectrogram``: the published code used ``python_speech_features``: ``framesig(x, 640, 160)``
  (frames start at 0 with no centring, rectangular window, the last frame zero-padded) and
  ``logpowspec(frames, NFFT=3198)`` (power ``|rfft|^2 / NFFT``, ``10*log10``, minus the segment's
  maximum over all 1600 bins), first 400 bins kept -> 400 x 197. ``librosa.stft`` with n_fft 3198,
  win_length 640, hop 160 gives 201 centred frames for 32000 samples; the published 197 frames are
  exactly its columns 2..198 (with a rectangular window), which the tests check. One deliberate
  difference: the power floor is ``floor`` (default 1e-10, i.e. -100 dB) instead of 1e-30 (-300 dB),
  so that digital silence and the zero padding of short utterances do not produce extreme outliers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import scipy.signal

from lancet.core.audio import SAMPLE_RATE
from lancet.core.errors import LancetError
from lancet.core.checks import check_number


def _f(default: Any, help: str, choices: tuple | None = None, flag: bool = True) -> Any:
    """A dataclass field carrying its command-line help (the CLI is built from these).

    ``flag=False``: a setting read from what the extraction found (an upstream's sizes and weights), recorded
    in params.json like the others but never given on a command line.
    """
    meta = {"help": help, "flag": flag}
    if choices is not None:
        meta["choices"] = choices
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MelBands:
    """The Mel bands of a centred STFT (librosa.feature.melspectrogram): what log-Mel and PCEN share, before
    each compresses them its own way."""

    n_fft: int = _f(400, "FFT size in samples")
    hop_length: int = _f(160, "hop between frames in samples")
    win_length: int = _f(400, "window length in samples (<= n_fft)")
    window: str = _f("hann", "window name (scipy.signal.get_window)")
    n_mels: int = _f(128, "number of Mel bands")
    fmin: float = _f(0.0, "lowest Mel frequency (Hz)")
    fmax: float = _f(0.0, "highest Mel frequency (Hz); 0 means sample_rate / 2")
    power: float = _f(2.0, "exponent of the magnitude spectrogram")

    def frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def n_features(self) -> int:
        return self.n_mels

    def frame_centre(self, t: int) -> float:
        return t * self.hop_length


@dataclass(frozen=True)
class MelParams(MelBands):
    """log10 Mel spectrogram (librosa.feature.melspectrogram, then log10 with a floor)."""

    log_floor: float = _f(1e-10, "floor before log10: log10(max(S, floor))")

    kind = "mel"


@dataclass(frozen=True)
class MfccParams:
    """MFCC exactly as librosa.feature.mfcc (power_to_db with top_db per segment, DCT-II ortho)."""

    n_mfcc: int = _f(26, "number of cepstral coefficients")
    n_fft: int = _f(2048, "FFT size in samples (librosa default)")
    hop_length: int = _f(512, "hop between frames in samples (librosa default)")
    win_length: int = _f(2048, "window length in samples (<= n_fft)")
    window: str = _f("hann", "window name (scipy.signal.get_window)")
    n_mels: int = _f(128, "number of Mel bands")
    fmin: float = _f(0.0, "lowest Mel frequency (Hz)")
    fmax: float = _f(0.0, "highest Mel frequency (Hz); 0 means sample_rate / 2")
    power: float = _f(2.0, "exponent of the magnitude spectrogram")
    top_db: float = _f(80.0, "power_to_db top_db per segment; 0 disables")

    kind = "mfcc"

    def frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def n_features(self) -> int:
        return self.n_mfcc

    def frame_centre(self, t: int) -> float:
        return t * self.hop_length


@dataclass(frozen=True)
class SpectrogramParams:
    """Log power spectrogram as python_speech_features framesig + logpowspec (see module docstring)."""

    win_length: int = _f(640, "frame length in samples (frames are not centred)")
    hop_length: int = _f(160, "hop between frames in samples")
    n_fft: int = _f(3198, "FFT size (frames zero-padded to it)")
    n_bins: int = _f(400, "number of lowest frequency bins kept")
    window: str = _f("boxcar", "window name; the original used a rectangular one (boxcar)")
    floor: float = _f(1e-10, "power floor before 10*log10 (the original used 1e-30)")
    ref: str = _f("max", "'max': subtract the segment's maximum in dB (the original); 'none'", ("max", "none"))

    kind = "spectrogram"

    def frames(self, n_samples: int) -> int:
        if n_samples <= self.win_length:
            return 1
        return 1 + math.ceil((n_samples - self.win_length) / self.hop_length)

    def n_features(self) -> int:
        return self.n_bins

    def frame_centre(self, t: int) -> float:
        return t * self.hop_length + self.win_length / 2


@dataclass(frozen=True)
class PcenParams(MelBands):
    """Mel bands compressed by per-channel energy normalisation instead of a logarithm (librosa.pcen).

    PCEN (Wang et al., ICASSP 2017; Lostanlen et al., IEEE SPL 2019) divides each band by a smoothed
    version of itself (an IIR low-pass of ``time_constant`` seconds) raised to ``gain``, then compresses
    with a root (``power``) around ``bias``: slow changes of level (a stationary noise floor, the
    microphone gain) are taken out where a log only shifts them. Mel magnitudes of 16 kHz audio in
    [-1, 1] are scaled by ``scale`` (2**31, as librosa advises) before it, and the smoother starts from
    its steady state for a unit input, as librosa's does, in every segment independently.
    """

    power: float = _f(1.0, "exponent of the magnitude spectrogram before PCEN (1: magnitude)")
    scale: float = _f(2.0 ** 31, "factor on the Mel magnitudes before PCEN (audio in [-1, 1] to integer range)")
    time_constant: float = _f(0.4, "PCEN smoother's time constant in seconds")
    gain: float = _f(0.98, "PCEN gain (alpha): how far the smoothed level is divided out")
    bias: float = _f(2.0, "PCEN bias (delta)")
    root: float = _f(0.5, "PCEN root compression (r)")
    eps: float = _f(1e-6, "PCEN floor of the smoothed level")

    kind = "pcen"

    def smoothing(self, sr: int) -> float:
        """The smoother's coefficient b, from the time constant as librosa.pcen computes it.

        Example:
            >>> round(PcenParams().smoothing(16000), 5)
            0.02469
        """
        t_frames = self.time_constant * sr / float(self.hop_length)
        return (math.sqrt(1 + 4 * t_frames ** 2) - 1) / (2 * t_frames ** 2)


@dataclass(frozen=True)
class SslParams:
    """Per-layer means of a self-supervised upstream over each whole utterance (lancet.ssl.stats).

    One "segment" per utterance holds its (layers, hidden) statistic: ``n_features`` is the number of hidden
    states, ``frames`` the hidden size, whatever the utterance's length (the segmenting settings do not apply).
    Only ``upstream`` and ``revision`` are chosen; the rest is the loaded checkpoint's identity
    (:meth:`lancet.ssl.Upstream.identity`) and the precision of the pass, recorded so that a store, a
    cross-corpus test folder or a checkpoint of other weights is told apart. The defaults are WavLM Base+'s
    sizes, the nominal shape of the kind.
    """

    upstream: str = _f("microsoft/wavlm-base-plus", "checkpoint folder or Hugging Face hub name (local cache)")
    revision: str = _f("", "hub revision (commit) to load; '' for the cached main, a folder has none")
    model_type: str = _f("wavlm", "transformers model type", flag=False)
    n_layers: int = _f(13, "hidden states: the transformer layers plus the CNN projection", flag=False)
    hidden_size: int = _f(768, "hidden units per layer", flag=False)
    min_samples: int = _f(400, "shortest utterance that gives one frame (samples)", flag=False)
    feat_extract_norm: str = _f("group", "the CNN's normalisation (group: base models, layer: large)", flag=False)
    do_normalize: bool = _f(False, "input normalised per utterance (the checkpoint's feature extractor)", flag=False)
    weights_sha256: str = _f("", "SHA-256 of the weights (lancet.ssl.Upstream.identity)", flag=False)
    transformers: str = _f("", "transformers release that computed the statistics", flag=False)
    precision: str = _f("float32", "precision of the upstream pass: float32, or the autocast dtype", flag=False)

    kind = "ssl"

    def frames(self, n_samples: int) -> int:
        """The second axis of a stored statistic: the hidden size (not time)."""
        return self.hidden_size

    def n_features(self) -> int:
        return self.n_layers

    @classmethod
    def from_identity(cls, identity: dict[str, Any], min_samples: int, precision: str) -> "SslParams":
        """The parameters of an upstream from :meth:`lancet.ssl.Upstream.identity`.

        Example:
            >>> SslParams.from_identity({"source": "u", "revision": None, "model_type": "hubert", "n_layers": 3,
            ...     "hidden_size": 32, "feat_extract_norm": "group", "do_normalize": True,
            ...     "weights_sha256": "ab", "transformers": "5.0"}, 345, "float32").n_features()
            3
        """
        return cls(upstream=str(identity["source"]), revision=str(identity.get("revision") or ""),
                   model_type=str(identity["model_type"]), n_layers=int(identity["n_layers"]),
                   hidden_size=int(identity["hidden_size"]), min_samples=int(min_samples),
                   feat_extract_norm=str(identity.get("feat_extract_norm") or ""),
                   do_normalize=bool(identity["do_normalize"]), weights_sha256=str(identity["weights_sha256"]),
                   transformers=str(identity["transformers"]), precision=precision)


@dataclass(frozen=True)
class SegmentParams:
    """How an utterance is cut into fixed-length segments (see lancet.features.segment)."""

    segment_s: float = 2.0
    hop_s: float = 1.0
    tail_min_s: float = 0.5
    short: str = "pad"
    sample_rate: int = SAMPLE_RATE

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.sample_rate))

    @property
    def tail_min_samples(self) -> int:
        return int(round(self.tail_min_s * self.sample_rate))


FeatureParams = MelParams | MfccParams | SpectrogramParams | PcenParams | SslParams


@dataclass(frozen=True)
class FeatureKind:
    """One feature kind of :data:`KINDS`: its settings and the script that extracts it.

    Its name is the parameter dataclass's ``kind``, the word every params.json records, so it is written
    once. Everything that enumerates the kinds (the scripts' flags, ``--features`` choices, the command
    that rebuilds a store, the published shapes the models are sized for) reads these entries.

    Example:
        >>> KINDS["mfcc"].name, KINDS["mfcc"].shape, KINDS["mfcc"].script
        ('mfcc', (26, 63), 'extract_features_iemocap_mfcc.py')
    """

    params: type  # frozen dataclass of the kind's settings: defaults = the published code, fields = the flags
    script: str  # the script in feature_extraction/ that (re)builds a store of this kind
    description: str  # one line for help texts
    #: whether a stored array's second axis is time (frames): per-frequency normalisation over the valid frames,
    #: --norm utterance|segment, SpecAugment and the CNNs need it; a per-utterance statistic (ssl) has none
    frames_axis: bool = True

    @property
    def name(self) -> str:
        return self.params.kind

    @property
    def shape(self) -> tuple[int, int]:
        """(F, T) of one segment with the default parameters and segmenting (2 s at 16 kHz)."""
        return feature_shape(self.params(), SegmentParams())


#: The feature kinds by name; a kind is one entry here plus its parameter dataclass and compute code.
KINDS: dict[str, FeatureKind] = {k.name: k for k in (
    FeatureKind(MelParams, "extract_features_iemocap_mel_spectrogram.py", "log10 Mel spectrogram (librosa)"),
    FeatureKind(MfccParams, "extract_features_iemocap_mfcc.py", "MFCC as librosa.feature.mfcc"),
    FeatureKind(SpectrogramParams, "extract_features_iemocap_spectrogram.py",
                "log power spectrogram as the published python_speech_features code"),
    FeatureKind(PcenParams, "extract_features_iemocap_pcen.py", "Mel bands with per-channel energy normalisation"),
    FeatureKind(SslParams, "extract_features_ssl.py",
                "per-layer means of a self-supervised upstream (WavLM, HuBERT, wav2vec 2.0) over each utterance",
                frames_axis=False),
)}
#: The kind a store without one (or an API call without ``kind``) stands for.
DEFAULT_KIND = "mel"


def has_frames_axis(kind: str) -> bool:
    """Whether stores of ``kind`` hold (features, frames) segments; an unknown kind is taken as one.

    Example:
        >>> has_frames_axis("mel"), has_frames_axis("ssl")
        (True, False)
    """
    entry = KINDS.get(kind)
    return entry.frames_axis if entry is not None else True


class _DefaultShapes(Mapping[str, tuple[int, int]]):
    """(F, T) per kind, read from :data:`KINDS` at every lookup, so a kind registered later is seen.

    Example:
        >>> dict(FEATURE_SHAPES)
        {'mel': (128, 201), 'mfcc': (26, 63), 'spectrogram': (400, 197), 'pcen': (128, 201), 'ssl': (13, 768)}
    """

    def __getitem__(self, kind: str) -> tuple[int, int]:
        return KINDS[kind].shape

    def __iter__(self) -> Iterator[str]:
        return iter(KINDS)

    def __len__(self) -> int:
        return len(KINDS)

    def __repr__(self) -> str:
        return repr(dict(self))


#: (n_freq, n_frames) of one 2 s segment of every kind with its default (published) parameters: the
#: input a model's registry entry names by its kind (lancet.models cannot import this layer).
FEATURE_SHAPES: Mapping[str, tuple[int, int]] = _DefaultShapes()


def make_params(kind: str, **overrides: Any) -> FeatureParams:
    """Build the parameter dataclass of ``kind`` with some fields overridden."""
    if kind not in KINDS:
        raise LancetError(f"unknown feature kind {kind!r}; choose one of {', '.join(KINDS)}")
    cls = KINDS[kind].params
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise LancetError(f"{kind}: unknown parameter(s) {', '.join(sorted(unknown))}")
    params = cls(**overrides)
    validate_params(params)
    return params


def validate_params(params: FeatureParams) -> None:
    """Raise LancetError for parameter values that cannot work."""
    kind = params.kind
    for fld in dataclasses.fields(params):  # every number finite: argparse's float accepts nan and inf
        value = getattr(params, fld.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_number(f"--{fld.name.replace('_', '-')}", value, minimum=0)
    for name in ("n_mels", "n_mfcc", "n_bins"):
        if hasattr(params, name):
            check_number(f"--{name.replace('_', '-')}", getattr(params, name), minimum=1, integer=True)
    for name in ("power", "log_floor", "floor", "scale", "time_constant", "root", "eps"):
        if hasattr(params, name):
            check_number(f"--{name.replace('_', '-')}", getattr(params, name), above=0)
    if isinstance(params, SslParams):  # no spectrogram: what an upstream reports
        for name in ("n_layers", "hidden_size", "min_samples"):
            check_number(name, getattr(params, name), minimum=1, integer=True)
        if not params.upstream:
            raise LancetError("--upstream: name a checkpoint folder or hub name")
        return
    fmax = getattr(params, "fmax", 0.0)
    if fmax and not getattr(params, "fmin", 0.0) < fmax <= SAMPLE_RATE / 2:
        raise LancetError(f"--fmax: must lie above --fmin and at most {SAMPLE_RATE / 2:g} Hz (0: sample_rate / 2), "
                          f"got {fmax:g}")
    fmin = getattr(params, "fmin", 0.0)
    if fmin >= (fmax or SAMPLE_RATE / 2):  # no Mel band left: every feature would be the floor
        raise LancetError(f"--fmin {fmin:g}: must lie below {'--fmax' if fmax else 'the Nyquist frequency'} "
                          f"({fmax or SAMPLE_RATE / 2:g} Hz at {SAMPLE_RATE} Hz)")
    try:
        scipy.signal.get_window(params.window, 16)
    except (ValueError, TypeError):
        raise LancetError(f"--window {params.window!r}: not a window scipy.signal.get_window knows "
                          f"(e.g. hann, hamming, blackman, boxcar)") from None
    if params.hop_length <= 0 or params.n_fft <= 0 or params.win_length <= 0:
        raise LancetError(f"{kind}: n_fft, hop_length and win_length must be positive")
    if params.win_length > params.n_fft:
        raise LancetError(f"{kind}: win_length {params.win_length} is larger than n_fft {params.n_fft}")
    if isinstance(params, SpectrogramParams):
        if not 0 < params.n_bins <= params.n_fft // 2 + 1:
            raise LancetError(f"spectrogram: n_bins must be in 1..{params.n_fft // 2 + 1}")
    if isinstance(params, MfccParams) and not 0 < params.n_mfcc <= params.n_mels:
        raise LancetError(f"mfcc: n_mfcc must be in 1..n_mels ({params.n_mels})")


def validate_segmenting(seg: SegmentParams) -> None:
    check_number("--segment-s", seg.segment_s, above=0, maximum=3600)
    check_number("--hop-s", seg.hop_s, above=0, maximum=3600)
    check_number("--tail-min-s", seg.tail_min_s, minimum=0, maximum=3600)
    if seg.segment_samples <= 0 or seg.hop_samples <= 0:
        raise LancetError("--segment-s and --hop-s must be positive")
    if seg.short not in ("pad", "drop"):
        raise LancetError(f"--short must be 'pad' or 'drop', not {seg.short!r}")


def feature_shape(params: FeatureParams, seg: SegmentParams) -> tuple[int, int]:
    """(F, T) of one segment."""
    return params.n_features(), params.frames(seg.segment_samples)


def params_record(params: FeatureParams, seg: SegmentParams, dtype: str) -> dict[str, Any]:
    """The parameter part of params.json (everything that decides the numbers)."""
    fmax = getattr(params, "fmax", None)
    record = {
        "kind": params.kind,
        "sample_rate": seg.sample_rate,
        "params": dataclasses.asdict(params),
        "segment_s": seg.segment_s,
        "hop_s": seg.hop_s,
        "tail_min_s": seg.tail_min_s,
        "short": seg.short,
        "shape": list(feature_shape(params, seg)),
        "dtype": dtype,
    }
    if fmax == 0.0:
        record["params"]["fmax_effective"] = seg.sample_rate / 2
    return record


def params_from_record(record: dict[str, Any]) -> tuple[FeatureParams, SegmentParams]:
    """Inverse of :func:`params_record` (used by tests and tools that recompute features)."""
    p = dict(record["params"])
    p.pop("fmax_effective", None)
    params = make_params(record["kind"], **p)
    seg = SegmentParams(
        segment_s=float(record["segment_s"]), hop_s=float(record["hop_s"]),
        tail_min_s=float(record["tail_min_s"]), short=record["short"], sample_rate=int(record["sample_rate"]),
    )
    return params, seg
