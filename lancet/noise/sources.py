"""Where each noise type comes from: a folder of recordings, the shared real noise, the corpus, or a generator.

:func:`resolve_sources` picks, per noise type, the first source its registry entry
(:class:`lancet.noise.registry.NoiseType`) allows that is there:
1. ``<noise_dir>/<folder>/`` for its folders (ours first, then MUSAN's: ``noise/`` for ambient), wav/flac
   files found recursively, any sample rate; for babble also MUSAN's single talkers ``speech/``, summed;
   without ``--noise-dir``, the noise ``datasets/download_noise.py`` unpacked into ``<repo>/datasets/noise/``
   stands in for it;
2. babble: utterances of other speakers of the corpus itself;
3. the shared real recordings ``<repo>/../shared/data/noise/<type>/``;
4. its generator, as a stand-in named as such (``generated:music``, ``generated:pink``).
A type with none of the first three (white) is always generated (``generated:white``).
:func:`draw_noise` then cuts one mixture's noise from the chosen source.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from lancet.core.audio import SAMPLE_RATE, AudioError, audio_info, load_audio
from lancet.core.errors import LancetError
from lancet.noise.babble import babble_for
from lancet.noise.generators import MakeNoise
from lancet.noise.mixing import is_silent, noise_segment
from lancet.noise.registry import NOISE_TYPES, NoiseType, noise_dir_layout

AUDIO_EXTENSIONS = (".wav", ".flac")
#: Shortest recording that can be noise. A shorter one, looped under an utterance, repeats more than four
#: times a second, which is heard as a flutter or a buzz rather than as noise, and the loop's 50 ms crossfade
#: would take over a fifth of every repeat. A set none of whose recordings reaches it is refused.
MIN_NOISE_S = 0.25

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_NOISE_DIR = REPO_ROOT.parent / "shared" / "data" / "noise"
# Where datasets/download_noise.py unpacks real noise; read at every call, so a test can point it elsewhere.
DOWNLOADED_NOISE_DIR: Path | None = REPO_ROOT / "datasets" / "noise"


@dataclass
class NoiseSource:
    """How one noise type is produced.

    kind: ``files`` (recordings mixed as they are), ``talkers`` (single-talker recordings summed into babble),
    ``corpus`` (babble from other speakers' corpus utterances), ``generated`` (synthesised: ``generator``
    names it, ``make`` makes it; carried here so that worker processes need not read the registry).
    """

    noise_type: str
    kind: str
    files: list[str] = field(default_factory=list)
    generator: str = ""
    description: str = ""
    make: MakeNoise | None = field(default=None, repr=False, compare=False)


def _files(files: list, noun: str = "file") -> str:
    """``1 file``, ``5 files``."""
    return f"{len(files)} {noun}{'' if len(files) == 1 else 's'}"


def list_audio(folder: Path) -> list[str]:
    """Audio files under ``folder`` (recursively), sorted, as strings."""
    return sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def downloaded_noise_dir(noise_types) -> Path | None:
    """:data:`DOWNLOADED_NOISE_DIR` when it holds audio for one of ``noise_types``, else None."""
    folder = DOWNLOADED_NOISE_DIR
    if folder is None or not Path(folder).is_dir():
        return None
    names = {name for nt in noise_types if nt in NOISE_TYPES for name in NOISE_TYPES[nt].noise_dir_folders}
    return Path(folder) if any((Path(folder) / n).is_dir() and list_audio(Path(folder) / n) for n in names) else None


def resolve_sources(noise_types, noise_dir: str | Path | None = None,
                    shared_dir: str | Path | None = SHARED_NOISE_DIR,
                    log=print, silent_ok: bool = False) -> dict[str, NoiseSource]:
    """Decide the source of every noise type in ``noise_types`` and say plainly (through ``log``) what was chosen.

    A set of recordings none of which can be used is refused, naming its folder (:func:`check_recordings`);
    ``silent_ok``: a set whose every recording is silent is only warned about (the augmentation skips and
    counts each of its mixtures, so it writes nothing for that noise type rather than a wrong number).
    """
    noise_dir = Path(noise_dir) if noise_dir else None
    if noise_dir is None and (noise_dir := downloaded_noise_dir(noise_types)) is not None:
        log(f"note: no --noise-dir given; using the downloaded noise in {noise_dir}")
    shared_dir = Path(shared_dir) if shared_dir else None
    out: dict[str, NoiseSource] = {}
    for nt in noise_types:
        if nt not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {nt!r} (known: {', '.join(NOISE_TYPES)})")
        out[nt] = _resolve(NOISE_TYPES[nt], noise_dir, shared_dir, log)
        if out[nt].files:
            check_recordings(out[nt], silent_ok, log)
    wanted = [nt for nt in noise_types if NOISE_TYPES[nt].noise_dir_folders]
    if noise_dir is not None and wanted and not any(
            src.kind in ("files", "talkers") and Path(src.files[0]).is_relative_to(noise_dir)
            for src in out.values() if src.files):
        raise LancetError(f"{noise_dir}: no usable audio ({', '.join(AUDIO_EXTENSIONS)}) for "
                          f"{', '.join(wanted)}; expected sub-folders {noise_dir_layout(wanted, ', ')} "
                          f"holding wav/flac files")
    return out


def check_recordings(source: NoiseSource, silent_ok: bool = False, log=print) -> None:
    """Refuse (one line naming the folder) a set of recordings none of which can be noise: each unreadable or
    implausible, shorter than :data:`MIN_NOISE_S`, or silent. With ``silent_ok``, a set whose every recording
    is silent is only warned about.

    It stops at the first usable recording, so a good set costs one header and one file; single bad files of
    a usable set are skipped and counted where a mixture draws them, as before.
    """
    found: Counter[str] = Counter()   # why a recording cannot be noise -> how many, in the order first met
    example = ""
    for f in source.files:
        try:
            sr, _, frames = audio_info(f)
            if frames / sr < MIN_NOISE_S:
                found[f"shorter than {MIN_NOISE_S} s"] += 1
            elif is_silent(load_audio(f, sr)):
                found["silent"] += 1
            else:
                return
        except AudioError as exc:
            found["unreadable"] += 1
            example = example or f", e.g. {exc}"
    folder = Path(os.path.commonpath(source.files)) if len(source.files) > 1 else Path(source.files[0]).parent
    what = (f"{folder}: none of its {_files(source.files, f'{source.noise_type} recording')} can be noise ("
            + ", ".join(f"{n} {why}" for why, n in found.items()) + f"{example})")
    if silent_ok and found["silent"] == len(source.files):
        log(f"warning: {what}; every {source.noise_type} mixture will be skipped and counted")
        return
    raise LancetError(f"{what}; give recordings of real noise, at least {MIN_NOISE_S} s long (a shorter one, looped, "
                      f"repeats audibly more than four times a second)")


def describe_fallbacks(shared_dir: str | Path | None = SHARED_NOISE_DIR) -> str:
    """Where each noise type comes from without ``--noise-dir``, for help texts.

    Example:
        >>> describe_fallbacks("/data/noise")
        'babble from the corpus; music, ambient from /data/noise if present, else generated stand-ins; white generated'
    """
    groups = ((lambda e: e.corpus_babble, "from the corpus"),
              (lambda e: e.shared, f"from {shared_dir} if present, else generated stand-ins"),
              (lambda e: e.always_generated, "generated"))
    parts = []
    for applies, where in groups:
        names = [e.name for e in NOISE_TYPES.values() if applies(e)]
        if names:
            parts.append(f"{', '.join(names)} {where}")
    return "; ".join(parts)


def _resolve(entry: NoiseType, noise_dir: Path | None, shared_dir: Path | None, log) -> NoiseSource:
    """The first source of ``entry`` that is there (the order of the module docstring)."""
    nt, gen = entry.name, entry.generator
    if entry.always_generated:
        return NoiseSource(nt, "generated", generator=gen.name, description=f"generated {gen.what}", make=gen.make)
    src = _from_noise_dir(entry, noise_dir) if noise_dir is not None else None
    if src is None and entry.corpus_babble:
        if noise_dir is not None:
            folders = " or ".join(f"{f}/" for f in entry.noise_dir_folders)
            log(f"note: no {folders} folder in {noise_dir}; making {nt} from the corpus")
        return NoiseSource(nt, "corpus", description=f"{nt} summed from utterances of other speakers of the corpus")
    if src is None and entry.shared and shared_dir is not None and (shared_dir / nt).is_dir():
        files = list_audio(shared_dir / nt)
        if files:
            log(f"note: no {nt} noise folder given; using the shared real recordings in {shared_dir / nt}")
            src = NoiseSource(nt, "files", files, description=f"{_files(files, 'shared file')} from {shared_dir / nt}")
    if src is None and gen is not None:
        log(f"note: no {nt} noise folder given and no shared noise found; using a GENERATED stand-in "
            f"(generated:{gen.name}), not real {nt} noise")
        src = NoiseSource(nt, "generated", generator=gen.name, description=f"generated stand-in generated:{gen.name}",
                          make=gen.make)
    if src is None:
        raise LancetError(f"{nt} noise: no recordings found; give --noise-dir with "
                          f"{noise_dir_layout([nt])} holding wav/flac files")
    return src


def _from_noise_dir(entry: NoiseType, noise_dir: Path) -> NoiseSource | None:
    """Recordings of ``entry`` in ``noise_dir``: its first folder holding audio, else its talkers folder."""
    nt = entry.name
    for name in entry.folders:
        files = list_audio(noise_dir / name) if (noise_dir / name).is_dir() else []
        if files:
            return NoiseSource(nt, "files", files, description=f"{_files(files)} from {noise_dir / name}")
    talkers = noise_dir / entry.talkers_folder
    if entry.talkers_folder and talkers.is_dir():
        files = list_audio(talkers)
        if files:
            return NoiseSource(nt, "talkers", files,
                               description=f"{nt} summed from {_files(files, 'talker file')} in {talkers}")
    return None


#: ``corpus_babble(length, rng) -> (noise, what it is, offsets)``: babble of the corpus's own speakers,
#: whose talker pool depends on the caller (the target's session when stored, the fold's training
#: speakers online).
CorpusBabble = Callable[[int, np.random.Generator], tuple[np.ndarray, str, list[int]]]


def draw_noise(source: NoiseSource, length: int, rng: np.random.Generator, crossfade: int,
               load: Callable[[str], np.ndarray], corpus_babble: CorpusBabble,
               talkers: int) -> tuple[np.ndarray, str, list[int]]:
    """The noise of one mixture from ``source``: ``(noise (length,), what it is, offsets in samples)``.

    One definition for the stored (``augment_IEMOCAP.py``) and the online (``--train-on online``)
    mixtures, so both draw the same way from the same generator. ``load(path)`` reads a recording
    (16 kHz); ``talkers`` is how many voices a babble sums.
    """
    if source.kind == "generated":
        return source.make(length, rng, SAMPLE_RATE), f"generated:{source.generator}", []
    if source.kind == "files":
        f = source.files[int(rng.integers(len(source.files)))]
        seg, off = noise_segment(load(f), length, rng, crossfade)
        return seg, f, [off]
    if source.kind == "talkers":
        seg, keys, offs = babble_for("", {f: [f] for f in source.files}, talkers, length, load, rng, crossfade)
        return seg, "babble:" + "+".join(keys), list(offs)
    if source.kind == "corpus":
        return corpus_babble(length, rng)
    raise ValueError(f"unknown noise source kind {source.kind!r}")
