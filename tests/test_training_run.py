"""End-to-end tests of train_LANCET.py on a tiny synthetic store: outputs, resume, noise modes, bad input, predict."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lancet.core.errors import LancetError
from lancet.training.grid import GridRun as Trainer, run_training

from test_training import ROOT, cfg_for, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("features"))


@pytest.fixture(scope="module")
def finished_run(store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    cfg = cfg_for(tmp, store, folds=("1",), epochs=4, batch_size=8)
    logs: list[str] = []
    out = run_training(cfg, log=logs.append)
    return cfg, out, logs


def test_end_to_end_learns_and_writes_everything(finished_run):
    cfg, out, logs = finished_run
    run_dir = Path(cfg.results_dir) / "t"
    conds = {r["condition"] for r in out["records"]}
    assert conds == {"clean", "white_0dB", "white_20dB"}
    clean = next(r for r in out["records"] if r["condition"] == "clean")
    assert clean["ua"] >= 0.6 and clean["wa"] >= 0.6  # chance is 0.25
    assert clean["n_utterances"] == 24  # 2 speakers x 4 classes x 3 utterances
    config = json.loads((run_dir / "config.json").read_text())
    assert config["protocol"] == "loso" and config["speaker_independent"] and config["epochs"] == 4
    assert any('"lr": 0.001' in line for line in logs)  # the resolved config is printed
    for name in ("metrics/TCNet__train-clean__seed987654__fold1.json", "metrics/TCNet__train-clean__seed987654__fold1.csv",
                 "summary.csv", "summary.json", "metrics_all.csv", "plots/confusion_TCNet_train-clean.png", "plots/snr_white.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "plots/snr_white.png").read_bytes()[:4] == b"\x89PNG"
    csv_head = (run_dir / "metrics/TCNet__train-clean__seed987654__fold1.csv").read_text().splitlines()[0]
    assert "macro_f1" in csv_head and "recall_angry" in csv_head
    ckpt_dir = run_dir / "checkpoints/TCNet/train-clean/seed987654/fold1"
    assert (ckpt_dir / "best.pt").is_file() and not (ckpt_dir / "last.pt").exists()
    best = torch.load(ckpt_dir / "best.pt", weights_only=True)
    assert best["model_name"] == "TCNet" and best["class_names"] == ["neutral", "happy", "sad", "angry"]
    assert best["norm_mean"].shape == (26,) and best["feature_params"]["kind"] == "mfcc"
    assert best["test_speakers"] == ["Ses01F", "Ses01M"] and best["speaker_independent"]
    assert "WA" in out["table"] and "white_0dB" in out["table"] and "speaker-independent" in out["table"]


def test_rerun_skips_finished_folds(finished_run, monkeypatch):
    cfg, out, _ = finished_run
    import lancet.training.unit as runner

    def boom(*a, **k):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(runner, "train_model", boom)
    logs: list[str] = []
    again = run_training(cfg, log=logs.append)
    assert any("finished earlier; skipped" in line for line in logs)
    assert [r["wa"] for r in again["records"]] == [r["wa"] for r in out["records"]]


class _Stop(Exception):
    pass


def test_interrupted_fold_resumes_from_last_epoch(store, tmp_path):
    ref = run_training(cfg_for(tmp_path / "ref", store, folds=("2",), epochs=3, mixup_alpha=0.5), log=lambda m: None)

    def stop_after_2(unit, epoch):
        if epoch == 2:
            raise _Stop

    cfg = cfg_for(tmp_path / "cut", store, folds=("2",), epochs=3)
    with pytest.raises(_Stop):
        run_training(cfg, on_epoch_end=stop_after_2, log=lambda m: None)
    ckpt = Path(cfg.results_dir) / "t/checkpoints/TCNet/train-clean/seed987654/fold2"
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 2
    assert not (Path(cfg.results_dir) / "t/metrics").exists()
    epochs_seen: list[int] = []
    logs: list[str] = []
    out = run_training(cfg, on_epoch_end=lambda u, e: epochs_seen.append(e), log=logs.append)
    assert epochs_seen == [3]  # only the missing epoch ran
    assert any("resumed after epoch 2" in line for line in logs)
    # same seeds and restored generator states: identical to the uninterrupted run
    ref_state = torch.load(Path(ref["run_dir"]) / "checkpoints/TCNet/train-clean/seed987654/fold2/best.pt", weights_only=True)
    cut_state = torch.load(ckpt / "best.pt", weights_only=True)
    assert ref_state["epoch"] == cut_state["epoch"]
    for k, v in ref_state["model_state"].items():
        assert torch.allclose(v.float(), cut_state["model_state"][k].float(), atol=1e-6), k
    assert [r["wa"] for r in out["records"]] == [r["wa"] for r in ref["records"]]


def test_a_second_run_into_a_locked_results_folder_stops_or_waits(store, tmp_path):
    import os
    import threading

    from lancet.core.locking import output_lock

    cfg = cfg_for(tmp_path, store, folds=("1",), epochs=1)
    run_dir = Path(cfg.results_dir) / "t"
    with output_lock(run_dir):  # another run holds the folder
        with pytest.raises(LancetError, match=f"pid {os.getpid()}"):
            run_training(cfg, log=lambda m: None)
    assert not (run_dir / "metrics").exists()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with output_lock(run_dir):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    threading.Timer(1.0, release.set).start()
    out = run_training(cfg_for(tmp_path, store, folds=("1",), epochs=1, wait=True), log=lambda m: None)
    holder.join()
    assert release.is_set() and out["records"]  # it waited for the holder, then trained


def test_a_rerun_with_other_model_options_is_refused(finished_run):

    cfg, _, _ = finished_run
    logs: list[str] = []
    again = run_training(cfg, log=logs.append)  # same settings (tuples in memory, lists in config.json): resumes
    assert any("finished earlier; skipped" in line for line in logs) and again["records"]
    with pytest.raises(LancetError, match="model_options"):
        run_training(dataclasses.replace(cfg, model_options={"TCNet": {"residual": False}}), log=lambda m: None)


def test_multi_condition_and_matched(store, tmp_path):
    out = run_training(cfg_for(tmp_path, store, folds=("3",), epochs=1, train_on="all", run_name="all"), log=lambda m: None)
    assert {r["condition"] for r in out["records"]} == {"clean", "white_0dB", "white_20dB"}
    assert {r["train_condition"] for r in out["records"]} == {"all"}
    out = run_training(cfg_for(tmp_path, store, folds=("3",), epochs=1, train_on="matched", run_name="m"), log=lambda m: None)
    assert sorted((r["train_condition"], r["condition"]) for r in out["records"]) == [
        ("clean", "clean"), ("white_0dB", "white_0dB"), ("white_20dB", "white_20dB")]
    assert len(out["summary"]) == 3 and all(r["train_on"] == "matched" for r in out["summary"])


def test_random_protocol_is_labelled_speaker_dependent(tmp_path):
    feats = make_store(tmp_path / "f", conditions=("clean",), sessions=2, per_class=6)
    logs: list[str] = []
    out = run_training(cfg_for(tmp_path, feats, protocol="random", epochs=1, pooling="vote"), log=logs.append)
    assert any("SPEAKER-DEPENDENT" in line for line in logs)
    assert "SPEAKER-DEPENDENT" in out["table"]
    assert [r["fold"] for r in out["records"]] == ["random"]
    assert json.loads((Path(out["run_dir"]) / "config.json").read_text())["speaker_independent"] is False


def test_config_change_in_same_run_dir_is_refused(finished_run):
    cfg, _, _ = finished_run
    from dataclasses import replace

    with pytest.raises(LancetError, match="epochs"):
        run_training(replace(cfg, epochs=5), log=lambda m: None)


# ----------------------------------------------------------------------------- bad input
def _cli(*args, cwd=ROOT):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(ROOT / "train_LANCET.py"), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_bad_inputs_give_one_line_errors(store, tmp_path):
    r = _cli("--features-dir", str(tmp_path / "nope"))
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "features folder not found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli("--features-dir", str(store), "--features", "spectrogram")
    assert r.returncode == 2 and "'spectrogram' has not been extracted (found: mfcc)" in r.stderr
    r = _cli("--features-dir", str(store), "--features", "mfcc", "--models", "LANCET", "ResNet")
    assert r.returncode == 2 and "unknown model 'ResNet'" in r.stderr
    r = _cli("--predict", "a.wav")
    assert r.returncode == 2 and "--checkpoint" in r.stderr


def test_default_online_training_without_audio_says_how_to_train_on_features(store, tmp_path):
    """The default recipe mixes noise into the clean audio; a store without it stops before any training,
    in one line that names the way out."""
    r = _cli("--features-dir", str(store), "--features", "mfcc", "--models", "TCNet", "--epochs", "1", "--folds", "3",
             "--results-dir", str(tmp_path / "results"), "--no-progress", "--threads", "1")
    errors = [line for line in r.stderr.splitlines() if not line.startswith("warning: ")]
    assert r.returncode == 2 and len(errors) == 1 and errors[0].startswith("error: ")
    assert "--audio-manifest" in errors[0] and "--train-on clean" in errors[0]
    assert not list((tmp_path / "results").rglob("*.pt"))
    r = _cli("--features-dir", str(store), "--features", "mfcc", "--models", "TCNet", "--epochs", "1", "--folds", "3",
             "--results-dir", str(tmp_path / "results"), "--no-progress", "--threads", "1", "--train-on", "clean",
             "--run-name", "features_only")
    assert r.returncode == 0, r.stderr


def test_empty_splits_are_errors(tmp_path):
    feats = make_store(tmp_path / "f", conditions=("clean",), sessions=3, per_class=1, improvised=False)
    with pytest.raises(LancetError, match="no utterances .* left"):
        Trainer(cfg_for(tmp_path, feats, classes="improvised"))
    with pytest.raises(LancetError, match="4class-noexc"):
        Trainer(cfg_for(tmp_path, feats, classes="4class-noexc"))
    with pytest.raises(LancetError, match="no fold"):
        Trainer(cfg_for(tmp_path, feats, folds=("7",)))
    with pytest.raises(LancetError, match="at least 3 sessions"):
        Trainer(cfg_for(tmp_path, make_store(tmp_path / "g", conditions=("clean",), sessions=2, per_class=1)))
    with pytest.raises(LancetError, match="no 'clean' condition"):
        Trainer(cfg_for(tmp_path, make_store(tmp_path / "h", conditions=("white_0dB",), sessions=3, per_class=1)))


# ----------------------------------------------------------------------------- predict
def test_predict_wavs_with_checkpoint(finished_run, tmp_path):
    from lancet.core.audio import write_wav
    from lancet.training.predict import format_predictions, predict_files

    cfg, _, _ = finished_run
    ckpt = Path(cfg.results_dir) / "t/checkpoints/TCNet/train-clean/seed987654/fold1/best.pt"
    rng = np.random.default_rng(0)
    wavs = []
    for name, seconds in (("long.wav", 3.8), ("short.wav", 1.2)):
        p = tmp_path / name
        write_wav(p, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32))
        wavs.append(p)
    results, names = predict_files(ckpt, wavs, device="cpu")
    assert [r["n_segments"] for r in results] == [3, 1]  # 0-2 s, 1-3 s, end-aligned tail; short one padded
    for r in results:
        assert sum(r["scores"]) == pytest.approx(1.0, abs=1e-5) and r["label"] in names
    table = format_predictions(results, names)
    assert "long.wav" in table and "angry" in table
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(ckpt), "--device", "cpu", str(wavs[0])],
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert r.returncode == 0 and "long.wav" in r.stdout, r.stderr
    with pytest.raises(LancetError, match="not found"):
        predict_files(ckpt, [tmp_path / "missing.wav"], device="cpu")
    with pytest.raises(LancetError, match="checkpoint not found"):
        predict_files(tmp_path / "none.pt", wavs, device="cpu")


def test_predict_real_speech_from_shared_emodb(finished_run):
    """A real 22.05 kHz recording (resampled on load) goes through the same feature path."""
    wav_dir = ROOT.parent / "shared" / "data" / "emodb" / "wav"
    if not wav_dir.is_dir():
        pytest.skip("../shared/data/emodb is not present")
    from lancet.training.predict import predict_files

    cfg, _, _ = finished_run
    ckpt = Path(cfg.results_dir) / "t/checkpoints/TCNet/train-clean/seed987654/fold1/best.pt"
    wav = sorted(wav_dir.glob("*.wav"))[0]
    (result,), names = predict_files(ckpt, [wav], device="cpu", pooling="vote")
    assert result["n_segments"] == 1 and result["label"] in names  # the copies are exactly 2.00 s
    assert sum(result["scores"]) == pytest.approx(1.0)
