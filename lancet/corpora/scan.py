"""What every corpus reader does with one audio file: check it, convert it once if needed, record it.

The readers (EmoDB, RAVDESS, CREMA-D, a labelled folder) differ only in how a file name or a CSV row
gives the speaker and the label; the checks, the counts and the 16 kHz conversion are the same for all
of them and for IEMOCAP (:func:`lancet.corpora.iemocap.scan_iemocap`), and land in the same
:class:`lancet.core.manifest.CorpusScan`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

from lancet.core.audio import SAMPLE_RATE, AudioError, audio_info, load_audio, write_wav
from lancet.core.manifest import CorpusScan, Utterance
from lancet.core.errors import LancetError

ODD_NAME = "odd name"
MISSING = "missing wav"
BROKEN = "broken wav"


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
        conv = Path(converted_dir).resolve()
        if conv == root or root in conv.parents:
            raise LancetError(f"{converted_dir}: the folder for converted audio lies inside the corpus folder "
                              f"{root}, which is only ever read; choose another --converted-dir")


def convert_once(wav: Path, root: Path, converted_dir: str | Path | None) -> Path:
    """The 16 kHz mono copy of ``wav`` under ``converted_dir`` (same path relative to ``root``), written once."""
    if converted_dir is None:
        raise AudioError(f"{wav}: not 16 kHz mono and no folder given for converted copies")
    target = Path(converted_dir).resolve() / wav.relative_to(root)
    if not target.is_file():
        write_wav(target, load_audio(wav, SAMPLE_RATE), SAMPLE_RATE)
    return target


def _converted_copy(wav: Path, root: Path, converted_dir: str | Path | None) -> Path:
    """The 16 kHz mono copy of ``wav``: same relative path under ``converted_dir``; files outside the corpus
    folder (a CSV may name any path) go under ``_outside/<hash of their folder>/``."""
    try:
        wav.relative_to(root)
        return convert_once(wav, root, converted_dir)
    except ValueError:
        if converted_dir is None:
            return convert_once(wav, root, None)  # raises the usual error
        folder = hashlib.sha1(str(wav.parent.resolve()).encode()).hexdigest()[:12]
        return convert_once(wav, wav.parent, Path(converted_dir) / "_outside" / folder)


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


def wav_files(folder: Path) -> list[Path]:
    """The ``.wav`` files of ``folder``, sorted; macOS ``._`` companions left out."""
    return sorted(p for p in folder.glob("*.wav") if not p.name.startswith("._"))


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
