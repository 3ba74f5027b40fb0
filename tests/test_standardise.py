"""handleIEMOCAP / lancet.corpora.standard_names: standard names, combined manifest, idempotence, dry run, originals untouched."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lancet.core.manifest import read_manifest, write_manifest
from lancet.corpora.iemocap import scan_iemocap as scan_corpus
from lancet.corpora.demo import make_demo_corpus
from lancet.core.errors import LancetError
from lancet.noise.augment import AugmentConfig, augment
from lancet.corpora.standard_names import COLUMNS, standardise

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "datasets" / "handleIEMOCAP.py"


def snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Checksum, size and modification time of every file and folder under ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[str(p.relative_to(folder))] = (digest, st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


def quiet(*_a, **_k):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("std")
    corpus = base / "IEMOCAP"
    make_demo_corpus(corpus, seed=0, utterances_per_speaker=1)
    manifest = base / "manifest.csv"
    utts = scan_corpus(corpus).utterances[:12]
    write_manifest(manifest, utts)
    before = snapshot(corpus)
    aug = base / "aug"
    augment(read_manifest(manifest), AugmentConfig(out=aug, snrs=[-5, 10], noise_types=["white", "babble"],
                                                   reverb=True, rooms=["lecture"], rirs_per_room=1,
                                                   shared_noise_dir=None, workers=1, progress=False), log=quiet)
    assert snapshot(corpus) == before
    return {"corpus": corpus, "manifest": manifest, "aug": aug, "before": before, "n": len(utts), "base": base}


def rows_of(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("mode", ["link", "copy", "symlink"])
def test_standard_tree_manifest_and_idempotence(data, tmp_path, mode):
    out = tmp_path / "std"
    first = standardise(data["manifest"], data["aug"], out, mode=mode, log=quiet)
    n_conditions = 1 + 2 * 2 + 1
    assert first.created == data["n"] * n_conditions and first.manifest_changed
    rows = rows_of(out / "manifest.csv")
    assert list(rows[0]) == COLUMNS and len(rows) == first.created
    conditions = {r["condition"] for r in rows}
    assert conditions == {"clean", "white_-5dB", "white_10dB", "babble_-5dB", "babble_10dB", "reverberation_lecture"}
    for r in rows:
        p = Path(r["path"])
        assert p == out / r["condition"] / f"{r['id']}__{r['condition']}.wav" and p.is_file()
        assert (r["snr_db"] == "") == (r["noise_type"] in ("clean", "reverberation"))
        assert r["noise_type"] == r["condition"].split("_")[0]
    clean = next(r for r in rows if r["condition"] == "clean")
    original = next(u.path for u in read_manifest(data["manifest"]) if u.id == clean["id"])
    if mode == "link":
        assert os.path.samefile(clean["path"], original)
    elif mode == "symlink":
        assert Path(clean["path"]).is_symlink()
    else:
        assert not os.path.samefile(clean["path"], original)
    assert Path(clean["path"]).read_bytes() == Path(original).read_bytes()
    tree = snapshot(out)
    messages = []
    second = standardise(data["manifest"], data["aug"], out, mode=mode, log=messages.append)
    assert not second.changed and second.unchanged == first.created
    assert any(m.startswith("nothing to do") for m in messages)
    assert snapshot(out) == tree
    assert snapshot(data["corpus"]) == data["before"]


def test_dry_run_touches_nothing(data, tmp_path):
    out = tmp_path / "std"
    messages = []
    report = standardise(data["manifest"], data["aug"], out, dry_run=True, log=messages.append)
    assert report.created > 0 and not out.exists()
    assert any(m.startswith("would create") for m in messages)
    standardise(data["manifest"], data["aug"], out, log=quiet)
    victim = next((out / "clean").iterdir())
    victim.unlink()
    tree = snapshot(out)
    report = standardise(data["manifest"], data["aug"], out, dry_run=True, log=quiet)
    assert report.created == 1 and snapshot(out) == tree
    assert snapshot(data["corpus"]) == data["before"]


def test_out_inside_original_folder_refused(data):
    with pytest.raises(LancetError, match="inside the original corpus"):
        standardise(data["manifest"], data["aug"], data["corpus"] / "standard", dry_run=True, log=quiet)
    assert snapshot(data["corpus"]) == data["before"]


def test_missing_augmented_manifest_is_an_error(data, tmp_path):
    with pytest.raises(LancetError, match="augmented manifest not found"):
        standardise(data["manifest"], tmp_path / "nothing", tmp_path / "std", log=quiet)
    report = standardise(data["manifest"], None, tmp_path / "std", log=quiet)
    assert report.created == data["n"]


def test_script_twice_says_nothing_to_do(data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(SCRIPT), "--manifest", str(data["manifest"]), "--augmented-dir", str(data["aug"]),
           "--out", str(tmp_path / "std")]
    dry = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, env=env)
    assert dry.returncode == 0 and "dry run, nothing touched" in dry.stdout and not (tmp_path / "std").exists()
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert second.returncode == 0 and "nothing to do" in second.stdout
    assert snapshot(data["corpus"]) == data["before"]
    helped = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, env=env)
    for flag in ("--manifest", "--augmented-dir", "--out", "--mode", "--dry-run"):
        assert flag in helped.stdout
