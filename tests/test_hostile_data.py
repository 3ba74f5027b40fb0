"""Hostile input, data side: traversal ids, bad numbers, corrupted stores, concurrent runs,
BOMs, truncated wavs, read-only folders and full disks. Every case here went wrong on the earlier code."""

from __future__ import annotations

import errno
import json
import os
import runpy
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lancet.core.atomic import read_csv, remove_stale_temporaries, save_csv, save_json
from lancet.core.audio import AudioError, audio_info, load_audio, write_wav
from lancet.core.manifest import read_manifest
from lancet.corpora.iemocap import parse_emo_evaluation, scan_iemocap as scan_corpus
from lancet.core.errors import LancetError
from lancet.features import open_features
from lancet.features.extract import extract_features
from lancet.features.store import PARAMS_FILE, verify_condition
from lancet.core.locking import LOCK_NAME, output_lock, read_lock
from lancet.noise.augment import AugmentConfig, augment
from lancet.noise.sources import resolve_sources
from lancet.core.paths import inside
from lancet.corpora.standard_names import COLUMNS, describe_noise_sources, standardise
from test_augment import make_corpus, rows_of

ROOT = Path(__file__).resolve().parents[1]
PREPARE = ROOT / "datasets" / "prepare_IEMOCAP.py"
AUGMENT = ROOT / "datasets" / "augment_IEMOCAP.py"
HANDLE = ROOT / "datasets" / "handleIEMOCAP.py"
MEL = ROOT / "feature_extraction" / "extract_features_iemocap_mel_spectrogram.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
SR = 16000


def quiet(*_a, **_k):
    pass


def files_under(folder: Path, skip: tuple[Path, ...] = ()) -> dict[str, bytes]:
    """Every file under ``folder`` (outside the ``skip`` folders) with its bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not any(p == s or s in p.parents for s in skip):
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def script(path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(path), *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def one_line_error(r: subprocess.CompletedProcess, code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ 1 traversal
TRAVERSAL_ID = "Ses01F_trav_F/" + "../" * 6 + "victim/victim"


@pytest.fixture()
def hostile(tmp_path):
    """A tiny release whose label file carries the issue's traversal line, and a victim wav outside it."""
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=2, seconds=0.5)
    label = tmp_path / "IEMOCAP" / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    label.write_text(label.read_text() + f"[1.0 - 2.0]\t{TRAVERSAL_ID}\tneu\t[2.5, 2.5, 2.5]\n")
    (tmp_path / "IEMOCAP" / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_trav_F").mkdir()
    victim = tmp_path / "victim" / "victim.wav"
    write_wav(victim, (0.2 * np.sin(np.arange(SR) / 7.0)).astype(np.float32))
    # the traversal really leads to the victim (so the old code did read and overwrite it)
    wav = label.parents[2] / "sentences" / "wav" / "Ses01F_impro01" / f"{TRAVERSAL_ID}.wav"
    assert wav.resolve() == victim.resolve()
    return {"root": tmp_path, "manifest": manifest, "label": label, "victim": victim}


def test_traversal_label_line_is_reported_skipped_and_counted(hostile):
    scan = scan_corpus(hostile["root"] / "IEMOCAP")
    assert all("victim" not in u.path and "trav" not in u.id for u in scan.utterances)
    assert len(scan.utterances) == 4 and scan.skipped == {"bad utterance id": 1}
    assert f"{hostile['label']}:3: utterance id" in scan.warnings[0]
    with pytest.raises(LancetError, match=r"Ses01F_impro01\.txt:3: utterance id .* not an IEMOCAP id"):
        parse_emo_evaluation(hostile["label"])


def test_traversal_through_all_three_scripts_writes_nothing_outside(hostile):
    root, victim = hostile["root"], hostile["victim"]
    outputs = (root / "manifest_prepared.csv", root / "aug", root / "std", root / "feat", root / "evil.csv")
    before = files_under(root, skip=outputs)
    r = script(PREPARE, "--iemocap-dir", root / "IEMOCAP", "--manifest", root / "manifest_prepared.csv",
               "--converted-dir", root / "conv")
    assert r.returncode == 0, r.stderr
    assert "bad utterance id 1" in r.stdout and "Ses01F_impro01.txt:3" in r.stdout
    assert all("victim" not in u.path for u in read_manifest(root / "manifest_prepared.csv"))

    # A hand-edited manifest with the traversal id: refused with the manifest's line, before any write.
    rows = read_csv(hostile["manifest"])
    evil = dict(rows[0], id=TRAVERSAL_ID, path=str(victim))
    save_csv(root / "evil.csv", rows + [evil], list(rows[0]))
    err = one_line_error(script(AUGMENT, "--manifest", root / "evil.csv", "--out", root / "aug", "--workers", "1",
                                "--no-progress", "--no-reverb", "--noise-types", "white", "--snrs", "0"))
    assert "evil.csv:6" in err and "unsafe utterance id" in err
    err = one_line_error(script(HANDLE, "--manifest", root / "evil.csv", "--clean-only", "--out", root / "std"))
    assert "evil.csv:6" in err

    # An augmented manifest whose condition climbs out of --out: refused, nothing placed outside.
    cfg = AugmentConfig(out=root / "aug", snrs=[0], noise_types=["white"], reverb=False, shared_noise_dir=None,
                        workers=1, progress=False)
    augment(read_manifest(hostile["manifest"]), cfg, log=quiet)
    aug_rows = read_csv(root / "aug" / "augmented_manifest.csv")
    aug_rows[0]["condition"] = "../../victim"
    save_csv(root / "aug" / "augmented_manifest.csv", aug_rows, list(aug_rows[0]))
    err = one_line_error(script(HANDLE, "--manifest", hostile["manifest"], "--augmented-dir", root / "aug",
                                "--out", root / "std"))
    assert "augmented_manifest.csv:2" in err and "unsafe condition" in err

    # A combined manifest whose condition climbs out of the features folder.
    standardise(hostile["manifest"], None, root / "std", log=quiet)
    std_rows = read_csv(root / "std" / "manifest.csv")
    std_rows[0]["condition"] = "../victim/victim"
    save_csv(root / "std" / "evil.csv", std_rows, COLUMNS)
    err = one_line_error(script(MEL, "--manifest", root / "std" / "evil.csv", "--out", root / "feat" / "mel",
                                "--workers", "1", "--no-progress", "--device", "cpu"))
    assert "evil.csv:2" in err and "unsafe condition" in err

    assert files_under(root, skip=outputs + (root / "conv",)) == before  # the victim and everything else unchanged
    assert not (root / "victim" / "victim.npy").exists()


def test_inside_refuses_symlinked_escape(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)
    with pytest.raises(LancetError, match="outside the output folder"):
        inside(tmp_path / "out", tmp_path / "out" / "link" / "x.wav")
    assert inside(tmp_path / "out", tmp_path / "out" / "a" / "b.wav") == tmp_path / "out" / "a" / "b.wav"


# ------------------------------------------------------------------------------------------ 2 numbers
@pytest.mark.parametrize("snr", [float("nan"), float("inf"), float("-inf"), 1e308, 1000.0, -1000.0])
def test_bad_snrs_refused_before_anything_is_written(tmp_path, snr):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=1, seconds=0.3)
    cfg = AugmentConfig(out=tmp_path / "aug", snrs=[0, snr], noise_types=["white"], reverb=False,
                        shared_noise_dir=None, workers=1, progress=False)
    with pytest.raises(LancetError, match="--snrs"):
        augment(read_manifest(manifest), cfg, log=quiet)
    assert not (tmp_path / "aug").exists()


def test_bad_numbers_are_one_line_errors_in_the_scripts(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=1, seconds=0.3)
    err = one_line_error(script(AUGMENT, "--manifest", manifest, "--out", tmp_path / "aug", "--snrs", "nan"))
    assert "--snrs: nan is not a finite number" in err
    err = one_line_error(script(AUGMENT, "--manifest", manifest, "--out", tmp_path / "aug", "--rirs-per-room", "0"))
    assert "--rirs-per-room" in err
    err = one_line_error(script(MEL, "--manifest", manifest, "--out", tmp_path / "f", "--hop-s", "nan"))
    assert "--hop-s" in err
    err = one_line_error(script(MEL, "--manifest", manifest, "--out", tmp_path / "f", "--fmax", "inf"))
    assert "--fmax" in err
    assert not (tmp_path / "aug").exists() and not (tmp_path / "f").exists()


def test_json_configs_never_hold_nan(tmp_path):
    with pytest.raises(ValueError, match=r"c\.json: refusing to write a non-finite number"):
        save_json(tmp_path / "c.json", {"snrs": [float("nan")]}, allow_nan=False)
    assert not (tmp_path / "c.json").exists()


# ------------------------------------------------------------------------------------------ 3 checksums
@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # verified-file markers of this test only
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=2, seconds=2.5)
    standardise(manifest, None, tmp_path / "std", log=quiet)
    out = tmp_path / "feat" / "mfcc"
    extract_features(tmp_path / "std" / "manifest.csv", out, kind="mfcc", workers=1, progress=False, log=quiet)
    return out


def test_changed_feature_array_is_caught_at_open_and_by_extraction(store):
    npy = store / "clean.npy"
    data = bytearray(npy.read_bytes())
    data[-64:] = np.full(16, np.nan, np.float32).tobytes()  # same size, in place: as the issue did
    npy.write_bytes(bytes(data))
    with pytest.raises(LancetError) as info:
        open_features(store).segments("clean")
    msg = str(info.value)
    assert "\n" not in msg and f"{npy}: checksum mismatch" in msg
    assert "extract_features_iemocap_mfcc.py" in msg and f"--out {store}" in msg and "--conditions clean" in msg
    logs = []
    extract_features(store.parents[1] / "std" / "manifest.csv", store, kind="mfcc", workers=1, progress=False,
                     log=logs.append)
    assert any("clean: recomputing" in m and "checksum" in m for m in logs), logs
    assert np.isfinite(open_features(store).segments("clean")).all()


def test_a_verified_file_is_hashed_once_until_it_changes(store, monkeypatch):
    import lancet.features.store as store_mod

    record = json.loads((store / PARAMS_FILE).read_text())
    open_features(store).segments("clean")  # verified (hashed) once
    store_mod._VERIFIED.clear()  # as in a new process: only the marker under XDG_CACHE_HOME remains
    assert list((store.parents[1] / "cache" / "lancet" / "verified").rglob("*"))

    def no_hashing(path):
        raise AssertionError(f"hashed {path} again")

    monkeypatch.setattr(store_mod, "file_checksum", no_hashing)
    assert verify_condition(store, record, "clean") == record["conditions"]["clean"]["checksum"]
    npy = store / "clean.npy"
    npy.write_bytes(npy.read_bytes())  # same bytes, but written: its ctime changed, so it is checked again
    with pytest.raises(AssertionError, match="hashed"):
        verify_condition(store, record, "clean")


def test_truncated_feature_array_names_the_file(store):
    npy = store / "clean.npy"
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    with pytest.raises(LancetError, match=rf"{npy}: truncated: .* rebuild it: python feature_extraction/"):
        open_features(store).segments("clean")


def test_store_without_checksums_is_unverified_then_recorded_once(store, capsys):
    record = json.loads((store / PARAMS_FILE).read_text())
    recorded = record["conditions"]["clean"].pop("checksum")
    assert recorded.startswith("sha256:")
    save_json(store / PARAMS_FILE, record)
    assert verify_condition(store, record, "clean") is None
    assert "no checksum recorded" in capsys.readouterr().err
    extract_features(store.parents[1] / "std" / "manifest.csv", store, kind="mfcc", workers=1, progress=False,
                     log=quiet)
    assert json.loads((store / PARAMS_FILE).read_text())["conditions"]["clean"]["checksum"] == recorded


def test_killed_extraction_leftovers_removed_but_not_a_live_runs(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = store / f".clean.tmp{dead.pid}.npy"
    live = store / f".clean.tmp{os.getpid()}.npy"
    stale.write_bytes(b"half")
    live.write_bytes(b"in flight")
    extract_features(store.parents[1] / "std" / "manifest.csv", store, kind="mfcc", workers=1, progress=False,
                     log=quiet)
    assert not stale.exists() and live.exists()
    live.unlink()


# ------------------------------------------------------------------------------------------ 4 locks
def test_lock_names_its_holder_and_stale_locks_are_taken_over(tmp_path):
    with output_lock(tmp_path / "out"):
        info = read_lock(tmp_path / "out")
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(LancetError, match=rf"another run is writing this folder: pid {os.getpid()} "):
            with output_lock(tmp_path / "out"):
                pass
    assert not (tmp_path / "out").exists()  # made by the lock, empty: removed with it
    (tmp_path / "out").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "out" / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                          "started": time.time() - 60}))
    notes = []
    with output_lock(tmp_path / "out", log=notes.append):
        assert read_lock(tmp_path / "out")["pid"] == os.getpid()
    assert notes and "taking over" in notes[0]


def test_concurrent_augment_runs_refused_or_merged(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", per_speaker=2, seconds=0.5)
    out = tmp_path / "aug"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from lancet.core.locking import output_lock\n"
                               f"with output_lock({str(out)!r}):\n print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        common = ("--manifest", manifest, "--out", out, "--workers", "1", "--no-progress", "--no-reverb",
                  "--noise-types", "white")
        err = one_line_error(script(AUGMENT, *common, "--snrs", "0"))
        assert f"pid {holder.pid} on {socket.gethostname()}" in err
    finally:
        holder.kill()
        holder.wait()
    # Two real runs at once on the same --out with different SNRs: both complete, nothing lost.
    runs = [subprocess.Popen([sys.executable, str(AUGMENT), *map(str, common), "--snrs", snr, "--wait"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
            for snr in ("0", "10")]
    logs = [p.communicate(timeout=120)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], logs
    rows = rows_of(out / "augmented_manifest.csv")
    assert sorted({r["condition"] for r in rows}) == ["white_0dB", "white_10dB"]
    assert len(rows) == 2 * 8 and all(Path(r["path"]).is_file() for r in rows)
    assert not (out / LOCK_NAME).exists()


def test_temporaries_of_live_processes_are_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / f".x.tmp{dead.pid}.wav").write_bytes(b"")
    (tmp_path / "a" / f".y.tmp{os.getpid()}.wav").write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == 1
    assert [p.name for p in (tmp_path / "a").iterdir()] == [f".y.tmp{os.getpid()}.wav"]


# ------------------------------------------------------------------------------------------ 5 lost silently
def test_bom_on_first_label_line_keeps_the_utterance(tmp_path):
    make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F",), per_speaker=2, seconds=0.3)
    label = tmp_path / "IEMOCAP" / "Session1" / "dialog" / "EmoEvaluation" / "Ses01F_impro01.txt"
    label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())
    assert [e.utterance_id for e in parse_emo_evaluation(label)] == ["Ses01F_impro01_F000"]
    scan = scan_corpus(tmp_path / "IEMOCAP")
    assert len(scan.utterances) == 2 and not scan.skipped


def test_bom_in_a_csv_manifest(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F",), per_speaker=2, seconds=0.3)
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    assert [u.id for u in read_manifest(manifest)] == ["Ses01F_impro01_F000", "Ses01F_impro02_F001"]


def test_truncated_wav_reported_and_counted(tmp_path):
    make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=1, seconds=3.0)
    wav = next((tmp_path / "IEMOCAP").rglob("Ses01F_impro01_F000.wav"))
    wav.write_bytes(wav.read_bytes()[: 44 + SR * 2 * 3 // 2])  # header says 3 s, 1.5 s of data left
    assert sf.info(str(wav)).duration == pytest.approx(1.5)  # what libsndfile says, silently
    with pytest.raises(AudioError, match=r"truncated wav: the header says 3\.000 s but the file holds only 1\.500 s"):
        load_audio(wav)
    with pytest.raises(AudioError, match="truncated"):
        audio_info(wav)
    scan = scan_corpus(tmp_path / "IEMOCAP")
    assert [u.id for u in scan.utterances] == ["Ses01F_impro01_M000"]
    assert scan.skipped == {"truncated wav": 1} and "Ses01F_impro01.txt:1" in scan.warnings[0]


# ------------------------------------------------------------------------------------------ 6 OS errors
@pytest.mark.parametrize("code,words", [(errno.EROFS, "read-only"), (errno.ENOSPC, "the disk is full"),
                                        (errno.EACCES, "read-only")])
def test_os_errors_are_one_line_through_every_script(tmp_path, monkeypatch, capsys, code, words):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=1, seconds=2.2)
    standardise(manifest, None, tmp_path / "std", log=quiet)
    real_replace = os.replace

    def failing_replace(src, dst, *a, **k):
        if "out_" in str(dst):
            raise OSError(code, os.strerror(code), str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", failing_replace)
    calls = {
        PREPARE: ["--iemocap-dir", tmp_path / "IEMOCAP", "--manifest", tmp_path / "out_p" / "m.csv"],
        AUGMENT: ["--manifest", manifest, "--out", tmp_path / "out_a", "--workers", "1", "--no-progress",
                  "--no-reverb", "--noise-types", "white", "--snrs", "0"],
        HANDLE: ["--manifest", manifest, "--clean-only", "--out", tmp_path / "out_s"],
        MEL: ["--manifest", tmp_path / "std" / "manifest.csv", "--out", tmp_path / "out_f", "--workers", "1",
              "--no-progress", "--device", "cpu"],
    }
    for path, argv in calls.items():
        monkeypatch.setattr(sys, "argv", [str(path), *map(str, argv)])
        with pytest.raises(SystemExit) as info:
            runpy.run_path(str(path), run_name="__main__")  # the script itself, in this process
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 1, (path, err)
        assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'out_'}") and words in err[0], (path, err)


def test_full_disk_while_writing_audio(tmp_path, monkeypatch):
    def no_space(*_a, **_k):
        raise sf.LibsndfileError(2, "Error writing: ")

    monkeypatch.setattr(sf, "write", no_space)
    monkeypatch.setattr("shutil.disk_usage", lambda p: type("U", (), {"free": 0})())
    with pytest.raises(OSError) as info:
        write_wav(tmp_path / "a.wav", np.zeros(100, np.float32))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "a.wav")
    assert not list(tmp_path.iterdir())  # no temporary left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; simulated in the test above")
def test_really_read_only_output_folder(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=1, seconds=0.3)
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        err = one_line_error(script(HANDLE, "--manifest", manifest, "--clean-only", "--out", tmp_path / "ro" / "s"),
                             code=1)
        assert str(tmp_path / "ro") in err
    finally:
        (tmp_path / "ro").chmod(0o755)


# ------------------------------------------------------------------------------------------ 7, 8 quiet results
def test_noise_dir_without_audio_is_an_error(tmp_path):
    (tmp_path / "noise" / "music").mkdir(parents=True)
    (tmp_path / "noise" / "music" / "readme.txt").write_text("no audio here")
    with pytest.raises(LancetError, match=r"noise: no usable audio .* expected sub-folders babble\|speech/, music/"):
        resolve_sources(["babble", "music", "white"], tmp_path / "noise", None, log=quiet)


def test_help_texts_and_first_step_hints(tmp_path):
    for path in (AUGMENT, HANDLE, MEL):
        r = script(path, "--help")
        assert r.returncode == 0 and "(default: None)" not in r.stdout and "--wait" in r.stdout, path
        assert r.stdout.count("(default: found from the manifest)") <= 1
    err = one_line_error(script(MEL, "--manifest", tmp_path / "none.csv", "--out", tmp_path / "f"))
    assert "run datasets/handleIEMOCAP.py first" in err


def test_report_title_says_whether_noise_was_real_or_generated(tmp_path):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=1, seconds=0.3)
    music = tmp_path / "noise" / "music"
    music.mkdir(parents=True)
    sf.write(str(music / "m.wav"), (0.1 * np.sin(np.arange(8000) / 3.0)).astype(np.float32), 8000)
    cfg = AugmentConfig(out=tmp_path / "aug", snrs=[0], noise_types=["music", "ambient", "white"], reverb=False,
                        noise_dir=tmp_path / "noise", shared_noise_dir=None, workers=1, progress=False)
    augment(read_manifest(manifest), cfg, log=quiet)
    standardise(manifest, tmp_path / "aug", tmp_path / "std", log=quiet)
    line = describe_noise_sources(tmp_path / "std" / "manifest.csv")
    assert line.startswith("noise: music REAL (1 file from") and "ambient GENERATED stand-in" in line
    assert "white generated" in line
    cfg = AugmentConfig(out=tmp_path / "aug_b", snrs=[0], noise_types=["babble"], reverb=False, babble_speakers=1,
                        shared_noise_dir=None, workers=1, progress=False)
    augment(read_manifest(manifest), cfg, log=quiet)
    standardise(manifest, tmp_path / "aug_b", tmp_path / "std_b", log=quiet)
    assert describe_noise_sources(tmp_path / "std_b" / "manifest.csv") == \
        "noise: babble from the other speakers of the target's own session"
    standardise(manifest, None, tmp_path / "std2", log=quiet)
    assert describe_noise_sources(tmp_path / "std2" / "manifest.csv") is None


def test_a_full_disk_mid_write_names_the_file(tmp_path):
    from lancet.core.atomic import save_csv as save

    class Full:
        def __str__(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as file.write() raises it: no file name

    with pytest.raises(OSError) as info:
        save(tmp_path / "m.csv", [{"a": Full()}], ["a"])
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "m.csv")
    assert not list(tmp_path.iterdir())


def test_a_killed_but_unreaped_worker_counts_as_gone(tmp_path):
    from lancet.core.atomic import pid_alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert pid_alive(child.pid)
    child.kill()
    deadline = time.time() + 10
    while pid_alive(child.pid) and time.time() < deadline:  # a zombie until waited for
        time.sleep(0.05)
    assert not pid_alive(child.pid)
    (tmp_path / f".a.tmp{child.pid}.wav").write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == 1
    child.wait()


def test_augmented_row_naming_a_file_outside_is_not_followed(hostile):
    root = hostile["root"]
    cfg = AugmentConfig(out=root / "aug", snrs=[0], noise_types=["white"], reverb=False, shared_noise_dir=None,
                        workers=1, progress=False)
    augment(read_manifest(hostile["manifest"]), cfg, log=quiet)
    rows = read_csv(root / "aug" / "augmented_manifest.csv")
    honest = rows[0]["path"]
    rows[0]["path"] = str(hostile["victim"])  # would copy a private file into the standard tree
    save_csv(root / "aug" / "augmented_manifest.csv", rows, list(rows[0]))
    standardise(hostile["manifest"], root / "aug", root / "std", mode="copy", log=quiet)
    placed = root / "std" / "white_0dB" / f"{rows[0]['id']}__white_0dB.wav"
    assert placed.read_bytes() == Path(honest).read_bytes() != hostile["victim"].read_bytes()


@pytest.fixture()
def read_only_folder(tmp_path):
    """A really read-only folder (a read-only bind mount: chmod does not stop root); skipped where mounting
    is not allowed."""
    src, ro = tmp_path / "ro_src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    r = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot bind-mount here (not root or no mount permission); simulated above")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_really_read_only_output_folders(tmp_path, read_only_folder):
    ro = read_only_folder
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=1, seconds=2.2)
    standardise(manifest, None, tmp_path / "std", log=quiet)
    runs = {
        PREPARE: ["--iemocap-dir", tmp_path / "IEMOCAP", "--manifest", ro / "m.csv"],
        AUGMENT: ["--manifest", manifest, "--out", ro / "aug", "--workers", "1", "--no-progress", "--no-reverb",
                  "--noise-types", "white", "--snrs", "0"],
        HANDLE: ["--manifest", manifest, "--clean-only", "--out", ro / "std"],
        MEL: ["--manifest", tmp_path / "std" / "manifest.csv", "--out", ro / "mel", "--workers", "1",
              "--no-progress", "--device", "cpu"],
    }
    for path, argv in runs.items():
        err = one_line_error(script(path, *argv), code=1)
        assert err.startswith(f"error: {ro}") and "Read-only file system" in err and "read-only" in err, err


@pytest.fixture()
def full_disk(tmp_path):
    """A really full disk: a 48 kB tmpfs (skipped where mounting is not allowed)."""
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root or no mount permission); simulated above")
    try:
        yield full
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_really_full_disk_is_one_line(tmp_path, full_disk, workers):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=2, seconds=1.0)
    err = one_line_error(script(AUGMENT, "--manifest", manifest, "--out", full_disk / "aug", "--workers", workers,
                                "--no-progress", "--no-reverb", "--noise-types", "white", "--snrs", "0", "10"), code=1)
    assert err.startswith(f"error: {full_disk / 'aug'}") and "the disk is full" in err, err


def test_really_full_disk_in_standardisation_and_extraction(tmp_path, full_disk):
    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M"), per_speaker=2, seconds=2.2)
    err = one_line_error(script(HANDLE, "--manifest", manifest, "--clean-only", "--mode", "copy",
                                "--out", full_disk / "std"), code=1)
    assert err.startswith(f"error: {full_disk / 'std'}") and "the disk is full" in err, err
    standardise(manifest, None, tmp_path / "std", log=quiet)
    err = one_line_error(script(MEL, "--manifest", tmp_path / "std" / "manifest.csv", "--out", full_disk / "mel",
                                "--workers", "1", "--no-progress", "--device", "cpu"), code=1)
    assert err.startswith(f"error: {full_disk / 'mel'}") and "the disk is full" in err, err


@pytest.mark.parametrize("damage", ["overwritten", "truncated"])
def test_training_refuses_a_damaged_store_in_one_line(tmp_path, monkeypatch, damage):
    """The issue's case: an array overwritten in place (same size) trained to a NaN model and exited 0."""
    from lancet.features.store import file_checksum
    from test_training import make_store

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make_store(tmp_path / "features", conditions=("clean",), sessions=2, per_class=1)
    folder = tmp_path / "features" / "mfcc"
    record = json.loads((folder / PARAMS_FILE).read_text())
    record["conditions"]["clean"]["checksum"] = file_checksum(folder / "clean.npy")
    save_json(folder / PARAMS_FILE, record)
    npy = folder / "clean.npy"
    data = npy.read_bytes()
    if damage == "overwritten":
        npy.write_bytes(data[:-64] + np.full(16, np.nan, np.float32).tobytes())
    else:
        npy.write_bytes(data[: len(data) // 2])
    r = subprocess.run([sys.executable, str(ROOT / "train_LANCET.py"), "--features-dir", str(tmp_path / "features"),
                        "--features", "mfcc", "--models", "TCNet", "--epochs", "1", "--device", "cpu",
                        "--results-dir", str(tmp_path / "results"), "--run-name", "t", "--threads", "1", "--train-on", "clean"],
                       capture_output=True, text=True, env={**ENV, "XDG_CACHE_HOME": str(tmp_path / "cache")},
                       timeout=300)
    err = one_line_error(r, code=2)
    assert f"{npy}:" in err and ("checksum mismatch" if damage == "overwritten" else "truncated") in err
    assert "rebuild it: python feature_extraction/extract_features_iemocap_mfcc.py" in err
