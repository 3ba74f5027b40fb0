"""Evaluation: segment scores -> utterance predictions -> metrics, and the robustness matrix.

An utterance's prediction pools its segments: ``mean`` averages their softmax outputs (as published),
``vote`` takes the majority of the segments' argmax (ties broken by the mean softmax).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lancet.core.conditions import condition_sort_key, parse_condition
from lancet.core.device import autocast_context

from .data import SegmentTable, iter_batches
from .metrics import classification_metrics, mean_std

def to_model_input(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(B, F, T) stored features -> normalised float32 (B, 1, F, T); ``mean``/``std`` are (F, 1) on the device."""
    return ((x.float() - mean) / std).unsqueeze(1)


@torch.no_grad()
def predict_segments(model: torch.nn.Module, table: SegmentTable, mean: torch.Tensor, std: torch.Tensor,
                     device: torch.device, batch_size: int = 64, amp_dtype: torch.dtype | None = None,
                     workers: int = 0, norm=None) -> np.ndarray:
    """Softmax probabilities (n_segments, n_classes) of every segment of ``table``, in table order.

    ``norm``: a :class:`~lancet.training.feature_norm.Normaliser` bound to ``table`` (``--norm``), used
    instead of ``mean``/``std``."""
    model.eval()
    pin = device.type == "cuda"
    out: list[torch.Tensor] = []
    batches = table.plan_batches(batch_size, False, None)  # a table of audio groups similar lengths: any order
    for batch in iter_batches(table, batches, workers=workers, pin=pin):
        lengths = batch.lengths.to(device, non_blocking=True)
        x = batch.x.to(device, non_blocking=True)
        x = norm(x, lengths, batch.index) if norm is not None else to_model_input(x, mean, std)
        with autocast_context(device, amp_dtype):
            logits = model(x, lengths=lengths)
        out.append(torch.softmax(logits.float(), dim=-1))  # stays on the device: one transfer at the end
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    probs = torch.cat(out).cpu().numpy().astype(np.float32, copy=False)
    rows = np.concatenate(batches)
    if np.array_equal(rows, np.arange(len(rows))):
        return probs
    ordered = np.empty_like(probs)
    ordered[rows] = probs
    return ordered


def pool_utterances(probs: np.ndarray, utt: np.ndarray, n_utts: int, method: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Pool segment probabilities per utterance code. Returns (scores (n_utts, K), predicted labels (n_utts,)).

    ``mean``: scores = mean softmax, prediction = its argmax. ``vote``: scores = vote share of each
    class; prediction = the class with most votes, ties broken by the higher mean softmax.
    """
    probs = np.asarray(probs, dtype=np.float64)
    utt = np.asarray(utt, dtype=np.int64)
    k = probs.shape[1]
    counts = np.bincount(utt, minlength=n_utts).astype(np.float64)
    sums = np.zeros((n_utts, k), dtype=np.float64)
    np.add.at(sums, utt, probs)
    mean = sums / np.maximum(counts, 1)[:, None]
    if method == "mean":
        return mean, mean.argmax(axis=1)
    if method != "vote":
        raise ValueError(f"unknown pooling {method!r}")
    votes = np.zeros((n_utts, k), dtype=np.float64)
    np.add.at(votes, (utt, probs.argmax(axis=1)), 1.0)
    top = votes.max(axis=1, keepdims=True)
    tied_mean = np.where(votes == top, mean, -np.inf)
    return votes / np.maximum(counts, 1)[:, None], tied_mean.argmax(axis=1)


def evaluate_table(model: torch.nn.Module, table: SegmentTable, mean: torch.Tensor, std: torch.Tensor,
                   device: torch.device, n_classes: int, pooling: str = "mean", batch_size: int = 64,
                   amp_dtype: torch.dtype | None = None, workers: int = 0, norm=None) -> dict:
    """Utterance-level metrics (WA, UA, macro-F1, confusion) plus segment-level WA/UA for reference."""
    probs = predict_segments(model, table, mean, std, device, batch_size, amp_dtype, workers, norm)
    return metrics_from_probs(table, probs, n_classes, pooling)


def metrics_from_probs(table: SegmentTable, probs: np.ndarray, n_classes: int, pooling: str = "mean") -> dict:
    """:func:`evaluate_table`'s metrics from segment probabilities (n_segments, K) already computed."""
    n_utts = len(table.utt_keys)
    _, pred = pool_utterances(probs, table.utt, n_utts, pooling)
    metrics = classification_metrics(table.utterance_labels(), pred, n_classes)
    seg = classification_metrics(table.labels, probs.argmax(axis=1), n_classes)
    metrics.update(n_segments=len(table), segment_wa=seg["wa"], segment_ua=seg["ua"])
    return metrics


def robustness_matrix(records: Sequence[dict]) -> list[dict]:
    """Aggregate per-fold, per-seed, per-condition records into (model, train_on, condition) rows.

    Each record needs ``model``, ``train_on``, ``condition``, ``wa``, ``ua``, ``macro_f1``; the output
    rows carry mean and std (over folds and seeds) of each and how many runs they pool.
    """
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["model"], r["train_on"], r["condition"]), []).append(r)
    rows = []
    for (model, train_on, condition), rs in groups.items():
        noise, snr = parse_condition(condition)
        row = {"model": model, "train_on": train_on, "condition": condition, "noise_type": noise,
               "snr_db": "" if snr is None else snr, "runs": len(rs),
               "folds": len({r.get("fold") for r in rs}), "seeds": len({r.get("seed") for r in rs})}
        for key in ("wa", "ua", "macro_f1"):
            m, s = mean_std([r[key] for r in rs])
            row[f"{key}_mean"], row[f"{key}_std"] = m, s
        # runs where one class took > 90 % of the predictions (report.flag_degenerate), and that class
        dominant = [r["degenerate"] for r in rs if r.get("degenerate")]
        row["degenerate_runs"] = len(dominant)
        row["degenerate"] = ",".join(sorted(set(dominant)))
        row["test_noise"] = rs[0].get("test_noise", "")  # which noise recordings the test mixtures hold
        rows.append(row)
    model_order = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in records))}
    rows.sort(key=lambda r: (model_order[r["model"]], r["train_on"], condition_sort_key(r["condition"])))
    return rows
