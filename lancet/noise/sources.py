"""Where each kind of noise comes from: a folder of recordings, the shared real noise, or a generated stand-in.

Noise types: ``babble``, ``music``, ``ambient``, ``white``. For each, :func:`resolve_sources` picks, in order:
1. ``<noise_dir>/<type>/`` (or MUSAN's names: ``speech/`` for babble talkers, ``music/``, ``noise/`` for
   ambient), wav/flac files found recursively, any sample rate; without ``--noise-dir``, the noise that
   ``datasets/download_noise.py`` unpacked into ``<repo>/datasets/noise/`` stands in for it;
2. the shared real recordings ``<repo>/../shared/data/noise/<type>/`` (music and ambient only);
3. babble: utterances of other speakers from the corpus itself; music/ambient: a generated stand-in,
   named as such (``generated:music``, ``generated:pink``); white is always generated (``generated:white``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from lancet.core.audio import SAMPLE_RATE
from lancet.core.errors import LancetError

NOISE_TYPES = ("babble", "music", "ambient", "white")
AUDIO_EXTENSIONS = (".wav", ".flac")
# Sub-folder names accepted inside --noise-dir for each noise type: ours first, then MUSAN's.
FOLDER_NAMES = {"babble": ("babble",), "music": ("music",), "ambient": ("ambient", "noise"), "white": ()}
MUSAN_TALKERS = "speech"  # MUSAN speech/: single talkers that are summed into babble

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_NOISE_DIR = REPO_ROOT.parent / "shared" / "data" / "noise"
# Where datasets/download_noise.py unpacks real noise; read at every call, so a test can point it elsewhere.
DOWNLOADED_NOISE_DIR: Path | None = REPO_ROOT / "datasets" / "noise"


@dataclass
class NoiseSource:
    """How one noise type is produced.

    kind: ``files`` (recordings mixed as they are), ``talkers`` (single-talker recordings summed into babble),
    ``corpus`` (babble from other speakers' corpus utterances), ``generated`` (synthesised: ``generator``).
    """

    noise_type: str
    kind: str
    files: list[str] = field(default_factory=list)
    generator: str = ""
    description: str = ""


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
    names = {name for nt in noise_types
             for name in FOLDER_NAMES.get(nt, ()) + ((MUSAN_TALKERS,) if nt == "babble" else ())}
    return Path(folder) if any((Path(folder) / n).is_dir() and list_audio(Path(folder) / n) for n in names) else None


def resolve_sources(noise_types, noise_dir: str | Path | None = None,
                    shared_dir: str | Path | None = SHARED_NOISE_DIR,
                    log=print) -> dict[str, NoiseSource]:
    """Decide the source of every noise type in ``noise_types`` and say plainly (through ``log``) what was chosen."""
    noise_dir = Path(noise_dir) if noise_dir else None
    if noise_dir is None and (noise_dir := downloaded_noise_dir(noise_types)) is not None:
        log(f"note: no --noise-dir given; using the downloaded noise in {noise_dir}")
    shared_dir = Path(shared_dir) if shared_dir else None
    out: dict[str, NoiseSource] = {}
    for nt in noise_types:
        if nt not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {nt!r} (known: {', '.join(NOISE_TYPES)})")
        src = None
        if nt == "white":
            src = NoiseSource(nt, "generated", generator="white", description="generated white Gaussian noise")
        if src is None and noise_dir is not None:
            for name in FOLDER_NAMES[nt]:
                files = list_audio(noise_dir / name) if (noise_dir / name).is_dir() else []
                if files:
                    src = NoiseSource(nt, "files", files, description=f"{_files(files)} from {noise_dir / name}")
                    break
            if src is None and nt == "babble" and (noise_dir / MUSAN_TALKERS).is_dir():
                files = list_audio(noise_dir / MUSAN_TALKERS)
                if files:
                    src = NoiseSource(nt, "talkers", files,
                                      description=f"babble summed from {_files(files, 'talker file')} in {noise_dir / MUSAN_TALKERS}")
        if src is None and nt == "babble":
            src = NoiseSource(nt, "corpus", description="babble summed from utterances of other speakers of the corpus")
            if noise_dir is not None:
                log(f"note: no babble/ or speech/ folder in {noise_dir}; making babble from the corpus")
        if src is None and shared_dir is not None and (shared_dir / nt).is_dir():
            files = list_audio(shared_dir / nt)
            if files:
                log(f"note: no {nt} noise folder given; using the shared real recordings in {shared_dir / nt}")
                src = NoiseSource(nt, "files", files, description=f"{_files(files, 'shared file')} from {shared_dir / nt}")
        if src is None:
            gen = "music" if nt == "music" else "pink"
            log(f"note: no {nt} noise folder given and no shared noise found; using a GENERATED stand-in "
                f"(generated:{gen}), not real {nt} noise")
            src = NoiseSource(nt, "generated", generator=gen, description=f"generated stand-in generated:{gen}")
        out[nt] = src
    wanted = [nt for nt in noise_types if FOLDER_NAMES[nt]]
    if noise_dir is not None and wanted and not any(
            src.kind in ("files", "talkers") and Path(src.files[0]).is_relative_to(noise_dir)
            for src in out.values() if src.files):
        layout = ", ".join(f"{'|'.join(FOLDER_NAMES[nt] + ((MUSAN_TALKERS,) if nt == 'babble' else ()))}/"
                           for nt in wanted)
        raise LancetError(f"{noise_dir}: no usable audio ({', '.join(AUDIO_EXTENSIONS)}) for "
                          f"{', '.join(wanted)}; expected sub-folders {layout} holding wav/flac files")
    return out


# ----------------------------------------------------------------------------------------------------------
# Generated noises (deterministic for a given rng)

def white_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise with unit variance."""
    return rng.standard_normal(length).astype(np.float32)


def coloured_noise(length: int, rng: np.random.Generator, exponent: float = 1.0) -> np.ndarray:
    """Noise whose power spectrum falls as 1/f**exponent (1: pink, 2: brown), unit variance."""
    n = max(int(length), 2)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    spectrum /= f ** (exponent / 2.0)
    x = np.fft.irfft(spectrum, n)[:length]
    x -= x.mean()
    std = x.std()
    return (x / std if std > 0 else x).astype(np.float32)


def synthetic_music(length: int, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """A stand-in for music: a random chord progression of harmonic tones with note envelopes, and a beat."""
    t_len = max(int(length), 1)
    out = np.zeros(t_len, dtype=np.float64)
    tempo = rng.uniform(80, 140)
    beat = int(sr * 60.0 / tempo)
    root = rng.uniform(110.0, 220.0)
    chords = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (9, 12, 16))
    chord_len = 4 * beat
    for start in range(0, t_len, chord_len):
        seg = min(chord_len, t_len - start)
        t = np.arange(seg) / sr
        chord = chords[int(rng.integers(len(chords)))]
        env = np.exp(-t * rng.uniform(0.5, 2.0))
        for semi in chord:
            f0 = root * 2.0 ** (semi / 12.0)
            for h, amp in ((1, 1.0), (2, 0.4), (3, 0.2)):
                out[start:start + seg] += amp * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    kick_t = np.arange(int(0.15 * sr)) / sr
    kick = np.sin(2 * np.pi * (60 + 60 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 25) * 3.0
    for start in range(0, t_len, beat):
        seg = min(kick.size, t_len - start)
        out[start:start + seg] += kick[:seg]
    std = out.std()
    return (out / std if std > 0 else out).astype(np.float32)


def generate(generator: str, length: int, rng: np.random.Generator, sr: int = 16000) -> np.ndarray:
    """Make ``length`` samples of a generated noise: ``white``, ``pink``, ``brown`` or ``music``."""
    if generator == "white":
        return white_noise(length, rng)
    if generator == "pink":
        return coloured_noise(length, rng, 1.0)
    if generator == "brown":
        return coloured_noise(length, rng, 2.0)
    if generator == "music":
        return synthetic_music(length, rng, sr)
    raise ValueError(f"unknown generator {generator!r}")


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
    from lancet.noise.babble import babble_for
    from lancet.noise.mixing import noise_segment

    if source.kind == "generated":
        return generate(source.generator, length, rng, SAMPLE_RATE), f"generated:{source.generator}", []
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
