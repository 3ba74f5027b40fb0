"""The IEMOCAP corpus layer: exact counts on the demo corpus, odd label files, broken input, EmoDB."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.audio import write_wav
from lancet.core.manifest import read_manifest, write_manifest
from lancet.core.classes import CLASSES
from lancet.corpora.iemocap import parse_emo_evaluation, parse_speaker, scan_iemocap as scan_corpus
from lancet.corpora.demo import make_demo_corpus
from lancet.core.errors import LancetError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EMODB = SHARED / "data" / "emodb" / "wav"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    make_demo_corpus(root, seed=0)
    return root


def test_demo_corpus_counts_exact(demo):
    scan = scan_corpus(demo)
    classes = Counter(u.cls for u in scan.utterances)
    assert classes == {"neutral": 100, "happy": 90, "sad": 80, "angry": 80}
    assert Counter(u.session for u in scan.utterances) == {s: 70 for s in range(1, 6)}
    assert Counter(u.gender for u in scan.utterances) == {"F": 175, "M": 175}
    assert len({u.speaker for u in scan.utterances}) == 10
    assert scan.dropped_labels == {"fru": 20, "xxx": 10}
    assert not scan.skipped
    assert all(1.0 <= u.duration_s <= 5.0 for u in scan.utterances)
    assert {u.improvised for u in scan.utterances} == {True, False}


def test_class_maps(demo):
    noexc = scan_corpus(demo, class_map="4class-noexc")
    assert Counter(u.cls for u in noexc.utterances)["happy"] == 50
    assert noexc.dropped_labels["exc"] == 40
    impro = scan_corpus(demo, class_map="improvised")
    assert all(u.improvised for u in impro.utterances)
    full = scan_corpus(demo)
    assert len(impro.utterances) == sum(u.improvised for u in full.utterances)
    assert impro.dropped_labels["(scripted)"] > 0
    with pytest.raises(LancetError, match="unknown class map"):
        scan_corpus(demo, class_map="7class")


def test_demo_corpus_is_deterministic(tmp_path):
    make_demo_corpus(tmp_path / "a", seed=3, utterances_per_speaker=6)
    make_demo_corpus(tmp_path / "b", seed=3, utterances_per_speaker=6)
    make_demo_corpus(tmp_path / "c", seed=4, utterances_per_speaker=6)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    wav = next(f for f in files if f.suffix == ".wav")
    assert (tmp_path / "a" / wav).read_bytes() != (tmp_path / "c" / wav).read_bytes()


def test_emotions_shift_pitch_and_loudness(demo):
    """The synthetic emotions differ as designed: sad is quieter than angry on average."""
    scan = scan_corpus(demo)
    rms = {c: [] for c in CLASSES}
    for u in scan.utterances:
        audio, _ = sf.read(u.path)
        rms[u.cls].append(20 * np.log10(np.sqrt(np.mean(audio**2))))
    assert np.mean(rms["angry"]) > np.mean(rms["neutral"]) > np.mean(rms["sad"])


def test_manifest_roundtrip(demo, tmp_path):
    scan = scan_corpus(demo)
    path = tmp_path / "m.csv"
    write_manifest(path, scan.utterances)
    back = read_manifest(path)
    assert [u.id for u in back] == [u.id for u in scan.utterances]
    assert back[0] == scan.utterances[0] or abs(back[0].duration_s - scan.utterances[0].duration_s) < 1e-3
    assert {u.cls for u in back} == set(CLASSES)


def test_speaker_from_utterance_id():
    assert parse_speaker("Ses01F_impro01_M013") == (1, "Ses01M", "M")
    assert parse_speaker("Ses05M_script02_2_F010") == (5, "Ses05F", "F")
    with pytest.raises(ValueError):
        parse_speaker("Ses07F_impro01_M013")


ODD_LABEL_FILE = (
    "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\r\n"
    "\r\n"
    "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\r\n"
    "C-E2:\tNeutral;\t()\r\n"
    "A-E1:\tval 3; act 2; dom  2;\t()\r\n"
    "\r\n"
    "[10.0100 - 11.3925]\tSes01F_impro01_M001\texc\t[3.5000, 3.5000, 3.0000]\r\n"
    "[12.0 - 13.5]\tSes01F_impro01_F002\tfru\t[2.0, 3.0, 3.0]\r\n"
    "[broken line without tabs\r\n"
)


def _write_tiny_release(root: Path, label_text: str = ODD_LABEL_FILE) -> Path:
    label = root / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    label.parent.mkdir(parents=True)
    label.write_text(label_text)
    (label.parent / "._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    (label.parent / "Categorical").mkdir()
    wavs = root / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    for utt in ("Ses01F_impro01_F000", "Ses01F_impro01_M001", "Ses01F_impro01_F002"):
        write_wav(wavs / f"{utt}.wav", 0.1 * np.sin(np.arange(16000) / 10.0).astype(np.float32))
    return label


def test_odd_label_lines(tmp_path):
    label = _write_tiny_release(tmp_path)
    scan = scan_corpus(tmp_path)
    assert [(u.id, u.label, u.cls, u.speaker) for u in scan.utterances] == [
        ("Ses01F_impro01_F000", "neu", "neutral", "Ses01F"),
        ("Ses01F_impro01_M001", "exc", "happy", "Ses01M"),
    ]
    assert scan.dropped_labels == {"fru": 1}
    assert scan.skipped == {"malformed line": 1}
    assert f"{label}:9" in scan.warnings[0]
    with pytest.raises(LancetError, match=r"Ses01F_impro01\.txt:9: malformed"):
        parse_emo_evaluation(label)


def test_stereo_44k_read_as_16k_mono(tmp_path):
    _write_tiny_release(tmp_path)
    wav = tmp_path / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F000.wav"
    t = np.arange(44100 * 2) / 44100
    sf.write(str(wav), np.stack([0.2 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 440 * t)], axis=1), 44100)
    before = wav.read_bytes()
    scan = scan_corpus(tmp_path, converted_dir=tmp_path / "conv")
    first = scan.utterances[0]
    assert scan.converted == 1 and first.path == str(tmp_path / "conv" / wav.relative_to(tmp_path))
    audio, sr = sf.read(first.path)
    assert sr == 16000 and audio.ndim == 1 and abs(len(audio) - 32000) <= 1
    assert abs(np.sqrt(np.mean(audio[1000:-1000] ** 2)) - 0.15 / np.sqrt(2)) < 2e-3  # channels averaged
    assert wav.read_bytes() == before


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(LancetError, match="not found"):
        scan_corpus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LancetError, match="no Session1..Session5"):
        scan_corpus(tmp_path / "empty")
    (tmp_path / "nolabels" / "Session1").mkdir(parents=True)
    with pytest.raises(LancetError, match="EmoEvaluation: label folder not found"):
        scan_corpus(tmp_path / "nolabels")


def test_broken_audio_skipped_and_counted(tmp_path):
    label = _write_tiny_release(tmp_path)
    wavs = tmp_path / "Session1" / "sentences" / "wav" / "Ses01F_impro01"
    (wavs / "Ses01F_impro01_F000.wav").write_bytes(b"RIFF not really a wav")
    sf.write(str(wavs / "Ses01F_impro01_M001.wav"), np.zeros(0, dtype=np.float32), 16000)
    with open(label, "a") as fh:
        fh.write("[20.0 - 21.0]\tSes01F_impro01_F003\tang\t[2.0, 3.0, 3.0]\n")
    scan = scan_corpus(tmp_path)
    assert scan.utterances == []
    assert scan.skipped == {"broken wav": 2, "missing wav": 1, "malformed line": 1}
    text = "\n".join(scan.warnings)
    assert "Ses01F_impro01_F000.wav: unreadable audio" in text
    assert "Ses01F_impro01_M001.wav: empty audio" in text
    assert f"{label}:10: names" in text and "Ses01F_impro01_F003.wav, which does not exist" in text


def test_prepare_script_one_line_errors(tmp_path):
    script = REPO / "datasets" / "prepare_IEMOCAP.py"
    result = subprocess.run([sys.executable, str(script), "--iemocap-dir", str(tmp_path / "missing"),
                             "--manifest", str(tmp_path / "m.csv")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing'}: IEMOCAP folder not found "
                                                  "(expected Session1..Session5 inside)"]
    assert not (tmp_path / "m.csv").exists()
    with pytest.raises(LancetError, match="manifest not found"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "bad.csv").write_text("id,path\nx,y\n")
    with pytest.raises(LancetError, match="lacks column"):
        read_manifest(tmp_path / "bad.csv")


def test_prepare_script_writes_manifest(demo, tmp_path):
    script = REPO / "datasets" / "prepare_IEMOCAP.py"
    result = subprocess.run([sys.executable, str(script), "--iemocap-dir", str(demo),
                             "--manifest", str(tmp_path / "m.csv")], capture_output=True, text=True, check=True)
    assert "wrote 350 utterances" in result.stdout
    assert "dropped (label outside the class map): fru 20, xxx 10" in result.stdout
    assert len(read_manifest(tmp_path / "m.csv")) == 350


EMODB_LABELS = {"W": "ang", "N": "neu", "F": "hap", "T": "sad", "L": "bor", "A": "fea", "E": "dis"}
EMODB_MALE = ["03", "10", "11", "12", "15"]
EMODB_FEMALE = ["08", "09", "13", "14", "16"]


@pytest.fixture(scope="module")
def emodb_as_iemocap(tmp_path_factory) -> Path:
    """EmoDB laid out as an IEMOCAP release: one male and one female speaker per session (symlinks)."""
    if not EMODB.is_dir():
        pytest.skip(f"real EmoDB speech not found at {EMODB}")
    root = tmp_path_factory.mktemp("emodb_iemocap")
    for session, (male, female) in enumerate(zip(EMODB_MALE, EMODB_FEMALE), start=1):
        dialog = f"Ses{session:02d}F_impro01"
        lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
        for gender, speaker in (("M", male), ("F", female)):
            for n, wav in enumerate(sorted(EMODB.glob(f"{speaker}*.wav"))):
                utt = f"{dialog}_{gender}{n:03d}"
                target = root / f"Session{session}" / "sentences" / "wav" / dialog / f"{utt}.wav"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(wav)
                lines.append(f"[{n}.0 - {n}.5]\t{utt}\t{EMODB_LABELS[wav.stem[5]]}\t[2.0, 3.0, 3.0]")
        label = root / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("\n".join(lines) + "\n")
    return root


def test_emodb_at_22050_hz_converted_once(emodb_as_iemocap, tmp_path):
    converted = tmp_path / "16k"
    scan = scan_corpus(emodb_as_iemocap, converted_dir=converted)
    assert Counter(u.cls for u in scan.utterances) == {"angry": 127, "neutral": 79, "happy": 71, "sad": 62}
    assert scan.dropped_labels == {"bor": 81, "fea": 69, "dis": 46}
    assert scan.converted == 339 and not scan.skipped
    assert len({u.speaker for u in scan.utterances}) == 10
    for u in scan.utterances[:5]:
        info = sf.info(u.path)
        assert (info.samplerate, info.channels) == (16000, 1)
        assert abs(info.frames - 32000) <= 1 and abs(u.duration_s - 2.0) < 1e-3
        assert Path(u.path).is_relative_to(converted)
    mtimes = {u.path: Path(u.path).stat().st_mtime_ns for u in scan.utterances}
    again = scan_corpus(emodb_as_iemocap, converted_dir=converted)
    assert {u.path: Path(u.path).stat().st_mtime_ns for u in again.utterances} == mtimes
    original = sf.info(str(next(EMODB.glob("03a01Fa.wav"))))
    assert original.samplerate == 22050  # the user's files stay as they were
