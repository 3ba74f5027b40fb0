"""predict.py for real use: streamed audio of any format, --out tables, run folders voting, timelines,
bounded memory. Real numbers throughout: streamed results are checked against whole-file reads, the vote
against averaging by hand, the timeline against a recording whose source changes at a known time."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lancet.core.audio import AudioError, load_audio, write_wav
from lancet.core.audio_stream import open_audio_stream
from lancet.core.csv_safe import safe_cell
from lancet.core.errors import LancetError
from lancet.corpora.demo import make_demo_corpus
from lancet.features.params import SegmentParams, make_params, params_record
from lancet.features.segment import segment_audio
from lancet.models import build_model
from lancet.training.checkpoint import save_checkpoint
from lancet.training.feature_norm import normalise_utterance, utterance_stats
from lancet.training.grid import run_training
from lancet.training.predict import load_predictor, predict_file, predict_files, utterance_features
from lancet.training.prediction_table import write_predictions
from lancet.training.predictor import segment_probs
from lancet.training.ensemble import Ensemble
from lancet.training.recording import FrameStats, label_recording
from lancet.training.windows import Windower

from test_pipeline import run
from test_training import CLASSES, ROOT, cfg_for

ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}


def _checkpoint(path: Path, model: str = "TCNet", norm: str = "global", classes=CLASSES, kind: str = "mfcc",
                seed: int = 0, **feature_overrides) -> Path:
    """A best.pt in the trainer's format (untrained): enough to check what prediction computes."""
    record = params_record(make_params(kind, **feature_overrides), SegmentParams(), "float32")
    n_freq, n_frames = record["shape"]
    torch.manual_seed(seed)
    net = build_model(model, len(classes), n_freq, n_frames)
    rng = np.random.default_rng(seed)
    save_checkpoint(path, {"format": "lancet-checkpoint-2", "model_name": model, "model_options": {},
                           "model_state": net.state_dict(), "class_names": list(classes), "feature_params": record,
                           "norm_mean": rng.normal(0, 1, n_freq).astype(np.float32),
                           "norm_std": rng.uniform(5, 20, n_freq).astype(np.float32),
                           "n_freq": n_freq, "n_frames": n_frames, "norm": norm, "pooling": "mean"})
    return path


def _tone(path: Path, seconds: float, sr: int = 16000, channels: int = 1, seed: int = 0, fmt: str | None = None) -> Path:
    """Speech-level audio (a gliding tone in noise) of any rate, channel count and format."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.1 * np.sin(2 * np.pi * (180 + 40 * np.sin(t)) * t) + 0.02 * rng.standard_normal(len(t))
    data = np.stack([mono * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), data, sr, format=fmt)
    return path


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


# ----------------------------------------------------------------------------- audio in blocks
@pytest.mark.parametrize("sr,channels,fmt", [(44100, 2, "FLAC"), (22050, 1, "OGG"), (16000, 1, "WAV"),
                                             (48000, 2, "MP3")])
def test_blocks_equal_the_whole_file_read(tmp_path, sr, channels, fmt):
    """Every block read, averaged and resampled on its own, put end to end is load_audio's result exactly."""
    if fmt not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} here does not write {fmt}")
    path = _tone(tmp_path / f"a.{fmt.lower()}", 5.37, sr, channels, fmt=fmt)
    stream = open_audio_stream(path, block_s=0.37)
    blocks = list(stream.blocks())
    assert len(blocks) > 10 and (stream.source_rate, stream.channels) == (sr, channels)
    whole = load_audio(path)
    assert np.array_equal(np.concatenate(blocks), whole)
    assert len(whole) == stream.output_frames


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # audioread's backends import aifc, audioop, sunau
def test_unreadable_audio_is_one_line(untrained, tmp_path):
    bad = tmp_path / "notes.m4a"
    bad.write_text("not audio at all")
    with pytest.raises(AudioError, match="cannot read this audio") as err:
        open_audio_stream(bad)
    assert str(bad) in str(err.value) and "FLAC" in str(err.value) and "\n" not in str(err.value)
    good = _tone(tmp_path / "good.wav", 2.5)
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(untrained), "--device", "cpu",
                        str(good), str(bad)], capture_output=True, text=True, env=ENV, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0]
    assert "good.wav" not in r.stdout  # every header is read before any model runs


# ----------------------------------------------------------------------------- windows and statistics
def test_windower_cuts_as_segment_audio_and_holds_one_window():
    rng = np.random.default_rng(0)
    for _ in range(300):
        seg = SegmentParams(segment_s=float(rng.choice([0.5, 1, 2])), hop_s=float(rng.choice([0.25, 0.5, 1, 3])),
                            tail_min_s=float(rng.choice([0, 0.1, 0.5])), short=str(rng.choice(["pad", "drop"])),
                            sample_rate=100)
        audio = rng.standard_normal(int(rng.integers(0, 900))).astype(np.float32)
        ref, starts, real = segment_audio(audio, seg)
        windower, got, at, biggest = Windower.for_segments(seg), [], 0, 0
        while at < len(audio):
            size = int(rng.integers(1, 120))
            got += windower.push(audio[at:at + size])
            at, biggest = at + size, max(biggest, size)
        got += windower.finish()
        assert [w.start for w in got] == starts and [w.n_real for w in got] == real
        if got:
            assert np.array_equal(np.stack([w.audio for w in got]), ref)
        assert windower.max_buffered <= seg.segment_samples + biggest  # one window plus one block, any length


def test_streamed_frame_statistics_equal_utterance_stats():
    rng = np.random.default_rng(1)
    feats = (rng.normal(-4, 0.5, (37, 26, 63)) + rng.normal(0, 3, (1, 26, 1))).astype(np.float32)
    lengths = rng.integers(1, 64, 37)
    stats = FrameStats()
    for start in range(0, 37, 8):
        stats.add(feats[start:start + 8], lengths[start:start + 8])
    mean, std = stats.result()
    ref_mean, ref_std = utterance_stats(feats, lengths, np.zeros(37, np.int64), 1)
    assert np.allclose(mean, ref_mean, rtol=0, atol=1e-5) and np.allclose(std, ref_std, rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------- predictions
@pytest.mark.parametrize("norm", ["global", "utterance", "segment"])
def test_streamed_prediction_equals_the_whole_file_reference(tmp_path, norm):
    """A 44.1 kHz stereo FLAC read in 0.7 s blocks (9 segments, the last aligned to the end) gives the probabilities of the whole file read at once."""
    predictor = load_predictor(_checkpoint(tmp_path / "best.pt", norm=norm), "cpu")
    path = _tone(tmp_path / "talk.flac", 9.7, 44100, 2, fmt="FLAC")
    feats, lengths = utterance_features(path, predictor.feature_record)
    if norm == "global":
        probs = segment_probs(predictor, feats, lengths)
    else:  # the whole file's (or each segment's) own statistics, as before streaming
        x = normalise_utterance(feats, lengths, norm, predictor.mean, predictor.std)
        with torch.no_grad():
            probs = torch.softmax(predictor.model(x, lengths=torch.from_numpy(lengths)), -1).numpy()
    streamed = label_recording(Ensemble([predictor]), path, block_s=0.7, batch=3)
    assert streamed["n_segments"] == len(feats) == 9
    assert np.allclose(streamed["scores"], probs.mean(axis=0), rtol=0, atol=1e-5)
    assert streamed["duration_s"] == pytest.approx(9.7, abs=1e-3) and streamed["models"] == 1
    assert predict_file(predictor, path)["label"] == streamed["label"]


def test_out_csv_and_json_one_row_per_file(untrained, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    names = ["plain.wav", "=HYPERLINK(1).wav", "two\nlines.flac", "tab\there.ogg", "-minus.wav", "@at.wav"]
    for k, name in enumerate(names):
        fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(Path(name).suffix)
        _tone(folder / name, 1.5 + k, 22050 if fmt else 16000, 1 + k % 2, seed=k, fmt=fmt)
    write_wav(folder / "silent.wav", np.zeros(8000, np.float32))
    results, classes = predict_files(untrained, [folder], device="cpu")
    assert len(results) == 7 and classes == list(CLASSES)
    out = tmp_path / "out" / "predictions.csv"
    given = sorted(names + ["silent.wav"])  # named as given, relative: the path cell starts like the name
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(untrained), "--device", "cpu",
                        "--out", str(out), "--no-progress", "--", *given], capture_output=True, text=True, env=ENV,
                       timeout=120, cwd=folder)
    assert r.returncode == 0, r.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 7  # a newline in a name does not split its row
    rows = list(csv.DictReader(lines))
    assert list(rows[0]) == (["path", "label"] + [f"prob_{c}" for c in CLASSES]
                             + ["duration_s", "segments", "models", "warnings"])
    for row, ref in zip(rows, results):
        probs = [float(row[f"prob_{c}"]) for c in CLASSES]
        assert sum(probs) == pytest.approx(1.0, abs=1e-6) and row["label"] == CLASSES[int(np.argmax(probs))]
        assert np.allclose(probs, ref["scores"], atol=1e-12) and row["models"] == "1"
        assert float(row["duration_s"]) == pytest.approx(ref["duration_s"], abs=1e-3)
        assert not row["path"].startswith(("=", "+", "-", "@"))  # a spreadsheet would run it
    by_name = {row["path"]: row for row in rows}
    assert {"'=HYPERLINK(1).wav", "'-minus.wav", "'@at.wav", "two\\nlines.flac", "tab\\there.ogg"} <= set(by_name)
    assert "no speech energy" in by_name["silent.wav"]["warnings"] and by_name["plain.wav"]["warnings"] == ""
    assert "1 model" in r.stdout and "predictions:" in r.stdout
    # JSON keeps the names as they are
    write_predictions(tmp_path / "p.json", results, classes, [str(untrained)])
    data = json.loads((tmp_path / "p.json").read_text())
    assert [Path(p["path"]).name for p in data["predictions"]] == sorted(names + ["silent.wav"])
    assert all(sum(p["probabilities"].values()) == pytest.approx(1.0) for p in data["predictions"])
    with pytest.raises(LancetError, match="name a .csv or .json file"):
        write_predictions(tmp_path / "p.txt", results, classes)
    assert safe_cell("+1") == "'+1" and safe_cell(0.25) == 0.25


# ----------------------------------------------------------------------------- a long recording
MEMORY_SCRIPT = textwrap.dedent("""
    import sys, torch
    from lancet.training.predict import predict_files
    torch.set_num_threads(1)
    def peak_mb():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
    for path in sys.argv[2:]:
        results, _ = predict_files(sys.argv[1], [path], device="cpu", timeline=True)
        print(path, results[0]["n_segments"], len(results[0]["timeline"]), round(peak_mb(), 1))
""")


def test_a_long_recording_runs_in_bounded_memory(untrained, tmp_path):
    """Peak memory after a 10-minute 48 kHz stereo recording is that of a 1-minute one: nothing grows with
    the length (read whole, its samples alone would take 230 MB as float32)."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("peak memory is read from /proc/self/status (Linux)")
    paths = []
    for minutes in (1, 10):
        path = tmp_path / f"{minutes}min.flac"
        rng = np.random.default_rng(minutes)
        with sf.SoundFile(str(path), "w", 48000, 2, format="FLAC") as fh:
            for k in range(6 * minutes):  # written 10 s at a time: the test holds no long recording either
                t = np.arange(480000) / 48000
                mono = 0.1 * np.sin(2 * np.pi * (150 + 20 * (k % 5)) * t) + 0.01 * rng.standard_normal(len(t))
                fh.write(np.stack([mono, 0.5 * mono], axis=1).astype(np.float32))
        paths.append(str(path))
    r = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(untrained), *paths], capture_output=True, text=True,
                       env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (_, seg1, win1, peak1), (_, seg10, win10, peak10) = [line.split() for line in r.stdout.strip().splitlines()]
    assert (int(seg1), int(seg10)) == (59, 599) and (int(win1), int(win10)) == (59, 599)
    grown = float(peak10) - float(peak1)
    samples = 9 * 60 * 48000 * 2 * 4 / 2**20  # MB the nine more minutes take as float32 samples alone
    print(f"peak RSS: 1 min {peak1} MB, 10 min {peak10} MB (+{grown:.1f} MB; read whole: +{samples:.0f} MB of samples)")
    assert grown < samples / 4, f"peak memory grew by {grown:.1f} MB from a 1- to a 10-minute recording"


# ----------------------------------------------------------------------------- trained fold models
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> dict:
    """TC-Net trained on clean MFCC of a small demo corpus, folds 1 and 2 (two fold models)."""
    tmp = tmp_path_factory.mktemp("demo")
    make_demo_corpus(tmp / "IEMOCAP", seed=3, utterances_per_speaker=12)
    run("datasets/prepare_IEMOCAP.py", "--iemocap-dir", str(tmp / "IEMOCAP"), "--manifest", str(tmp / "m.csv"))
    run("datasets/handleIEMOCAP.py", "--manifest", str(tmp / "m.csv"), "--out", str(tmp / "standard"), "--clean-only")
    run("feature_extraction/extract_features_iemocap_mfcc.py", "--manifest", str(tmp / "standard" / "manifest.csv"),
        "--out", str(tmp / "features" / "mfcc"), "--no-progress", "--workers", "1")
    cfg = cfg_for(tmp, tmp / "features", folds=("1", "2"), epochs=15, batch_size=16)
    run_training(cfg, log=lambda m: None)
    with open(tmp / "m.csv", newline="") as fh:
        utterances = list(csv.DictReader(fh))
    return {"tmp": tmp, "run_dir": Path(cfg.results_dir) / "t", "utterances": utterances}


def _fold_checkpoints(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob("best.pt"))


def test_a_run_folder_averages_its_fold_models(demo_run):
    run_dir = demo_run["run_dir"]
    wavs = [u["path"] for u in demo_run["utterances"][:6]]
    results, classes = predict_files(run_dir, wavs, device="cpu")
    by_hand = [load_predictor(p, "cpu") for p in _fold_checkpoints(run_dir)]
    assert len(by_hand) == 2
    for r, wav in zip(results, wavs):
        expected = np.mean([predict_file(p, wav)["scores"] for p in by_hand], axis=0)
        assert np.allclose(r["scores"], expected, rtol=0, atol=1e-6) and r["models"] == 2
        assert r["label"] == classes[int(np.argmax(expected))]
    single, _ = predict_files(_fold_checkpoints(run_dir)[0], wavs[:1], device="cpu")
    assert single[0]["models"] == 1 and not np.allclose(single[0]["scores"], results[0]["scores"])


def test_several_model_types_need_model_and_models_must_agree(demo_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(demo_run["run_dir"] / "checkpoints", run_dir / "checkpoints")
    other = run_dir / "checkpoints" / "LANCET" / "train-clean" / "seed1" / "fold1" / "best.pt"
    other.parent.mkdir(parents=True)
    _checkpoint(other, model="LANCET")
    wav = demo_run["utterances"][0]["path"]
    with pytest.raises(LancetError, match=r"holds 2 model types \(LANCET, TCNet\); choose one with --model NAME"):
        predict_files(run_dir, [wav], device="cpu")
    assert predict_files(run_dir, [wav], device="cpu", model="TCNet")[0][0]["models"] == 2
    assert predict_files(run_dir, [wav], device="cpu", model="LANCET")[0][0]["models"] == 1
    with pytest.raises(LancetError, match="--model GLAM: no such model"):
        predict_files(run_dir, [wav], device="cpu", model="GLAM")
    fold_model = _fold_checkpoints(demo_run["run_dir"])[0]
    renamed = _checkpoint(tmp_path / "renamed.pt", classes=("calm", "happy", "sad", "angry"))
    with pytest.raises(LancetError, match="must share their classes") as err:
        predict_files([fold_model, renamed], [wav], device="cpu")
    assert str(renamed) in str(err.value)
    finer = _checkpoint(tmp_path / "finer.pt", n_mfcc=20)
    with pytest.raises(LancetError, match="feature setting params"):
        predict_files([fold_model, finer], [wav], device="cpu")
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(run_dir), "--device", "cpu",
                        wav], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--model NAME" in r.stderr


def _segment_labels(predictors, audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """Labels of a clip's training segments, the fold models' probabilities averaged by hand."""
    seg = SegmentParams()
    params = make_params("mfcc")
    from lancet.features.compute import compute_features
    from lancet.features.segment import valid_frames

    segments, _, real = segment_audio(audio, seg)
    feats = compute_features(segments, params, sr)
    lengths = np.array([valid_frames(params, r, feats.shape[-1]) for r in real])
    return np.mean([segment_probs(p, feats, lengths) for p in predictors], axis=0).argmax(axis=1)


def test_timeline_changes_label_where_the_source_changes(demo_run, tmp_path):
    """Whole seconds of an utterance of one class, then one of another: the timeline's label changes once,
    at the window that reaches into the second utterance (within one hop of the change)."""
    run_dir = demo_run["run_dir"]
    predictors = [load_predictor(p, "cpu") for p in _fold_checkpoints(run_dir)]
    classes = predictors[0].class_names
    chosen: dict[str, np.ndarray] = {}
    for u in demo_run["utterances"]:  # an utterance each model pair labels as its class in every segment
        if float(u["duration_s"]) < 4.0 or u["class"] in chosen:
            continue
        audio = load_audio(u["path"])
        if (_segment_labels(predictors, audio) == classes.index(u["class"])).all():
            chosen[u["class"]] = audio
        if len(chosen) == 2:
            break
    assert len(chosen) == 2, "no two classes with an utterance labelled right throughout"
    (first, a), (second, b) = chosen.items()
    seconds = len(a) // 16000
    a = a[:seconds * 16000]  # the source changes on a window start
    path = tmp_path / "conversation.wav"
    write_wav(path, np.concatenate([a, b]))
    out = tmp_path / "timeline"
    r = subprocess.run([sys.executable, str(ROOT / "predict.py"), "--checkpoint", str(run_dir), "--device", "cpu",
                        "--timeline", "--timeline-dir", str(out), "--no-progress", str(path)],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    with open(out / "conversation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    labels = [row["label"] for row in rows]
    starts = [float(row["start_s"]) for row in rows]
    total = (len(a) + len(b)) / 16000
    assert starts[:3] == [0.0, 1.0, 2.0] and 0 <= total - float(rows[-1]["end_s"]) <= 0.5  # at most tail_min uncovered
    changes = [k for k in range(1, len(labels)) if labels[k] != labels[k - 1]]
    assert labels[0] == first and labels[-1] == second and len(changes) == 1, labels
    centre = starts[changes[0]] + 1.0  # 2 s windows, 1 s hop
    assert abs(centre - seconds) <= 1.0, (centre, seconds, labels)
    for row in rows:
        assert sum(float(row[f"prob_{c}"]) for c in classes) == pytest.approx(1.0, abs=1e-5)
    assert (out / "conversation.png").read_bytes()[:4] == b"\x89PNG"
    assert "2 models vote" in r.stdout
    # another window and hop: windows of 1 s every 0.5 s, each labelled on its own
    results, _ = predict_files(run_dir, [path], device="cpu", timeline=True, window_s=1.0, hop_s=0.5)
    spans = [(row.start_s, row.end_s) for row in results[0]["timeline"]]
    assert spans[:3] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0)] and all(e - s == pytest.approx(1.0) for s, e in spans)
