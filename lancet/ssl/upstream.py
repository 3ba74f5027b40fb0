"""A self-supervised speech upstream (WavLM, HuBERT, wav2vec 2.0, ...) loaded with transformers.

:func:`load_upstream` takes a local checkpoint folder or a hub name (``microsoft/wavlm-base-plus``,
``facebook/hubert-base-ls960``, ``facebook/wav2vec2-base``) and returns an :class:`Upstream`: the
``AutoModel`` with its feature extractor's input normalisation, the frame count of every input length,
and a forward pass that returns all hidden states with the mask of valid frames.

**Every utterance of a batch is computed as if it were alone.** Models whose convolutional feature
encoder normalises each frame (``feat_extract_norm == "layer"``: WavLM Large, HuBERT Large, wav2vec 2.0
Large-lv60) get the attention mask, as transformers intends, and that is exact. Models with
``feat_extract_norm == "group"`` (wav2vec 2.0 Base, HuBERT Base, WavLM Base/Base+) normalise each channel
of the first convolution over the whole input, padding included, so transformers' own recipe (pad with
zeros, no mask) gives a padded utterance other features than the same utterance alone (on random tiny
models by about 1, as large as the features themselves). Here their feature encoder runs on each
utterance's own samples (utterances of equal length together), its outputs are padded with zeros, and the
transformer layers run batched with the attention mask: the same numbers as one utterance at a time, at
batched speed for the transformer, which is most of the cost (about two thirds of the MACs of a base model).

**Downloads.** The library never downloads a checkpoint by itself: every load is ``local_files_only``.
A hub name missing from the local cache is a one-line :class:`LancetError` that names the command which
fetches it. Why: runs start many processes (worker pools, torchrun ranks) that would race for the same
hundreds of megabytes; a run must resume and be repeated offline with the same weights (a hub name can
point to new weights tomorrow: the revision read from the cache is part of :meth:`Upstream.identity`);
cluster nodes often have no network; and the tests must never fetch. ``allow_download=True`` is the
explicit opt-in for a command-line flag that asks for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from lancet.core.audio import SAMPLE_RATE
from lancet.core.errors import LancetError
from lancet.ssl.masks import frame_mask

#: The smallest transformers release this module is tested with (requirements.txt says the same).
TRANSFORMERS_MIN = "4.57"
#: Checkpoint architectures that are already a classifier (e.g. ``superb/hubert-large-superb-er``, trained
#: for emotion on IEMOCAP): its test utterances may have been seen, so it cannot be a baseline.
_TASK_HEADS = ("ForSequenceClassification", "ForAudioFrameClassification", "ForXVector")
_NORMALISE_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm's


def transformers_module():
    """``transformers``, imported on first use so that the rest of the toolkit never pays for it."""
    try:
        import transformers  # noqa: PLC0415 - optional heavy package, imported lazily on purpose
    except ImportError:
        raise LancetError(f"the SSL upstreams need transformers: pip install 'transformers>={TRANSFORMERS_MIN}'") from None
    return transformers


def download_command(name: str) -> str:
    """The one command that puts hub checkpoint ``name`` (weights, config, feature extractor) into the local cache.

    Example:
        >>> print(download_command("microsoft/wavlm-base-plus"))
        python -c "from transformers import AutoModel as M, AutoFeatureExtractor as F; M.from_pretrained('microsoft/wavlm-base-plus'); F.from_pretrained('microsoft/wavlm-base-plus')"
    """
    # transformers itself picks the weight file (safetensors or bin) the hub holds: no second copy, no TF/Flax files
    return (f'python -c "from transformers import AutoModel as M, AutoFeatureExtractor as F; '
            f"M.from_pretrained('{name}'); F.from_pretrained('{name}')\"")


def looks_like_path(source: str) -> bool:
    """True when ``source`` can only be a folder (a hub name is ``name`` or ``owner/name``).

    Example:
        >>> [looks_like_path(s) for s in ("microsoft/wavlm-base-plus", "./wavlm", "models/a/b", "~/w", "wavlm")]
        [False, True, True, True, False]
    """
    return (source.startswith((".", "/", "~")) or source.count("/") > 1 or os.sep != "/" and os.sep in source
            or source.endswith("/"))


@dataclass
class UpstreamOutput:
    """What an upstream returns for a batch: every hidden state and which frames are real.

    ``hidden_states``: ``n_layers`` tensors (B, T, H), the CNN projection's (layer 0, the input of the
    first transformer layer) first, as transformers returns them with ``output_hidden_states=True``.
    ``frames`` (B,): valid frames of each utterance; ``mask`` (B, T): True on them.
    """

    hidden_states: tuple[torch.Tensor, ...]
    frames: torch.Tensor
    mask: torch.Tensor


class _EachUtteranceAlone:
    """Stands in for the forward of a group-norm feature encoder while a padded batch runs.

    The encoder's GroupNorm takes its statistics over the whole time axis, padding included; computing
    each distinct length on its own unpadded samples and padding the outputs with zeros gives every
    utterance the features it has alone. Installed as the encoder instance's ``forward`` (the module,
    its parameters and state-dict names stay transformers' own) and active only inside :meth:`lengths_set`.
    """

    def __init__(self, encoder_forward: Callable[[torch.Tensor], torch.Tensor],
                 frames_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.encoder_forward = encoder_forward
        self.frames_of = frames_of
        self.lengths: torch.Tensor | None = None

    @contextlib.contextmanager
    def lengths_set(self, lengths: torch.Tensor | None) -> Iterator[None]:
        self.lengths = lengths
        try:
            yield
        finally:
            self.lengths = None

    def __call__(self, input_values: torch.Tensor) -> torch.Tensor:
        lengths = self.lengths
        if lengths is None:
            return self.encoder_forward(input_values)
        n_out = int(self.frames_of(torch.tensor(input_values.shape[1])))
        out = None
        for n in torch.unique(lengths).tolist():
            rows = (lengths == n).nonzero().flatten()
            part = self.encoder_forward(input_values[rows, :n])  # (b, C, frames(n))
            if out is None:
                out = part.new_zeros((input_values.shape[0], part.shape[1], n_out))
            out[rows, :, : part.shape[2]] = part
        return out


class Upstream(nn.Module):
    """A transformers speech model with its input normalisation; see the module docstring.

    ``forward(waves, lengths)`` takes raw 16 kHz mono audio (B, S), zero-padded, with each utterance's
    number of samples, and returns an :class:`UpstreamOutput`. Not for concurrent calls from several threads
    (a group-norm model's encoder reads the batch's lengths from this object).
    """

    def __init__(self, model: nn.Module, do_normalize: bool, source: str = "") -> None:
        super().__init__()
        self.model = model
        self.do_normalize = bool(do_normalize)
        self.source = source
        config = model.config
        # only per-frame (layer) normalisation in the CNN makes a padded batch exact by itself; anything else
        # (group norm, or an encoder this module does not know) runs each utterance's CNN on its own samples
        self.cnn_per_frame = getattr(config, "feat_extract_norm", None) == "layer"
        self._alone: _EachUtteranceAlone | None = None
        if not self.cnn_per_frame:
            encoder = model.feature_extractor
            self._alone = _EachUtteranceAlone(encoder.forward, self.frames)
            encoder.forward = self._alone
        lengths_fn = model._get_feat_extract_output_lengths
        # the frames of the hidden states: wav2vec 2.0's optional adapter shortens only the last output
        self._frames_kwargs = {"add_adapter": False} if "add_adapter" in inspect.signature(lengths_fn).parameters else {}

    # ------------------------------------------------------------------ sizes
    @property
    def n_layers(self) -> int:
        """Hidden states returned: the transformer layers plus layer 0 (the projected CNN features)."""
        return int(self.model.config.num_hidden_layers) + 1

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def frames(self, lengths: torch.Tensor | int) -> torch.Tensor:
        """Valid output frames for input lengths in samples (the model's own convolution arithmetic)."""
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        return self.model._get_feat_extract_output_lengths(lengths, **self._frames_kwargs).to(torch.long)

    @property
    def min_samples(self) -> int:
        """The shortest input that gives one frame (400 samples, 25 ms, for the base models)."""
        need = 1
        for kernel, stride in reversed(list(zip(self.model.config.conv_kernel, self.model.config.conv_stride))):
            need = (need - 1) * int(stride) + int(kernel)
        return need

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ forward
    def normalise(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The feature extractor's input: zero-mean unit-variance per utterance over its own samples when
        it says ``do_normalize``, padding zero either way.

        transformers' extractor, asked to pad a batch without returning an attention mask (wav2vec 2.0
        Base's setting), normalises over the padded vector, zeros included, so an utterance's input
        depends on its batch; here it never does (the same as the extractor on the utterance alone).
        """
        mask = torch.arange(waves.shape[1], device=waves.device)[None, :] < lengths[:, None]
        if not self.do_normalize:
            return torch.where(mask, waves, torch.zeros((), dtype=waves.dtype, device=waves.device))
        x = waves.double()  # float64 statistics: as close as float32 gets to the extractor's numpy result
        n = lengths.clamp(min=1).to(x.dtype)[:, None]
        x = torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
        mean = x.sum(dim=1, keepdim=True) / n
        centred = torch.where(mask, x - mean, torch.zeros((), dtype=x.dtype, device=x.device))
        var = centred.square().sum(dim=1, keepdim=True) / n
        return (centred / torch.sqrt(var + _NORMALISE_EPS)).to(waves.dtype)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor | None = None) -> UpstreamOutput:
        """All hidden states of ``waves`` (B, S) at 16 kHz; ``lengths`` (B,) samples per utterance (None: all S)."""
        if waves.dim() != 2:
            raise LancetError(f"upstream {self.source}: expected audio (batch, samples), got shape {tuple(waves.shape)}")
        batch, width = waves.shape
        device = waves.device
        lengths = (torch.full((batch,), width, dtype=torch.long, device=device) if lengths is None
                   else torch.as_tensor(lengths, device=device).long().reshape(-1))
        if lengths.shape[0] != batch or int(lengths.max()) > width:
            raise LancetError(f"upstream {self.source}: lengths {lengths.tolist()} do not fit audio of shape {tuple(waves.shape)}")
        if int(lengths.min()) < self.min_samples:
            raise LancetError(f"upstream {self.source}: an utterance of {int(lengths.min())} samples is shorter than "
                              f"the model's first frame ({self.min_samples} samples, "
                              f"{1000 * self.min_samples / SAMPLE_RATE:g} ms); leave such utterances out")
        x = self.normalise(waves.float(), lengths)
        padded = bool((lengths < width).any())
        # the sample-level mask tells transformers which frames are padding (it zeroes them before the
        # positional convolution and hides them from attention); without padding it is not needed
        attention_mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]).long() if padded else None
        alone = self._alone.lengths_set(lengths if padded else None) if self._alone else contextlib.nullcontext()
        with alone, warnings.catch_warnings():
            # WavLM's attention passes a float position bias beside the boolean padding mask; torch's note on
            # mixing them would otherwise print in every process that runs a padded batch
            warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask", category=UserWarning)
            out = self.model(x, attention_mask=attention_mask, output_hidden_states=True)
        hidden = tuple(out.hidden_states)
        if len(hidden) != self.n_layers:  # layer drop in training mode skips layers (load_upstream switches it off)
            raise LancetError(f"upstream {self.source}: {len(hidden)} hidden states where {self.n_layers} were "
                              f"expected (set the config's layerdrop to 0)")
        frames = self.frames(lengths).to(device)
        return UpstreamOutput(hidden, frames, frame_mask(frames, hidden[0].shape[1]))

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        """What decides the numbers: source, revision, architecture, normalisation, a hash of the weights and
        the transformers release.

        The weights' hash (SHA-256 over the state dict in name order) tells two folders or two hub
        revisions apart without trusting file names; it takes about a second for a base model. The release
        matters too: transformers 5 returns a pre-LN (Large) model's last hidden state before its final layer
        norm, 4.x after it, so the same checkpoint gives other statistics.
        """
        config = self.model.config
        h = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
        return {"source": self.source, "revision": getattr(config, "_commit_hash", None),
                "model_type": config.model_type, "n_layers": self.n_layers, "hidden_size": self.hidden_size,
                "feat_extract_norm": getattr(config, "feat_extract_norm", None), "do_normalize": self.do_normalize,
                "weights_sha256": h.hexdigest(), "transformers": transformers_module().__version__}


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------
def load_upstream(source: str | os.PathLike, *, allow_download: bool = False, revision: str | None = None,
                  cache_dir: str | os.PathLike | None = None, log: Callable[[str], None] | None = None) -> Upstream:
    """The upstream in folder ``source`` or the hub checkpoint of that name (from the local cache).

    Raises :class:`LancetError` (one line) for a missing folder, a hub name not in the local cache (naming
    :func:`download_command`), a checkpoint that is not a wav2vec 2.0-style speech model, or one whose
    feature extractor is not 16 kHz mono. ``allow_download``: fetch a missing hub checkpoint (see the module
    docstring for why the default is never). Layer drop is switched off: the weighted layer sum needs every
    hidden state at every step. Returns the upstream in eval mode on the CPU.
    """
    tf = transformers_module()
    text = str(source)
    folder = Path(text).expanduser()
    is_folder = folder.is_dir()
    if not is_folder and (looks_like_path(text) or folder.exists()):
        raise LancetError(f"upstream {text}: no such folder (give a checkpoint folder or a hub name such as "
                          f"microsoft/wavlm-base-plus)")
    where = str(folder) if is_folder else text
    if is_folder:
        for needed, how in (("config.json", "save_pretrained() of the model"),
                            ("preprocessor_config.json", "save_pretrained() of its Wav2Vec2FeatureExtractor")):
            if not (folder / needed).is_file():
                raise LancetError(f"upstream {folder}: no {needed} (a checkpoint folder holds the files of {how})")
    kwargs: dict[str, Any] = {"local_files_only": not allow_download, "revision": revision,
                              "cache_dir": None if cache_dir is None else str(cache_dir)}
    try:
        config = tf.AutoConfig.from_pretrained(where, **kwargs)
        extractor = tf.AutoFeatureExtractor.from_pretrained(where, **kwargs)
    except OSError as exc:
        if is_folder:
            raise LancetError(f"upstream {folder}: unreadable checkpoint ({_first_line(exc)})") from None
        if allow_download:
            raise LancetError(f"upstream {text}: could not be fetched ({_first_line(exc)})") from None
        raise LancetError(f"upstream {text}: not in the local Hugging Face cache ({_hub_cache(cache_dir)}); "
                          f"download it once with: {download_command(text)}") from None
    _check_speech_model(where, config, extractor)
    config.layerdrop = 0.0
    bars = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # a bar per load would clutter every fold's log (runs load per unit)
    try:
        model = tf.AutoModel.from_pretrained(where, config=config, **kwargs)
    except OSError as exc:
        raise LancetError(f"upstream {where}: weights not loadable ({_first_line(exc)}); "
                          + (f"download them with: {download_command(text)}" if not is_folder else
                             "save the model with save_pretrained()")) from None
    finally:
        if bars:
            tf.utils.logging.enable_progress_bar()
    if not hasattr(model, "feature_extractor") or not hasattr(model, "_get_feat_extract_output_lengths"):
        raise LancetError(f"upstream {where}: {type(model).__name__} has no convolutional feature encoder over "
                          f"samples (use a wav2vec 2.0, HuBERT or WavLM checkpoint)")
    heads = [a for a in (getattr(config, "architectures", None) or []) if a.endswith(_TASK_HEADS)]
    if heads:
        (log or _warn)(f"warning: upstream {where} was saved as {heads[0]}, a model already trained for a "
                       f"classification task (superb/*-superb-er was trained on IEMOCAP emotion: its test "
                       f"utterances may have been seen); only its base model is used here")
    return Upstream(model.eval(), do_normalize=bool(getattr(extractor, "do_normalize", False)), source=text)


def _check_speech_model(where: str, config: Any, extractor: Any) -> None:
    if not hasattr(config, "conv_kernel") or not hasattr(config, "num_hidden_layers"):
        raise LancetError(f"upstream {where}: model type {getattr(config, 'model_type', '?')!r} is not a "
                          f"wav2vec 2.0-style speech model (use wav2vec2, hubert or wavlm checkpoints)")
    rate = getattr(extractor, "sampling_rate", None)
    if rate != SAMPLE_RATE or getattr(extractor, "feature_size", 1) != 1:
        raise LancetError(f"upstream {where}: its feature extractor expects {rate} Hz x {getattr(extractor, 'feature_size', '?')} "
                          f"channel(s); the toolkit feeds 16000 Hz mono")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _hub_cache(cache_dir: str | os.PathLike | None) -> str:
    if cache_dir is not None:
        return str(cache_dir)
    try:
        from huggingface_hub import constants  # noqa: PLC0415 - comes with transformers, loaded with it

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - transformers always brings it
        return "~/.cache/huggingface/hub"


def _warn(message: str) -> None:
    print(message, file=sys.stderr)
