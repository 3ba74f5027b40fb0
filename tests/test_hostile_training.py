"""Hostile input on the model side: checkpoints that would run code, bad training flags, silent or
short audio at prediction time, read-only feature folders, splits without a class, model options."""

from __future__ import annotations

import csv
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lancet.core.errors import LancetError
from lancet.training.checkpoint import NUMPY_KEY, load_checkpoint, save_checkpoint

from test_training import ROOT, _table, _Tiny

ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}


class _Payload:
    """Unpickling this creates ``marker``: what a crafted checkpoint would do with any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted(tmp_path: Path, legacy: bool = False) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    path = tmp_path / ("legacy.pt" if legacy else "best.pt")
    obj = {"model_name": "LANCET", "model_state": _Payload(marker)}
    if legacy:
        path.write_bytes(pickle.dumps(obj))
    else:
        torch.save(obj, path)
    return path, marker


# ----------------------------------------------------------------------------- checkpoints
def test_crafted_checkpoint_is_refused_before_anything_runs(tmp_path):
    for legacy in (False, True):
        path, marker = _crafted(tmp_path, legacy)
        if not legacy:  # the file really is hostile: the old loader would have run it
            torch.load(path, weights_only=False)
            assert marker.exists()
            marker.unlink()
        with pytest.raises(LancetError, match="refused") as err:
            load_checkpoint(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        assert not marker.exists()
    path, _ = _crafted(tmp_path)
    with pytest.raises(LancetError, match="io.open"):
        load_checkpoint(path)


@pytest.mark.parametrize("script", ["predict.py", "train_LANCET.py"])
def test_crafted_checkpoint_via_scripts(tmp_path, script):
    from lancet.core.audio import write_wav

    path, marker = _crafted(tmp_path)
    wav = tmp_path / "a.wav"
    write_wav(wav, (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32))
    args = [str(wav), "--checkpoint", str(path), "--device", "cpu"]
    if script == "train_LANCET.py":
        args = ["--predict"] + args
    r = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True, env=ENV,
                       cwd=tmp_path, timeout=120)
    assert r.returncode != 0 and not marker.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "refused" in lines[0] and str(path) in lines[0]


def test_new_checkpoints_load_weights_only_and_round_trip_numpy(tmp_path):
    random.seed(1)
    np.random.seed(2)
    state = {"norm_mean": np.arange(3, dtype=np.float32), "ids": np.array([1, 2], np.uint16), "flag": np.bool_(True),
             "nested": [{"rng": np.random.get_state(), "x": np.float64(0.5)}], "python": random.getstate(),
             "generator": np.random.default_rng(3).bit_generator.state, "t": torch.ones(2)}
    save_checkpoint(tmp_path / "c.pt", state)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)  # no allow-list needed
    assert isinstance(raw["norm_mean"], torch.Tensor) and raw[NUMPY_KEY]
    back = load_checkpoint(tmp_path / "c.pt")
    assert NUMPY_KEY not in back and back["norm_mean"].dtype == np.float32 and back["ids"].dtype == np.uint16
    assert np.array_equal(back["norm_mean"], state["norm_mean"]) and back["flag"] is True
    assert back["python"] == state["python"] and back["generator"] == state["generator"]
    saved_rng = back["nested"][0]["rng"]
    assert saved_rng[0] == "MT19937" and saved_rng[1].dtype == np.uint32 and saved_rng[2:] == state["nested"][0]["rng"][2:]
    np.random.set_state(saved_rng)
    first = np.random.random()
    np.random.set_state(state["nested"][0]["rng"])
    assert first == np.random.random()
    with pytest.raises(TypeError, match="Path"):
        save_checkpoint(tmp_path / "bad.pt", {"where": tmp_path})
    assert not (tmp_path / "bad.pt").exists()


def test_old_format_checkpoint_still_loads(tmp_path):
    """Earlier versions pickled numpy arrays (statistics and numpy's RNG state) directly."""
    old = {"format": "lancet-checkpoint-1", "norm_mean": np.linspace(0, 1, 5, dtype=np.float32),
           "norm_std": np.ones(5, np.float32), "rng": {"numpy": np.random.get_state()}, "model_state": {"w": torch.ones(1)}}
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(Exception):
        torch.load(tmp_path / "old.pt", weights_only=True)  # why an allow-list is needed at all
    back = load_checkpoint(tmp_path / "old.pt")
    assert np.array_equal(back["norm_mean"], old["norm_mean"]) and back["rng"]["numpy"][1].dtype == np.uint32


def test_training_writes_weights_only_checkpoints_and_resumes(tmp_path):
    from lancet.training.checkpoint import BEST, LAST
    from lancet.training.config import TrainSettings
    from lancet.training.fit import FitHooks, train_model

    table, _ = _table(n=40)

    class Stop(Exception):
        pass

    def stop(epoch):
        if epoch == 1:
            raise Stop

    s = TrainSettings(epochs=2, batch_size=8, lr=0.1, progress=False)
    with pytest.raises(Stop):
        train_model(_Tiny(), table, table, np.zeros(8), np.ones(8), 2, s, torch.device("cpu"), None, tmp_path, 0,
                    {"model_name": "tiny"}, FitHooks(on_epoch_end=stop))
    for name in (BEST, LAST):
        torch.load(tmp_path / name, weights_only=True)
    res = train_model(_Tiny(), table, table, np.zeros(8), np.ones(8), 2, s, torch.device("cpu"), None, tmp_path, 0,
                      {"model_name": "tiny"})
    assert res.resumed_from == 1 and res.epochs_run == 2
    assert isinstance(load_checkpoint(tmp_path / BEST)["norm_mean"], np.ndarray)


# ----------------------------------------------------------------------------- prediction on doubtful audio
@pytest.fixture(scope="module")
def tiny_best(tmp_path_factory) -> Path:
    """A best.pt in the trainer's format (untrained TC-Net on MFCC): enough to exercise prediction."""
    from lancet.features.params import SegmentParams, make_params, params_record
    from lancet.models import build_model

    record = params_record(make_params("mfcc"), SegmentParams(), "float32")
    n_freq, n_frames = record["shape"]
    torch.manual_seed(0)
    model = build_model("TCNet", 4, n_freq, n_frames)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, {"model_name": "TCNet", "model_options": {}, "model_state": model.state_dict(),
                           "class_names": ["neutral", "happy", "sad", "angry"], "feature_params": record,
                           "norm_mean": np.zeros(n_freq, np.float32), "norm_std": np.ones(n_freq, np.float32),
                           "n_freq": n_freq, "n_frames": n_frames})
    return path


def _wav(path: Path, seconds: float, amplitude: float, seed: int = 0) -> Path:
    from lancet.core.audio import write_wav

    rng = np.random.default_rng(seed)
    write_wav(path, (amplitude * rng.standard_normal(int(16000 * seconds))).clip(-1, 1).astype(np.float32))
    return path


def test_rms_dbfs():
    from lancet.training.predict import rms_dbfs

    assert rms_dbfs(np.full(100, 0.1)) == pytest.approx(-20.0)
    assert rms_dbfs(np.zeros(10)) == float("-inf") and rms_dbfs(np.zeros(0)) == float("-inf")


def test_predict_warns_on_silence_and_short_clips(tiny_best, tmp_path):
    from lancet.training.predict import format_predictions, predict_files

    wavs = [_wav(tmp_path / "silent.wav", 2.0, 0.0), _wav(tmp_path / "hiss.wav", 2.0, 3e-4),  # about -70 dBFS
            _wav(tmp_path / "speechlike.wav", 2.0, 0.05), _wav(tmp_path / "blip.wav", 0.3, 0.05)]
    results, names = predict_files(tiny_best, wavs, device="cpu")
    notes = {Path(r["path"]).name: r["warnings"] for r in results}
    assert len(notes["silent.wav"]) == 1 and "no speech energy" in notes["silent.wav"][0]
    assert len(notes["hiss.wav"]) == 1 and "no speech energy" in notes["hiss.wav"][0]
    assert notes["speechlike.wav"] == []
    assert len(notes["blip.wav"]) == 1 and "too short" in notes["blip.wav"][0]
    table = format_predictions(results, names)
    assert sum(line.startswith("warning: ") for line in table.splitlines()) == 3
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(tiny_best), "--device", "cpu",
                        str(wavs[0])], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0 and "no speech energy" in r.stdout, r.stderr


def test_predict_reads_a_folder_as_its_wavs(tiny_best, tmp_path):
    from lancet.training.predict import predict_files

    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("b.wav", "a.WAV", "c.wav"):
        _wav(folder / name, 1.0, 0.05)
    (folder / "notes.txt").write_text("not audio")
    (folder / "sub.wav").mkdir()
    results, _ = predict_files(tiny_best, [folder, folder / "c.wav"], device="cpu")
    assert [Path(r["path"]).name for r in results] == ["a.WAV", "b.wav", "c.wav", "c.wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LancetError, match="holds no .wav files"):
        predict_files(tiny_best, [empty], device="cpu")
    with pytest.raises(LancetError, match="audio file not found"):
        predict_files(tiny_best, [tmp_path / "missing.wav"], device="cpu")


# ----------------------------------------------------------------------------- training settings and splits
@pytest.mark.parametrize("field,value", [("lr", float("nan")), ("lr", float("inf")), ("lr", -1e-3),
                                         ("weight_decay", float("nan")), ("weight_decay", -1.0),
                                         ("mixup_alpha", float("inf")), ("lr_decay", float("nan")), ("lr_decay", 0.0),
                                         ("lr_floor", float("-inf")), ("ram_budget_gb", float("nan")),
                                         ("workers", -1)])
def test_numeric_settings_are_validated(field, value):
    from lancet.training.config import TrainConfig
    from lancet.training.plan import validate_config

    flag = "--" + field.replace("_", "-")
    with pytest.raises(LancetError, match=f"^{flag} ") as err:
        validate_config(TrainConfig(**{field: value}))
    assert "\n" not in str(err.value)


def test_nan_lr_on_the_command_line_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "train_LANCET.py"), "--lr", "nan", "--features-dir", str(tmp_path)],
                       capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "error: --lr nan: must be a finite number", r.stderr


def test_missing_class_warnings_per_split():
    from lancet.training.plan import missing_class_warnings
    from lancet.training.folds import Fold, Utterance

    utts = [Utterance(f"u{i}", "1", "s", c, True) for i, c in enumerate(["neutral", "happy", "sad", "angry", "sad"])]
    fold = Fold("fold1", frozenset({"u0", "u1", "u2", "u3"}), frozenset({"u4"}), frozenset({"u0", "u1"}), True)
    lines = missing_class_warnings([fold], utts, ("neutral", "happy", "sad", "angry"))
    assert lines == ["fold1: the validation split has no neutral, happy, angry utterances",
                     "fold1: the test split has no sad, angry utterances"]


def test_training_warns_on_missing_class_and_keeps_norm_stats_when_features_are_read_only(tmp_path, monkeypatch):
    """Session 1 has no 'sad' utterance (relabelled to an unused class): fold1 tests without it. The
    features folder refuses writes (CI runs as root, where chmod stops nothing: monkeypatched)."""

    import lancet.training.unit as runner
    from lancet.training.grid import run_training
    from test_training import cfg_for, make_store

    feats = make_store(tmp_path / "f", conditions=("clean",), sessions=3, per_class=2)
    index = feats / "mfcc" / "clean.csv"
    with open(index, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["session"] == "1" and row["class"] == "sad":
            row["class"] = "fru"
    with open(index, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    real_atomic_path = runner.atomic_path
    store_dir = (feats / "mfcc").resolve()

    def read_only_features(path, *a, **k):
        if store_dir in Path(path).resolve().parents:
            raise PermissionError(13, "Permission denied", str(path))
        return real_atomic_path(path, *a, **k)

    monkeypatch.setattr(runner, "atomic_path", read_only_features)
    logs: list[str] = []
    out = run_training(cfg_for(tmp_path, feats, folds=("1",), epochs=1), log=logs.append)
    warning = "fold1: the test split has no sad utterances"
    assert f"warning: {warning}" in logs
    config = json.loads((Path(out["run_dir"]) / "config.json").read_text())
    assert warning in config["split_warnings"]
    assert not (feats / "mfcc" / "norm_stats").exists()
    saved = list((Path(out["run_dir"]) / "norm_stats").glob("*.npz"))
    assert len(saved) == 1 and "fold1" in saved[0].name
    assert any("not writable" in line and "norm_stats" in line for line in logs)
    with np.load(saved[0]) as stats:
        assert stats["mean"].shape == (26,) and list(stats["test_speakers"]) == ["Ses01F", "Ses01M"]


def test_old_lancet_checkpoints_keep_the_padding_they_were_trained_with(tmp_path):
    """Checkpoints of format 1 were trained with 'same'-padded attention; new ones record the published one."""
    from lancet.features.params import SegmentParams, make_params, params_record
    from lancet.models import build_model
    from lancet.training.predict import load_predictor

    record = params_record(make_params("mfcc"), SegmentParams(), "float32")
    n_freq, n_frames = record["shape"]
    base = {"model_name": "LANCET", "model_options": {}, "model_state": build_model("LANCET", 4, n_freq, n_frames).state_dict(),
            "class_names": ["neutral", "happy", "sad", "angry"], "feature_params": record,
            "norm_mean": np.zeros(n_freq, np.float32), "norm_std": np.ones(n_freq, np.float32),
            "n_freq": n_freq, "n_frames": n_frames}
    for fmt, padding in (("lancet-checkpoint-1", "same"), ("lancet-checkpoint-2", "valid")):
        save_checkpoint(tmp_path / f"{fmt}.pt", dict(base, format=fmt))
        assert load_predictor(tmp_path / f"{fmt}.pt", device="cpu").model.attention.padding == padding
