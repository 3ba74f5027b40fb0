"""A hurried researcher's inputs: outputs pointed into a corpus, implausible audio, duplicated rows, noise that
is no noise, cut indexes, odd model options and names made to break tables. Each is refused in one line
before anything wrong is written, never answered with a number."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from lancet.core.checks import Range
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
    assert "--out lies inside the standardised folder" in err and str((root / "std").resolve()) in err
    with pytest.raises(LancetError, match="--out lies inside the standardised folder"):
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


# ----------------------------------------------------------------------------- 2 audio that no recording is
def _header_edit(path: Path, offset: int, fmt: str, value: int) -> Path:

    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    return path


def _noise_wav(path: Path, seconds: float = 1.0, sr: int = SR, channels: int = 1, subtype: str = "PCM_16",
               fmt: str | None = None) -> Path:
    x = 0.1 * np.random.default_rng(0).standard_normal((int(seconds * sr), channels))
    sf.write(path, x.astype(np.float32), sr, subtype=subtype, format=fmt)
    return path


@pytest.mark.parametrize("case,message", [
    ("rate 100", r"implausible sample rate 100 Hz in its header \(audio is recorded at 1,000 to 768,000 Hz\)"),
    ("rate 2e6", r"implausible sample rate 2000000 Hz"),
    ("300 channels", r"implausible header: 300 channels \(1 to 256 expected\)"),
    ("flac claims 596 hours", r"implausible header: it claims 34359738368 frames .* more than the file can hold"),
    ("aiff cut", r"truncated AIFF: the header says 1\.000 s but the file holds only 0\.49"),
    ("au cut", r"truncated AU: the header says"),
    ("mp3 cut", r"truncated: the header says 1\.000 s but only .* could be decoded"),
    ("float 1e30", r"implausible amplitude: a sample of 1e\+30 where full scale is 1"),
    ("int-scaled float", r"implausible amplitude: a sample of 3\.28e\+04"),
    ("opposite extremes", r"implausible amplitude"),               # +1e30 and -1e30 average to a plausible 0
])
def test_implausible_audio_is_one_line_in_both_readers(tmp_path, case, message):
    from lancet.core.audio import AudioError, audio_info, load_audio
    from lancet.core.audio_stream import open_audio_stream

    if case == "rate 100":
        path = _noise_wav(tmp_path / "a.wav", sr=100)
    elif case == "rate 2e6":
        path = _header_edit(_noise_wav(tmp_path / "a.wav"), 24, "<I", 2_000_000)
    elif case == "300 channels":
        path = _noise_wav(tmp_path / "a.wav", seconds=0.01, channels=300)
    elif case == "flac claims 596 hours":
        path = _noise_wav(tmp_path / "a.flac")
        data = bytearray(path.read_bytes())                                    # STREAMINFO's 36-bit sample count
        word = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1) | (1 << 35)
        data[18:26] = word.to_bytes(8, "big")
        path.write_bytes(bytes(data))
    elif case in ("aiff cut", "au cut", "mp3 cut"):
        ext, fmt, subtype = {"aiff cut": ("aiff", "AIFF", "PCM_16"), "au cut": ("au", "AU", "PCM_16"),
                             "mp3 cut": ("mp3", "MP3", "MPEG_LAYER_III")}[case]
        path = _noise_wav(tmp_path / f"a.{ext}", subtype=subtype, fmt=fmt)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        x = (0.1 * np.random.default_rng(0).standard_normal((SR, 2))).astype(np.float32)
        if case == "float 1e30":
            x[100, 0] = 1e30
        elif case == "int-scaled float":
            x = np.clip(x * 32768 * 3, -32768, 32767)                          # a 16-bit file's integers as floats
            x[5, 0] = 32767.0
        else:
            x[100] = (1e30, -1e30)
        path = tmp_path / "a.wav"
        sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    with pytest.raises(AudioError, match=message):
        for _ in open_audio_stream(path).blocks():
            pass
    if case.startswith(("rate", "300", "flac", "aiff", "au cut")):        # the header alone tells
        with pytest.raises(AudioError, match=message):
            audio_info(path)


def _tiny_checkpoint(best: Path) -> Path:
    """A best.pt in the trainer's format (an untrained TC-Net on MFCC): enough to exercise prediction."""
    from lancet.features.params import SegmentParams, make_params, params_record
    from lancet.models import build_model
    from lancet.training.checkpoint import save_checkpoint

    record = params_record(make_params("mfcc"), SegmentParams(), "float32")
    n_freq, n_frames = record["shape"]
    torch.manual_seed(0)
    save_checkpoint(best, {"model_name": "TCNet", "model_options": {}, "model_state": build_model(
        "TCNet", 4, n_freq, n_frames).state_dict(), "class_names": ["neutral", "happy", "sad", "angry"],
        "feature_params": record, "norm_mean": np.zeros(n_freq, np.float32), "norm_std": np.ones(n_freq, np.float32),
        "n_freq": n_freq, "n_frames": n_frames})
    return best


def test_a_huge_sample_never_becomes_a_nan_prediction(tmp_path):
    best = _tiny_checkpoint(tmp_path / "best.pt")
    x = (0.05 * np.random.default_rng(1).standard_normal(3 * SR)).astype(np.float32)
    x[SR] = 1e30
    sf.write(tmp_path / "spike.wav", x, SR, subtype="FLOAT")
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(best), "--device", "cpu",
                        "--out", str(tmp_path / "p.csv"), str(tmp_path / "spike.wav")], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}, timeout=300)
    err = one_line_error(r)
    assert "spike.wav: implausible amplitude" in err and "nan" not in r.stdout.lower()
    assert not (tmp_path / "p.csv").exists()


def test_a_corpus_file_with_a_damaged_header_is_skipped_and_counted(tmp_path):
    from lancet.corpora.emodb import scan_emodb

    (tmp_path / "EmoDB" / "wav").mkdir(parents=True)
    for name in ("03a01Fa", "08a01Wa"):
        _noise_wav(tmp_path / "EmoDB" / "wav" / f"{name}.wav")
    _header_edit(tmp_path / "EmoDB" / "wav" / "08a01Wa.wav", 24, "<I", 5)     # 5 Hz
    scan = scan_emodb(tmp_path / "EmoDB", converted_dir=tmp_path / "16k")
    assert [u.id for u in scan.utterances] == ["03a01Fa"] and scan.skipped == {"broken wav": 1}
    assert "08a01Wa.wav: implausible sample rate 5 Hz" in scan.warnings[0]


def test_implausible_audio_is_skipped_and_counted_by_extraction(tmp_path):
    from lancet.corpora.standard_names import standardise
    from lancet.features import open_features
    from lancet.features.extract import extract_features

    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=2, seconds=2.2)
    utts = read_manifest(manifest)
    spike = np.zeros(int(2.2 * SR), np.float32)
    spike[10] = 1e30
    sf.write(utts[0].path, spike, SR, subtype="FLOAT")                    # one float wav with one huge sample
    standardise(manifest, None, tmp_path / "std", mode="copy", log=quiet)
    summary = extract_features(tmp_path / "std" / "manifest.csv", tmp_path / "feat" / "mfcc", kind="mfcc",
                               workers=1, progress=False, log=quiet)
    assert summary.skipped == {"implausible": 1}
    store = open_features(tmp_path / "feat" / "mfcc")
    assert {r["id"] for r in store.index("clean")} == {u.id for u in utts[1:]}
    assert np.isfinite(store.segments("clean")).all()


# ----------------------------------------------------------------------------- 3 duplicated rows
def test_duplicate_rows_of_a_corpus_manifest_are_refused_with_their_lines(iemocap):
    root, manifest = iemocap
    lines = manifest.read_text().splitlines()
    (root / "twice.csv").write_text("\n".join(lines + lines[1:2]) + "\n")      # a row pasted again
    err = one_line_error(script(AUGMENT, *_augment_args(root / "twice.csv", root / "aug")))
    assert f"twice.csv: lines 2 and {len(lines) + 1} both hold utterance Ses01F_impro01_F000" in err
    assert "keep one of them" in err
    alias = "Ses01F_impro01_F099," + lines[2].split(",", 1)[1]                  # the same audio under a new id
    (root / "alias.csv").write_text("\n".join(lines + [alias]) + "\n")
    with pytest.raises(LancetError, match=r"lines 3 and 6 both hold audio file .*Ses01F_impro02_F001\.wav \(one "
                                          r"recording under two ids counts twice"):
        read_manifest(root / "alias.csv")
    err = one_line_error(script(HANDLE, "--manifest", root / "twice.csv", "--clean-only", "--out", root / "std"))
    assert "both hold utterance Ses01F_impro01_F000" in err
    assert not (root / "aug").exists() and not (root / "std").exists()


def test_duplicate_rows_of_the_combined_and_augmented_manifests_are_refused(iemocap):
    from lancet.core.atomic import read_csv, save_csv
    from lancet.corpora.standard_names import standardise

    root, manifest = iemocap
    assert script(AUGMENT, *_augment_args(manifest, root / "aug")).returncode == 0
    aug = root / "aug" / "augmented_manifest.csv"
    rows = read_csv(aug)
    save_csv(aug, rows + [dict(rows[0], noise_file="generated:other")], list(rows[0]))   # two records of one mixture
    with pytest.raises(LancetError, match=r"augmented_manifest\.csv: lines 2 and 6 both hold utterance "
                                          r"Ses01F_impro01_F000 under condition white_0dB \(two mixtures"):
        standardise(manifest, root / "aug", root / "std", log=quiet)
    assert not (root / "std").exists()
    save_csv(aug, rows, list(rows[0]))
    standardise(manifest, root / "aug", root / "std", log=quiet)
    combined = root / "std" / "manifest.csv"
    rows = read_csv(combined)
    save_csv(root / "std" / "twice.csv", rows + rows[-1:], list(rows[0]))
    err = one_line_error(script(MFCC, "--manifest", root / "std" / "twice.csv", "--out", root / "feat" / "mfcc",
                                "--workers", "1", "--no-progress", "--device", "cpu"))
    assert f"lines {len(rows) + 1} and {len(rows) + 2} both hold utterance {rows[-1]['id']} under condition " \
           f"white_0dB" in err
    assert not (root / "feat" / "mfcc").exists() and not files_under(root / "feat")


def test_duplicate_mixtures_in_the_noise_manifest_are_refused_by_training(tmp_path):
    from lancet.core.atomic import read_csv, save_csv
    from lancet.training.grid import run_training

    store = make_store(tmp_path / "features", conditions=("clean", "white_0dB"), sessions=3, per_class=1)
    rows = [{"id": r["id"], "condition": "white_0dB", "noise_type": "white", "noise_file": "generated:white"}
            for r in read_csv(store / "mfcc" / "white_0dB.csv")]
    save_csv(tmp_path / "noise.csv", rows + [dict(rows[0], noise_file="fan.wav")], list(rows[0]))
    with pytest.raises(LancetError, match=r"noise\.csv: lines 2 and .* both hold utterance .* under condition "
                                          r"white_0dB \(one mixture with two noise records\)"):
        run_training(cfg_for(tmp_path, store, folds=("1",), epochs=1, train_on="all",
                             noise_manifest=str(tmp_path / "noise.csv")), log=quiet)
    assert not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------- 4 noise that is no noise
def _noise_set(folder: Path, kind: str) -> Path:
    """Four ambient 'recordings' of one kind: garbage bytes, 0.1 s clicks, digital silence, or one of each."""
    (folder / "ambient").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(4):
        path = folder / "ambient" / f"rec{k}.wav"
        pick = kind if kind != "mixed" else ("unreadable", "short", "silent", "unreadable")[k]
        if pick == "unreadable":
            path.write_bytes(b"RIFF\x00\x00\x00\x00not a wav at all")
        elif pick == "short":
            sf.write(path, 0.1 * rng.standard_normal(int(0.1 * SR)), SR)
        else:
            sf.write(path, np.zeros(SR), SR)
    return folder


@pytest.mark.parametrize("kind,message", [
    ("unreadable", r"none of its 4 ambient recordings can be noise \(4 unreadable, e\.g\. .*rec0\.wav: unreadable"),
    ("short", r"none of its 4 ambient recordings can be noise \(4 shorter than 0\.25 s\); give recordings of real "
              r"noise, at least 0\.25 s long"),
    ("silent", r"none of its 4 ambient recordings can be noise \(4 silent\)"),
    ("mixed", r"\(2 unreadable, 1 shorter than 0\.25 s, 1 silent, e\.g\. .*rec0\.wav"),
])
def test_a_noise_set_that_cannot_be_noise_is_refused_naming_its_folder(tmp_path, kind, message):
    from lancet.noise.sources import resolve_sources
    from lancet.training.online import OnlineSettings, training_sources

    noise = _noise_set(tmp_path / "noise", kind)
    with pytest.raises(LancetError, match=message) as err:
        resolve_sources(["ambient"], noise, None, log=quiet)
    assert str(err.value).startswith(f"{noise / 'ambient'}: ") and "\n" not in str(err.value)
    with pytest.raises(LancetError, match=message):                           # online training resolves the same way
        settings = OnlineSettings(noise_types=("ambient",), noise_dir=str(noise), shared_noise_dir=None)
        training_sources(settings, 4, quiet)


def test_augmentation_refuses_unusable_noise_and_counts_silent_noise(iemocap):
    root, manifest = iemocap
    _noise_set(root / "clicks", "short")
    err = one_line_error(script(AUGMENT, "--manifest", manifest, "--out", root / "aug", "--workers", "1",
                                "--no-progress", "--no-reverb", "--noise-types", "ambient", "--snrs", "0",
                                "--noise-dir", root / "clicks"))
    assert f"{root / 'clicks' / 'ambient'}: none of its 4 ambient recordings can be noise (4 shorter than 0.25 s)" \
        in err
    assert not (root / "aug").exists()
    _noise_set(root / "silence", "silent")                 # every mixture skipped and counted: nothing is written
    r = script(AUGMENT, "--manifest", manifest, "--out", root / "aug", "--workers", "1", "--no-progress",
               "--no-reverb", "--noise-types", "ambient", "--snrs", "0", "--noise-dir", root / "silence")
    assert r.returncode == 0, r.stderr
    assert "warning: " in r.stdout and "(4 silent); every ambient mixture will be skipped and counted" in r.stdout
    assert "skipped 4 file(s): 4 silent noise" in r.stdout and not list((root / "aug").rglob("*.wav"))


# ----------------------------------------------------------------------------- 5 the index under the checksum
@pytest.fixture()
def extracted(tmp_path, monkeypatch):
    from lancet.corpora.standard_names import standardise
    from lancet.features.extract import extract_features

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M"),
                           per_speaker=2, seconds=2.5)
    standardise(manifest, None, tmp_path / "std", log=quiet)
    out = tmp_path / "feat" / "mfcc"
    extract_features(tmp_path / "std" / "manifest.csv", out, kind="mfcc", workers=1, progress=False, log=quiet)
    return out


def _extract_again(store: Path, log=quiet):
    from lancet.features.extract import extract_features

    return extract_features(store.parents[1] / "std" / "manifest.csv", store, kind="mfcc", workers=1, progress=False,
                            log=log)


def test_an_index_cut_in_half_is_one_line_naming_the_rebuild_command(extracted, tmp_path):
    from lancet.core.atomic import file_checksum
    from lancet.features import open_features

    index = extracted / "clean.csv"
    entry = json.loads((extracted / "params.json").read_text())["conditions"]["clean"]
    assert entry["index_checksum"] == file_checksum(index)                        # recorded beside the array's
    lines = index.read_text().splitlines(keepends=True)
    index.write_text("".join(lines[: len(lines) // 2]))
    with pytest.raises(LancetError, match=rf"{index}: \d+ rows where .*params\.json records {entry['n_segments']} "
                                          r"segments \(cut or edited after extraction\); rebuild it: python "
                                          r"feature_extraction/extract_features_iemocap_mfcc\.py .*--conditions clean"):
        open_features(extracted).index("clean")
    r = subprocess.run([sys.executable, str(ROOT / "train_LANCET.py"), "--features-dir", str(extracted.parent),
                        "--features", "mfcc", "--models", "TCNet", "--epochs", "1", "--device", "cpu", "--train-on",
                        "clean", "--results-dir", str(tmp_path / "results"), "--threads", "1", "--no-progress"],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")})
    err = one_line_error(r)
    assert f"{index}: " in err and "rebuild it: python feature_extraction/extract_features_iemocap_mfcc.py" in err
    assert not (tmp_path / "results").exists()
    logs: list[str] = []
    _extract_again(extracted, logs.append)                                        # the command it names repairs it
    assert any("clean: recomputing" in line for line in logs), logs
    assert len(open_features(extracted).index("clean")) == entry["n_segments"]


def test_an_edited_index_is_caught_by_its_checksum(extracted):
    from lancet.features import open_features

    index = extracted / "clean.csv"
    index.write_text(index.read_text().replace(",neutral,", ",angry,", 1))         # one label changed, same rows
    with pytest.raises(LancetError, match=rf"{index}: checksum mismatch \(the index changed after extraction"):
        open_features(extracted).index("clean")
    logs: list[str] = []
    _extract_again(extracted, logs.append)
    assert any("clean: recomputing (clean.csv does not match its checksum" in line for line in logs), logs
    assert open_features(extracted).index("clean")


def test_a_store_without_index_checksums_warns_once_then_records_them(extracted, capsys):
    from lancet.core.atomic import file_checksum
    from lancet.features import open_features

    params = extracted / "params.json"
    record = json.loads(params.read_text())
    recorded = record["conditions"]["clean"].pop("index_checksum")
    params.write_text(json.dumps(record))
    store = open_features(extracted)
    store.index("clean")
    store.index("clean")
    assert capsys.readouterr().err.count("no checksum recorded for this index") == 1
    array = extracted / "clean.npy"
    before = array.stat().st_mtime_ns
    logs: list[str] = []
    _extract_again(extracted, logs.append)
    assert json.loads(params.read_text())["conditions"]["clean"]["index_checksum"] == recorded == \
        file_checksum(extracted / "clean.csv")
    assert array.stat().st_mtime_ns == before and any("already complete" in line for line in logs)


# ----------------------------------------------------------------------------- 6 model options, checked before any work
@pytest.mark.parametrize("item,message", [
    ("LANCET.bn_chan=2*64", r"LANCET\.bn_chan: expects an integer, got '2\*64'"),           # an expression
    ("LANCET.bn_chan=99999999999", r"LANCET\.bn_chan: expects an integer in \[1, 1024\], got 99999999999"),
    ("LANCET.bn_chan=-3", r"LANCET\.bn_chan: expects an integer in \[1, 1024\], got -3"),
    ("LANCET.bn_chan=", r"LANCET\.bn_chan: expects an integer, got ''"),                     # empty
    ("LANCET.bn_chan=none", r"LANCET\.bn_chan: expects an integer in \[1, 1024\], got none"),
    ("TCNet.hid_channels=", r"TCNet\.hid_channels: expects an integer or none, got ''"),     # default None: checked
    ("TCNet.hid_channels=0", r"TCNet\.hid_channels: expects an integer in \[1, 4096\] or none, got 0"),  # not n_freq
    ("TCNet.hid_channels=lots", r"TCNet\.hid_channels: expects an integer or none, got 'lots'"),
    ("GLAM.ff_mult=1e9", r"GLAM\.ff_mult: expects an integer, got 1000000000\.0"),
    ("LANCET.attn_kernels=,", r"LANCET\.attn_kernels: expects one or more integers, each in \[1, 255\], got none"),
    ("LANCET.attn_kernels=3,x", r"LANCET\.attn_kernels: expects one or more integers, got 'x'"),
    ("TCNet.kernel_sizes=0,5", r"TCNet\.kernel_sizes: expects one or more integers, each in \[1, 255\], got 0"),
    ("LANCET.attention_padding=reflect", r"LANCET\.attention_padding: expects one of valid, same, got 'reflect'"),
    ("LANCET.se_reduction=nan", r"LANCET\.se_reduction: expects an integer, got nan"),
])
def test_model_option_values_are_checked_against_the_constructors_annotations(item, message):
    from lancet.models import parse_model_options

    with pytest.raises(LancetError, match=f"^--model-options {message}$") as err:
        parse_model_options([item])
    assert "\n" not in str(err.value)


class Wide(nn.Module):
    """One file's model, as docs/EXTENDING.md adds one: the annotation of its option is its whole check."""

    def __init__(self, n_classes: int = 4, n_freq: int = 26, n_frames: int = 63, *,
                 width: typing.Annotated[float, Range(0, 1, low_open=True)] = 0.5) -> None:
        super().__init__()
        self.head = nn.Linear(n_freq, n_classes)


def test_model_options_in_range_still_work_and_a_new_annotated_model_is_checked_generically(monkeypatch):
    from lancet.models import MODELS, ModelEntry, build_model, parse_model_options

    got = parse_model_options(["TCNet.hid_channels=52", "TCNet.kernel_sizes=3", "LANCET.attn_kernels=3,5"])
    assert got == {"TCNet": {"hid_channels": 52, "kernel_sizes": (3,)}, "LANCET": {"attn_kernels": (3, 5)}}
    assert build_model("TCNet", 4, 26, 63, **got["TCNet"])(torch.randn(2, 1, 26, 63)).shape == (2, 4)

    monkeypatch.setitem(MODELS, "Wide", ModelEntry("Wide", Wide, "mfcc", "a test's model"))
    assert parse_model_options(["Wide.width=1"], ["Wide"]) == {"Wide": {"width": 1.0}}
    with pytest.raises(LancetError, match=r"^--model-options Wide\.width: expects a number in \(0, 1\], got 0$"):
        parse_model_options(["width=0"], ["Wide"])


def test_bad_model_options_never_reach_torch_through_the_script_the_config_or_a_checkpoint(tmp_path):
    from lancet.training.checkpoint import BEST, load_checkpoint, save_checkpoint
    from lancet.training.grid import run_training
    from lancet.training.predict import load_predictor

    store = make_store(tmp_path / "features", conditions=("clean",), sessions=3, per_class=1)
    train = [sys.executable, str(ROOT / "train_LANCET.py"), "--features-dir", str(store), "--features", "mfcc",
             "--models", "TCNet", "--epochs", "1", "--folds", "1", "--train-on", "clean", "--device", "cpu",
             "--results-dir", str(tmp_path / "results"), "--threads", "1", "--no-progress"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(train + ["--model-options", "TCNet.fc_hidden=0"], capture_output=True, text=True, env=env,
                       timeout=300)
    assert one_line_error(r) == "error: --model-options TCNet.fc_hidden: expects an integer in [1, 4096], got 0"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_options": {"TCNet": {"kernel_sizes": [3, -9]}}}))
    r = subprocess.run(train + ["--config", str(config)], capture_output=True, text=True, env=env, timeout=300)
    assert "TCNet.kernel_sizes: expects one or more integers, each in [1, 255], got -9" in one_line_error(r)
    assert not (tmp_path / "results").exists()
    # a constructor's own refusal (a kernel longer than the segments) comes before the first model trains
    with pytest.raises(LancetError, match="shorter than the largest attention kernel"):
        run_training(cfg_for(tmp_path, store, folds=("1",), epochs=1, models=("TCNet", "LANCET"),
                             model_options={"LANCET": {"attn_kernels": (3, 5, 100)}}), log=quiet)
    assert not list((tmp_path / "results").rglob("metrics/*.json"))
    out = run_training(cfg_for(tmp_path, store, folds=("1",), epochs=1), log=quiet)
    best = next(Path(out["run_dir"]).rglob(BEST))
    save_checkpoint(tmp_path / "edited.pt", {**load_checkpoint(best), "model_options": {"fc_hidden": -5}})
    with pytest.raises(LancetError, match=r"TCNet: option fc_hidden: expects an integer in \[1, 4096\], got -5"):
        load_predictor(tmp_path / "edited.pt", "cpu")


# ----------------------------------------------------------------------------- 7 names made to break tables
def test_report_csvs_never_run_a_cell_as_a_formula(tmp_path):

    from lancet.training.grid import run_training

    formula = "=HYPERLINK(1)"                                  # a condition name a hand-edited manifest can carry
    store = make_store(tmp_path / "features", conditions=("clean", formula), sessions=3, per_class=1)
    out = run_training(cfg_for(tmp_path, store, folds=("1",), epochs=1), log=quiet)
    run = Path(out["run_dir"])
    tables = [run / "summary.csv", run / "metrics_all.csv", *run.glob("metrics/*.csv"), *run.glob("history/*.csv")]
    assert len(tables) == 4
    for table in tables:
        with open(table, newline="") as fh:
            cells = [c for row in csv.reader(fh) for c in row]
        assert not any(c.startswith(("=", "+", "@")) for c in cells), table
        assert not any(c.startswith("-") and not c.lstrip("-").replace(".", "").replace("e", "").isdigit()
                       for c in cells), table
    with open(run / "summary.csv", newline="") as fh:
        conditions = {r["condition"] for r in csv.DictReader(fh)}
    assert conditions == {"clean", "'" + formula}
    assert {r["condition"] for r in json.loads((run / "summary.json").read_text())["rows"]} == {"clean", formula}


def test_file_names_with_newlines_and_tabs_stay_on_one_line(tmp_path):
    (tmp_path / "EmoDB" / "wav").mkdir(parents=True)
    for name in ("03a01Fa", "08a01Wa", "09a01Na", "10a01Ta", "11a01Fa", "12a01Wa"):
        _noise_wav(tmp_path / "EmoDB" / "wav" / f"{name}.wav")
    (tmp_path / "EmoDB" / "wav" / "notes\nerror: fake\t.txt").write_text("x")
    r = script(PREPARE_EMODB, "--emodb-dir", tmp_path / "EmoDB", "--manifest", tmp_path / "m.csv", "--folds-k", "3")
    assert r.returncode == 0, r.stderr
    assert "notes\\nerror: fake\\t.txt: not a .wav file" in r.stdout
    assert not any(line.startswith("error: fake") for line in r.stdout.splitlines())
    bad = tmp_path / "a\nb\t.wav"
    bad.write_bytes(b"not audio")
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(tmp_path / "none.pt"), str(bad)],
                       capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
    err = one_line_error(script(AUGMENT, *_augment_args(tmp_path / "m\nx.csv", tmp_path / "aug")))
    assert "m\\nx.csv: manifest not found" in err


# ----------------------------------------------------------------------------- 8 --config files
@pytest.mark.parametrize("text,message", [
    ('["lr", 0.01]', r"holds a list, not the object a run writes"),
    ('{"lr": "1e-3"}', r"lr = \"1e-3\": expected a number"),
    ('{"epochs": null}', r"epochs = null: expected an integer$"),
    ('{"lr": 0.01, "epochs": 3, "lr": 0.1}', r"the setting lr is given twice \(JSON keeps the last one silently\)"),
    ('{"train_on": "bogus"}', r"^--train-on 'bogus': choose one of clean, matched, all, online$"),
    ('{"epochs": 0}', r"^--epochs 0: must be >= 1$"),
    ('{"lr": 1e400}', r"^--lr inf: must be a finite number$"),
    ('{"seeds": []}', r"^--seeds: give at least one seed$"),
    ('{"model_options": {"TCNet": {"fc_hidden": -1}}}', r"TCNet\.fc_hidden: expects an integer in \[1, 4096\], got -1"),
    ('{"model_options": {"TCNet": 5}}', r"model_options = \{\"TCNet\": 5\}: expected an object"),
])
def test_a_config_file_with_wrong_contents_is_one_line(tmp_path, text, message):
    from lancet.training.config import build_parser, config_from_args
    from lancet.training.config_file import add_config_flag, parse_with_config
    from lancet.training.plan import validate_config

    (tmp_path / "config.json").write_text(text)
    parser = build_parser()
    add_config_flag(parser)
    with pytest.raises(LancetError, match=message) as err:
        validate_config(config_from_args(parse_with_config(parser, ["--config", str(tmp_path / "config.json")])))
    assert "\n" not in str(err.value)


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path):
    from lancet.training.config import build_parser
    from lancet.training.config_file import add_config_flag, parse_with_config

    (tmp_path / "config.json").write_bytes(b"\xef\xbb\xbf" + b'{"epochs": 3}')
    parser = build_parser()
    add_config_flag(parser)
    assert parse_with_config(parser, ["--config", str(tmp_path / "config.json")]).epochs == 3


# ----------------------------------------------------------------------------- 9 numbers of the last steps
@pytest.mark.parametrize("flags,message", [
    (["--window-s", "0.5"], "--window-s/--hop-s shape the windows of --timeline only"),  # silently ignored before
    (["--timeline", "--window-s", "1e9"], r"--window-s 1e\+09: must be at most 3600 s"),  # asked for 58 TiB
    (["--block-s", "inf"], "--block-s: inf is not a finite number"),                     # an OverflowError before
    (["--block-s", "0"], "--block-s: must be greater than 0, got 0"),
])
def test_prediction_numbers_are_checked_before_any_model_runs(tmp_path, flags, message):
    best = _tiny_checkpoint(tmp_path / "best.pt")
    _noise_wav(tmp_path / "a.wav", seconds=3.0)
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(best), "--device", "cpu",
                        "--no-progress", "--out", str(tmp_path / "p.csv"), *flags, str(tmp_path / "a.wav")],
                       capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert __import__("re").search(message, one_line_error(r))
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "timeline").exists()


@pytest.mark.parametrize("settings,message", [
    (dict(online_snr_low=-1000.0), r"^--online-snr-low -1000.0: must be in \[-30, 50\]$"),  # noise 10^50 times the speech
    (dict(online_snr_high=1e6), r"^--online-snr-high 1000000.0: must be in \[-30, 50\]$"),
])
def test_online_snrs_are_range_checked_like_the_stored_ones(settings, message):
    from lancet.training.config import TrainConfig
    from lancet.training.plan import validate_config

    with pytest.raises(LancetError, match=message):
        validate_config(TrainConfig(**settings))


# ----------------------------------------------------------------------------- 10 the wrong folder for the right step
def test_another_corpus_augmentation_or_moved_audio_is_refused(iemocap, tmp_path_factory):
    from lancet.corpora.standard_names import standardise

    root, manifest = iemocap
    other = make_corpus(tmp_path_factory.mktemp("other") / "IEMOCAP", speakers=("Ses02F", "Ses02M"), per_speaker=1)
    assert script(AUGMENT, *_augment_args(other, root / "other_aug")).returncode == 0
    with pytest.raises(LancetError, match=r"other_aug/augmented_manifest\.csv: none of its 2 mixtures is of an "
                                          r"utterance of .*manifest\.csv \(another corpus's augmentation\?\)"):
        standardise(manifest, root / "other_aug", root / "std", log=quiet)   # once: a clean-only tree, no word
    assert not (root / "std").exists()
    moved = root / "moved"
    (root / "IEMOCAP").rename(moved)
    err = one_line_error(script(AUGMENT, *_augment_args(manifest, root / "aug")))
    assert "none of the manifest's 4 audio files exists" in err                 # once: every task skipped, exit 0
    err = one_line_error(script(HANDLE, "--manifest", manifest, "--clean-only", "--out", root / "std"))
    assert "none of its 4 audio files exists" in err and "prepare script again" in err
    assert not (root / "aug").exists() and not (root / "std").exists()
