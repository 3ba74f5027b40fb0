"""A hurried researcher's runs: results are tied to the data and settings they came from, and a plausible
mistake is refused in one line before anything is written, never answered with a number."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.audio import write_wav
from lancet.core.errors import LancetError
from lancet.core.manifest import write_manifest
from lancet.corpora.demo import make_demo_corpus
from lancet.corpora.iemocap import scan_iemocap
from lancet.corpora.standard_names import standardise
from lancet.features import open_features
from lancet.features.extract import extract_features
from lancet.features.params import make_params
from lancet.noise.augment import AugmentConfig, augment
from lancet.training.checkpoint import BEST, load_checkpoint, save_checkpoint
from lancet.training.grid import run_training
from lancet.training.noise_pools import noise_manifest_of
from lancet.training.predict import load_predictor

from test_training import ROOT, cfg_for, make_store

ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
QUIET = dict(log=lambda *_: None)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Two stores of the same kind and shape, as two corpora extracted with the same flags."""
    root = tmp_path_factory.mktemp("corpora")
    return make_store(root / "a", conditions=("clean",), seed=0), make_store(root / "b", conditions=("clean",), seed=1)


def _one_fold(tmp: Path, features: Path, **kw):
    return cfg_for(tmp, features, folds=("1",), epochs=1, **kw)


def test_two_corpora_with_the_same_flags_get_their_own_runs(tmp_path, corpora):
    a, b = corpora
    out_a = run_training(_one_fold(tmp_path, a, run_name=None), **QUIET)
    out_b = run_training(_one_fold(tmp_path, b, run_name=None), **QUIET)
    assert out_a["run_dir"] != out_b["run_dir"]                      # the default name carries the data's digest
    assert out_a["run_dir"].name.startswith("mfcc_loso_4class_train-clean_")
    ids = {json.loads((o["run_dir"] / "config.json").read_text())["identity_digest"] for o in (out_a, out_b)}
    assert len(ids) == 2
    assert all(r["identity"] in ids for o in (out_a, out_b) for r in o["records"])


def test_a_named_run_on_another_corpus_is_refused_and_its_config_kept(tmp_path, corpora):
    a, b = corpora
    run_training(_one_fold(tmp_path, a, run_name="shared"), **QUIET)
    config = tmp_path / "results" / "shared" / "config.json"
    before = config.read_bytes()
    with pytest.raises(LancetError, match=r"computed from other data or settings \(features\.") as err:
        run_training(_one_fold(tmp_path, b, run_name="shared"), **QUIET)
    assert "\n" not in str(err.value) and "--run-name" in str(err.value)
    assert config.read_bytes() == before                                # never silently rewritten


def test_results_without_their_config_are_not_reused(tmp_path, corpora):
    a, _ = corpora
    run_training(_one_fold(tmp_path, a, run_name="r"), **QUIET)
    run_dir = tmp_path / "results" / "r"
    (run_dir / "config.json").unlink()
    with pytest.raises(LancetError, match="computed from other data or settings than this run"):
        run_training(_one_fold(tmp_path, a, run_name="r", lr=2e-3), **QUIET)
    (run_dir / "config.json").write_text(json.dumps({"run_name": "r"}))  # a key deleted: no identity left
    with pytest.raises(LancetError, match="config.json records no identity"):
        run_training(_one_fold(tmp_path, a, run_name="r"), **QUIET)
    (run_dir / "config.json").write_text("[1, 2]")
    with pytest.raises(LancetError, match="not a run configuration"):
        run_training(_one_fold(tmp_path, a, run_name="r"), **QUIET)


def test_a_run_that_finished_no_unit_does_not_block_its_corrected_rerun(tmp_path, corpora):
    a, _ = corpora
    run_dir = tmp_path / "results" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"identity": {"settings": {"lr": 1.0}}}))
    logs: list[str] = []
    out = run_training(_one_fold(tmp_path, a, run_name="r"), log=logs.append)
    assert any("finished no unit; starting afresh" in line for line in logs)
    assert json.loads((run_dir / "config.json").read_text())["identity_digest"] == out["records"][0]["identity"]


@pytest.mark.parametrize("settings,message", [
    (dict(lr=1e-3, lr_floor=1e-2), "--lr-floor 0.01 is above --lr 0.001"),
    (dict(seeds=(-1,)), "--seeds -1: a seed is a whole number"),
    (dict(seeds=(1, 2, 1)), "--seeds: 1 given more than once"),
    (dict(folds=("1", "1")), "--folds: 1 given more than once"),
    (dict(eval_batch_size=0), "--eval-batch-size 0: must be >= 1"),
    (dict(run_name="../x"), "unsafe --run-name '../x'"),
])
def test_plausible_mistakes_are_refused_before_anything_is_written(tmp_path, corpora, settings, message):
    a, _ = corpora
    with pytest.raises(LancetError, match=message) as err:
        run_training(cfg_for(tmp_path, a, **{"folds": ("1",), **settings}), **QUIET)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "results").exists() and not (tmp_path / "x").exists()


def test_a_diverged_run_stops_with_the_epoch_and_keeps_no_weights(tmp_path, corpora):
    a, _ = corpora
    with pytest.raises(LancetError, match=r"epoch 1: the training loss is (nan|inf)") as err:
        run_training(_one_fold(tmp_path, a, lr=1e30, mixup_alpha=0.0), **QUIET)
    assert "lower --lr" in str(err.value)
    best = list((tmp_path / "results").rglob(BEST))
    assert not best                                                      # no NaN model to predict with
    assert not list((tmp_path / "results").rglob("metrics/*.json"))


def test_cross_corpus_on_the_training_store_is_refused(tmp_path, corpora):
    a, _ = corpora
    with pytest.raises(LancetError, match="the training store itself"):
        run_training(_one_fold(tmp_path, a, test_features_dir=str(a)), **QUIET)
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    with pytest.raises(LancetError, match="holds the training store's own features"):
        run_training(_one_fold(tmp_path, a, test_features_dir=str(copy)), **QUIET)


def test_a_checkpoint_whose_sizes_disagree_with_its_weights_is_one_line(tmp_path, corpora):
    a, _ = corpora
    out = run_training(_one_fold(tmp_path, a), **QUIET)
    best = next(Path(out["run_dir"]).rglob(BEST))
    ckpt = load_checkpoint(best)
    edited = tmp_path / "edited.pt"
    save_checkpoint(edited, {**ckpt, "n_freq": ckpt["n_freq"] + 4})      # sizes that the weights do not fit
    with pytest.raises(LancetError, match="weights do not fit a TCNet of the recorded sizes") as err:
        load_predictor(edited, "cpu")
    assert "\n" not in str(err.value)
    state = {k: (v * float("nan") if v.is_floating_point() else v) for k, v in ckpt["model_state"].items()}
    save_checkpoint(edited, {**ckpt, "model_state": state})
    with pytest.raises(LancetError, match="not finite"):
        load_predictor(edited, "cpu")


def test_a_results_folder_that_is_a_file_is_one_line(tmp_path, corpora):
    a, _ = corpora
    (tmp_path / "results").write_text("not a folder")
    r = subprocess.run([sys.executable, str(ROOT / "train_LANCET.py"), "--features-dir", str(a), "--features", "mfcc",
                        "--results-dir", str(tmp_path / "results"), "--train-on", "clean", "--models", "TCNet",
                        "--folds", "1", "--epochs", "1", "--no-progress"],
                       capture_output=True, text=True, env=ENV, cwd=tmp_path, timeout=300)
    errors = [line for line in r.stderr.splitlines() if not line.startswith("warning: ")]  # the store's own note
    assert r.returncode == 1 and len(errors) == 1, r.stderr
    assert errors[0].startswith("error: ") and "a file stands where a folder is needed" in errors[0]


# ----------------------------------------------------------------------------- which augmentation a store came from
@pytest.fixture(scope="module")
def two_augmentations(tmp_path_factory):
    """A corpus augmented twice side by side (seeds 0 and 1); the store was extracted from the second one,
    whose folder sorts last: a guess among siblings would pick the first."""
    root = tmp_path_factory.mktemp("two_augmentations")
    make_demo_corpus(root / "IEMOCAP", seed=3, utterances_per_speaker=4)
    utts = scan_iemocap(root / "IEMOCAP").utterances
    write_manifest(root / "m.csv", utts)
    rng = np.random.default_rng(0)
    for name in ("fan", "road", "rain", "hum"):
        write_wav(root / "noise" / "ambient" / f"{name}.wav", (0.1 * rng.standard_normal(24000)).astype(np.float32))
    for folder, seed in (("a_augmented", 0), ("z_augmented", 1)):
        augment(utts, AugmentConfig(out=root / folder, snrs=(0.0,), noise_types=("ambient",), noise_dir=root / "noise",
                                    reverb=False, seed=seed, workers=1, progress=False), log=lambda *_: None)
    standardise(root / "m.csv", root / "z_augmented", root / "standard", log=lambda *_: None)
    extract_features(root / "standard" / "manifest.csv", root / "features" / "mfcc", params=make_params("mfcc"),
                     workers=1, progress=False, log=lambda *_: None)
    return root


def test_the_noise_split_reads_the_augmentation_the_store_came_from(two_augmentations, tmp_path):
    root = two_augmentations
    store = open_features(root / "features" / "mfcc")
    assert noise_manifest_of(store.params) == (root / "z_augmented" / "augmented_manifest.csv").resolve()
    logs: list[str] = []
    run_training(cfg_for(tmp_path, root / "features", folds=("1",), epochs=1, train_on="all"), log=logs.append)
    assert any("z_augmented/augmented_manifest.csv" in line for line in logs)
    assert not any("a_augmented" in line for line in logs)


def test_a_changed_or_foreign_noise_manifest_is_refused(two_augmentations, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(two_augmentations, root, symlinks=True)
    standard = root / "standard"
    prov = json.loads((standard / "provenance.json").read_text())
    prov["augmented_manifest"] = str(root / "z_augmented" / "augmented_manifest.csv")  # the copy's own
    (standard / "provenance.json").write_text(json.dumps(prov))
    params = json.loads((root / "features" / "mfcc" / "params.json").read_text())
    params["manifest"] = str(standard / "manifest.csv")
    (root / "features" / "mfcc" / "params.json").write_text(json.dumps(params))
    with (root / "z_augmented" / "augmented_manifest.csv").open("a") as fh:   # another augmentation wrote into it
        fh.write("\n")
    with pytest.raises(LancetError, match="changed since .* was standardised"):
        run_training(cfg_for(tmp_path, root / "features", folds=("1",), epochs=1, train_on="all"), **QUIET)
    other = tmp_path / "other.csv"
    other.write_text("id,condition,noise_type,noise_file\nx,white_0dB,white,generated:white\n")
    with pytest.raises(LancetError, match="does not describe this store's mixtures"):
        run_training(cfg_for(tmp_path, two_augmentations / "features", folds=("1",), epochs=1, train_on="all",
                             noise_manifest=str(other)), **QUIET)


# ----------------------------------------------------------------------------- the README's two corpora, by script
def _emodb_like(root: Path) -> Path:
    """An EmoDB folder (``wav/SSTTTEV.wav``, 22,050 Hz so that it is converted once): ten speakers, one utterance
    of each of the four shared classes, each class a pitch of its own."""
    sr, rng = 22050, np.random.default_rng(11)
    (root / "wav").mkdir(parents=True)
    for speaker in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16"):
        for k, (emotion, f0) in enumerate((("N", 140.0), ("F", 220.0), ("T", 110.0), ("W", 300.0))):
            t = np.arange(int(2.2 * sr)) / sr
            x = 0.2 * np.sin(2 * np.pi * f0 * (1 + 0.02 * int(speaker)) * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(root / "wav" / f"{speaker}a0{k + 1}{emotion}a.wav", x.astype(np.float32), sr)
    return root


def _step(tmp: Path, script: str, *args: str) -> str:
    r = subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True, cwd=tmp,
                       env=ENV, timeout=600)
    assert r.returncode == 0, f"{script} {' '.join(args)}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def test_the_readme_sequence_trains_iemocap_then_emodb_into_their_own_runs(tmp_path):
    """IEMOCAP's steps with the defaults' names, then EmoDB's as the README gives them, then training with the same
    flags but --features-dir: two run folders, each with its own corpus's numbers; rerunning the first is a resume."""
    make_demo_corpus(tmp_path / "datasets" / "IEMOCAP", seed=2, utterances_per_speaker=6)
    _emodb_like(tmp_path / "datasets" / "EmoDB")
    noise = ("--noise-types", "white", "--snrs", "0", "--no-reverb", "--no-progress", "--workers", "1")

    def noisy_features(corpus: str, features_out: str) -> None:
        """The README's steps after preparing ``corpus``: noise, standard names, MFCC into ``features_out``."""
        manifest = f"datasets/{corpus}_manifest.csv"
        _step(tmp_path, "datasets/augment_IEMOCAP.py", "--manifest", manifest, "--out", f"datasets/{corpus}_augmented",
              *noise)
        _step(tmp_path, "datasets/handleIEMOCAP.py", "--manifest", manifest, "--augmented-dir",
              f"datasets/{corpus}_augmented", "--out", f"datasets/{corpus}_standard")
        _step(tmp_path, "feature_extraction/extract_features_iemocap_mfcc.py", "--manifest",
              f"datasets/{corpus}_standard/manifest.csv", "--out", features_out, "--no-progress", "--workers", "1")

    _step(tmp_path, "datasets/prepare_IEMOCAP.py", "--iemocap-dir", "datasets/IEMOCAP",
          "--manifest", "datasets/IEMOCAP_manifest.csv")
    noisy_features("IEMOCAP", "features/mfcc")
    _step(tmp_path, "datasets/prepare_EmoDB.py", "--emodb-dir", "datasets/EmoDB",
          "--manifest", "datasets/EmoDB_manifest.csv", "--converted-dir", "datasets/EmoDB_16k")
    noisy_features("EmoDB", "features/emodb/mfcc")
    flags = ("--features", "mfcc", "--models", "TCNet", "--epochs", "1", "--folds", "1", "--no-progress",
             "--threads", "1", "--device", "cpu", "--online-noise-types", "white")
    _step(tmp_path, "train_LANCET.py", *flags)                                      # features/ by default
    _step(tmp_path, "train_LANCET.py", "--features-dir", "features/emodb", *flags)
    runs = sorted(p.parent for p in (tmp_path / "results").glob("*/config.json"))
    assert len(runs) == 2 and all(p.name.startswith("mfcc_loso_4class_train-online_") for p in runs)
    configs = {json.loads((p / "config.json").read_text())["features_dir"]: p for p in runs}
    assert set(configs) == {"features", "features/emodb"}
    tested, stores = {}, {}
    for features_dir, run in configs.items():
        config = json.loads((run / "config.json").read_text())
        records = json.loads((run / "metrics_all.json").read_text())
        assert {r["identity"] for r in records} == {config["identity_digest"]}    # computed from this corpus
        assert {r["condition"] for r in records} == {"clean", "white_0dB"}
        assert (run / "summary.csv").is_file() and list(run.glob("checkpoints/TCNet/**/best.pt"))
        tested[features_dir] = next(r["n_utterances"] for r in records if r["condition"] == "clean")
        stores[features_dir] = config["identity"]["features"]["conditions"]["clean"]["array"]
    assert tested["features/emodb"] == 8 and tested["features"] != 8               # EmoDB's group 1: 2 speakers x 4
    assert stores["features"] != stores["features/emodb"]
    before = {p: p.stat().st_mtime_ns for p in configs["features"].glob("metrics/*.json")}
    out = _step(tmp_path, "train_LANCET.py", *flags)                                # the first again: a resume
    assert "finished earlier; skipped" in out
    assert {p: p.stat().st_mtime_ns for p in configs["features"].glob("metrics/*.json")} == before
    assert len(list((tmp_path / "results").glob("*/config.json"))) == 2
