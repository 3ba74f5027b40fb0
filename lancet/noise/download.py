"""Fetch a real noise corpus, check its checksum, and unpack only the recordings the augmentation reads.

Why: generated stand-ins are not real noise. ``datasets/download_noise.py --corpus musan`` puts real
talkers, music and ambient noise where :mod:`lancet.noise.sources` looks without flags
(``datasets/noise/``), so the augmentation and online training use them as they are.

:data:`CORPORA` is plain data: each corpus names its archives (URL, published checksum, size) and which
archive members go where in our layout. Fetching goes through pooch (checksum, cache folder) with a
downloader that continues a cut transfer from its ``.part`` file (an HTTP Range request, or the rest of
a ``file://`` source) instead of starting again. A file whose checksum differs is refused and kept aside
as ``.rejected``. Unpacking writes into a temporary folder beside the target and renames it once
complete, so a killed run never leaves half a folder; ``.source.json`` inside says what it holds.

Example:
    >>> sorted(CORPORA)
    ['demand', 'musan']
    >>> CORPORA["musan"].archives[0].route("musan/noise/free-sound/noise-free-sound-0000.wav")
    ('musan/noise/', 'noise/free-sound/noise-free-sound-0000.wav')
    >>> CORPORA["musan"].archives[0].route("musan/README") is None
    True
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, Callable
from urllib.parse import urlparse
from urllib.request import url2pathname

import pooch
import requests
from tqdm import tqdm

from lancet.core.atomic import pid_alive, save_json
from lancet.core.errors import LancetError
from lancet.core.locking import output_lock
from lancet.noise.registry import NOISE_TYPES
from lancet.noise.sources import AUDIO_EXTENSIONS

MARKER = ".source.json"


def read_folders() -> frozenset[str]:
    """Sub-folders the augmentation reads (every noise type's, lancet.noise.registry): a corpus may only
    unpack into these."""
    return frozenset(name for entry in NOISE_TYPES.values() for name in entry.noise_dir_folders)

HEAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class Archive:
    """One downloadable file and where its members go.

    ``known_hash`` is in pooch's form (``sha256:<hex>`` or ``md5:<hex>``); ``size`` in bytes (None when
    unknown, e.g. a mirror given with its own checksum). ``members``: ``(archive name, our name)`` pairs;
    a name ending in ``/`` takes every wav/flac below it, keeping the sub-folders, any other name takes
    exactly that member.
    """

    url: str
    known_hash: str
    size: int | None
    members: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        for source, target in self.members:
            if PurePosixPath(target).parts[0] not in read_folders() or source.endswith("/") != target.endswith("/"):
                raise ValueError(f"{self.fname}: member rule {source!r} -> {target!r} does not end in a folder "
                                 f"the augmentation reads ({', '.join(sorted(read_folders()))})")

    @property
    def fname(self) -> str:
        """The file name in the cache folder: the last part of the URL's path (no query)."""
        return PurePosixPath(urlparse(self.url).path).name

    def route(self, name: str) -> tuple[str, str] | None:
        """``(rule, path in our layout)`` for an archive member, or None when the augmentation does not read it."""
        for source, target in self.members:
            if source.endswith("/"):
                if name.startswith(source) and PurePosixPath(name).suffix.lower() in AUDIO_EXTENSIONS:
                    return source, target + name[len(source):]
            elif name == source:
                return source, target
        return None


@dataclass(frozen=True)
class NoiseCorpus:
    """A downloadable noise corpus: its archives, licence and where it comes from (for ``--list`` and docs)."""

    name: str
    title: str
    archives: tuple[Archive, ...]
    licence: str
    home: str
    citation: str
    holds: str  # what ends up in our layout, in words

    @property
    def size(self) -> int | None:
        """Bytes to download, when every archive's size is known."""
        sizes = [a.size for a in self.archives]
        return None if None in sizes else sum(sizes)


# MUSAN (OpenSLR resource 17). Size and checksums are not on the OpenSLR page itself; the MD5 is the one
# OpenSLR's checksum file lists and that speech toolkits check (wenet-e2e/wespeaker
# examples/voxceleb/v2/local/download_data.sh, PaddlePaddle/PaddleSpeech dataset/musan/musan.py:
# 0c472d4fc0c5141eca47ad1ffeb2a7df). The SHA-256 and the size (11,086,114,085 bytes) are what several
# independent public project records measured on the archive whose MD5 matched (docs/NOISE.md).
_MUSAN = Archive(
    url="https://www.openslr.org/resources/17/musan.tar.gz",
    known_hash="sha256:86d1061c7e15b5c9e906777685c519701df51bfde3001e1070dcc9ffac955ee1",
    size=11_086_114_085,
    members=(("musan/music/", "music/"), ("musan/noise/", "noise/"), ("musan/speech/", "speech/")),
)


def _demand(env: str, size: int, md5: str) -> Archive:
    # Zenodo publishes an MD5 per file. Only channel 1 is unpacked: the 16 channels of one environment are
    # the same scene a few centimetres apart, so a second channel adds no variety and would put the same
    # noise on both sides of the training/test noise split (lancet.noise.pools).
    return Archive(url=f"https://zenodo.org/records/1227121/files/{env}_16k.zip?download=1", known_hash=f"md5:{md5}",
                   size=size, members=((f"{env}/ch01.wav", f"ambient/{env}_ch01.wav"),))


CORPORA: dict[str, NoiseCorpus] = {
    "musan": NoiseCorpus(
        name="musan",
        title="MUSAN: music, speech and noise",
        archives=(_MUSAN,),
        licence="CC BY 4.0 (OpenSLR); individual recordings carry their own terms, listed in the archive's "
                "LICENSE files",
        home="https://www.openslr.org/17/",
        citation="D. Snyder, G. Chen, D. Povey, MUSAN: A Music, Speech, and Noise Corpus, arXiv:1510.08484, 2015",
        holds="music/ (about 42 h), noise/ (about 6 h, ambient), speech/ (about 60 h of single talkers, summed "
              "into babble)",
    ),
    # One 16 kHz environment of each DEMAND category (domestic, nature, office, public, street, transport).
    # Sizes and MD5s: the Zenodo record's file list, as quoted by several public download scripts (docs/NOISE.md).
    "demand": NoiseCorpus(
        name="demand",
        title="DEMAND: Diverse Environments Multichannel Acoustic Noise Database (6 environments, channel 1)",
        archives=(
            _demand("DKITCHEN", 110_501_049, "7ffbf52d7f4699f96927846103dc8788"),
            _demand("NPARK", 86_029_332, "80f1385a34d7f1705758926b57f138ce"),
            _demand("OOFFICE", 88_995_191, "7b61cc2d182d5a654cb9c3101ddd4041"),
            _demand("PCAFETER", 107_431_494, "99927d148128254141a9417d051510bb"),
            _demand("STRAFFIC", 118_572_691, "2efa87262f272bbf9ba578088e81939c"),
            _demand("TMETRO", 126_589_090, "95daf4df678e13b120e14211e6d89571"),
        ),
        licence="CC BY-SA 3.0 (the DEMAND documentation; Zenodo's metadata field says CC BY 4.0)",
        home="https://zenodo.org/records/1227121",
        citation="J. Thiemann, N. Ito, E. Vincent, The Diverse Environments Multi-channel Acoustic Noise Database, "
                 "Proc. Meetings on Acoustics 19, 035081, 2013",
        holds="ambient/ (6 recordings of 5 min: kitchen, park, office, cafeteria, traffic, metro)",
    ),
}


def human_size(n: int | None) -> str:
    """Bytes in decimal units, as download pages state them.

    Example:
        >>> human_size(11_086_114_085), human_size(638_118_847), human_size(None)
        ('11.09 GB', '638.1 MB', '?')
    """
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}" if unit == "GB" else f"{n / scale:.1f} {unit}"
    return f"{n} B"


def corpus_table() -> str:
    """The registry as a table for ``--list``: name, download size, licence, what it unpacks."""
    lines = []
    for c in CORPORA.values():
        lines += [f"{c.name:<8} {human_size(c.size):>9}  {c.title}", f"{'':<8} {'':>9}  licence: {c.licence}",
                  f"{'':<8} {'':>9}  unpacks: {c.holds}", f"{'':<8} {'':>9}  from: {c.home}"]
    return "\n".join(lines)


def with_source(corpus: NoiseCorpus, url: str | None = None, sha256: str | None = None) -> NoiseCorpus:
    """``corpus`` fetched from a mirror ``url`` and/or checked against another ``sha256`` (single-archive corpora).

    A new checksum means another file, so its size is no longer known.
    """
    if url is None and sha256 is None:
        return corpus
    if len(corpus.archives) != 1:
        raise LancetError(f"--url/--sha256 replace the one archive of a corpus; {corpus.name} has "
                          f"{len(corpus.archives)} archives")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise LancetError(f"--sha256 {sha256!r}: expected 64 hexadecimal digits")
    a = corpus.archives[0]
    new = replace(a, url=url or a.url, known_hash=f"sha256:{sha256.lower()}" if sha256 else a.known_hash,
                  size=None if sha256 else a.size)
    return replace(corpus, archives=(new,))


def unsafe_member(name: str) -> bool:
    """Whether an archive member's name could write outside the folder it is unpacked into.

    Example:
        >>> [unsafe_member(n) for n in ("musan/a.wav", "../a.wav", "/etc/passwd", "a/../../b", "C:/x")]
        [False, True, True, True, True]
    """
    p = PurePosixPath(name.replace("\\", "/"))
    return p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", name) is not None


# ----------------------------------------------------------------------------------------------------------
# Fetching

def part_path(cache_dir: str | os.PathLike, archive: Archive) -> Path:
    """Where the bytes of an unfinished transfer of ``archive`` wait for the next run."""
    return Path(cache_dir) / f"{archive.fname}.part"


def _server_resumes(url: str) -> bool:
    """Whether the server says it serves byte ranges; one that does not would resend the whole file."""
    try:
        head = requests.head(url, allow_redirects=True, timeout=HEAD_TIMEOUT_S)
    except requests.RequestException as exc:
        raise LancetError(f"{url}: cannot reach the server ({type(exc).__name__}); check the connection and "
                          f"rerun (what was fetched is kept)") from None
    return head.headers.get("Accept-Ranges", "").lower() == "bytes"


class ResumingDownloader:
    """A pooch downloader that appends the missing bytes to a ``.part`` file that outlives the run.

    pooch's own downloaders write a fresh temporary file every time, so a transfer cut at 10 of 11 GB
    starts again from zero. This one continues ``part`` (HTTP: pooch's HTTPDownloader with a Range header,
    when the server serves ranges; ``file://``: the rest of the file) and then hands the complete file to
    pooch, which checks its checksum and moves it into place. The handing over is a hard link, so a refused
    file survives under ``part`` and can be kept aside. ``fetched``: bytes this run transferred.
    """

    def __init__(self, part: Path, size: int | None = None, progress: bool = True):
        self.part, self.size, self.progress = Path(part), size, progress
        self.fetched = 0

    def __call__(self, url: str, output_file: str, pooch_obj: object = None) -> None:
        local = urlparse(url).scheme == "file"
        have = self.part.stat().st_size if self.part.exists() else 0
        if self.size is not None and have > self.size:
            have = 0  # longer than the published file: not a beginning of it
        complete = self.size is not None and have == self.size
        if have and not complete and not local and not _server_resumes(url):
            have = 0
        if not complete:
            with open(self.part, "ab" if have else "wb") as fh:
                try:
                    (self._copy_rest if local else self._get_rest)(url, fh, have)
                finally:
                    fh.flush()
                    self.fetched = fh.tell() - have
        link = Path(f"{output_file}.link")
        try:
            os.link(self.part, link)
            os.replace(link, output_file)
        except OSError:  # no hard links on this file system: a refused file cannot be kept aside
            link.unlink(missing_ok=True)
            os.replace(self.part, output_file)

    def _copy_rest(self, url: str, fh: IO[bytes], have: int) -> None:
        source = Path(url2pathname(urlparse(url).path))
        if not source.is_file():
            raise LancetError(f"{source}: not found (from {url})")
        with open(source, "rb") as raw:
            raw.seek(have)
            with tqdm.wrapattr(raw, "read", total=source.stat().st_size - have, desc=source.name,
                               disable=not self.progress) as src:
                shutil.copyfileobj(src, fh)

    def _get_rest(self, url: str, fh: IO[bytes], have: int) -> None:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            pooch.HTTPDownloader(progressbar=self.progress, headers=headers)(url, fh, None)
        except requests.HTTPError as exc:
            if have and exc.response is not None and exc.response.status_code == 416:
                return  # nothing left to send: the part file was already complete
            raise LancetError(f"{url}: the server answered {exc}; check the URL (or try a mirror with --url)") from None
        except requests.RequestException as exc:
            raise LancetError(f"{url}: the transfer stopped ({type(exc).__name__}) at "
                              f"{human_size(fh.tell())}; rerun the same command to continue from there") from None


def _refusal(archive: Archive, cache_dir: Path, part: Path, exc: ValueError) -> LancetError:
    """The one-line error for a file whose checksum differs; the file is kept aside when it can be."""
    alg = archive.known_hash.split(":")[0].lower()
    if part.is_file():
        rejected = cache_dir / f"{archive.fname}.rejected"
        os.replace(part, rejected)
        got, fate = f"{alg}:{pooch.file_hash(str(rejected), alg)}", f"kept aside as {rejected}"
    else:
        found = re.search(r"got ([0-9a-fA-F]+)", str(exc))
        got, fate = f"{alg}:{found[1]}" if found else "another hash", "removed"
    return LancetError(f"{archive.fname}: checksum mismatch: expected {archive.known_hash}, got {got}; the file "
                       f"was {fate}; rerun to download it again (a mirror with another file needs --sha256)")


def fetch_archive(archive: Archive, cache_dir: str | os.PathLike, progress: bool = True,
                  log: Callable[[str], None] = print) -> tuple[Path, int]:
    """Download ``archive`` into ``cache_dir`` (continuing a cut transfer), check it: ``(path, bytes fetched)``.

    A complete, matching file already in ``cache_dir`` is used as it is (pooch checks it first).
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = part_path(cache_dir, archive)
    if part.is_file() and part.stat().st_size:
        log(f"{archive.fname}: continuing the transfer from {human_size(part.stat().st_size)}")
    downloader = ResumingDownloader(part, archive.size, progress)
    try:
        path = pooch.retrieve(archive.url, archive.known_hash, fname=archive.fname, path=cache_dir,
                              downloader=downloader)
    except ValueError as exc:
        if "hash" not in str(exc).lower():
            raise
        raise _refusal(archive, cache_dir, part, exc) from None
    part.unlink(missing_ok=True)  # the second name of the checked file
    return Path(path), downloader.fetched


def _remove_pooch_leftovers(cache_dir: Path) -> None:
    """pooch's temporary files of a killed run (``tmpXXXXXXXX``, empty or a second name of a part file)."""
    for p in cache_dir.glob("tmp*"):
        if re.fullmatch(r"tmp[\w]{8}(\.link)?", p.name) and p.is_file():
            p.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# Unpacking

def _write(src: IO[bytes], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out:
        shutil.copyfileobj(src, out)


def _refuse_member(path: Path, name: str, why: str = "it would be written outside the target folder") -> LancetError:
    return LancetError(f"{path}: refusing member {name!r}: {why}; this is not the published archive, delete it")


def _unpack_tar(archive: Archive, path: Path, dest: Path, progress: bool) -> set[str]:
    used: set[str] = set()
    with open(path, "rb") as raw, tqdm.wrapattr(raw, "read", total=path.stat().st_size, desc=f"unpacking {path.name}",
                                                disable=not progress) as fh, \
            tarfile.open(fileobj=fh, mode="r|*") as tar:
        for member in tar:
            if unsafe_member(member.name):
                raise _refuse_member(path, member.name)
            if member.issym() or member.islnk():
                try:
                    tarfile.data_filter(member, str(dest))
                except tarfile.FilterError as exc:
                    raise _refuse_member(path, member.name, str(exc)) from None
            routed = archive.route(member.name)
            if routed is None or not member.isfile():
                continue  # links and folders are never written: only the recordings' bytes are
            extracted = tar.extractfile(member)
            assert extracted is not None  # a regular file always has data
            _write(extracted, dest / routed[1])
            used.add(routed[0])
    return used


def _unpack_zip(archive: Archive, path: Path, dest: Path, progress: bool) -> set[str]:
    used: set[str] = set()
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        for info in infos:
            if unsafe_member(info.filename):
                raise _refuse_member(path, info.filename)
        chosen = [(info, routed) for info in infos if not info.is_dir() and (routed := archive.route(info.filename))]
        for info, (rule, target) in tqdm(chosen, desc=f"unpacking {path.name}", unit="file", disable=not progress):
            with zf.open(info) as src:
                _write(src, dest / target)
            used.add(rule)
    return used


def _stale_unpacks(out: Path) -> list[Path]:
    """Temporary unpack folders beside ``out`` of runs that are gone."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.tmp(\d+)")
    found = (pattern.fullmatch(p.name) for p in out.parent.glob(f".{out.name}.tmp*")) if out.parent.is_dir() else ()
    return [out.parent / m[0] for m in found if m and not pid_alive(int(m[1]))]


def count_files(folder: Path) -> dict[str, int]:
    """Recordings per top-level sub-folder of our layout."""
    return {sub.name: sum(1 for p in sub.rglob("*") if p.is_file())
            for sub in sorted(Path(folder).iterdir()) if sub.is_dir()}


def unpack(corpus: NoiseCorpus, paths: list[Path], out: str | os.PathLike, progress: bool = True) -> dict[str, int]:
    """Unpack the members the augmentation reads from ``paths`` (one per archive) into ``out``, all or nothing.

    Everything goes into ``.<out>.tmp<pid>/`` beside ``out`` with :data:`MARKER`, which is renamed to
    ``out`` only when complete; a killed run's folder is removed by the next. ``out`` must be absent or empty.
    Returns the files per sub-folder.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_unpacks(out):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for archive, path in zip(corpus.archives, paths):
            try:
                used = (_unpack_zip if zipfile.is_zipfile(path) else _unpack_tar)(archive, Path(path), tmp, progress)
            except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
                raise LancetError(f"{path}: cannot be unpacked ({exc}); delete it and rerun") from None
            missing = [source for source, _ in archive.members if source not in used]
            if missing:
                raise LancetError(f"{path}: no {', '.join(repr(m) for m in missing)} inside; is this the "
                                  f"{corpus.name} archive? (delete it and rerun)")
        files = count_files(tmp)
        save_json(tmp / MARKER, {"corpus": corpus.name, "title": corpus.title, "licence": corpus.licence,
                                 "home": corpus.home, "citation": corpus.citation, "files": files,
                                 "archives": [{"url": a.url, "known_hash": a.known_hash, "size": a.size}
                                              for a in corpus.archives]})
        if out.is_dir():
            out.rmdir()  # empty (an empty folder is all download_corpus lets through)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return files


# ----------------------------------------------------------------------------------------------------------
# The whole step

def read_marker(out: str | os.PathLike) -> dict | None:
    """What a previous run unpacked into ``out`` (its :data:`MARKER`), or None."""
    try:
        held = json.loads((Path(out) / MARKER).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return held if isinstance(held, dict) else None


@dataclass
class DownloadResult:
    """What :func:`download_corpus` did: files per sub-folder, bytes transferred, or nothing (already there)."""

    out: Path
    files: dict[str, int]
    fetched: int
    already: bool


def _files_text(files: dict[str, int]) -> str:
    return ", ".join(f"{sub}/ {n} file{'' if n == 1 else 's'}" for sub, n in files.items())


def download_corpus(corpus: NoiseCorpus, out: str | os.PathLike, cache_dir: str | os.PathLike,
                    keep_archive: bool = False, progress: bool = True,
                    log: Callable[[str], None] = print) -> DownloadResult:
    """Fetch, check and unpack ``corpus`` into ``out``; a rerun resumes, and says so when it is already there.

    Archives wait in ``cache_dir`` (a cut transfer continues from its ``.part`` file) and are deleted after
    unpacking unless ``keep_archive``. ``out`` must be absent, empty, or hold this very corpus.
    """
    out, cache_dir = Path(out), Path(cache_dir)
    held = read_marker(out)
    if held is not None:
        if held.get("corpus") == corpus.name and [a.get("known_hash") for a in held.get("archives", [])] == [
                a.known_hash for a in corpus.archives]:
            log(f"{out}: already holds {corpus.name} ({_files_text(held.get('files', {}))}); nothing to do")
            return DownloadResult(out, held.get("files", {}), 0, True)
        raise LancetError(f"{out}: holds {held.get('corpus')!r} already, not this {corpus.name}; delete the folder "
                          f"(or give another --out) to unpack {corpus.name} instead")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LancetError(f"{out}: exists and was not written by datasets/download_noise.py (no {MARKER}); move it "
                          f"away or give another --out")
    with output_lock(cache_dir, log=log):
        _remove_pooch_leftovers(cache_dir)
        paths, fetched = [], 0
        for a in corpus.archives:
            log(f"{a.fname}: {human_size(a.size) + ' ' if a.size else ''}from {a.url}")
            path, n = fetch_archive(a, cache_dir, progress, log)
            paths.append(path)
            fetched += n
        files = unpack(corpus, paths, out, progress)
        if not keep_archive:
            for path in paths:
                path.unlink(missing_ok=True)
    log(f"{out}: {_files_text(files)} ({corpus.name}; licence: {corpus.licence})")
    return DownloadResult(out, files, fetched, False)
