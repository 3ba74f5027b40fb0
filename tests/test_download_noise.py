"""Real noise in one command: fetch (resuming a cut transfer), check the checksum, unpack only what the
augmentation reads, atomically; then the augmentation finds it without flags.

Archives are built here and served through ``file://`` URLs (and, for the HTTP Range path, a server on the
loopback interface); nothing goes to the network.
"""

from __future__ import annotations

import csv
import hashlib
import http.server
import io
import json
import re
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pooch
import pytest
import requests
import soundfile as sf

from lancet.core.manifest import read_manifest
from lancet.core.errors import LancetError
from lancet.noise import download as dl
from lancet.noise import sources
from lancet.noise.augment import AugmentConfig, augment
from lancet.noise.download import Archive, NoiseCorpus
from test_augment import make_corpus  # the tiny IEMOCAP-layout corpus of the augmentation tests

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "datasets" / "download_noise.py"
MUSAN_RULES = (("musan/music/", "music/"), ("musan/noise/", "noise/"), ("musan/speech/", "speech/"))
# what the augmentation reads; the text files beside the recordings are left in the archive
MUSAN_AUDIO = {"musan/music/fma/music-fma-0000.wav": "music/fma/music-fma-0000.wav",
               "musan/music/fma/music-fma-0001.wav": "music/fma/music-fma-0001.wav",
               "musan/noise/free-sound/noise-free-sound-0000.wav": "noise/free-sound/noise-free-sound-0000.wav",
               "musan/speech/us-gov/speech-us-gov-0000.wav": "speech/us-gov/speech-us-gov-0000.wav"}
MUSAN_OTHER = ("musan/README", "musan/music/fma/ANNOTATIONS", "musan/noise/free-sound/LICENSE")


def quiet(_msg: str) -> None:
    pass


def wav_bytes(seed: int, seconds: float = 0.5) -> bytes:
    """A short noise recording (random, so the archive does not compress to nothing)."""
    buf = io.BytesIO()
    noise = 0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))
    sf.write(buf, noise.astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def make_tar(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def musan_files() -> dict[str, bytes]:
    files = {name: wav_bytes(i) for i, name in enumerate(MUSAN_AUDIO)}
    files.update({name: b"text, not audio\n" for name in MUSAN_OTHER})
    return files


def corpus_of(*archives: Path, rules=(MUSAN_RULES,), known_hash: str | None = None) -> NoiseCorpus:
    """A one-off registry entry for archives built here, with their true checksum unless ``known_hash``."""
    made = tuple(Archive(url=p.as_uri(), known_hash=known_hash or f"sha256:{pooch.file_hash(str(p))}",
                         size=p.stat().st_size, members=r) for p, r in zip(archives, rules))
    assert all(a.url.startswith("file://") for a in made)
    return NoiseCorpus("musan", "test corpus", made, "test licence", "https://example.org", "nobody", "test")


def tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def no_network(monkeypatch, request):
    """Any attempt to reach a server fails the test (the loopback test opts out)."""
    if "loopback" in request.keywords:
        return

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests, "head", refuse)
    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", refuse)


@pytest.fixture
def musan(tmp_path) -> tuple[Path, NoiseCorpus]:
    archive = make_tar(tmp_path / "server" / "musan.tar.gz", musan_files())
    return archive, corpus_of(archive)


# ------------------------------------------------------------------------------------------------ (a) fetch

def test_download_verifies_and_unpacks_exactly_what_the_augmentation_reads(musan, tmp_path):
    archive, corpus = musan
    out, cache = tmp_path / "datasets" / "noise", tmp_path / "cache"
    result = dl.download_corpus(corpus, out, cache, progress=False, log=quiet)
    assert not result.already and result.fetched == archive.stat().st_size
    expected = {target: wav_bytes(i) for i, target in enumerate(MUSAN_AUDIO.values())}
    got = {name: data for name, (data, _) in tree(out).items()}
    assert set(got) == set(expected) | {dl.MARKER}
    assert all(got[name] == data for name, data in expected.items())
    assert result.files == {"music": 2, "noise": 1, "speech": 1}
    marker = json.loads(got[dl.MARKER])
    assert marker["corpus"] == "musan" and marker["archives"][0]["known_hash"] == corpus.archives[0].known_hash
    assert list(cache.glob("*")) == []  # archive deleted after unpacking, no .part, no pooch temporaries
    assert [p.name for p in out.parent.iterdir()] == ["noise"]  # no temporary folder left beside it


def test_keep_archive_keeps_the_checked_file(musan, tmp_path):
    archive, corpus = musan
    dl.download_corpus(corpus, tmp_path / "noise", tmp_path / "cache", keep_archive=True, progress=False, log=quiet)
    assert (tmp_path / "cache" / "musan.tar.gz").read_bytes() == archive.read_bytes()


def test_zip_archives_take_exactly_the_named_members(tmp_path):
    zips = []
    for env in ("DKITCHEN", "NPARK"):
        path = tmp_path / "server" / f"{env}_16k.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as zf:
            for ch in (1, 2):
                zf.writestr(f"{env}/ch{ch:02d}.wav", wav_bytes(ch))
        zips.append(path)
    rules = [((f"{env}/ch01.wav", f"ambient/{env}_ch01.wav"),) for env in ("DKITCHEN", "NPARK")]
    corpus = NoiseCorpus("demand", "t", tuple(Archive(p.as_uri(), f"md5:{pooch.file_hash(str(p), 'md5')}",
                                                      p.stat().st_size, r) for p, r in zip(zips, rules)),
                         "l", "h", "c", "ambient")
    dl.download_corpus(corpus, tmp_path / "noise", tmp_path / "cache", progress=False, log=quiet)
    assert set(tree(tmp_path / "noise")) == {"ambient/DKITCHEN_ch01.wav", "ambient/NPARK_ch01.wav", dl.MARKER}


def test_an_archive_without_the_expected_members_is_refused(tmp_path):
    archive = make_tar(tmp_path / "server" / "musan.tar.gz", {"musan/music/a.wav": wav_bytes(0)})
    with pytest.raises(LancetError, match=r"no 'musan/noise/', 'musan/speech/' inside"):
        dl.download_corpus(corpus_of(archive), tmp_path / "noise", tmp_path / "cache", progress=False, log=quiet)
    assert not (tmp_path / "noise").exists()


# ------------------------------------------------------------------------------------------------ (b) resume

def test_a_truncated_transfer_resumes_where_it_stopped(musan, tmp_path):
    archive, corpus = musan
    data = archive.read_bytes()
    half = len(data) // 2
    cache = tmp_path / "cache"
    cache.mkdir()
    dl.part_path(cache, corpus.archives[0]).write_bytes(data[:half])  # a transfer cut halfway
    messages: list[str] = []
    result = dl.download_corpus(corpus, tmp_path / "noise", cache, progress=False, log=messages.append)
    assert result.fetched == len(data) - half  # only the missing half was read
    assert any("continuing the transfer" in m for m in messages)
    assert result.files == {"music": 2, "noise": 1, "speech": 1}


def test_a_complete_part_file_is_not_fetched_again(musan, tmp_path):
    archive, corpus = musan
    cache = tmp_path / "cache"
    cache.mkdir()
    dl.part_path(cache, corpus.archives[0]).write_bytes(archive.read_bytes())  # killed just before the check
    result = dl.download_corpus(corpus, tmp_path / "noise", cache, progress=False, log=quiet)
    assert result.fetched == 0 and result.files["music"] == 2


def test_a_part_file_longer_than_the_archive_starts_again(musan, tmp_path):
    archive, corpus = musan
    cache = tmp_path / "cache"
    cache.mkdir()
    dl.part_path(cache, corpus.archives[0]).write_bytes(archive.read_bytes() + b"junk")
    result = dl.download_corpus(corpus, tmp_path / "noise", cache, progress=False, log=quiet)
    assert result.fetched == archive.stat().st_size


def test_a_killed_unpack_leaves_no_half_folder(musan, tmp_path, monkeypatch):
    _, corpus = musan
    out, cache = tmp_path / "noise", tmp_path / "cache"
    written = []
    real_write = dl._write

    def write_then_die(src, dest):
        if written:
            raise KeyboardInterrupt  # Ctrl-C in the middle of unpacking
        written.append(dest)
        real_write(src, dest)

    monkeypatch.setattr(dl, "_write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        dl.download_corpus(corpus, out, cache, progress=False, log=quiet)
    assert written and sorted(p.name for p in tmp_path.iterdir()) == ["cache", "server"]
    monkeypatch.setattr(dl, "_write", real_write)
    # a SIGKILL leaves the temporary folder: the next run removes it (its process is gone) and finishes
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".noise.tmp{dead.pid}" / "music").mkdir(parents=True)
    result = dl.download_corpus(corpus, out, cache, progress=False, log=quiet)
    assert result.files == {"music": 2, "noise": 1, "speech": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "noise", "server"]


@pytest.mark.loopback
def test_http_transfer_resumes_with_a_range_request(musan, tmp_path, monkeypatch):
    """The HTTP path (pooch's HTTPDownloader with a Range header), against a server on 127.0.0.1."""
    archive, _ = musan
    data = archive.read_bytes()
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    for ranges in (True, False):
        sent: list[int] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                self.answer(head=True)

            def do_GET(self):
                self.answer()

            def answer(self, head=False):
                asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")) if ranges else None
                start = int(asked[1]) if asked else 0
                self.send_response(206 if asked else 200)
                if ranges:
                    self.send_header("Accept-Ranges", "bytes")
                if asked:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if not head:
                    self.wfile.write(data[start:])
                    sent.append(len(data) - start)

            def log_message(self, *args):
                pass

        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        except OSError as exc:
            pytest.skip(f"no loopback server here: {exc}")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/musan.tar.gz"
            corpus = dl.with_source(corpus_of(archive), url=url)
            cache, out = tmp_path / f"cache{ranges}", tmp_path / f"noise{ranges}"
            cache.mkdir()
            dl.part_path(cache, corpus.archives[0]).write_bytes(data[:1000])
            result = dl.download_corpus(corpus, out, cache, progress=False, log=quiet)
        finally:
            server.shutdown()
            server.server_close()
        # a server that serves ranges sends only the rest; one that does not is asked for the whole file
        assert sent == [len(data) - 1000 if ranges else len(data)] and result.fetched == sent[0]
        assert result.files == {"music": 2, "noise": 1, "speech": 1}


# ------------------------------------------------------------------------------------------------ (c) checksum

def test_a_wrong_checksum_is_refused_in_one_line_and_nothing_is_unpacked(musan, tmp_path):
    archive, _ = musan
    expected = "sha256:" + "0" * 64
    corpus = corpus_of(archive, known_hash=expected)
    cache, out = tmp_path / "cache", tmp_path / "noise"
    with pytest.raises(LancetError) as caught:
        dl.download_corpus(corpus, out, cache, progress=False, log=quiet)
    message = str(caught.value)
    actual = pooch.file_hash(str(archive))
    assert "\n" not in message and "musan.tar.gz" in message and expected in message and actual in message
    assert not out.exists() and not list(tmp_path.glob(".noise.tmp*"))
    rejected = cache / "musan.tar.gz.rejected"
    assert f"kept aside as {rejected}" in message and rejected.read_bytes() == archive.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["musan.tar.gz.rejected"]  # a rerun starts clean


def test_the_script_refuses_a_wrong_checksum_without_a_traceback(musan, tmp_path):
    archive, _ = musan
    def run(sha256: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(SCRIPT), "--url", archive.as_uri(), "--sha256", sha256, "--out",
                               str(tmp_path / "noise"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"],
                              capture_output=True, text=True, cwd=tmp_path)

    r = run("ab" * 32)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: musan.tar.gz: checksum mismatch") and r.stderr.count("\n") == 1
    r = run(hashlib.sha256(archive.read_bytes()).hexdigest())
    assert r.returncode == 0, r.stderr
    assert "find it" in r.stdout and (tmp_path / "noise" / "speech" / "us-gov").is_dir()


def test_overrides_are_checked():
    with pytest.raises(LancetError, match="64 hexadecimal"):
        dl.with_source(dl.CORPORA["musan"], sha256="abc")
    with pytest.raises(LancetError, match="demand has 6 archives"):
        dl.with_source(dl.CORPORA["demand"], url="file:///x.zip")
    mirror = dl.with_source(dl.CORPORA["musan"], url="https://mirror.example/musan.tar.gz")
    assert mirror.archives[0].known_hash == dl.CORPORA["musan"].archives[0].known_hash


# ------------------------------------------------------------------------------------------------ (d) unsafe members

@pytest.mark.parametrize("bad", [{"files": {"musan/music/../../../evil.wav": b"x"}},
                                 {"files": {"/tmp/evil.wav": b"x"}},
                                 {"links": {"musan/music/fma/link.wav": "/etc/passwd"}},
                                 {"links": {"musan/music/fma/up.wav": "../../../../../evil"}}])
def test_members_that_would_escape_the_folder_are_refused(tmp_path, bad):
    files = {**musan_files(), **bad.get("files", {})}
    archive = make_tar(tmp_path / "server" / "musan.tar.gz", files, bad.get("links"))
    with pytest.raises(LancetError, match="refusing member"):
        dl.download_corpus(corpus_of(archive), tmp_path / "out" / "noise", tmp_path / "cache", progress=False,
                           log=quiet)
    assert not (tmp_path / "out" / "noise").exists() and list((tmp_path / "out").iterdir()) == []
    assert not list(tmp_path.rglob("evil*"))


def test_zip_members_that_would_escape_are_refused(tmp_path):
    path = tmp_path / "server" / "X_16k.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X/ch01.wav", wav_bytes(0))
        zf.writestr("../evil.wav", b"x")
    corpus = corpus_of(path, rules=[(("X/ch01.wav", "ambient/X.wav"),)])
    with pytest.raises(LancetError, match=r"refusing member '\.\./evil\.wav'"):
        dl.download_corpus(corpus, tmp_path / "noise", tmp_path / "cache", progress=False, log=quiet)
    assert not (tmp_path / "noise").exists()


# ------------------------------------------------------------------------------------------------ (e) rerun

def test_a_second_run_says_already_there_and_changes_nothing(musan, tmp_path):
    _, corpus = musan
    out, cache = tmp_path / "noise", tmp_path / "cache"
    dl.download_corpus(corpus, out, cache, progress=False, log=quiet)
    before = tree(out)
    messages: list[str] = []
    result = dl.download_corpus(corpus, out, cache, progress=False, log=messages.append)
    assert result.already and result.fetched == 0 and result.files == {"music": 2, "noise": 1, "speech": 1}
    assert len(messages) == 1 and "already holds musan" in messages[0]
    assert tree(out) == before and not cache.exists()


def test_a_folder_holding_something_else_is_left_alone(musan, tmp_path):
    _, corpus = musan
    mine = tmp_path / "noise"
    (mine / "music").mkdir(parents=True)
    (mine / "music" / "mine.wav").write_bytes(b"mine")
    with pytest.raises(LancetError, match="not written by datasets/download_noise.py"):
        dl.download_corpus(corpus, mine, tmp_path / "cache", progress=False, log=quiet)
    dl.download_corpus(corpus, tmp_path / "other", tmp_path / "cache", progress=False, log=quiet)
    with pytest.raises(LancetError, match="holds 'musan' already, not this demand"):
        dl.download_corpus(NoiseCorpus(**{**corpus.__dict__, "name": "demand"}), tmp_path / "other",
                           tmp_path / "cache", progress=False, log=quiet)
    assert (mine / "music" / "mine.wav").read_bytes() == b"mine"


# ------------------------------------------------------------------------------------------------ the registry

def test_the_registry_unpacks_only_into_folders_the_augmentation_reads():
    for corpus in dl.CORPORA.values():
        assert corpus.size and corpus.licence and corpus.home.startswith("https://")
        for a in corpus.archives:
            assert a.url.startswith("https://") and re.fullmatch(r"(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})",
                                                                  a.known_hash)
    assert dl.CORPORA["musan"].size == 11_086_114_085
    with pytest.raises(ValueError, match="does not end in a folder"):
        Archive("file:///x.zip", "md5:" + "0" * 32, 1, (("x/a.wav", "elsewhere/a.wav"),))


def test_the_script_lists_the_corpora():
    r = subprocess.run([sys.executable, str(SCRIPT), "--list"], capture_output=True, text=True)
    assert r.returncode == 0 and "11.09 GB" in r.stdout and "CC BY 4.0" in r.stdout and "CC BY-SA 3.0" in r.stdout


# ------------------------------------------------------------------------------------------------ found without flags

def test_the_augmentation_finds_the_downloaded_noise_without_flags(musan, tmp_path, monkeypatch):
    _, corpus = musan
    downloaded = tmp_path / "repo" / "datasets" / "noise"
    assert sources.resolve_sources(["music"], None, None, log=quiet)["music"].kind == "generated"  # none yet
    dl.download_corpus(corpus, downloaded, tmp_path / "cache", progress=False, log=quiet)
    monkeypatch.setattr(sources, "DOWNLOADED_NOISE_DIR", downloaded)
    messages: list[str] = []
    chosen = sources.resolve_sources(sources.NOISE_TYPES, None, None, log=messages.append)
    assert [chosen[n].kind for n in sources.NOISE_TYPES] == ["talkers", "files", "files", "generated"]
    assert any(f"using the downloaded noise in {downloaded}" in m for m in messages)
    # an explicit --noise-dir still wins
    own = tmp_path / "own"
    (own / "ambient").mkdir(parents=True)
    (own / "ambient" / "a.wav").write_bytes(wav_bytes(9))
    assert sources.resolve_sources(["ambient"], own, None, log=quiet)["ambient"].files == [str(own / "ambient" /
                                                                                                "a.wav")]
    # the augmentation, given no noise folder at all, mixes the downloaded recordings
    manifest = make_corpus(tmp_path / "IEMOCAP")
    out = tmp_path / "aug"
    augment(read_manifest(manifest), AugmentConfig(out=out, snrs=[0], noise_types=["music", "ambient"], reverb=False,
                                                  shared_noise_dir=None, workers=1, progress=False), log=quiet)
    with open(out / "augmented_manifest.csv") as fh:
        used = {Path(row["noise_file"]).parent.parent.name for row in csv.DictReader(fh)}
    assert used == {"music", "noise"}


def test_no_downloaded_folder_changes_nothing(tmp_path, monkeypatch):
    assert sources.DOWNLOADED_NOISE_DIR is None  # tests/conftest.py: a developer's datasets/noise/ is not used
    monkeypatch.setattr(sources, "DOWNLOADED_NOISE_DIR", tmp_path / "absent")
    assert sources.resolve_sources(["ambient"], None, None, log=quiet)["ambient"].kind == "generated"
    (tmp_path / "empty" / "music").mkdir(parents=True)  # a folder without audio is not taken either
    monkeypatch.setattr(sources, "DOWNLOADED_NOISE_DIR", tmp_path / "empty")
    assert sources.resolve_sources(["music"], None, None, log=quiet)["music"].kind == "generated"
