"""Noise recordings split by file into a training pool and a test pool, so test noise is never heard in training.

Recordings (ambient, music, single-talker files, room impulse responses) are grouped into *recordings*
first: chunks cut from one long recording (``aircon_1_0.wav``, ``aircon_1_1.wav``, ...) share a key and
always land on the same side. Each recording goes to the test pool when a hash of (seed, key) falls below
``test_fraction``, so a file's side does not depend on which other files are listed (the augmentation,
the trainer and the online mixer agree whatever each of them sees). Generated noise (``generated:*``)
and corpus babble are not recordings: white noise is new at every draw, and babble talkers are kept
apart by speaker (:mod:`lancet.noise.babble`).

How the two pools are used (docs/ROBUSTNESS.md): stored noisy conditions are made once for every
utterance (fold-independent), each mixture recording its noise file in ``augmented_manifest.csv``. A
noise-trained model trains only on stored mixtures whose recordings are in the training pool, and every
model is tested only on mixtures whose recordings are in the test pool. On-the-fly training draws from
the training pool only.

Example::

    >>> recording_key("/noise/ambient/aircon_1_3.wav"), recording_key("simulated:hall#2")
    ('ambient/aircon_1', 'simulated:hall#2')
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Iterable, Mapping, Sequence

TEST_FRACTION = 0.5
SPLIT_SEED = 0
TRAIN, TEST = "train", "test"
_CHUNK = re.compile(r"_\d+$")


def recording_key(name: str) -> str:
    """The recording a noise file belongs to: ``<folder>/<stem>`` without a trailing ``_<n>`` chunk number.

    Names that are not file paths (``generated:white``, ``simulated:hall#0``) are their own key.
    """
    if ":" in name and not PurePath(name).suffix:
        return name
    p = PurePath(name)
    return f"{p.parent.name}/{_CHUNK.sub('', p.stem)}" if p.parent.name else _CHUNK.sub("", p.stem)


def is_recording(name: str) -> bool:
    """Whether a manifest ``noise_file`` entry names a recording (not generated noise or corpus babble)."""
    return bool(name) and not name.startswith(("generated:", "babble:"))


def _unit(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0 ** 64


@dataclass
class NoiseSplit:
    """Which recordings are for training and which for testing (one noise type or room)."""

    seed: int = SPLIT_SEED
    test_fraction: float = TEST_FRACTION
    train: list[str] = field(default_factory=list)   # recording keys
    test: list[str] = field(default_factory=list)

    def pool(self, name: str) -> str:
        """``train`` or ``test`` for a file (by its recording key); keys not split yet are hashed the same way."""
        key = recording_key(name)
        if key in self._test_set:
            return TEST
        if key in self._train_set:
            return TRAIN
        return TEST if _unit(self.seed, key) < self.test_fraction else TRAIN

    def __post_init__(self) -> None:
        self._train_set, self._test_set = set(self.train), set(self.test)

    def to_json(self) -> dict:
        return {"seed": self.seed, "test_fraction": self.test_fraction, "train": self.train, "test": self.test}

    def describe(self) -> str:
        return f"{len(self.train)} recordings for training, {len(self.test)} for testing (seed {self.seed})"


def split_recordings(files: Iterable[str], seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION) -> NoiseSplit:
    """Split the recordings of ``files`` (see the module docstring); both pools are non-empty when there are
    at least two recordings (the recording nearest the threshold changes side if one pool came out empty)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    keys = sorted({recording_key(f) for f in files if is_recording(f)})
    u = {k: _unit(seed, k) for k in keys}
    test = [k for k in keys if u[k] < test_fraction]
    train = [k for k in keys if u[k] >= test_fraction]
    if len(keys) >= 2 and not test:
        k = min(train, key=u.get)
        train.remove(k)
        test.append(k)
    elif len(keys) >= 2 and not train:
        k = max(test, key=u.get)
        test.remove(k)
        train.append(k)
    return NoiseSplit(seed, test_fraction, sorted(train), sorted(test))


def noise_files_of(entry: str) -> list[str]:
    """The recordings named by a manifest ``noise_file`` entry (``babble:a.wav+b.wav`` lists talker files)."""
    if entry.startswith("babble:"):
        parts = entry[len("babble:"):].split("+")
        return [p for p in parts if PurePath(p).suffix]  # corpus babble lists utterance ids, not files
    return [entry] if is_recording(entry) else []


def split_by_type(noise_files: Mapping[str, Iterable[str]], seed: int = SPLIT_SEED,
                  test_fraction: float = TEST_FRACTION) -> dict[str, NoiseSplit]:
    """One :class:`NoiseSplit` per noise type (or ``reverberation``) from its manifest ``noise_file`` entries."""
    out = {}
    for noise_type, entries in sorted(noise_files.items()):
        files = [f for e in entries for f in noise_files_of(e)]
        if files:
            out[noise_type] = split_recordings(files, seed, test_fraction)
    return out


def entry_pool(entry: str, split: NoiseSplit | None) -> str | None:
    """``train``/``test`` for a manifest entry whose recordings are all on one side; ``None`` when it uses
    no recording (generated noise, corpus babble); ``mixed`` when its talkers straddle both pools."""
    files = noise_files_of(entry)
    if not files or split is None:
        return None
    pools = {split.pool(f) for f in files}
    return pools.pop() if len(pools) == 1 else "mixed"


def assert_unseen(train_entries: Sequence[str], test_entries: Sequence[str], splits: Mapping[str, NoiseSplit],
                  noise_type: str) -> None:
    """Raise AssertionError if a recording used in training is also used in testing, or lies in the test pool."""
    split = splits.get(noise_type)
    used_train = {recording_key(f) for e in train_entries for f in noise_files_of(e)}
    used_test = {recording_key(f) for e in test_entries for f in noise_files_of(e)}
    shared = used_train & used_test
    if shared:
        raise AssertionError(f"{noise_type}: recordings {sorted(shared)[:3]} are used in training and in testing")
    if split is not None:
        leaked = sorted({recording_key(f) for e in train_entries for f in noise_files_of(e) if split.pool(f) == TEST})
        if leaked:
            raise AssertionError(f"{noise_type}: test-pool recordings {leaked[:3]} are used in training")


def filter_files(files: Sequence[str], split: NoiseSplit, pool: str) -> list[str]:
    """The files of ``files`` whose recording is in ``pool`` (``train`` or ``test``)."""
    return [f for f in files if split.pool(f) == pool]
