"""Label wav files with a trained checkpoint: same features, same normalisation, pooled segments.

A model answers for any input, also for silence; so a clip whose RMS level is below
:data:`SILENCE_DBFS` (no speech energy) or shorter than :data:`MIN_CLIP_S` gets a warning line above the
table of predictions. A folder stands for the ``.wav`` files directly inside it, in name order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from lancet.core.device import autocast_context, resolve_amp, resolve_device
from lancet.core.audio import load_audio
from lancet.core.errors import LancetError
from lancet.features.compute import compute_features
from lancet.features.params import params_from_record
from lancet.features.segment import segment_audio, valid_frames
from lancet.models import MODELS, build_model

from .evaluate import pool_utterances, to_model_input
from .checkpoint import load_checkpoint
from .feature_norm import normalise_utterance

#: RMS level (dB relative to full scale, 20 log10 RMS) below which a clip holds no speech energy:
#: speech is recorded around -35 to -15 dBFS, -60 dBFS is near the noise floor of 16-bit silence.
SILENCE_DBFS = -60.0
#: Clips shorter than this hold too little speech for an emotion label.
MIN_CLIP_S = 0.5
#: Checkpoints of this format were written before some models' defaults changed (their ``old_checkpoint_options``).
OLD_FORMAT = "lancet-checkpoint-1"


@dataclass
class Predictor:
    model: torch.nn.Module
    class_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor
    feature_record: dict
    pooling: str
    device: torch.device
    amp_dtype: torch.dtype | None
    n_frames: int
    norm: str = "global"   # --norm the model was trained with (lancet.training.feature_norm)


def load_predictor(checkpoint: str | os.PathLike, device: str = "auto", amp: str = "off") -> Predictor:
    """Rebuild the model of a ``best.pt`` written by the trainer, on ``device``."""
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location=dev)
    needed = ("model_name", "model_state", "class_names", "norm_mean", "norm_std", "feature_params", "n_freq", "n_frames")
    missing = [k for k in needed if k not in ckpt]
    if missing:
        raise LancetError(f"{checkpoint}: not a LANCET best checkpoint (missing {', '.join(missing)})")
    options = dict(ckpt.get("model_options", {}))
    entry = MODELS.get(ckpt["model_name"])
    if entry is not None and ckpt.get("format", OLD_FORMAT) == OLD_FORMAT:
        for key, value in entry.old_checkpoint_options.items():  # defaults that changed since it was trained
            options.setdefault(key, value)
    model = build_model(ckpt["model_name"], len(ckpt["class_names"]), ckpt["n_freq"], ckpt["n_frames"], **options)
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:  # sizes that disagree with the recorded model: a foreign or edited file
        first = str(exc).strip().splitlines()
        raise LancetError(f"{checkpoint}: its weights do not fit a {ckpt['model_name']} of the recorded sizes "
                          f"({first[-1].strip() if first else 'size mismatch'})") from None
    if not all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point()):
        raise LancetError(f"{checkpoint}: holds weights that are not finite (a diverged training); it cannot predict")
    model.to(dev).eval()
    return Predictor(model=model, class_names=list(ckpt["class_names"]),
                     mean=torch.as_tensor(np.asarray(ckpt["norm_mean"], np.float32).reshape(-1, 1), device=dev),
                     std=torch.as_tensor(np.asarray(ckpt["norm_std"], np.float32).reshape(-1, 1), device=dev),
                     feature_record=dict(ckpt["feature_params"]), pooling=ckpt.get("pooling", "mean"),
                     device=dev, amp_dtype=resolve_amp(amp, dev), n_frames=int(ckpt["n_frames"]),
                     norm=str(ckpt.get("norm", "global")))


def rms_dbfs(audio: np.ndarray) -> float:
    """RMS level of float audio in [-1, 1] in dBFS (20 log10 RMS); ``-inf`` for digital silence.

    Example:
        >>> round(rms_dbfs(np.full(100, 0.1)), 6)
        -20.0
    """
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return float(20.0 * np.log10(rms)) if rms > 0 else float("-inf")


def audio_warnings(audio: np.ndarray, sample_rate: int) -> list[str]:
    """Why a prediction on this clip means little: no speech energy, or too short (empty list if fine)."""
    out = []
    level = rms_dbfs(audio)
    if level < SILENCE_DBFS:
        out.append(f"no speech energy (RMS {level:.1f} dBFS, below {SILENCE_DBFS:g} dBFS): the label means nothing")
    seconds = len(audio) / sample_rate
    if seconds < MIN_CLIP_S:
        out.append(f"only {seconds:.2f} s of audio (under {MIN_CLIP_S:g} s): too short to judge")
    return out


def expand_inputs(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Wav paths from files and folders (a folder: its ``.wav`` files, sorted); missing ones are an error."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            wavs = sorted(f for f in p.iterdir() if f.suffix.lower() == ".wav" and f.is_file())
            if not wavs:
                raise LancetError(f"{p}: the folder holds no .wav files")
            out.extend(wavs)
        elif p.is_file():
            out.append(p)
        else:
            raise LancetError(f"{p}: audio file not found")
    return out


def utterance_features(path: str | os.PathLike, record: dict,
                       warnings: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(segments (n, F, T) float32, valid frames (n,)) of one wav, with the training feature parameters.

    Reasons to distrust the result (:func:`audio_warnings`) are appended to ``warnings``.
    """
    params, seg = params_from_record(record)
    audio = load_audio(path, sr=seg.sample_rate)
    if warnings is not None:
        warnings.extend(audio_warnings(audio, seg.sample_rate))
    segments, _, real = segment_audio(audio, seg)
    if len(segments) == 0:
        raise LancetError(f"{path}: too short to give one {seg.segment_s:g} s segment "
                          f"({len(audio) / seg.sample_rate:.2f} s; the features were extracted with short='drop')")
    feats = compute_features(segments, params, seg.sample_rate)
    lengths = np.array([valid_frames(params, r, feats.shape[-1]) for r in real], dtype=np.int64)
    return feats, lengths


@torch.no_grad()
def predict_file(predictor: Predictor, path: str | os.PathLike, pooling: str | None = None) -> dict:
    notes: list[str] = []
    feats, lengths = utterance_features(path, predictor.feature_record, notes)
    if feats.shape[-1] != predictor.n_frames:
        raise LancetError(f"{path}: features have {feats.shape[-1]} frames, the model expects {predictor.n_frames}")
    if predictor.norm == "global":
        x = to_model_input(torch.from_numpy(feats).to(predictor.device), predictor.mean, predictor.std)
    else:  # --norm utterance|segment: the file's own statistics, as in training
        x = normalise_utterance(feats, lengths, predictor.norm, predictor.mean, predictor.std, predictor.device)
    with autocast_context(predictor.device, predictor.amp_dtype):
        logits = predictor.model(x, lengths=torch.from_numpy(lengths).to(predictor.device))
    probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    scores, pred = pool_utterances(probs, np.zeros(len(probs), np.int64), 1, pooling or predictor.pooling)
    return {"path": str(path), "label": predictor.class_names[int(pred[0])], "scores": scores[0].tolist(),
            "n_segments": int(len(probs)), "warnings": notes}


def predict_files(checkpoint: str | os.PathLike, paths: Sequence[str | os.PathLike], device: str = "auto",
                  pooling: str | None = None) -> tuple[list[dict], list[str]]:
    """Predict every file (a folder: its wav files); returns (results, class names)."""
    if not paths:
        raise LancetError("--predict: give at least one wav file")
    paths = expand_inputs(paths)
    predictor = load_predictor(checkpoint, device)
    return [predict_file(predictor, p, pooling) for p in paths], predictor.class_names


def format_predictions(results: list[dict], class_names: Sequence[str]) -> str:
    """The predictions as a table (one row per file), after one ``warning:`` line per doubtful clip."""
    head = ["file", "prediction", "segments"] + list(class_names)
    rows = [[Path(r["path"]).name, r["label"], str(r["n_segments"])] + [f"{s:.3f}" for s in r["scores"]]
            for r in results]
    widths = [max(len(row[i]) for row in [head] + rows) for i in range(len(head))]
    notes = [f"warning: {r['path']}: {note}" for r in results for note in r.get("warnings", [])]
    return "\n".join(notes + ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in [head] + rows])
