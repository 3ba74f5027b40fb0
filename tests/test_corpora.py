"""Open corpora: EmoDB (real files), RAVDESS and CREMA-D (every official name, tiny audio), a labelled
folder, speaker groups, a 7-class EmoDB run end to end and a cross-corpus evaluation."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.manifest import read_manifest
from lancet.corpora.cremad import scan_cremad
from lancet.corpora.emodb import scan_emodb
from lancet.corpora.folder import scan_folder
from lancet.corpora.ravdess import scan_ravdess
from lancet.corpora.speaker_groups import assign_folds, deal_speakers
from lancet.corpora.cremad import SENTENCES
from lancet.core.errors import LancetError

REPO = Path(__file__).resolve().parents[1]
EMODB = REPO.parent / "shared" / "data" / "emodb"
EMODB_MALE = {"03", "10", "11", "12", "15"}
EMODB_FEMALE = {"08", "09", "13", "14", "16"}


def wav_bytes(sr: int, seconds: float = 0.05, seed: int = 0) -> bytes:
    """One tiny wav, written once and copied to every name (thousands of files in a second)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    sf.write(buf, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr, format="WAV",
             subtype="PCM_16")
    return buf.getvalue()


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=600)


# ------------------------------------------------------------------------------------------- EmoDB
@pytest.fixture(scope="module")
def emodb_16k(tmp_path_factory) -> Path:
    """One folder of converted EmoDB copies for the whole module (conversion happens once)."""
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"real EmoDB speech not found at {EMODB / 'wav'}")
    return tmp_path_factory.mktemp("emodb16k")


@pytest.fixture(scope="module")
def emodb_all(emodb_16k):
    return scan_emodb(EMODB, classes="all", converted_dir=emodb_16k)


def test_emodb_exact_counts(emodb_all):
    utts = emodb_all.utterances
    assert len(utts) == 535 and not emodb_all.skipped and not emodb_all.dropped_labels
    assert Counter(u.label for u in utts) == {"W": 127, "L": 81, "N": 79, "F": 71, "A": 69, "T": 62, "E": 46}
    assert Counter(u.cls for u in utts) == {"angry": 127, "boredom": 81, "neutral": 79, "happy": 71, "fear": 69,
                                            "sad": 62, "disgust": 46}
    assert {u.speaker for u in utts if u.gender == "M"} == EMODB_MALE
    assert {u.speaker for u in utts if u.gender == "F"} == EMODB_FEMALE
    # 22,050 Hz in the shared copy: converted once to 16 kHz, 2.00 s each
    assert emodb_all.converted == 535
    assert all(abs(u.duration_s - 2.0) < 1e-3 for u in utts)
    assert sf.info(utts[0].path).samplerate == 16000 and not utts[0].path.startswith(str(EMODB))


def test_emodb_four_classes_and_script(emodb_all, emodb_16k, tmp_path):
    manifest = tmp_path / "emodb.csv"
    result = run("datasets/prepare_EmoDB.py", "--emodb-dir", str(EMODB), "--manifest", str(manifest),
                 "--converted-dir", str(emodb_16k))
    assert result.returncode == 0, result.stderr
    utts = read_manifest(manifest)
    assert len(utts) == 339 and Counter(u.cls for u in utts) == {"angry": 127, "neutral": 79, "happy": 71, "sad": 62}
    assert "dropped (label outside the class map): A 69, E 46, L 81" in result.stdout
    assert "total" in result.stdout and "G1" in result.stdout and "group 5: 2 speakers (F 1, M 1)" in result.stdout
    # a rerun converts nothing new and gives the same manifest (same seed, same groups)
    first = manifest.read_text()
    copy = Path(utts[0].path)
    assert copy.parent == emodb_16k / "wav"
    stamp = copy.stat().st_mtime_ns
    assert run("datasets/prepare_EmoDB.py", "--emodb-dir", str(EMODB), "--manifest", str(manifest),
               "--converted-dir", str(emodb_16k)).returncode == 0
    assert manifest.read_text() == first and copy.stat().st_mtime_ns == stamp


def test_emodb_odd_names_rejected_and_counted(tmp_path):
    wav = tmp_path / "wav"
    wav.mkdir()
    data = wav_bytes(16000)
    for name in ("03a01Fa.wav", "03a01Wb.wav", "08b10Nc.wav", "99a01Fa.wav", "03a01Xa.wav", "notes.wav"):
        (wav / name).write_bytes(data)
    (wav / "13a05Tb.wav").write_bytes(b"RIFF....not audio")
    scan = scan_emodb(tmp_path, converted_dir=tmp_path.parent / "conv")
    assert sorted(u.id for u in scan.utterances) == ["03a01Fa", "03a01Wb", "08b10Nc"]
    assert scan.skipped == {"odd name": 3, "broken wav": 1}
    assert any("99a01Fa.wav: speaker 99" in w for w in scan.warnings)
    with pytest.raises(LancetError, match="inside the corpus folder"):
        scan_emodb(tmp_path, converted_dir=tmp_path / "16k")


# ----------------------------------------------------------------------------------------- RAVDESS
def ravdess_names() -> list[str]:
    """Every official speech, audio-only file name: 24 actors x 60."""
    names = []
    for actor in range(1, 25):
        for emotion in range(1, 9):
            for intensity in ((1,) if emotion == 1 else (1, 2)):
                for statement, repetition in itertools.product((1, 2), (1, 2)):
                    names.append(f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}")
    return names


@pytest.fixture(scope="module")
def ravdess(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ravdess")
    speech16, speech48 = wav_bytes(16000), wav_bytes(48000)
    for name in ravdess_names():
        folder = root / f"Actor_{name[-2:]}"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.wav").write_bytes(speech48 if name.endswith("-01") else speech16)  # actor 1 at 48 kHz
    # other recordings (song, audio-video) are left out and counted; odd names are rejected and counted
    for name in ("03-02-03-01-01-01-02", "01-01-03-01-01-01-02"):
        (root / "Actor_02" / f"{name}.wav").write_bytes(speech16)
    for name in ("03-01-09-01-01-01-02", "03-01-01-02-01-01-02", "03-01-03-01-01-01-05", "03-01-03-01-01", "x"):
        (root / "Actor_02" / f"{name}.wav").write_bytes(speech16)
    return root


def test_ravdess_exact_counts_and_class_maps(ravdess, tmp_path):
    names = ravdess_names()
    assert len(names) == 1440 == len(set(names))
    scan = scan_ravdess(ravdess, classes="all", converted_dir=tmp_path)
    utts = scan.utterances
    assert len(utts) == 1440 and len({u.speaker for u in utts}) == 24
    assert Counter(u.speaker for u in utts) == {f"Actor_{a:02d}": 60 for a in range(1, 25)}
    assert Counter(u.cls for u in utts) == {"neutral": 96, "calm": 192, "happy": 192, "sad": 192, "angry": 192,
                                            "fear": 192, "disgust": 192, "surprise": 192}
    assert {u.speaker for u in utts if u.gender == "M"} == {f"Actor_{a:02d}" for a in range(1, 25, 2)}
    assert scan.skipped == {"odd name": 5} and scan.dropped_labels == {"(not 03-01 speech audio-only)": 2}
    assert scan.converted == 60  # actor 1's 48 kHz files, once
    four = scan_ravdess(ravdess, converted_dir=tmp_path)
    assert Counter(u.cls for u in four.utterances) == {"neutral": 96, "happy": 192, "sad": 192, "angry": 192}
    assert len(four.utterances) == 672 and four.converted == 28
    calm = scan_ravdess(ravdess, converted_dir=tmp_path, calm_as_neutral=True)
    assert Counter(u.cls for u in calm.utterances)["neutral"] == 96 + 192 and len(calm.utterances) == 672 + 192
    assert len(scan_ravdess(ravdess, "all", tmp_path, calm_as_neutral=True).utterances) == 1440


# ----------------------------------------------------------------------------------------- CREMA-D
CREMAD_MISSING = [f"10{a}_{s}_{e}_XX" for e in ("ANG", "DIS", "FEA", "HAP", "SAD") for a, s in
                  (("76", "MTI"), ("40", "ITH"), ("64", "TSI"))] + [f"10{a}_{s}_NEU_XX" for a, s in
                  (("76", "MTI"), ("40", "ITH"), ("64", "TSI"), ("01", "WSI"), ("91", "DFA"))]


def cremad_names() -> list[str]:
    """Every name of the scheme (91 actors x (IEO at LO/MD/HI + NEU XX, 11 sentences x 6 emotions at XX) =
    7,462) less 20 absent from the release (3 per emotion, 5 neutral), giving the released 7,442."""
    names = []
    for actor in range(1001, 1092):
        for sentence in SENTENCES:
            for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
                levels = ("LO", "MD", "HI") if sentence == "IEO" and emotion != "NEU" else ("XX",)
                names += [f"{actor}_{sentence}_{emotion}_{level}" for level in levels]
    missing = set(CREMAD_MISSING)
    assert len(missing) == 20 and missing <= set(names)
    return [n for n in names if n not in missing]


@pytest.fixture(scope="module")
def cremad(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cremad")
    (root / "AudioWAV").mkdir()
    data = wav_bytes(16000)
    for name in cremad_names():
        (root / "AudioWAV" / f"{name}.wav").write_bytes(data)
    for name in ("1092_DFA_ANG_XX", "1001_ABC_ANG_XX", "1001_DFA_XYZ_XX", "1001_DFA_ANG_QQ", "1001-DFA-ANG-XX"):
        (root / "AudioWAV" / f"{name}.wav").write_bytes(data)
    return root


def test_cremad_exact_counts_class_maps_and_gender(cremad, tmp_path):
    scan = scan_cremad(cremad, classes="all", converted_dir=tmp_path)
    utts = scan.utterances
    assert len(utts) == 7442 and len({u.speaker for u in utts}) == 91
    assert Counter(u.label for u in utts) == {"ANG": 1271, "DIS": 1271, "FEA": 1271, "HAP": 1271, "SAD": 1271,
                                              "NEU": 1087}
    assert scan.skipped == {"odd name": 5} and scan.converted == 0
    assert {u.gender for u in utts} == {"U"}  # no VideoDemographics.csv
    from lancet.core.manifest import count_table

    table = count_table(utts, "G").splitlines()
    assert table[0].split() == ["class", "G0", "total"] and table[-1].startswith("gender: F 0, M 0, U 7442;")
    assert [line.split()[0] for line in table[1:-2]] == ["neutral", "happy", "sad", "angry", "fear", "disgust"]
    four = scan_cremad(cremad, converted_dir=tmp_path)
    assert len(four.utterances) == 4900
    assert Counter(u.cls for u in four.utterances) == {"angry": 1271, "happy": 1271, "sad": 1271, "neutral": 1087}
    assert four.dropped_labels == {"DIS": 1271, "FEA": 1271}
    demo = cremad / "VideoDemographics.csv"
    demo.write_text("ActorID,Age,Sex,Race,Ethnicity\n" + "".join(
        f"{a},30,{'Male' if a % 2 else 'Female'},Caucasian,Not Hispanic\n" for a in range(1001, 1092)))
    try:
        with_gender = scan_cremad(cremad, converted_dir=tmp_path)
    finally:
        demo.unlink()
    assert Counter(u.gender for u in with_gender.utterances)["M"] > 0
    assert all(u.gender == ("M" if int(u.speaker) % 2 else "F") for u in with_gender.utterances)


# ------------------------------------------------------------------------------------------ folder
def test_folder_reader_maps_labels_and_skips_bad_rows(tmp_path):
    corpus = tmp_path / "mine"
    (corpus / "spk1").mkdir(parents=True)
    (corpus / "spk2").mkdir()
    for i, name in enumerate(("spk1/a.wav", "spk1/b.wav", "spk2/c.wav", "spk2/d.wav")):
        (corpus / name).write_bytes(wav_bytes(22050 if i == 0 else 16000, seed=i))
    (corpus / "labels.csv").write_text(
        "\ufeffPath,Label,Speaker,Gender\n"
        "spk1/a.wav,Anger,s1,female\nspk1/b.wav,joy,s1,F\nspk2/c.wav,frustrated,s2,M\n"
        "spk2/d.wav,SAD,s2,male\nspk2/missing.wav,neutral,s2,M\n,neutral,s2,M\nspk1/a.wav,happy,s1,F\n")
    scan = scan_folder(corpus / "labels.csv", converted_dir=tmp_path / "16k")
    assert [(u.id, u.cls, u.speaker, u.gender) for u in scan.utterances] == [
        ("spk1_a", "angry", "s1", "F"), ("spk1_b", "happy", "s1", "F"), ("spk2_d", "sad", "s2", "M")]
    assert scan.dropped_labels == {"frustrated": 1}
    assert scan.skipped == {"missing wav": 1, "bad row": 1, "duplicate id": 1} and scan.converted == 1
    assert (tmp_path / "16k" / "spk1" / "a.wav").is_file()  # the 22,050 Hz file, converted beside, not in place
    everything = scan_folder(corpus / "labels.csv", classes="all", converted_dir=tmp_path / "16k")
    assert [u.cls for u in everything.utterances] == ["angry", "happy", "frustrated", "sad"]
    with pytest.raises(LancetError, match="inside the corpus folder"):  # the CSV's folder is only ever read
        scan_folder(corpus / "labels.csv", converted_dir=corpus / "16k")
    (tmp_path / "bad.csv").write_text("file,emotion\nx.wav,sad\n")
    with pytest.raises(LancetError, match="lacks column"):
        scan_folder(tmp_path / "bad.csv")


# ------------------------------------------------------------------------------------------- folds
def check_groups(utts, groups, k):
    assert sorted(set(groups.values())) == list(range(1, k + 1))
    by_group = {g: [u for u in utts if groups[u.speaker] == g] for g in groups.values()}
    speakers = [{u.speaker for u in by_group[g]} for g in sorted(by_group)]
    assert sum(len(s) for s in speakers) == len(set().union(*speakers))  # speaker-disjoint
    sizes = [len(s) for s in speakers]
    assert max(sizes) - min(sizes) <= 1
    classes = {u.cls for u in utts}
    for g, us in by_group.items():
        assert {u.cls for u in us} == classes, f"group {g} lacks a class"
    return speakers


def test_folds_speaker_disjoint_balanced_and_seeded(ravdess, cremad, tmp_path):
    utts = scan_ravdess(ravdess, classes="all", converted_dir=tmp_path).utterances
    groups = deal_speakers(utts, 5, seed=0)
    speakers = check_groups(utts, groups, 5)
    for spk in speakers:  # 12 men and 12 women over 5 groups: 2 or 3 of each
        genders = Counter(s for s in spk for s in [int(s[-2:]) % 2])
        assert set(genders.values()) <= {2, 3}
    assert deal_speakers(utts, 5, seed=0) == groups
    assert deal_speakers(utts, 5, seed=1) != groups
    cremad_utts = scan_cremad(cremad, converted_dir=tmp_path).utterances
    check_groups(cremad_utts, assign_folds(cremad_utts, 5, seed=3), 5)
    assert {u.session for u in cremad_utts} == {1, 2, 3, 4, 5}
    with pytest.raises(LancetError, match="at least 3"):
        deal_speakers(utts, 2)
    with pytest.raises(LancetError, match="only 24 speaker"):
        deal_speakers(utts, 25)


def test_folds_give_every_group_a_rare_class_where_possible():
    """A class only three speakers have still reaches each of three groups, whatever the seed."""
    from lancet.core.manifest import Utterance

    utts = []
    for s in range(9):
        for cls in ("neutral", "happy") + (("sad",) if s in (0, 1, 2) else ()):
            utts.append(Utterance(f"u{s}{cls}", "", 0, f"s{s}", "MF"[s % 2], False, cls, cls))
    for seed in range(20):
        check_groups(utts, deal_speakers(utts, 3, seed), 3)


# ------------------------------------------------------------------- EmoDB end to end, 7 classes
@pytest.fixture(scope="module")
def emodb_pipeline(tmp_path_factory) -> dict[str, Path]:
    """The README's pipeline through its scripts on EmoDB (one file per speaker and emotion, 69 in all:
    speaker 13 has no boredom take... whichever is absent, every group still holds every class), 7 classes."""
    if not (EMODB / "wav").is_dir():
        pytest.skip(f"real EmoDB speech not found at {EMODB / 'wav'}")
    tmp = tmp_path_factory.mktemp("emodb_e2e")
    wav = tmp / "EmoDB" / "wav"
    wav.mkdir(parents=True)
    seen = set()
    for f in sorted((EMODB / "wav").glob("*.wav")):
        if (f.stem[:2], f.stem[5]) not in seen:
            seen.add((f.stem[:2], f.stem[5]))
            (wav / f.name).symlink_to(f)  # read in place
    p = {"n": len(seen), "manifest": tmp / "manifest.csv", "aug": tmp / "aug", "std": tmp / "std",
         "feat": tmp / "features", "results": tmp / "results", "wav": wav}
    steps = [
        ("datasets/prepare_EmoDB.py", "--emodb-dir", str(tmp / "EmoDB"), "--manifest", str(p["manifest"]),
         "--converted-dir", str(tmp / "EmoDB_16k"), "--classes", "all"),
        ("datasets/augment_IEMOCAP.py", "--manifest", str(p["manifest"]), "--out", str(p["aug"]), "--noise-types",
         "white", "--snrs", "0", "--no-reverb", "--no-progress", "--workers", "1"),
        ("datasets/handleIEMOCAP.py", "--manifest", str(p["manifest"]), "--augmented-dir", str(p["aug"]),
         "--out", str(p["std"])),
        ("feature_extraction/extract_features_iemocap_mfcc.py", "--manifest", str(p["std"] / "manifest.csv"),
         "--out", str(p["feat"] / "mfcc"), "--workers", "1", "--no-progress"),
        ("train_LANCET.py", "--features-dir", str(p["feat"]), "--features", "mfcc", "--models", "TCNet", "--epochs",
         "1", "--folds", "1", "--classes", "all", "--run-name", "emodb", "--results-dir", str(p["results"]),
         "--no-progress", "--threads", "1", "--train-on", "clean"),
    ]
    p["logs"] = []
    for script, *args in steps:
        result = run(script, *args)
        assert result.returncode == 0, f"{script}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        p["logs"].append(result.stdout)
    return p


def test_emodb_pipeline_end_to_end_seven_classes(emodb_pipeline):

    import torch

    from lancet.features import open_features

    p = emodb_pipeline
    seven = ["neutral", "happy", "sad", "angry", "fear", "disgust", "boredom"]
    utts = read_manifest(p["manifest"])
    assert len(utts) == p["n"] == 69 and sorted({u.cls for u in utts}) == sorted(seven)
    groups = {g: {u.speaker for u in utts if u.session == g} for g in range(1, 6)}
    assert all(len(s) == 2 for s in groups.values())
    assert all({u.cls for u in utts if u.session == g} == set(seven) for g in groups)
    # augmentation keys its tree by the path relative to the corpus audio, not by IEMOCAP sessions
    for u in utts:
        assert (p["aug"] / "white" / "0" / f"{u.id}.wav").is_file()
    assert not list(p["aug"].rglob("Session*"))
    from lancet.corpora.standard_names import standardise

    with pytest.raises(LancetError, match="inside the corpus audio folder"):  # never among the corpus's audio
        standardise(p["manifest"], None, Path(utts[0].path).parent / "std", log=lambda *_: None)
    store = open_features(p["feat"] / "mfcc")
    assert store.params["class_names"] == seven
    assert sorted(store.conditions) == ["clean", "white_0dB"]
    assert {r["id"] for r in store.index("clean")} == {u.id for u in utts}
    run_dir = p["results"] / "emodb"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["class_names"] == seven and config["classes"] == "all"
    test_speakers = ",".join(sorted(groups[1]))
    assert f"test speakers {test_speakers};" in p["logs"][-1]
    record = json.loads((run_dir / "metrics" / "TCNet__train-clean__seed987654__fold1.json").read_text())
    clean = next(r for r in record if r["condition"] == "clean")
    assert np.asarray(clean["confusion"]).shape == (7, 7) and np.asarray(clean["confusion"]).sum() == 14
    header = (run_dir / "metrics_all.csv").read_text().splitlines()[0].split(",")
    assert [h for h in header if h.startswith("recall_")] == [f"recall_{c}" for c in seven]
    checkpoint = next((run_dir / "checkpoints").rglob("best.pt"))
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["class_names"] == seven
    result = run("predict.py", "--checkpoint", str(checkpoint), "--device", "cpu", str(p["wav"] / "03a01Fa.wav"))
    assert result.returncode == 0, result.stderr
    head, line = result.stdout.strip().splitlines()[-2:]
    assert head.split()[3:] == seven and line.split()[1] in seven
    assert abs(sum(float(v) for v in line.split()[3:]) - 1) < 0.01


# ------------------------------------------------------------------------------------ cross-corpus
def tone_corpus(root: Path, speakers: int, classes: dict[str, float], per_class: int, seed: int) -> Path:
    """A labelled folder whose classes differ in pitch (so a model can learn them), with its CSV."""
    rng = np.random.default_rng(seed)
    lines = ["path,label,speaker,gender"]
    t = np.arange(int(0.6 * 16000)) / 16000
    for s in range(speakers):
        for label, f0 in classes.items():
            for i in range(per_class):
                audio = 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.03 * rng.standard_normal()) * t)
                audio += 0.01 * rng.standard_normal(t.size)
                name = f"s{s}/{label}_{i}.wav"
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / name, audio.astype(np.float32), 16000)
                lines.append(f"{name},{label},{root.name}{s},{'MF'[s % 2]}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root / "labels.csv"


def tiny_store(tmp: Path, name: str, classes: dict[str, float], speakers: int, seed: int, **mfcc) -> Path:
    from lancet.corpora.prepare import finish
    from lancet.features.extract import extract_features
    from lancet.features.params import make_params
    from lancet.corpora.standard_names import standardise

    csv_path = tone_corpus(tmp / name, speakers, classes, 2, seed)
    manifest = tmp / f"{name}_manifest.csv"
    args = type("Args", (), {"folds_k": 3, "fold_seed": 0, "manifest": manifest})()
    finish(scan_folder(csv_path, classes="all"), args, str(csv_path))
    standardise(manifest, None, tmp / f"{name}_std", log=lambda *_: None)
    extract_features(tmp / f"{name}_std" / "manifest.csv", tmp / f"{name}_features" / "mfcc",
                     params=make_params("mfcc", **mfcc), workers=1, progress=False, log=lambda *_: None)
    return tmp / f"{name}_features"


def test_cross_corpus_every_fold_model_on_the_other_corpus(tmp_path, capsys):

    from lancet.training.config import TrainConfig
    from lancet.training.grid import run_training

    four = {"neutral": 220.0, "happy": 440.0, "sad": 160.0, "angry": 330.0}
    train = tiny_store(tmp_path, "A", four, speakers=6, seed=1)
    test = tiny_store(tmp_path, "B", {**four, "fear": 600.0}, speakers=3, seed=2)
    logs: list[str] = []
    cfg = TrainConfig(features_dir=str(train), features="mfcc", models=("TCNet",), epochs=2, threads=1,
                      results_dir=str(tmp_path / "results"), run_name="AtoB", test_features_dir=str(test),
                      progress=False, workers=0, train_on="clean")
    out = run_training(cfg, log=logs.append)
    text = "\n".join(logs)
    assert "left out (classes the model does not know): fear 6" in text
    assert "CROSS-CORPUS: trained on" in text
    cross = out["run_dir"] / "cross_corpus"
    records = json.loads((cross / "metrics_all.json").read_text())
    assert sorted(r["fold"] for r in records) == ["fold1", "fold2", "fold3"]  # every fold's model
    for r in records:
        assert r["condition"] == "clean" and r["n_utterances"] == 3 * 4 * 2  # all of B's four-class utterances
        assert np.asarray(r["confusion"]).shape == (4, 4) and np.asarray(r["confusion"]).sum() == 24
        assert r["test_features"].endswith("B_features/mfcc")
    summary = json.loads((cross / "summary.json").read_text())["rows"]
    assert len(summary) == 1 and summary[0]["runs"] == 3
    # a rerun reads the finished units back instead of evaluating again
    stamp = (cross / "metrics" / "TCNet__train-clean__seed987654__fold1.json").stat().st_mtime_ns
    run_training(cfg, log=lambda *_: None)
    assert (cross / "metrics" / "TCNet__train-clean__seed987654__fold1.json").stat().st_mtime_ns == stamp
    # features extracted with other settings are refused before any training
    other = tiny_store(tmp_path, "C", four, speakers=3, seed=3, n_mfcc=20)
    with pytest.raises(LancetError, match="extracted with other settings"):
        run_training(TrainConfig(**{**cfg.__dict__, "test_features_dir": str(other), "run_name": "AtoC"}),
                     log=lambda *_: None)
    assert not (tmp_path / "results" / "AtoC").exists()
