"""Babble noise: the sum of several talkers, never including the target utterance's own speaker."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from lancet.noise.mixing import SilentSignalError, is_silent, noise_segment, power

DEFAULT_TALKERS = 6


def pick_talkers(target_speaker: str, by_speaker: Mapping[str, Sequence[str]], n: int,
                 rng: np.random.Generator) -> list[str]:
    """Choose ``n`` utterances (keys of ``by_speaker``'s lists) from speakers other than ``target_speaker``.

    Distinct speakers are used first (one utterance each, speakers in random order); only when there are
    fewer other speakers than ``n`` does a speaker contribute a second (different, where possible) utterance.
    """
    others = sorted(s for s in by_speaker if s != target_speaker and by_speaker[s])
    if not others:
        raise SilentSignalError(f"no utterances of speakers other than {target_speaker} for babble")
    chosen: list[str] = []
    used: set[str] = set()
    while len(chosen) < n:
        for spk in [others[i] for i in rng.permutation(len(others))]:
            if len(chosen) >= n:
                break
            items = list(by_speaker[spk])
            fresh = [u for u in items if u not in used] or items
            pick = fresh[int(rng.integers(len(fresh)))]
            chosen.append(pick)
            used.add(pick)
    return chosen


def make_babble(talkers: Sequence[np.ndarray], length: int, rng: np.random.Generator,
                crossfade: int) -> tuple[np.ndarray, list[int]]:
    """Sum ``talkers`` into ``length`` samples of babble.

    Each talker is level-normalised to unit power first (so no one voice dominates), then cut at a random
    offset (looped with a crossfade when shorter than ``length``). Silent talkers are left out. The sum is
    divided by sqrt(number of talkers) so the babble has about unit power. Returns ``(babble, offsets)``.
    """
    total = np.zeros(length, dtype=np.float64)
    offsets: list[int] = []
    used = 0
    for sig in talkers:
        sig = np.asarray(sig, dtype=np.float32)
        if sig.size == 0 or is_silent(sig):
            offsets.append(-1)
            continue
        seg, off = noise_segment(sig / np.sqrt(power(sig)), length, rng, crossfade)
        total += seg
        offsets.append(off)
        used += 1
    if used == 0:
        raise SilentSignalError("all babble talkers are silent")
    return (total / np.sqrt(used)).astype(np.float32), offsets


def babble_for(target_speaker: str, by_speaker: Mapping[str, Sequence[str]], n: int, length: int,
               load: Callable[[str], np.ndarray], rng: np.random.Generator,
               crossfade: int) -> tuple[np.ndarray, list[str], list[int]]:
    """Pick talkers for ``target_speaker`` (:func:`pick_talkers`), load them with ``load`` and sum them.

    Returns ``(babble, talker keys, offsets)``.
    """
    keys = pick_talkers(target_speaker, by_speaker, n, rng)
    babble, offsets = make_babble([load(k) for k in keys], length, rng, crossfade)
    return babble, keys, offsets


# ----------------------------------------------------------------------------------------------------------
# Whose voices may be in the babble: never a speaker that a model is tested (or validated) on in a fold
# where it trains on that babble.
BABBLE_POOLS = ("session", "corpus")


def session_talkers(target_speaker: str, target_group: str, by_speaker: Mapping[str, Sequence],
                    group_of: Mapping[str, str]) -> dict[str, Sequence]:
    """Talkers for *stored* babble: the other speakers of the target's own group (IEMOCAP session).

    Stored conditions are made once for every fold. Folds split by group, so an utterance and its
    babble talkers are always on the same side of every fold: a training utterance's babble holds only
    training speakers, a test utterance's only test speakers. Raises :class:`SilentSignalError` when the
    group has no other speaker.

    Example::

        >>> by = {"Ses01F": [0, 1], "Ses01M": [2], "Ses02F": [3]}
        >>> session_talkers("Ses01F", "1", by, {"Ses01F": "1", "Ses01M": "1", "Ses02F": "2"})
        {'Ses01M': [2]}
    """
    pool = {s: items for s, items in by_speaker.items() if group_of.get(s) == target_group and s != target_speaker}
    if not pool:
        raise SilentSignalError(f"no other speaker than {target_speaker} in group {target_group} for session babble")
    return pool


def fold_talkers(target_speaker: str, by_speaker: Mapping[str, Sequence], train_speakers: Sequence[str]) -> dict[str, Sequence]:
    """Talkers for *on-the-fly* babble in one fold: the fold's training speakers other than the target."""
    allowed = set(train_speakers)
    pool = {s: items for s, items in by_speaker.items() if s in allowed and s != target_speaker}
    if not pool:
        raise SilentSignalError(f"no training speaker other than {target_speaker} for babble")
    return pool


def assert_fold_babble(talker_speakers: Sequence[str], train_speakers: Sequence[str], test_speakers: Sequence[str],
                       val_speakers: Sequence[str] = (), what: str = "babble") -> None:
    """Raise AssertionError if a babble heard in training holds a test or validation speaker's voice, or any
    speaker outside the fold's training speakers."""
    heard = set(talker_speakers)
    banned = heard & (set(test_speakers) | set(val_speakers))
    if banned:
        raise AssertionError(f"{what}: test/validation speaker(s) {sorted(banned)} in training babble")
    outside = heard - set(train_speakers)
    if outside:
        raise AssertionError(f"{what}: speaker(s) {sorted(outside)} are not training speakers of this fold")
