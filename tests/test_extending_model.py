"""The "add a model" recipe of docs/EXTENDING.md, followed with a throw-away model: one class and one
registry entry, and the command line, training, records, checkpoints, prediction and the benchmark all
take it without another edit. Any place that still names the built-in models breaks this test."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lancet.core.errors import LancetError
from lancet.features import open_features
from lancet.models import MODELS, ModelEntry, build_model, count_parameters, parse_model_options
from lancet.training.config import build_parser, config_from_args
from lancet.training.evaluate import pool_utterances, to_model_input
from lancet.training.grid import run_training
from lancet.training.predict import load_predictor

from test_training import ROOT, cfg_for, make_store

NAME = "TinyCNN"


class TinyCNN(nn.Module):
    """A 3x3 convolution, ReLU, mean over the valid frames, a linear layer: enough for the toy store,
    where class c raises frequency band c."""

    def __init__(self, n_classes: int = 4, n_freq: int = 26, n_frames: int = 63, *, width: int = 4) -> None:
        super().__init__()
        self.width = width
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.head = nn.Linear(width * n_freq, n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(self.conv(x))  # (B, width, F, T)
        if lengths is None:
            pooled = h.mean(-1)
        else:  # padded frames of short utterances do not count
            mask = (torch.arange(h.shape[-1], device=h.device) < lengths[:, None]).to(h.dtype)  # (B, T)
            pooled = (h * mask[:, None, None]).sum(-1) / mask.sum(-1).clamp(min=1)[:, None, None]
        return self.head(pooled.flatten(1))


@pytest.fixture
def registered(monkeypatch) -> ModelEntry:
    """The recipe's one registry line, for this test only."""
    entry = ModelEntry(NAME, TinyCNN, "mfcc", "a test's throw-away model")
    monkeypatch.setitem(MODELS, NAME, entry)
    return entry


def test_add_a_model(registered, tmp_path):
    torch.manual_seed(0)
    # the command line: listed by --models, options from the constructor's signature
    assert f"{NAME} (a test's throw-away model)" in " ".join(build_parser().format_help().split())
    cfg = config_from_args(build_parser().parse_args(["--models", NAME, "--model-options", "width=6"]))
    assert cfg.models == (NAME,) and cfg.model_options == {NAME: {"width": 6}}
    with pytest.raises(LancetError) as err:
        parse_model_options([f"{NAME}.depth=3"], [NAME])
    assert str(err.value) == f"--model-options '{NAME}.depth=3': unknown option 'depth'; valid options: {NAME}: width"
    with pytest.raises(LancetError) as err:
        build_model(NAME, 4, 26, 63, depth=3)
    assert str(err.value) == f"{NAME}: unknown option(s) depth; known options: width"

    # training end to end on a store where the classes are separable
    feats = make_store(tmp_path / "features")
    out = run_training(cfg_for(tmp_path, feats, models=(NAME,), model_options=cfg.model_options, folds=("1",),
                               epochs=8, batch_size=8), log=lambda m: None)
    assert {r["model"] for r in out["records"]} == {NAME}
    clean = next(r for r in out["records"] if r["condition"] == "clean")
    assert clean["n_utterances"] == 24 and clean["ua"] >= 0.8 and clean["wa"] >= 0.8  # chance: 0.25 (1.0 when written)
    run_dir = Path(out["run_dir"])
    unit = f"{NAME}__train-clean__seed987654__fold1"
    assert json.loads((run_dir / "metrics" / f"{unit}.json").read_text())
    assert (run_dir / "plots" / f"confusion_{NAME}_train-clean.png").is_file() and NAME in out["table"]
    best = run_dir / "checkpoints" / NAME / "train-clean" / "seed987654" / "fold1" / "best.pt"
    ckpt = torch.load(best, weights_only=True)
    assert ckpt["model_name"] == NAME and ckpt["model_options"] == {"width": 6}

    # prediction rebuilds it from the checkpoint and gives the recorded accuracy on the test speakers
    predictor = load_predictor(best, device="cpu")
    assert isinstance(predictor.model, TinyCNN) and predictor.model.width == 6
    store = open_features(feats / "mfcc")
    rows = [r for r in store.index("clean") if r["session"] == 1]
    x = torch.from_numpy(np.asarray(store.segments("clean"))[[r["row"] for r in rows]])
    lengths = torch.tensor([r["valid_frames"] for r in rows])
    with torch.no_grad():
        probs = torch.softmax(predictor.model(to_model_input(x, predictor.mean, predictor.std), lengths), -1).numpy()
    ids = list(dict.fromkeys(r["id"] for r in rows))
    _, predicted = pool_utterances(probs, np.array([ids.index(r["id"]) for r in rows]), len(ids))
    truth = {r["id"]: predictor.class_names.index(r["class"]) for r in rows}
    assert np.mean(predicted == np.array([truth[i] for i in ids])) == pytest.approx(clean["wa"])

    # the cost benchmark measures it like the others
    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "bench" / "bench_models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    params, macs = bench.static_costs(NAME, registered.input_kind)
    assert params == count_parameters(TinyCNN()) and macs > 0
