"""The whole pipeline through its scripts, as the README runs it, on a tiny corpus.

Each step's output is checked against the step before with real counts, so a broken hand-over
(a renamed column, a lost condition, a speaker leaking across a fold) fails here.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lancet.core.manifest import read_manifest
from lancet.corpora.demo import make_demo_corpus
from lancet.features import open_features

REPO = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True,
                            cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pipeline")
    paths = {"corpus": tmp / "IEMOCAP", "manifest": tmp / "manifest.csv", "augmented": tmp / "augmented",
             "standard": tmp / "standard", "features": tmp / "features", "results": tmp / "results"}
    labels = make_demo_corpus(paths["corpus"], seed=1, utterances_per_speaker=8)
    paths["kept"] = sum(n for label, n in labels.items() if label in ("neu", "hap", "exc", "sad", "ang"))
    run("datasets/prepare_IEMOCAP.py", "--iemocap-dir", str(paths["corpus"]), "--manifest", str(paths["manifest"]))
    run("datasets/augment_IEMOCAP.py", "--manifest", str(paths["manifest"]), "--out", str(paths["augmented"]),
        "--noise-types", "white", "babble", "--snrs", "0", "--no-reverb", "--no-progress")
    run("datasets/handleIEMOCAP.py", "--manifest", str(paths["manifest"]), "--augmented-dir",
        str(paths["augmented"]), "--out", str(paths["standard"]))
    run("feature_extraction/extract_features_iemocap_mfcc.py", "--manifest", str(paths["standard"] / "manifest.csv"),
        "--out", str(paths["features"] / "mfcc"), "--no-progress")
    paths["train_log"] = tmp / "train.log"
    paths["train_log"].write_text(run(
        "train_LANCET.py", "--features-dir", str(paths["features"]), "--features", "mfcc", "--models", "TCNet",
        "--epochs", "2", "--folds", "1", "2", "--run-name", "tiny", "--results-dir", str(paths["results"]),
        "--no-progress", "--threads", "1"))
    return paths


def test_every_step_hands_over_all_utterances(pipeline):
    corpus = read_manifest(pipeline["manifest"])
    ids = {u.id for u in corpus}
    n = pipeline["kept"]  # fru and xxx are dropped
    assert len(corpus) == n and n >= 60
    augmented = rows(pipeline["augmented"] / "augmented_manifest.csv")
    assert Counter(r["condition"] for r in augmented) == {"white_0dB": n, "babble_0dB": n}
    assert all(abs(float(r["snr_measured_db"])) < 0.1 for r in augmented)
    standard = rows(pipeline["standard"] / "manifest.csv")
    assert Counter(r["condition"] for r in standard) == {"clean": n, "white_0dB": n, "babble_0dB": n}
    assert {r["id"] for r in standard} == ids
    assert all(Path(r["path"]).name == f"{r['id']}__{r['condition']}.wav" for r in standard)
    store = open_features(pipeline["features"] / "mfcc")
    assert store.shape == (26, 63) and sorted(store.conditions) == ["babble_0dB", "clean", "white_0dB"]
    for condition in store.conditions:
        index = store.index(condition)
        assert {r["id"] for r in index} == ids
        assert store.segments(condition).shape == (len(index), 26, 63)
        assert np.isfinite(store.segments(condition)).all()
    # noise at 0 dB changes the features of the same segments
    assert not np.allclose(store.segments("clean"), store.segments("white_0dB"))


def test_training_reports_every_condition_speaker_independently(pipeline):
    run_dir = pipeline["results"] / "tiny"
    log = pipeline["train_log"].read_text()
    assert "speaker-independent" in log
    config = json.loads((run_dir / "config.json").read_text())
    assert config["features"] == "mfcc" and config["protocol"] == "loso"
    assert config["train_on"] == "online"   # the default recipe: fresh noise every epoch (docs/ROBUSTNESS.md)
    summary = rows(run_dir / "summary.csv")
    assert {r["condition"] for r in summary} == {"clean", "white_0dB", "babble_0dB"}
    metrics = sorted((run_dir / "metrics").glob("TCNet*fold*.json"))
    assert [m.stem.rsplit("__", 1)[1] for m in metrics] == ["fold1", "fold2"]
    for fold, test_speakers, val_speakers in (("fold1", "Ses01F,Ses01M", "Ses02F,Ses02M"),
                                              ("fold2", "Ses02F,Ses02M", "Ses03F,Ses03M")):
        assert f"test speakers {test_speakers}; validation speakers {val_speakers}" in log, fold
        record = json.loads((run_dir / "metrics" / f"TCNet__train-online__seed987654__{fold}.json").read_text())
        assert {r["condition"] for r in record} == {"clean", "white_0dB", "babble_0dB"}
        assert all(0 <= r["wa"] <= 1 and 0 <= r["ua"] <= 1 for r in record)
    stats = sorted((pipeline["features"] / "mfcc" / "norm_stats").glob("tiny__TCNet*.npz"))
    assert len(stats) == 2  # one per fold, saved next to the features
    for path in stats:
        with np.load(path) as saved:
            assert saved["mean"].shape == saved["std"].shape == (26,) and (saved["std"] > 0).all()
            assert len(saved["train_speakers"]) == 6 and len(saved["test_speakers"]) == 2
            assert not set(saved["train_speakers"]) & set(saved["test_speakers"])
    assert list((run_dir / "plots").glob("confusion_*.png")) and list((run_dir / "plots").glob("snr_*.png"))


def test_rerun_skips_finished_folds(pipeline):
    run_dir = pipeline["results"] / "tiny"
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "metrics").glob("*.json")}
    run("train_LANCET.py", "--features-dir", str(pipeline["features"]), "--features", "mfcc", "--models", "TCNet",
        "--epochs", "2", "--folds", "1", "2", "--run-name", "tiny", "--results-dir", str(pipeline["results"]),
        "--no-progress", "--threads", "1")
    assert {p: p.stat().st_mtime_ns for p in (run_dir / "metrics").glob("*.json")} == before


def test_predict_labels_a_wav_with_probabilities(pipeline):
    checkpoint = next((pipeline["results"] / "tiny" / "checkpoints").rglob("best.pt"))
    wav = next((pipeline["standard"] / "clean").glob("*.wav"))
    out = run("predict.py", "--checkpoint", str(checkpoint), "--device", "cpu", str(wav))
    header, line = out.strip().splitlines()[-2:]
    assert header.split()[:3] == ["file", "prediction", "segments"]
    fields = line.split()
    assert fields[0] == wav.name and fields[1] in header.split()[3:]
    probabilities = [float(v) for v in fields[3:]]
    assert len(probabilities) == 4 and abs(sum(probabilities) - 1) < 0.01


def test_raw_labels_reach_the_trainer_for_other_class_maps(pipeline, tmp_path):
    """--classes 4class-noexc works on extracted features: the raw label travels in the index."""
    from lancet.training.config import TrainConfig
    from lancet.training.grid import GridRun as Trainer

    corpus = read_manifest(pipeline["manifest"])
    n_exc = sum(u.label == "exc" for u in corpus)
    assert n_exc > 0
    config = dict(features_dir=str(pipeline["features"]), features="mfcc", models=("TCNet",),
                  results_dir=str(tmp_path))
    assert len(Trainer(TrainConfig(**config)).utterances) == len(corpus)
    noexc = Trainer(TrainConfig(**config, classes="4class-noexc")).utterances
    assert len(noexc) == len(corpus) - n_exc and all(u.label != "exc" for u in noexc)
    improvised = Trainer(TrainConfig(**config, improvised_only=True)).utterances
    assert len(improvised) == sum(u.improvised for u in corpus)
