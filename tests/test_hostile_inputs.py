"""A hurried researcher's inputs: outputs pointed into a corpus, implausible audio, duplicated rows, noise that
is no noise, cut indexes, odd model options and names made to break tables. Each is refused in one line
before anything wrong is written, never answered with a number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.errors import LancetError
from lancet.core.manifest import read_manifest

from test_augment import make_corpus
from test_hostile_data import files_under, one_line_error, quiet, script
from test_training import ROOT, cfg_for, make_store

AUGMENT = ROOT / "datasets" / "augment_IEMOCAP.py"
HANDLE = ROOT / "datasets" / "handleIEMOCAP.py"
MFCC = ROOT / "feature_extraction" / "extract_features_iemocap_mfcc.py"
PREPARE_EMODB = ROOT / "datasets" / "prepare_EmoDB.py"
SR = 16000


# ----------------------------------------------------------------------------- 1 no output inside an input
@pytest.fixture()
def iemocap(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=2, seconds=0.5)
    return tmp_path, manifest


def _augment_args(manifest: Path, out: Path) -> list:
    return ["--manifest", manifest, "--out", out, "--workers", "1", "--no-progress", "--no-reverb",
            "--noise-types", "white", "--snrs", "0"]


def test_augment_out_inside_the_corpus_is_refused_before_anything_is_written(iemocap):
    root, manifest = iemocap
    before = files_under(root / "IEMOCAP")
    for out in (root / "IEMOCAP" / "augmented",                                   # the release folder
                root / "IEMOCAP" / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "aug",  # among its audio
                root / "elsewhere" / ".." / "IEMOCAP" / "aug"):                  # resolved before comparison
        err = one_line_error(script(AUGMENT, *_augment_args(manifest, out)))
        assert "--out lies inside the" in err and "IEMOCAP" in err and "choose another --out" in err, err
    (root / "link").symlink_to(root / "IEMOCAP")                                  # a link into the corpus
    err = one_line_error(script(AUGMENT, *_augment_args(manifest, root / "link" / "aug")))
    assert "lies inside the original corpus folder" in err
    assert files_under(root / "IEMOCAP") == before                               # not even a lock file or a folder


def test_augment_out_inside_the_noise_folder_is_refused(iemocap):
    from lancet.noise.augment import AugmentConfig, augment

    root, manifest = iemocap
    (root / "noise" / "ambient").mkdir(parents=True)
    sf.write(root / "noise" / "ambient" / "hum.wav", 0.1 * np.random.default_rng(0).standard_normal(SR), SR)
    cfg = AugmentConfig(out=root / "noise" / "aug", snrs=[0], noise_types=["ambient"], noise_dir=root / "noise",
                        reverb=False, shared_noise_dir=None, workers=1, progress=False)
    with pytest.raises(LancetError, match="--out lies inside the noise folder"):   # read back as noise next time
        augment(read_manifest(manifest), cfg, log=quiet)
    assert not (root / "noise" / "aug").exists()


def test_standardise_and_extraction_outputs_stay_out_of_their_inputs(iemocap):
    from lancet.corpora.standard_names import standardise
    from lancet.features.extract import extract_features

    root, manifest = iemocap
    r = script(AUGMENT, *_augment_args(manifest, root / "aug"))
    assert r.returncode == 0, r.stderr
    with pytest.raises(LancetError, match="--out lies inside the augmented folder"):
        standardise(manifest, root / "aug", root / "aug" / "std", log=quiet)
    assert not (root / "aug" / "std").exists()
    standardise(manifest, root / "aug", root / "std", log=quiet)
    err = one_line_error(script(MFCC, "--manifest", root / "std" / "manifest.csv", "--out", root / "std" / "mfcc",
                                "--workers", "1", "--no-progress", "--device", "cpu"))
    assert "--out lies inside the corpus audio folder" in err and str((root / "std").resolve()) in err
    with pytest.raises(LancetError, match="--out lies inside the corpus audio folder"):
        extract_features(root / "std" / "manifest.csv", root / "std" / "clean" / "f", kind="mfcc", workers=1,
                         progress=False, log=quiet)
    assert not (root / "std" / "mfcc").exists() and not (root / "std" / "clean" / "f").exists()


def test_results_inside_the_feature_store_are_refused(tmp_path):
    from lancet.training.grid import run_training

    store = make_store(tmp_path / "features", conditions=("clean",), sessions=3, per_class=1)
    for settings, flag in ((dict(results_dir=str(store / "mfcc" / "results")), "--results-dir"),
                           (dict(results_dir=str(store), run_name="mfcc"), "--run-name")):
        with pytest.raises(LancetError, match=f"{flag} lies inside the feature store") as err:
            run_training(cfg_for(tmp_path, store, folds=("1",), epochs=1, **settings), log=quiet)
        assert "\n" not in str(err.value)
    assert sorted(p.name for p in (store / "mfcc").iterdir()) == ["clean.csv", "clean.npy", "params.json"]


def test_prepared_manifest_inside_the_corpus_folder_is_refused(tmp_path):
    (tmp_path / "EmoDB" / "wav").mkdir(parents=True)
    for name in ("03a01Fa", "08a01Wa"):
        sf.write(tmp_path / "EmoDB" / "wav" / f"{name}.wav", 0.1 * np.ones(SR), 22050)
    before = files_under(tmp_path / "EmoDB")
    err = one_line_error(script(PREPARE_EMODB, "--emodb-dir", tmp_path / "EmoDB", "--manifest",
                                tmp_path / "EmoDB" / "manifest.csv"))
    assert "--manifest lies inside the corpus folder" in err
    err = one_line_error(script(PREPARE_EMODB, "--emodb-dir", tmp_path / "EmoDB", "--manifest", tmp_path / "m.csv",
                                "--converted-dir", tmp_path / "EmoDB" / "16k"))
    assert "--converted-dir lies inside the corpus folder" in err
    assert files_under(tmp_path / "EmoDB") == before
