"""Noise augmentation: exact SNRs, determinism, resume, babble, silence, clipping, reverberation."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.audio import write_wav
from lancet.core.manifest import Utterance, read_manifest, write_manifest
from lancet.core.errors import LancetError
from lancet.noise import babble, mixing, reverb, sources
from lancet.noise.augment import AugmentConfig, augment
from lancet.noise.augment_worker import task_rng

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "datasets" / "augment_IEMOCAP.py"
SHARED = ROOT.parent / "shared" / "data" / "noise"
SR = 16000
SNRS = (-5, 0, 5, 10, 15, 20)


def voice(rng: np.random.Generator, seconds: float, level: float = 0.1) -> np.ndarray:
    """A short voiced-sounding signal with pauses (so silence is part of the utterance)."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 220)
    x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
    env = (np.sin(2 * np.pi * rng.uniform(2, 4) * t) > -0.3).astype(float)
    x = x * env + 0.05 * rng.standard_normal(n)
    return (level * x / np.max(np.abs(x))).astype(np.float32)


def make_corpus(root: Path, speakers=("Ses01F", "Ses01M", "Ses02F", "Ses02M"), per_speaker: int = 2,
                seconds: float = 0.6, silent: tuple[str, ...] = (), level: float = 0.3,
                manifest_name: str = "manifest.csv") -> Path:
    """A tiny corpus in the IEMOCAP release layout, with label files and a manifest; returns the manifest."""
    utts = []
    lines: dict[tuple[int, str], list[str]] = {}
    for spk in speakers:
        session, gender = int(spk[3:5]), spk[-1]
        for k in range(per_speaker):
            dialog = f"Ses{session:02d}F_impro0{k % 2 + 1}"
            uid = f"{dialog}_{gender}{k:03d}"
            rng = np.random.default_rng([session, ord(gender), k])
            audio = np.zeros(int(seconds * SR), np.float32) if uid in silent else voice(rng, seconds, level)
            wav = root / f"Session{session}" / "sentences" / "wav" / dialog / f"{uid}.wav"
            write_wav(wav, audio)
            lines.setdefault((session, dialog), []).append(f"[0.0000 - {seconds:.4f}]\t{uid}\tneu\t[2.5, 2.5, 2.5]")
            utts.append(Utterance(uid, str(wav), session, f"Ses{session:02d}{gender}", gender, True, "neu",
                                  "neutral", seconds, SR))
    for (session, dialog), ls in lines.items():
        p = root / f"Session{session}" / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n".join(ls) + "\n")
    manifest = root.parent / manifest_name
    write_manifest(manifest, utts)
    return manifest


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def config(out: Path, **kw) -> AugmentConfig:
    base = dict(out=out, snrs=SNRS, reverb=False, shared_noise_dir=None, workers=1, progress=False)
    base.update(kw)
    return AugmentConfig(**base)


def quiet(*_a, **_k):
    pass


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "IEMOCAP")


# ------------------------------------------------------------------------------------------------ mixing

def test_mix_at_snr_exact_in_float():
    rng = np.random.default_rng(0)
    s, n = voice(rng, 1.0), rng.standard_normal(SR).astype(np.float32)
    for snr in SNRS:
        m, g = mixing.mix_at_snr(s, n, snr)
        assert g == 1.0
        assert abs(mixing.measure_snr(s, m) - snr) < 1e-4


def test_loop_crossfade_keeps_length_and_level():
    rng = np.random.default_rng(1)
    short = rng.standard_normal(3000).astype(np.float32)
    seg, off = mixing.noise_segment(short, 20000, rng, crossfade=400)
    assert seg.shape == (20000,) and 0 <= off < 3000
    # the power of every 1000-sample block stays close to 1: no gap or bump at the joins
    blocks = seg[: 20000 // 1000 * 1000].reshape(-1, 1000)
    assert np.all(np.abs(10 * np.log10(np.mean(blocks ** 2, axis=1))) < 1.5)
    looped = mixing.loop_to_length(short, 10000, 400)
    assert looped.size >= 10000 and np.array_equal(looped[400:3000 - 400], short[400:-400])


def test_silent_signals_raise_not_nan():
    with pytest.raises(mixing.SilentSignalError):
        mixing.mix_at_snr(np.zeros(100), np.ones(100), 0)
    with pytest.raises(mixing.SilentSignalError):
        mixing.mix_at_snr(np.ones(100) * 0.1, np.zeros(100), 0)


def test_clipping_is_scaled_not_clipped():
    rng = np.random.default_rng(2)
    s = voice(rng, 1.0, level=0.99)
    m, g = mixing.mix_at_snr(s, rng.standard_normal(SR), -5)
    assert g < 1.0
    assert np.max(np.abs(m)) <= mixing.PEAK_LIMIT + 1e-7
    assert abs(mixing.measure_snr(g * s.astype(np.float64), m) - (-5)) < 1e-3


# ------------------------------------------------------------------------------------------------ driver

def test_snr_measured_back_each_type_and_level(corpus, tmp_path):
    out = tmp_path / "aug"
    summary = augment(read_manifest(corpus), config(out), log=quiet)
    rows = rows_of(out / "augmented_manifest.csv")
    utts = {u.id: u for u in read_manifest(corpus)}
    assert summary.written == len(rows) == len(utts) * 4 * len(SNRS)
    seen = set()
    for r in rows:
        # measured independently on the written 16-bit file: (mixture - gain*speech) vs gain*speech
        mixture, sr = sf.read(r["path"], dtype="float64")
        speech, _ = sf.read(utts[r["id"]].path, dtype="float64")
        g = float(r["gain"])
        measured = mixing.measure_snr(g * speech, mixture)
        assert sr == SR and abs(measured - float(r["snr_db"])) < 0.1, r
        assert abs(float(r["snr_measured_db"]) - measured) < 1e-3
        seen.add((r["noise_type"], int(r["snr_db"])))
    assert seen == {(nt, s) for nt in sources.NOISE_TYPES for s in SNRS}
    noise_files = {r["noise_type"]: r["noise_file"] for r in rows}
    assert noise_files["white"] == "generated:white"
    assert noise_files["music"] == "generated:music" and noise_files["ambient"] == "generated:pink"
    assert noise_files["babble"].startswith("babble:")
    # layout and label files
    r0 = rows[0]
    assert Path(r0["path"]).relative_to(out).parts[:2] == (r0["noise_type"], r0["snr_db"])
    assert (out / "white" / "-5" / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt").is_file()


def test_float_subtype_exact(corpus, tmp_path):
    out = tmp_path / "aug"
    augment(read_manifest(corpus), config(out, noise_types=["white"], snrs=[20], subtype="FLOAT"), log=quiet)
    for r in rows_of(out / "augmented_manifest.csv"):
        assert abs(float(r["snr_measured_db"]) - 20) < 1e-3


def test_deterministic_for_a_seed_and_worker_count(corpus, tmp_path):
    utts = read_manifest(corpus)
    kw = dict(noise_types=["babble", "white", "ambient"], snrs=[0, 10], reverb=True, rooms=["lecture"],
              rirs_per_room=2)
    augment(utts, config(tmp_path / "a", workers=1, **kw), log=quiet)
    augment(utts, config(tmp_path / "b", workers=2, **kw), log=quiet)
    augment(utts, config(tmp_path / "c", workers=1, seed=1, **kw), log=quiet)
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    strip = lambda t, x: {k: v.replace(str(tmp_path / x).encode(), b"") for k, v in t.items()}  # noqa: E731
    assert strip(a, "a") == strip(b, "b")
    wavs = [k for k in a if k.endswith(".wav")]
    # another seed: other noise (babble here uses every other utterance, all as long as the target, so
    # only white and ambient are sure to change)
    assert all(a[k] != c[k] for k in wavs if k.startswith(("white/", "ambient/")))
    # the per-file generator depends only on (seed, id, kind)
    assert task_rng(0, "x", "white:white").integers(1 << 30) == task_rng(0, "x", "white:white").integers(1 << 30)


def test_babble_excludes_target_speaker(corpus, tmp_path):
    by = {"A": ["a1", "a2"], "B": ["b1"], "C": ["c1", "c2"]}
    for seed in range(50):
        picks = babble.pick_talkers("A", by, 6, np.random.default_rng(seed))
        assert len(picks) == 6 and not any(p.startswith("a") for p in picks)
        assert set(picks[:2]) and len({p[0] for p in picks[:2]}) == 2  # distinct speakers first
    utts = read_manifest(corpus)
    out = tmp_path / "aug"
    augment(utts, config(out, noise_types=["babble"], snrs=[0]), log=quiet)
    speaker = {u.id: u.speaker for u in utts}
    rows = rows_of(out / "augmented_manifest.csv")
    assert len(rows) == len(utts)
    for r in rows:
        talkers = r["noise_file"].removeprefix("babble:").split("+")
        assert len(talkers) == 6 and all(speaker[t] != r["speaker"] for t in talkers)


def test_silent_speech_and_silent_noise_skipped_and_counted(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", silent=("Ses01F_impro01_F000",))
    utts = read_manifest(manifest)
    messages = []
    s = augment(utts, config(tmp_path / "a", noise_types=["white"], snrs=[0, 10]), log=messages.append)
    assert s.skipped == {"silent speech": 2}
    assert any("skipped 2 file(s)" in m for m in messages)
    rows = rows_of(tmp_path / "a" / "augmented_manifest.csv")
    assert len(rows) == 2 * (len(utts) - 1)
    assert all(np.isfinite(float(r["snr_measured_db"])) for r in rows)
    assert not any(p.name.startswith("Ses01F_impro01_F000") for p in (tmp_path / "a").rglob("*.wav"))
    noise_dir = tmp_path / "noise"
    write_wav(noise_dir / "ambient" / "silence.wav", np.zeros(SR // 2, np.float32))
    s = augment(utts, config(tmp_path / "b", noise_types=["ambient"], snrs=[5], noise_dir=noise_dir), log=quiet)
    assert s.skipped == {"silent speech": 1, "silent noise": len(utts) - 1} and s.written == 0


def test_loud_speech_scaled_not_clipped_in_files(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", level=0.98, speakers=("Ses01F", "Ses01M"), per_speaker=1)
    out = tmp_path / "aug"
    augment(read_manifest(manifest), config(out, noise_types=["white"], snrs=[-5]), log=quiet)
    for r in rows_of(out / "augmented_manifest.csv"):
        x, _ = sf.read(r["path"], dtype="float64")
        assert float(r["gain"]) < 1.0
        assert np.max(np.abs(x)) <= mixing.PEAK_LIMIT
        assert abs(float(r["snr_measured_db"]) + 5) < 0.1


def test_reverberation_level_matches_clean(corpus, tmp_path):
    room = reverb.simulated_rooms(["hall"], seed=0, n_rirs=1)[0]
    rng = np.random.default_rng(3)
    s = voice(rng, 1.0, level=0.2)
    wet, g = reverb.reverberate(s, room.rirs[0])
    assert g == 1.0 and wet.size == s.size
    assert abs(10 * np.log10(mixing.power(wet) / mixing.power(s))) < 1e-3
    loud, g = reverb.reverberate(voice(rng, 1.0, level=0.999), room.rirs[0])
    assert np.max(np.abs(loud)) <= mixing.PEAK_LIMIT + 1e-7
    out = tmp_path / "aug"
    augment(read_manifest(corpus), config(out, noise_types=[], reverb=True, rirs_per_room=2), log=quiet)
    rows = rows_of(out / "augmented_manifest.csv")
    assert {r["condition"] for r in rows} == {"reverberation_hall", "reverberation_lecture"}
    utts = {u.id: u for u in read_manifest(corpus)}
    for r in rows:
        x, _ = sf.read(r["path"], dtype="float64")
        clean, _ = sf.read(utts[r["id"]].path, dtype="float64")
        assert x.size == clean.size
        assert abs(10 * np.log10(mixing.power(x) / mixing.power(clean))) < 0.1
        assert Path(r["path"]).relative_to(out).parts[:2] == ("reverberation", r["condition"].split("_", 1)[1])


def test_rooms_from_rir_dir(tmp_path):
    rir = np.zeros(800, np.float32)
    rir[10], rir[300] = 1.0, 0.3
    write_wav(tmp_path / "rirs" / "a.wav", rir * 0.9)
    write_wav(tmp_path / "rirs" / "church" / "x.wav", rir * 0.5)
    rooms = reverb.rooms_from_dir(tmp_path / "rirs", lambda p: sf.read(p, dtype="float32")[0])
    assert [r.name for r in rooms] == ["rirs", "church"]


def test_changed_seed_on_existing_output_is_an_error(corpus, tmp_path):
    utts = read_manifest(corpus)
    augment(utts, config(tmp_path / "a", noise_types=["white"], snrs=[0]), log=quiet)
    with pytest.raises(LancetError, match="seed"):
        augment(utts, config(tmp_path / "a", noise_types=["white"], snrs=[0], seed=5), log=quiet)


@pytest.mark.skipif(not (SHARED / "music").is_dir() or not (SHARED / "ambient").is_dir(),
                    reason="shared real noise (../shared/data/noise) not present")
def test_real_shared_noise_with_8khz_music(corpus, tmp_path):
    chosen = sources.resolve_sources(["music", "ambient"], None, sources.SHARED_NOISE_DIR, log=quiet)
    assert all(chosen[n].kind == "files" for n in ("music", "ambient"))
    # a small stand-in of the shared folder (links, not copies) so the test stays fast
    shared = tmp_path / "shared"
    (shared / "music").mkdir(parents=True)
    (shared / "ambient").mkdir()
    music = sorted((SHARED / "music").glob("*.wav"))[0]
    assert sf.info(str(music)).samplerate == 8000
    (shared / "music" / music.name).symlink_to(music)
    for p in sorted((SHARED / "ambient").glob("street_*.wav"))[:2]:
        (shared / "ambient" / p.name).symlink_to(p)
    out = tmp_path / "aug"
    augment(read_manifest(corpus), config(out, noise_types=["music", "ambient"], shared_noise_dir=shared), log=quiet)
    rows = rows_of(out / "augmented_manifest.csv")
    assert {Path(r["noise_file"]).parent.name for r in rows} == {"music", "ambient"}
    for r in rows:
        assert abs(float(r["snr_measured_db"]) - float(r["snr_db"])) < 0.1
        assert sf.info(r["path"]).samplerate == SR


# ------------------------------------------------------------------------------------------------ script

def _run_script(manifest: Path, out: Path, extra=()) -> subprocess.Popen:
    cmd = [sys.executable, str(SCRIPT), "--manifest", str(manifest), "--out", str(out), "--workers", "2",
           "--no-progress", "--noise-types", "babble", "ambient", "white", "--rooms", "lecture",
           "--rirs-per-room", "2", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def test_resume_after_kill_gives_identical_output(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", per_speaker=6, seconds=1.0)
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    p = _run_script(manifest, full)
    assert p.wait(timeout=120) == 0, p.stdout.read().decode()
    total = len(list(full.rglob("*.wav")))
    proc = _run_script(manifest, resumed)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(resumed.rglob("*.wav"))) < total // 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run, workers included, as a power cut would
    proc.wait()
    assert not (resumed / "augmented_manifest.csv").exists(), "run finished before it could be interrupted"
    partial = len([p for p in resumed.rglob("*.wav") if not p.name.startswith(".")])
    assert 0 < partial < total
    rerun = _run_script(manifest, resumed)
    log = rerun.communicate(timeout=120)[0].decode()
    assert rerun.returncode == 0, log
    assert "resuming" in log or "already there" in log
    a, b = tree_bytes(full), tree_bytes(resumed)
    assert sorted(a) == sorted(b)  # no extra, missing, temporary or journal files
    assert not any(Path(k).name.startswith(".") for k in b)
    for k in a:
        if k.endswith(".wav") or k.endswith(".txt"):
            assert a[k] == b[k], k
    assert a["augmented_manifest.csv"].replace(str(full).encode(), b"") == \
        b["augmented_manifest.csv"].replace(str(resumed).encode(), b"")


def test_script_help_lists_flags():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0
    for flag in ("--manifest", "--iemocap-dir", "--out", "--snrs", "--noise-types", "--noise-dir",
                 "--babble-speakers", "--rir-dir", "--no-reverb", "--workers", "--seed"):
        assert flag in r.stdout


def test_missing_manifest_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--manifest", str(tmp_path / "none.csv"), "--out",
                        str(tmp_path / "o")], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_noise_dir_layouts_ours_and_musan(tmp_path):
    tone = (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    for sub in ("speech/us-gov", "music/fma", "noise/free-sound"):
        (tmp_path / "musan" / sub).mkdir(parents=True)
        sf.write(str(tmp_path / "musan" / sub / "a.wav"), tone, 8000)
    chosen = sources.resolve_sources(sources.NOISE_TYPES, tmp_path / "musan", None, log=quiet)
    assert [chosen[n].kind for n in sources.NOISE_TYPES] == ["talkers", "files", "files", "generated"]
    (tmp_path / "ours" / "babble").mkdir(parents=True)
    sf.write(str(tmp_path / "ours" / "babble" / "b.wav"), tone, 22050)
    messages = []
    chosen = sources.resolve_sources(["babble", "music"], tmp_path / "ours", None, log=messages.append)
    assert chosen["babble"].kind == "files" and chosen["music"].generator == "music"
    assert any("GENERATED stand-in" in m for m in messages)


def test_leftovers_of_a_kill_are_cleaned(corpus, tmp_path):
    out = tmp_path / "aug"
    utts = read_manifest(corpus)
    augment(utts, config(out, noise_types=["white"], snrs=[0]), log=quiet)
    reference = tree_bytes(out)
    victim = next(out.rglob("*.wav"))
    victim.unlink()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a writer that is gone (pid 999 may be alive)
    dead.wait()
    (victim.parent / f".{victim.stem}.tmp{dead.pid}.wav").write_bytes(b"RIFF half")
    (out / ".augment_journal.jsonl").write_text('{"path": "/cut sh')
    (out / "augmented_manifest.csv").unlink()
    s = augment(utts, config(out, noise_types=["white"], snrs=[0]), log=quiet)
    assert s.written == 1 and s.existing == len(utts) - 1
    assert tree_bytes(out) == reference
