"""The recipes of docs/EXTENDING.md, each followed with a throw-away registry entry added by the test alone.

If any place still spelled out the built-in members instead of reading the registry, the entry would be
refused or left out somewhere along the path, and the test would fail there."""

from __future__ import annotations

import csv
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.audio import SAMPLE_RATE, load_audio, write_wav
from lancet.core.errors import LancetError
from lancet.core.manifest import write_manifest
from lancet.corpora.demo import make_demo_corpus
from lancet.corpora.iemocap import scan_iemocap
from lancet.corpora.layout import AUGMENTED_MANIFEST
from lancet.corpora.standard_names import describe_noise_sources, standardise
from lancet.features import open_features
from lancet.features.extract import extract_features
from lancet.features.params import SegmentParams, make_params, params_record
from lancet.noise.augment import AugmentConfig
from lancet.noise.generators import Generator
from lancet.noise.mixing import measure_snr
from lancet.noise.pools import TEST, TRAIN
from lancet.noise.registry import NOISE_TYPES, NoiseType
from lancet.noise.sources import resolve_sources
from lancet.training.config import TrainConfig, build_parser, check_fields
from lancet.training.noise_pools import NoisePools
from lancet.training.online import OnlineAugmenter, OnlineSettings, TrainUtterance


def mains_hum(length: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    """50 Hz mains hum with four harmonics falling as 1/h, at a random phase, unit variance."""
    t = np.arange(length) / sr
    phase = rng.uniform(0, 2 * np.pi)
    x = sum(np.sin(2 * np.pi * 50 * h * t + h * phase) / h for h in range(1, 6))
    return (x / x.std()).astype(np.float32)


HUM = NoiseType("hum", generator=Generator("hum", mains_hum, "50 Hz mains hum with harmonics"),
                test_noise="generated hum (new at every draw)", online=False)
FAN = NoiseType("fan", folders=("fan",), uses_recordings=True)   # recordings only: --noise-dir/fan/
SCRIPT = Path(__file__).resolve().parents[1] / "datasets" / "augment_IEMOCAP.py"
FAN_RECORDINGS = ("desk", "ceiling", "tower", "laptop", "server", "hood")


def quiet(*_a, **_k) -> None:
    pass


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def strongest_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


@pytest.fixture()
def corpus(tmp_path, monkeypatch):
    """Eight demo utterances (two sessions, four speakers), their manifest, and a --noise-dir with fan/ recordings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the feature store's markers: this test's only
    make_demo_corpus(tmp_path / "IEMOCAP", seed=0, utterances_per_speaker=2)
    utts = [u for u in scan_iemocap(tmp_path / "IEMOCAP").utterances if u.session in (1, 2)][:8]
    write_manifest(tmp_path / "manifest.csv", utts)
    rng = np.random.default_rng(4)
    for name in FAN_RECORDINGS:   # one recording each (chunks of one recording would share a side)
        fan = (0.05 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
        write_wav(tmp_path / "noise" / "fan" / f"{name}.wav", fan)
    return utts, tmp_path / "manifest.csv", tmp_path / "noise"


def augment_script(capsys, *args: str) -> str:
    """Run datasets/augment_IEMOCAP.py in this process with ``args``; its standard output."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "argv", [str(SCRIPT), *args])
            runpy.run_path(str(SCRIPT), run_name="__main__")
    assert info.value.code == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_add_a_noise_type(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(NOISE_TYPES, "hum", HUM)
    monkeypatch.setitem(NOISE_TYPES, "fan", FAN)
    utts, manifest, noise_dir = corpus
    assert AugmentConfig(out=tmp_path).noise_types[-2:] == ("hum", "fan")  # the default: every registered type

    # augmentation, through the script (run here, so that it sees the registry as this test left it): the
    # conditions, files and manifest rows of both, the SNR measured back on the written wavs
    aug = tmp_path / "aug"
    assert "hum" in augment_script(capsys, "--help")   # a --noise-types choice
    messages = augment_script(capsys, "--manifest", str(manifest), "--out", str(aug), "--noise-types", "hum", "fan",
                              "--noise-dir", str(noise_dir), "--snrs", "0", "10", "--no-reverb", "--workers", "1",
                              "--no-progress").splitlines()
    assert "hum: generated 50 Hz mains hum with harmonics" in messages
    assert f"fan: {len(FAN_RECORDINGS)} files from {noise_dir / 'fan'}" in messages
    rows = rows_of(aug / AUGMENTED_MANIFEST)
    assert len(rows) == 4 * len(utts) and f"wrote {len(rows)} file(s), 0 already there" in messages[-1]
    assert [r["condition"] for r in rows[::len(utts)]] == ["hum_0dB", "hum_10dB", "fan_0dB", "fan_10dB"]
    clean = {u.id: load_audio(u.path, SAMPLE_RATE).astype(np.float64) for u in utts}
    for r in rows:
        mixture, _ = sf.read(r["path"], dtype="float64")
        speech = float(r["gain"]) * clean[r["id"]]
        assert Path(r["path"]).is_relative_to(aug / r["noise_type"] / r["snr_db"])
        assert abs(measure_snr(speech, mixture) - float(r["snr_db"])) < 0.1
        assert abs(float(r["snr_measured_db"]) - float(r["snr_db"])) < 0.1
        if r["noise_type"] == "hum":
            assert r["noise_file"] == "generated:hum" and strongest_hz(mixture - speech) == pytest.approx(50, abs=1)
        else:
            assert Path(r["noise_file"]).stem in FAN_RECORDINGS

    # standardisation and features: the new conditions go through like any other
    std = tmp_path / "std"
    standardise(manifest, aug, std, mode="copy", log=quiet)
    assert {r["condition"] for r in rows_of(std / "manifest.csv")} == {"clean", "hum_0dB", "hum_10dB", "fan_0dB",
                                                                      "fan_10dB"}
    line = describe_noise_sources(std / "manifest.csv")
    assert "hum generated" in line and "fan REAL" in line
    extract_features(std / "manifest.csv", tmp_path / "features" / "mfcc", kind="mfcc", workers=1, progress=False,
                     log=quiet)
    assert open_features(tmp_path / "features" / "mfcc").conditions == ["clean", "fan_0dB", "fan_10dB", "hum_0dB",
                                                                        "hum_10dB"]

    # --train-on online: a choice of --online-noise-types, drawn by default only when the entry says so
    assert TrainConfig().online_noise_types == ("babble", "music", "ambient", "white", "fan")
    check_fields(TrainConfig(online_noise_types=("hum", "fan")))
    assert build_parser().parse_args(["--online-noise-types", "hum"]).online_noise_types == ["hum"]
    train = [TrainUtterance(u.id, u.path, u.speaker, 0) for u in utts]
    record = params_record(make_params("mfcc"), SegmentParams(), "float32")
    online = OnlineAugmenter(train, sorted({u.speaker for u in utts}), [], record,
                             OnlineSettings(noise_types=("hum", "fan"), reverb_prob=0.0, noise_dir=str(noise_dir),
                                            shared_noise_dir=None), seed=3, log=quiet)
    rng = np.random.default_rng(0)
    drawn = {"hum": 0, "fan": 0}
    for k in range(16):
        m = online.mix(online.utts[k % len(train)], rng)
        drawn[m.noise_type] += 1
        assert abs(measure_snr(m.speech, m.audio) - m.snr_db) < 0.1
        if m.noise_type == "hum":
            assert m.noise_file == "generated:hum" and strongest_hz(m.audio - m.speech) == pytest.approx(50, abs=1)
        else:
            assert online.splits["fan"].pool(m.noise_file) == TRAIN   # never a test-pool recording
    assert all(drawn.values())
    assert online.make_table(0).labels.size > 0

    # the noise split and the reports: fan is split into pools, hum is described by its entry
    ids = {u.id for u in utts}
    conditions = ["clean", "hum_0dB", "fan_0dB"]
    with pytest.raises(LancetError, match="fan_0dB"):   # a type with recordings needs the split
        NoisePools.load(TrainConfig(train_on="all"), conditions, ids, {}, quiet)
    pools = NoisePools.load(TrainConfig(noise_manifest=str(aug / AUGMENTED_MANIFEST)), conditions, ids, {}, quiet)
    assert set(pools.splits) == {"fan"} and pools.splits["fan"].train and pools.splits["fan"].test
    assert pools.describe("hum_0dB") == "generated hum (new at every draw)"
    assert pools.describe("fan_0dB") == "test-pool recordings (unseen in training)"
    assert NoisePools(None, {}).describe("fan_0dB").startswith("all recordings")
    test_ids = pools.ids(["fan_0dB"], frozenset(ids), TEST)["fan_0dB"]
    assert test_ids and all(pools.splits["fan"].pool(r["noise_file"]) == TEST
                            for r in rows if r["condition"] == "fan_0dB" and r["id"] in test_ids)


def test_a_noise_type_needs_a_condition_name_and_a_source(tmp_path, monkeypatch):
    with pytest.raises(LancetError, match="letters only"):
        NoiseType("hum2", generator=HUM.generator)
    with pytest.raises(LancetError, match="registry.py"):
        NoiseType("silence")
    monkeypatch.setitem(NOISE_TYPES, "fan", FAN)
    with pytest.raises(LancetError, match="fan noise: no recordings found; give --noise-dir with fan/"):
        resolve_sources(["fan"], None, tmp_path, log=quiet)   # recordings only, and none anywhere
