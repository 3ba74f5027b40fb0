"""Tests of lancet.features: numbers equal to librosa, segmenting, the store, resume, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from lancet.core.atomic import read_csv, save_csv
from lancet.core.audio import load_audio, write_wav
from lancet.core.errors import LancetError
from lancet.features import (
    SegmentParams, TorchFeatures, compute_features, compute_norm_stats, extract_features, librosa_reference,
    make_params, normalise, open_features, segment_starts, valid_frames,
)
from lancet.features import extract as extract_mod

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
SR = 16000
COLUMNS = ["id", "condition", "noise_type", "snr_db", "path", "session", "speaker", "gender", "improvised", "label", "class"]
DURATIONS = {"u05": 0.5, "u12": 1.2, "u20": 2.0, "u27": 2.7, "u33": 3.3, "u45": 4.5}
# segments with the default rule (2 s, hop 1 s, pad short, end-aligned tail when > 0.5 s uncovered)
EXPECTED_STARTS = {"u05": [0.0], "u12": [0.0], "u20": [0.0], "u27": [0.0, 0.7], "u33": [0.0, 1.0], "u45": [0.0, 1.0, 2.0]}
SHAPES = {"mel": (128, 201), "mfcc": (26, 63), "spectrogram": (400, 197), "pcen": (128, 201)}
# float32 FFTs (scipy vs numpy pocketfft, torch) differ by ~1e-7 of a frame's energy, which is a
# large *relative* error only for bins near the floor; so log features are compared as powers.
TOL = {"mel": 1e-3, "mfcc": 5e-3, "spectrogram": 5e-3}


def assert_close(ours: np.ndarray, ref: np.ndarray, kind: str) -> None:
    """Equal to float32 tolerance: powers within 0.1 % or 1e-6 of the segment's peak; MFCC absolute."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape
    if kind == "mfcc":
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=TOL[kind])
        return
    to_power = (lambda v: 10.0**v) if kind == "mel" else (lambda v: 10.0 ** (v / 10.0))
    pa, pb = to_power(ours), to_power(ref)
    peak = pb.max(axis=(-2, -1), keepdims=True)
    excess = np.abs(pa - pb) - (1e-3 * pb + 1e-6 * peak)
    assert excess.max() <= 0, f"{kind}: {np.sum(excess > 0)} values differ, worst at {np.unravel_index(excess.argmax(), excess.shape)}"
    np.testing.assert_allclose(ours[pb > 1e-4 * peak], ref[pb > 1e-4 * peak], rtol=0, atol=TOL[kind])


def _signal(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    f0 = rng.uniform(120, 300)
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * 3.1 * f0 * t) + 0.02 * rng.standard_normal(n)
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t) ** 2  # some amplitude modulation
    return x.astype(np.float32)


def _row(uid: str, cond: str, path: Path, i: int) -> dict:
    return {
        "id": uid, "condition": cond, "noise_type": "clean" if cond == "clean" else "white",
        "snr_db": "" if cond == "clean" else "0", "path": str(path), "session": str(1 + i % 2),
        "speaker": f"Ses0{1 + i % 2}{'MF'[i % 2]}", "gender": "MF"[i % 2], "improvised": "1",
        "label": "neu", "class": ("neutral", "happy", "sad", "angry")[i % 4],
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Six utterances of 0.5-4.5 s in two conditions (clean, white_0dB) and their combined manifest."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(7)
    rows = []
    for i, (uid, dur) in enumerate(DURATIONS.items()):
        clean = _signal(rng, dur)
        noise = rng.standard_normal(clean.shape[0]).astype(np.float32)
        noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2))
        noisy = np.clip(clean + noise, -1, 1)
        for cond, audio in (("clean", clean), ("white_0dB", noisy)):
            path = root / cond / f"{uid}__{cond}.wav"
            write_wav(path, audio)
            rows.append(_row(uid, cond, path, i))
    save_csv(root / "manifest.csv", rows, COLUMNS)
    return root / "manifest.csv"


def _extract(manifest, out, kind="mel", **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return extract_features(manifest, out, kind=kind, log=lambda s: None, **kw)


# --------------------------------------------------------------------------------------------------
# numbers
# --------------------------------------------------------------------------------------------------
def _segments_for_equality() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.stack([_signal(rng, 2.0) for _ in range(3)])
    x[1, 20000:] = 0.0  # zero padding, as in a short utterance
    x[2] *= 1e-3  # quiet
    return x


@pytest.mark.parametrize("kind", ["mel", "mfcc", "spectrogram"])
def test_numpy_path_equals_librosa(kind):
    params = make_params(kind)
    x = _segments_for_equality()
    ours = compute_features(x, params, SR)
    ref = np.stack([librosa_reference(s, params, SR) for s in x])
    assert ours.shape == (3, *SHAPES[kind]) and ours.dtype == np.float32
    assert_close(ours, ref, kind)


def test_reference_is_plain_librosa():
    """The reference itself is librosa's documented call with the published parameters."""
    x = _segments_for_equality()
    mel = compute_features(x, make_params("mel"), SR)
    direct = np.log10(np.maximum(librosa.feature.melspectrogram(y=x[0], sr=SR, n_fft=400, hop_length=160, n_mels=128), 1e-10))
    assert_close(mel[0], direct, "mel")
    mfcc = compute_features(x, make_params("mfcc"), SR)
    for i in range(3):  # librosa.feature.mfcc on each segment (top_db per segment)
        assert_close(mfcc[i], librosa.feature.mfcc(y=x[i], sr=SR, n_mfcc=26), "mfcc")
    # spectrogram = python_speech_features framesig(640, 160) + logpowspec(NFFT=3198), first 400 bins
    spec = compute_features(x[:1], make_params("spectrogram"), SR)[0]
    frames = np.stack([x[0, k * 160 : k * 160 + 640] for k in range(197)]).astype(np.float64)
    power = np.abs(np.fft.rfft(frames, 3198)) ** 2 / 3198
    lps = 10 * np.log10(np.maximum(power, 1e-10))
    assert_close(spec, (lps - lps.max()).T[:400], "spectrogram")
    # librosa's centred STFT gives 201 frames; the published 197 are its columns 2..198
    assert librosa.stft(x[0], n_fft=3198, win_length=640, hop_length=160).shape == (1600, 201)


@pytest.mark.parametrize("kind", ["mel", "mfcc", "spectrogram"])
def test_torch_path_equals_librosa_on_cpu(kind):
    params = make_params(kind)
    x = _segments_for_equality()
    ours = TorchFeatures(params, SR, device="cpu")(x)
    ref = np.stack([librosa_reference(s, params, SR) for s in x])
    assert_close(ours, ref, kind)


def test_torch_path_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine: the GPU path is verified on CPU by the test above")
    x = _segments_for_equality()
    for kind in SHAPES:
        params = make_params(kind)
        ref = np.stack([librosa_reference(s, params, SR) for s in x])
        assert_close(TorchFeatures(params, SR, device="cuda")(x), ref, kind)


def test_extract_with_torch_path_equals_numpy_store(corpus, tmp_path):
    """The GPU driver path (pool reads audio, main process computes batches with torch) on CPU."""
    _extract(corpus, tmp_path / "np", "mfcc", workers=2)
    _extract(corpus, tmp_path / "tc", "mfcc", workers=2, device="torch-cpu", batch_size=3)
    a, b = open_features(tmp_path / "np"), open_features(tmp_path / "tc")
    for cond in a.conditions:
        assert a.index(cond) == b.index(cond)
        assert_close(b.segments(cond), a.segments(cond), "mfcc")


# --------------------------------------------------------------------------------------------------
# segmenting
# --------------------------------------------------------------------------------------------------
def test_segment_rule():
    seg = SegmentParams()
    for uid, dur in DURATIONS.items():
        assert [s / SR for s in segment_starts(int(dur * SR), seg)] == EXPECTED_STARTS[uid]
    assert segment_starts(int(2.6 * SR), seg) == [0, int(0.6 * SR)]
    assert segment_starts(0, seg) == []
    assert segment_starts(8000, SegmentParams(short="drop")) == []
    # tail_min >= hop reproduces the original: regular segments only
    assert segment_starts(int(2.9 * SR), SegmentParams(tail_min_s=1.0)) == [0]


def test_valid_frames():
    T = {k: SHAPES[k][1] for k in SHAPES}
    assert valid_frames(make_params("mel"), 32000, T["mel"]) == 201
    assert valid_frames(make_params("mfcc"), 32000, T["mfcc"]) == 63
    assert valid_frames(make_params("spectrogram"), 32000, T["spectrogram"]) == 197
    assert valid_frames(make_params("mel"), 8000, T["mel"]) == 51
    assert valid_frames(make_params("mfcc"), 8000, T["mfcc"]) == 16
    assert valid_frames(make_params("spectrogram"), 8000, T["spectrogram"]) == 49  # centre k*160+320 <= 8000
    assert valid_frames(make_params("mel"), 1, T["mel"]) == 1


# --------------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mel", "mfcc", "spectrogram"])
def test_extract_store_matches_librosa(corpus, tmp_path, kind):
    summary = _extract(corpus, tmp_path / kind, kind, workers=2)
    store = open_features(tmp_path / kind)
    assert store.kind == kind and store.shape == SHAPES[kind]
    assert store.conditions == ["clean", "white_0dB"]
    assert store.params["shape"] == list(SHAPES[kind]) and store.params["segment_s"] == 2.0
    assert summary.n_segments == 2 * sum(len(v) for v in EXPECTED_STARTS.values())
    params = make_params(kind)
    manifest = {(r["id"], r["condition"]): r for r in read_csv(corpus)}
    for cond in store.conditions:
        x = store.segments(cond)
        assert isinstance(x, np.memmap) and x.dtype == np.float32
        index = store.index(cond)
        assert len(index) == x.shape[0] == 10
        assert [r["row"] for r in index] == list(range(10))
        assert set(index[0]) == {"row", "id", "condition", "session", "speaker", "gender", "improvised",
                                 "label", "class", "start_s", "valid_frames"}
        assert {r["label"] for r in index} == {"neu"}  # the raw label travels, for other class maps
        starts: dict[str, list[float]] = {}
        for r in index:
            starts.setdefault(r["id"], []).append(r["start_s"])
            m = manifest[(r["id"], cond)]
            assert (r["class"], r["speaker"], r["session"]) == (m["class"], m["speaker"], int(m["session"]))
        assert starts == EXPECTED_STARTS
        # every stored segment equals librosa on the same slice of the audio
        for r, feat in zip(index, x):
            audio = load_audio(manifest[(r["id"], cond)]["path"])
            s = int(round(r["start_s"] * SR))
            chunk = np.zeros(32000, np.float32)
            piece = audio[s : s + 32000]
            chunk[: len(piece)] = piece
            assert_close(feat, librosa_reference(chunk, params, SR), kind)


def test_short_utterance_padding(corpus, tmp_path):
    _extract(corpus, tmp_path / "mel")
    store = open_features(tmp_path / "mel")
    index = store.index("clean")
    x = store.segments("clean")
    by_id = {r["id"]: r for r in index}
    assert by_id["u05"]["valid_frames"] == 51  # 0.5 s: frames centred at 0..8000 samples
    assert by_id["u12"]["valid_frames"] == 121
    assert all(r["valid_frames"] == 201 for r in index if r["id"] not in ("u05", "u12"))
    pad = x[by_id["u05"]["row"]]
    np.testing.assert_allclose(pad[:, 55:], -10.0, atol=1e-5)  # zero padding -> log10 floor
    assert np.all(pad[:, :45] > -10.0)
    # the original's rule: short utterances dropped
    s = _extract(corpus, tmp_path / "drop", seg=SegmentParams(short="drop"))
    assert s.conditions[0].short_dropped == 2
    assert {r["id"] for r in open_features(tmp_path / "drop").index("clean")} == {"u20", "u27", "u33", "u45"}


def test_resume_and_recompute(corpus, tmp_path):
    out = tmp_path / "mel"
    first = _extract(corpus, out)
    assert [c.status for c in first.conditions] == ["computed", "computed"]
    mtime = (out / "clean.npy").stat().st_mtime_ns
    again = _extract(corpus, out)
    assert [c.status for c in again.conditions] == ["complete", "complete"]
    assert (out / "clean.npy").stat().st_mtime_ns == mtime
    # a deleted condition file is recomputed, the other condition is left alone
    (out / "white_0dB.npy").unlink()
    third = _extract(corpus, out)
    assert [(c.condition, c.status) for c in third.conditions] == [("clean", "complete"), ("white_0dB", "computed")]
    assert open_features(out).segments("white_0dB").shape == (10, 128, 201)
    # an index that no longer matches the array -> recomputed
    rows = read_csv(out / "clean.csv")
    save_csv(out / "clean.csv", rows[:-1], list(rows[0]))
    assert [c.status for c in _extract(corpus, out).conditions] == ["computed", "complete"]
    # a subset of conditions
    sub = _extract(corpus, out, conditions=["white_0dB"], overwrite=True)
    assert [(c.condition, c.status) for c in sub.conditions] == [("white_0dB", "computed")]
    # other settings in the same folder: a clear error, unless --overwrite
    with pytest.raises(LancetError, match=r"params\.json.*other settings \(differs: hop_s\)"):
        _extract(corpus, out, seg=SegmentParams(hop_s=0.5))
    _extract(corpus, out, seg=SegmentParams(hop_s=0.5), overwrite=True)
    assert json.loads((out / "params.json").read_text())["hop_s"] == 0.5


def test_changed_manifest_recomputes(corpus, tmp_path):
    out = tmp_path / "mel"
    _extract(corpus, out)
    rows = [r for r in read_csv(corpus) if r["id"] != "u45"]
    manifest = tmp_path / "manifest.csv"
    save_csv(manifest, rows, COLUMNS)
    again = _extract(manifest, out)
    assert [c.status for c in again.conditions] == ["computed", "computed"]
    assert open_features(out).segments("clean").shape[0] == 7


def test_interrupted_run_leaves_no_partial_file(corpus, tmp_path, monkeypatch):
    out = tmp_path / "mel"
    real = extract_mod.compute_features
    calls = {"n": 0}

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(extract_mod, "compute_features", failing)
    with pytest.raises(KeyboardInterrupt):
        _extract(corpus, out)
    assert sorted(p.name for p in out.iterdir()) == ["params.json"]  # no .npy, no temporary file
    assert open_features(out).conditions == []
    monkeypatch.setattr(extract_mod, "compute_features", real)
    assert [c.status for c in _extract(corpus, out).conditions] == ["computed", "computed"]


def test_float16(corpus, tmp_path):
    _extract(corpus, tmp_path / "f32", "mfcc")
    _extract(corpus, tmp_path / "f16", "mfcc", dtype="float16")
    a = open_features(tmp_path / "f32").segments("clean")
    b = open_features(tmp_path / "f16").segments("clean")
    assert b.dtype == np.float16 and b.shape == a.shape
    np.testing.assert_allclose(b.astype(np.float32), a, rtol=2e-3, atol=1e-2)


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------
def test_bad_manifests(corpus, tmp_path):
    rows = read_csv(corpus)
    with pytest.raises(LancetError, match="nope.csv: manifest not found"):
        _extract(tmp_path / "nope.csv", tmp_path / "o")
    bad = tmp_path / "cols.csv"
    save_csv(bad, rows, [c for c in COLUMNS if c not in ("condition", "class")])
    with pytest.raises(LancetError, match=r"cols\.csv: manifest lacks column\(s\) condition, class"):
        _extract(bad, tmp_path / "o")
    moved = tmp_path / "moved.csv"
    save_csv(moved, [dict(r, path="/nonexistent/" + Path(r["path"]).name) for r in rows], COLUMNS)
    with pytest.raises(LancetError, match=r"moved\.csv: none of its 12 audio paths exists"):
        _extract(moved, tmp_path / "o")
    with pytest.raises(LancetError, match="no condition.*babble_5dB"):
        _extract(corpus, tmp_path / "o", conditions=["babble_5dB"])
    with pytest.raises(LancetError, match="dtype"):
        _extract(corpus, tmp_path / "o", dtype="int8")


def test_unreadable_and_empty_audio_are_counted(corpus, tmp_path):
    rows = [r for r in read_csv(corpus) if r["condition"] == "clean"][:2]
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF this is not a wav file at all")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), SR, subtype="PCM_16")
    extra = [dict(rows[0], id="bad", path=str(garbage)), dict(rows[0], id="empty", path=str(empty)),
             dict(rows[0], id="gone", path=str(tmp_path / "gone.wav"))]
    manifest = tmp_path / "m.csv"
    save_csv(manifest, rows + extra, COLUMNS)
    lines: list[str] = []
    s = extract_features(manifest, tmp_path / "o", "mel", workers=2, progress=False, log=lines.append)
    assert s.skipped == {"unreadable": 1, "empty": 1, "missing": 1}
    assert s.conditions[0].n_utterances == 5
    assert {r["id"] for r in open_features(tmp_path / "o").index("clean")} == {"u05", "u12"}
    assert "1 empty, 1 missing, 1 unreadable" in lines[-1]
    rec = json.loads((tmp_path / "o" / "params.json").read_text())["conditions"]["clean"]
    assert {d["id"] for d in rec["skipped"]} == {"bad", "empty", "gone"}


def test_cpu_extraction_workers_never_import_torch(tmp_path):
    """The fork server of the CPU path imports WORKER_PRELOAD and the workers run the initializer: none of
    it may pull in torch (about a second and hundreds of MB per process, for nothing on the CPU path)."""
    (tmp_path / "probe.py").write_text("import sys\n\n\ndef torch_loaded(_):\n    return 'torch' in sys.modules\n")
    code = ("import probe\n"
            "from lancet.core.workers import imap\n"
            "from lancet.features.extract import WORKER_PRELOAD, _init_worker\n"
            "from lancet.features.params import SegmentParams, make_params\n"
            "args = (make_params('mel'), SegmentParams(), 'float32', 'features', True)\n"
            "print(list(imap(probe.torch_loaded, [0, 1], workers=2, initializer=_init_worker, initargs=args,\n"
            "                preload=WORKER_PRELOAD, progress=False)))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[False, False]"


def test_cli_scripts(corpus, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    script = REPO / "feature_extraction" / "extract_features_iemocap_mfcc.py"
    out = tmp_path / "mfcc"
    run = subprocess.run([sys.executable, str(script), "--manifest", str(corpus), "--out", str(out),
                          "--conditions", "clean", "--workers", "2", "--device", "cpu", "--no-progress",
                          "--n-mfcc", "20"], cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "clean: 6 utterances -> 10 segments" in run.stdout
    store = open_features(out)
    assert store.shape == (20, 63) and store.conditions == ["clean"]
    bad = subprocess.run([sys.executable, str(script), "--manifest", str(tmp_path / "missing.csv"), "--out",
                          str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.csv'}: manifest not found (run datasets/handleIEMOCAP.py first)"]
    from lancet.features.cli import build_parser

    for kind, flag in (("mel", "--n-mels"), ("spectrogram", "--n-bins")):
        text = build_parser(kind, "m.csv", "o").format_help()
        for f in ("--manifest", "--out", "--segment-s", "--hop-s", "--dtype", "--workers", "--device",
                  "--conditions", flag):
            assert f in text


def test_every_kind_has_its_script_and_default_shape():
    from lancet.features import FEATURE_SHAPES, KINDS, feature_shape

    assert list(FEATURE_SHAPES) == list(KINDS) and len(KINDS) >= 3
    for kind, entry in KINDS.items():
        assert entry.name == kind and entry.description
        assert f'KIND = "{kind}"' in (REPO / "feature_extraction" / entry.script).read_text()
        assert FEATURE_SHAPES[kind] == entry.shape == feature_shape(make_params(kind), SegmentParams())
    # the spectral kinds per 2 s segment; ssl's nominal (layers, hidden) of a base upstream, per utterance
    assert dict(FEATURE_SHAPES) == {**SHAPES, "ssl": (13, 768)}
    assert [k for k, entry in KINDS.items() if not entry.frames_axis] == ["ssl"]


def test_a_registered_kind_is_seen_everywhere(monkeypatch):
    """One entry (plus its parameters) makes a kind: params, flags, shapes, rebuild command, --features."""

    from lancet.features import FEATURE_SHAPES, KINDS, FeatureKind, MelParams
    from lancet.features.cli import build_parser
    from lancet.features.store import rebuild_command
    from lancet.training.config import TrainConfig, check_fields

    @dataclasses.dataclass(frozen=True)
    class Mel64Params(MelParams):
        n_mels: int = dataclasses.field(default=64, metadata={"help": "number of Mel bands"})
        kind = "mel64"

    monkeypatch.setitem(KINDS, "mel64", FeatureKind(Mel64Params, "extract_mel64.py", "log10 Mel, 64 bands"))
    params = make_params("mel64", hop_length=320)
    assert params.n_mels == 64 and FEATURE_SHAPES["mel64"] == (64, 201) and "mel64" in list(FEATURE_SHAPES)
    assert compute_features(np.zeros((1, 32000), np.float32), params, SR).shape == (1, 64, 101)
    text = build_parser("mel64", "m.csv", "o").format_help()
    assert "log10 Mel, 64 bands" in text and "--n-mels" in text
    record = {"kind": "mel64", "params": dataclasses.asdict(params), "manifest": "m.csv"}
    assert rebuild_command("out", record, "clean") == ("python feature_extraction/extract_mel64.py --manifest m.csv "
                                                       "--out out --conditions clean --hop-length 320")
    check_fields(TrainConfig(features="mel64"))


# --------------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------------
def test_norm_stats():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((50, 4, 30)) * np.array([1, 2, 3, 0])[None, :, None]
         + np.array([0, 5, -5, 7])[None, :, None]).astype(np.float32)
    mean, std = compute_norm_stats(x, chunk=7)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)), atol=1e-5)
    np.testing.assert_allclose(std[:3], x.std(axis=(0, 2))[:3], rtol=1e-5)
    assert std[3] == np.float32(1e-5)  # floored
    z = normalise(x, mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, :3].mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, :3].std(axis=(0, 2)), 1, atol=1e-4)
    # only the valid frames of padded segments count
    valid = np.full(50, 30)
    valid[0] = 10
    y = x.copy()
    y[0, :, 10:] = 1000.0
    m2, _ = compute_norm_stats(y, valid_frames=valid)
    keep = np.concatenate([y[0, :, :10], y[1:].transpose(1, 0, 2).reshape(4, -1)], axis=1)
    np.testing.assert_allclose(m2, keep.mean(axis=1), atol=1e-4)


# --------------------------------------------------------------------------------------------------
# real speech
# --------------------------------------------------------------------------------------------------
def test_real_speech_emodb(tmp_path):
    wavs = sorted((SHARED / "data" / "emodb" / "wav").glob("*.wav"))[:4]
    if not wavs:
        pytest.skip(f"no EmoDB wavs under {SHARED / 'data' / 'emodb' / 'wav'} (../shared absent)")
    rows = [dict(_row(p.stem, "clean", p, i), label="", **{"class": "neutral"}) for i, p in enumerate(wavs)]
    manifest = tmp_path / "m.csv"
    save_csv(manifest, rows, COLUMNS)
    _extract(manifest, tmp_path / "mel", workers=2)
    store = open_features(tmp_path / "mel")
    x, index = store.segments("clean"), store.index("clean")
    params = make_params("mel")
    n_expected = 0
    for p in wavs:
        audio = load_audio(p)  # 22,050 Hz resampled to 16 kHz
        n_expected += len(segment_starts(len(audio), SegmentParams()))
    assert len(index) == n_expected
    for r in index[:: max(1, len(index) // 5)]:
        audio = load_audio(wavs[[w.stem for w in wavs].index(r["id"])])
        s = int(round(r["start_s"] * SR))
        chunk = np.zeros(32000, np.float32)
        chunk[: len(audio[s : s + 32000])] = audio[s : s + 32000]
        assert_close(x[r["row"]], librosa_reference(chunk, params, SR), "mel")
