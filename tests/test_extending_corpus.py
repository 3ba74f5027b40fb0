"""docs/EXTENDING.md, "Add a corpus": a reader file, one registry entry and a thin prepare script are all it takes.

The throw-away corpus here names its files ``<speaker>-<emotion word>-<take>.wav`` (a layout no reader of the
project knows); its reader is defined in this file, registered for the test only, and then the shared
prepare body, standardisation, feature extraction and training run on it unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.classes import DEFAULT_CLASS_MAP
from lancet.core.manifest import CorpusScan, read_manifest
from lancet.corpora.labels import class_map
from lancet.corpora.prepare import prepare
from lancet.corpora.registry import CORPORA, Corpus
from lancet.corpora.scan import ODD_NAME, add_named_file, check_folders, wav_files
from lancet.corpora.standard_names import standardise
from lancet.features.extract import extract_features
from lancet.features.params import make_params
from lancet.training.config import TrainConfig
from lancet.training.grid import run_training

PITCH = {"calm": 220.0, "joy": 440.0, "grief": 160.0, "rage": 330.0, "awe": 600.0}   # a learnable difference
TOY_LABELS = {"calm": "neutral", "joy": "happy", "grief": "sad", "rage": "angry", "awe": "surprise"}


def scan_toy(root, classes: str = DEFAULT_CLASS_MAP, converted_dir=None) -> CorpusScan:
    """The reader file's whole content: parse a name into speaker and label, hand the file to the shared checks."""
    mapping = class_map(TOY_LABELS, classes)
    root = check_folders(root, converted_dir, "toy corpus", "expected <speaker>-<emotion>-<take>.wav files")
    scan = CorpusScan()
    for wav in wav_files(root):
        parts = wav.stem.split("-")
        if len(parts) != 3 or parts[1] not in TOY_LABELS:
            scan.warn(ODD_NAME, f"{wav}: not <speaker>-<emotion>-<take>; skipped")
            continue
        speaker = parts[0]
        add_named_file(scan, mapping, wav, root, converted_dir, label=parts[1], speaker=speaker,
                       gender="F" if int(speaker[1:]) % 2 else "M")
    return scan


def toy_corpus(root: Path, speakers: int = 6, takes: int = 2, seed: int = 0) -> Path:
    """Tones whose pitch gives the emotion, at 22.05 kHz stereo (so the shared reader converts them once)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    t = np.arange(int(0.8 * 22050)) / 22050
    for s in range(speakers):
        for word, f0 in PITCH.items():
            for k in range(takes):
                tone = 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.03 * rng.standard_normal()) * t)
                tone += 0.01 * rng.standard_normal(t.size)
                sf.write(root / f"s{s}-{word}-{k}.wav", np.stack([tone, tone], 1).astype(np.float32), 22050)
    (root / "readme-not-audio.wav").write_bytes(b"")  # an odd name: counted and skipped, never a crash
    return root


def test_add_a_corpus(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(CORPORA, "toy", Corpus("toy", "toy corpus", scan_toy, "--toy-dir", "folder of toy wavs"))
    corpus = toy_corpus(tmp_path / "toy")
    originals = sorted(p.name for p in corpus.iterdir())
    manifest = tmp_path / "toy_manifest.csv"

    # the thin prepare script: its constants, then the shared body
    assert prepare(CORPORA["toy"], "Read the toy corpus.", str(corpus), str(manifest), str(tmp_path / "toy_16k"),
                   "4class", folds_k=3, fold_seed=0, argv=[]) == 0
    printed = capsys.readouterr().out
    utts = read_manifest(manifest)
    assert len(utts) == 6 * 4 * 2                                     # awe (surprise) is outside 4class
    assert {u.cls for u in utts} == {"neutral", "happy", "sad", "angry"}
    assert "dropped (label outside the class map): awe 12" in printed and "odd name 1" in printed
    groups = {u.speaker: u.session for u in utts}
    assert sorted(groups.values()).count(1) == 2 and set(groups.values()) == {1, 2, 3}   # 2 speakers per group
    assert all(sf.info(u.path).samplerate == 16000 and sf.info(u.path).channels == 1 for u in utts)
    assert sorted(p.name for p in corpus.iterdir()) == originals       # the corpus folder is only read

    # the later steps do not know which corpus it is
    standardise(manifest, None, tmp_path / "std", log=lambda *_: None)
    extract_features(tmp_path / "std" / "manifest.csv", tmp_path / "features" / "mfcc", params=make_params("mfcc"),
                     workers=1, progress=False, log=lambda *_: None)
    cfg = TrainConfig(features_dir=str(tmp_path / "features"), features="mfcc", models=("TCNet",), epochs=8,
                      lr=3e-3, seeds=(1,), results_dir=str(tmp_path / "results"), run_name="toy", device="cpu",
                      amp="off", workers=0, threads=1, progress=False, train_on="clean")
    out = run_training(cfg, log=lambda *_: None)
    clean = [r for r in out["records"] if r["condition"] == "clean"]
    assert len(clean) == 3 and {r["fold"] for r in clean} == {"fold1", "fold2", "fold3"}
    assert np.mean([r["ua"] for r in clean]) > 0.5                    # chance is 0.25: the pitch is learnt
    config = json.loads((Path(out["run_dir"]) / "config.json").read_text())
    assert config["class_names"] == ["neutral", "happy", "sad", "angry"]


def test_an_unknown_corpus_option_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(CORPORA, "toy", Corpus("toy", "toy corpus", scan_toy, "--toy-dir", "folder of toy wavs"))
    with pytest.raises(SystemExit):
        prepare(CORPORA["toy"], "Read the toy corpus.", str(tmp_path), str(tmp_path / "m.csv"), str(tmp_path / "c"),
                "4class", argv=["--classes", "4class-noexc"])  # an IEMOCAP-only class map
