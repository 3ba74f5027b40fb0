"""Where training stands after an epoch, saved in ``last.pt`` so an interrupted unit continues exactly.

``last.pt`` holds the model, optimizer, scheduler and grad-scaler states, every random generator's state
and a :class:`ResumeState` (epoch, best so far, history), all as tensors and plain values: it loads with
``torch.load(weights_only=True)`` (lancet.training.checkpoint).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint


def rng_state(rng: np.random.Generator) -> dict:
    """Every generator's state as plain values and tensors (numpy's key array becomes an int64 tensor)."""
    legacy = np.random.get_state(legacy=False)
    legacy["state"] = {"key": torch.from_numpy(legacy["state"]["key"].astype(np.int64)), "pos": int(legacy["state"]["pos"])}
    state = {"python": random.getstate(), "numpy": legacy, "torch": torch.get_rng_state(),
             "generator": rng.bit_generator.state}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, rng: np.random.Generator) -> None:
    """Restore what :func:`rng_state` saved (also numpy's own tuple, as older ``last.pt`` files hold it)."""
    random.setstate(state["python"])
    legacy = state["numpy"]
    if isinstance(legacy, dict):
        key = legacy["state"]["key"]
        key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        legacy = {**legacy, "state": {"key": key.astype(np.uint32), "pos": int(legacy["state"]["pos"])}}
    np.random.set_state(legacy)
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["generator"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class ResumeState:
    """Where training stands after an epoch: saved in ``last.pt`` beside the model, optimizer, scheduler,
    grad-scaler and random-generator states, as plain values only (loads with ``weights_only``)."""

    epoch: int = 0                  # epochs done
    best_score: float = float("-inf")
    best_epoch: int = -1
    best_val: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    stale: int = 0                  # epochs since the best one (early stopping)
    finished: bool = False

    def save(self, path: Path, model, optimizer, scheduler, scaler, rng: np.random.Generator) -> None:
        save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                               "rng": rng_state(rng), **dataclasses.asdict(self)})

    @classmethod
    def load(cls, path: Path, model, optimizer, scheduler, scaler, rng: np.random.Generator) -> "ResumeState":
        """Restore every state from ``path`` into the given objects; returns the loop's own state."""
        state = load_checkpoint(path, map_location="cpu")  # RNG states must stay CPU tensors
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"], rng)
        return cls(**{f.name: state[f.name] for f in dataclasses.fields(cls) if f.name in state})
