"""Every corpus reader as one entry of plain data: the reader and what its prepare script asks for.

Adding a corpus is one reader file (``lancet/corpora/<name>.py``: a ``scan_<name>(source, classes,
converted_dir, **options) -> CorpusScan``), one entry here and a thin ``datasets/prepare_<name>.py`` that
keeps its paths as constants and calls :func:`lancet.corpora.prepare.prepare` (docs/EXTENDING.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from lancet.core.manifest import CorpusScan
from lancet.corpora.cremad import scan_cremad
from lancet.corpora.emodb import scan_emodb
from lancet.corpora.folder import scan_folder
from lancet.corpora.iemocap import IEMOCAP_CLASS_MAPS, scan_iemocap
from lancet.corpora.labels import SHARED_CLASS_MAPS
from lancet.corpora.ravdess import scan_ravdess


@dataclass(frozen=True)
class Switch:
    """A reader option beyond the shared ones, as an on/off flag of the prepare script."""

    name: str        # the reader's keyword argument, e.g. calm_as_neutral (flag --calm-as-neutral)
    help: str


@dataclass(frozen=True)
class Corpus:
    """One corpus: its reader and the flags and defaults its prepare script shows."""

    name: str                                   # the registry key
    title: str                                  # how scripts and errors name it
    scan: Callable[..., CorpusScan]             # scan(source, classes, converted_dir, **switches)
    source_flag: str                            # the script's flag for the corpus folder (or CSV)
    source_help: str                            # what that folder holds
    class_maps: tuple[str, ...] = SHARED_CLASS_MAPS
    speaker_groups: bool = True                 # no sessions: speakers are dealt into --folds-k groups
    switches: tuple[Switch, ...] = ()

    def read(self, source: Any, classes: str, converted_dir: Any, **switches: bool) -> CorpusScan:
        return self.scan(source, classes, converted_dir, **switches)


CORPORA: dict[str, Corpus] = {c.name: c for c in (
    Corpus("iemocap", "IEMOCAP", scan_iemocap, "--iemocap-dir", "IEMOCAP release folder (Session1..Session5)",
           class_maps=tuple(IEMOCAP_CLASS_MAPS), speaker_groups=False),
    Corpus("emodb", "EmoDB", scan_emodb, "--emodb-dir", "EmoDB folder holding wav/"),
    Corpus("ravdess", "RAVDESS", scan_ravdess, "--ravdess-dir", "RAVDESS speech folder holding Actor_01 ... Actor_24",
           switches=(Switch("calm_as_neutral", "count calm (02) as neutral"),)),
    Corpus("cremad", "CREMA-D", scan_cremad, "--cremad-dir",
           "CREMA-D folder holding AudioWAV/ (and VideoDemographics.csv for gender)"),
    Corpus("folder", "labelled folder", scan_folder, "--csv", "CSV with columns path,label,speaker[,gender]"),
)}
