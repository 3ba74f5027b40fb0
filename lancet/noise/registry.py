"""The noise types: one entry each, holding everything the toolkit needs to know about one.

Adding a noise type is one :class:`NoiseType` in :data:`ENTRIES` (and its recordings in ``--noise-dir``):
augmentation, standardisation, features, ``--train-on online``, the noise split and the reports read this
registry when they run, never a list of names (docs/EXTENDING.md). The order of the entries is the order of
the default ``--noise-types``, of the manifest's conditions and of the online draw, so new entries go last.

Example:
    >>> list(NOISE_TYPES)
    ['babble', 'music', 'ambient', 'white']
    >>> [e.name for e in NOISE_TYPES.values() if e.uses_recordings], NOISE_TYPES["ambient"].noise_dir_folders
    (['music', 'ambient'], ('ambient', 'noise'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from lancet.core.conditions import CLEAN, REVERB
from lancet.core.errors import LancetError
from lancet.noise.generators import MUSIC, PINK, WHITE, Generator

# Condition names are <noise>_<snr>dB and are parsed back (lancet.core.conditions), so letters only.
_NAME = re.compile(r"^[A-Za-z]+$")


@dataclass(frozen=True)
class NoiseType:
    """One noise type. Its sources are tried in this order: the first of ``folders`` in ``--noise-dir`` that
    holds audio, ``talkers_folder``, babble of the corpus's own speakers, ``../shared/data/noise/<name>/``,
    and last ``generator`` as a stand-in named as such. A type with none of the first four is always
    generated (white noise)."""

    name: str
    #: sub-folders of ``--noise-dir`` holding its recordings, ours first, then MUSAN's name
    folders: tuple[str, ...] = ()
    #: a ``--noise-dir`` sub-folder of single talkers summed into babble (MUSAN's ``speech/``)
    talkers_folder: str = ""
    #: without recordings, babble of other speakers of the corpus (never the target's own voice)
    corpus_babble: bool = False
    #: look in the shared real recordings ``../shared/data/noise/<name>/`` when ``--noise-dir`` has none
    shared: bool = False
    #: the noise itself when it has no other source, else the stand-in when no recording is found
    generator: Generator | None = None
    #: stored mixtures reuse its recordings, so training and testing need the noise split (``--noise-manifest``)
    uses_recordings: bool = False
    #: how reports describe its test noise when that is not test-pool recordings of the noise split
    test_noise: str = "generated"
    #: ``--train-on online`` draws it unless ``--online-noise-types`` says otherwise
    online: bool = True

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name in (CLEAN, REVERB):
            raise LancetError(f"noise type {self.name!r} (lancet/noise/registry.py): use letters only, not "
                              f"{CLEAN} or {REVERB}, as condition names are <noise>_<snr>dB")
        if self.always_generated and self.generator is None:
            raise LancetError(f"noise type {self.name!r} (lancet/noise/registry.py): give it folders, "
                              f"shared=True, corpus_babble=True or a generator")

    @property
    def noise_dir_folders(self) -> tuple[str, ...]:
        """Every ``--noise-dir`` sub-folder it may come from (for messages and help texts)."""
        return self.folders + ((self.talkers_folder,) if self.talkers_folder else ())

    @property
    def always_generated(self) -> bool:
        """No recordings and no corpus babble to look for: the generator is the noise itself."""
        return not (self.noise_dir_folders or self.corpus_babble or self.shared)


ENTRIES = (
    NoiseType("babble", folders=("babble",), talkers_folder="speech", corpus_babble=True,
              test_noise="talkers of the test speakers' own session"),
    NoiseType("music", folders=("music",), shared=True, generator=MUSIC, uses_recordings=True),
    NoiseType("ambient", folders=("ambient", "noise"), shared=True, generator=PINK, uses_recordings=True),
    NoiseType("white", generator=WHITE, test_noise="generated (new at every draw)"),
)

#: The registry: name -> entry. Read it when needed (a test or an extension may add entries after import).
NOISE_TYPES: dict[str, NoiseType] = {e.name: e for e in ENTRIES}


def online_default() -> tuple[str, ...]:
    """The noise types ``--train-on online`` draws by default, in registry order."""
    return tuple(name for name, e in NOISE_TYPES.items() if e.online)


def noise_dir_layout(names: Iterable[str] | None = None, sep: str = " ") -> str:
    """The ``--noise-dir`` sub-folders of ``names`` (default: every type that reads any), for messages and
    help texts, our name or else MUSAN's.

    Example:
        >>> noise_dir_layout()
        'babble|speech/ music/ ambient|noise/'
    """
    names = NOISE_TYPES if names is None else names
    return sep.join(f"{'|'.join(NOISE_TYPES[n].noise_dir_folders)}/" for n in names
                    if NOISE_TYPES[n].noise_dir_folders)
