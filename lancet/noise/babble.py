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
