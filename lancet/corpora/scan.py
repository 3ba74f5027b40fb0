"""What every corpus reader does with one audio file: check it, convert it once if needed, record it.

The readers (EmoDB, RAVDESS, CREMA-D, a labelled folder) differ only in how a file name or a CSV row
gives the speaker and the label; the checks, the counts and the 16 kHz conversion are the same for all
of them and for IEMOCAP (:func:`lancet.corpora.iemocap.scan_iemocap`), and land in the same
:class:`lancet.core.manifest.CorpusScan`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

from lancet.core.audio import SAMPLE_RATE, AudioError, audio_info, load_audio, write_wav
from lancet.core.manifest import CorpusScan, Utterance
from lancet.core.atomic import file_checksum, save_json
from lancet.core.errors import LancetError
from lancet.core.paths import check_outside, inside
from lancet.corpora.layout import SOURCE_RECORD

ODD_NAME = "odd name"
MISSING = "missing wav"
BROKEN = "broken wav"
NOT_WAV = "not a wav"


def check_folders(root: str | Path, converted_dir: str | Path | None, what: str, hint: str) -> Path:
    """The corpus folder, resolved; a one-line error when it is missing or the converted folder lies inside it."""
    root = Path(root)
    if not root.is_dir():
        raise LancetError(f"{root}: {what} folder not found ({hint})")
    root = root.resolve()
    check_converted_outside(root, converted_dir)
    return root


def check_converted_outside(root: Path, converted_dir: str | Path | None) -> None:
    """A one-line error when the folder for converted copies lies inside the (read-only) corpus folder ``root``."""
    if converted_dir is not None:
        check_outside(converted_dir, "--converted-dir", [("the corpus folder", root)])


def convert_once(wav: Path, root: Path, converted_dir: str | Path | None) -> Path:
    """The 16 kHz mono copy of ``wav`` under ``converted_dir`` (same path relative to ``root``), written once.

    The copy is keyed by its source's content, not its name: a record beside it (``<copy>.source.json``)
    holds the source's path, size, modification time and SHA-256. A source replaced in place is converted
    again; a copy made from *another* source (a second corpus with the same relative names sharing the
    folder) is refused, never reused.
    """
    if converted_dir is None:
        raise AudioError(f"{wav}: not 16 kHz mono and no folder given for converted copies")
    conv = Path(converted_dir).resolve()
    target = inside(conv, conv / relative_inside(wav, root))
    source = wav.resolve()
    stat = source.stat()
    record_path = target.with_name(target.name + SOURCE_RECORD)
    known = _read_record(record_path)
    if target.is_file() and known.get("source") not in (None, str(source)):
        raise LancetError(f"{target}: already holds the converted copy of {known['source']}, not of {source} "
                          f"(two corpora sharing one folder?); choose another --converted-dir")
    unchanged = known.get("size") == stat.st_size and known.get("mtime_ns") == stat.st_mtime_ns
    if target.is_file() and (unchanged or known.get("sha256") == file_checksum(source)):
        return target
    write_wav(target, load_audio(wav, SAMPLE_RATE), SAMPLE_RATE)
    save_json(record_path, {"source": str(source), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                            "sha256": file_checksum(source)}, allow_nan=False)
    return target


def _read_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def relative_inside(path: Path, root: Path) -> Path:
    """``path`` relative to ``root`` once ``..`` is taken out of it; ValueError when it lies outside.

    The file itself may be a link to anywhere (a release linked in from another disk): only its name
    inside the corpus counts, as written.

    Example:
        >>> relative_inside(Path("/data/corpus/a/../b.wav"), Path("/data/corpus"))
        PosixPath('b.wav')
    """
    rel = Path(os.path.relpath(os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))))
    if rel.parts and rel.parts[0] == "..":
        raise ValueError(f"{path} lies outside {root}")
    return rel


def _converted_copy(wav: Path, root: Path, converted_dir: str | Path | None) -> Path:
    """The 16 kHz mono copy of ``wav``: same relative path under ``converted_dir``; files outside the corpus
    folder (a CSV may name any path, ``..`` included) go under ``_outside/<hash of their folder>/``."""
    try:
        relative_inside(wav, root)
        return convert_once(wav, root, converted_dir)
    except ValueError:
        if converted_dir is None:
            return convert_once(wav, root, None)  # raises the usual error
        folder = hashlib.sha1(str(wav.parent.resolve()).encode()).hexdigest()[:12]
        return convert_once(wav, wav.resolve().parent, Path(converted_dir) / "_outside" / folder)


def add_audio(scan: CorpusScan, wav: Path, root: Path, converted_dir: str | Path | None, where: str, *,
              uid: str, speaker: str, gender: str, label: str, cls: str, session: int = 0,
              improvised: bool = False) -> Utterance | None:
    """Check ``wav`` and append its utterance to ``scan``; a missing, unreadable or empty file is reported
    (``where`` names it), counted and skipped. Audio that is not 16 kHz mono is converted once into
    ``converted_dir`` and the manifest points there. Returns the utterance, or None when skipped."""
    if not wav.is_file():
        scan.warn(MISSING, f"{where}: {wav} does not exist; skipped")
        return None
    try:
        sr, channels, frames = audio_info(wav)
        if frames == 0:
            raise AudioError(f"{wav}: empty audio (0 samples)")
        path = wav
        if sr != SAMPLE_RATE or channels != 1:
            path = _converted_copy(wav, root, converted_dir)
            scan.converted += 1
    except AudioError as exc:
        scan.warn(BROKEN, f"{where}: {exc}; skipped" if where != str(wav) else f"{exc}; skipped")
        return None
    utt = Utterance(id=uid, path=str(path), session=session, speaker=speaker, gender=gender,
                    improvised=improvised, label=label, cls=cls, duration_s=frames / sr, sample_rate=SAMPLE_RATE)
    scan.utterances.append(utt)
    return utt


def wav_files(folder: Path, scan: CorpusScan | None = None) -> list[Path]:
    """The ``.wav`` files of ``folder`` (any case of the extension), sorted; macOS ``._`` companions left out.

    With ``scan``, every other file there is counted in it with its reason, so nothing under a corpus
    folder goes unmentioned."""
    wavs, others = [], []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("._"):
            continue
        (wavs if p.suffix.lower() == ".wav" else others).append(p)
    if scan is not None:
        for p in others:
            scan.warn(NOT_WAV, f"{p}: not a .wav file; left out")
    return wavs


def add_named_file(scan: CorpusScan, mapping: Mapping[str, str], wav: Path, root: Path,
                   converted_dir: str | Path | None, *, label: str, speaker: str, gender: str) -> Utterance | None:
    """A file whose name gave its speaker and label: dropped and counted when ``label`` is outside the
    class ``mapping``, else checked and recorded (:func:`add_audio`) with the file name as its id."""
    cls = mapping.get(label)
    if cls is None:
        scan.dropped_labels[label] += 1
        return None
    return add_audio(scan, wav, root, converted_dir, str(wav), uid=wav.stem, speaker=speaker, gender=gender,
                     label=label, cls=cls)
