"""Speaker groups for corpora without sessions: the manifest's ``session`` column holds the group.

IEMOCAP's five sessions are its folds. Other corpora have speakers only, so their speakers are dealt
into ``k`` groups (default 5) and the group number goes into ``session``: leave-one-group-out then runs
unchanged in the trainer (test on one group, validate on the next, train on the rest), and it stays
speaker-independent because a speaker is in exactly one group.

Dealing, fixed by a seed: speakers are taken gender by gender in a seeded random order and each goes to
the group with the fewest speakers, then the fewest of its gender, then the one where it adds classes the
group lacks, then the one whose class counts stay closest to an even share. A repair pass then swaps
speakers of the same gender between groups until every group holds every class, where the corpus allows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Sequence

import numpy as np

from lancet.core.manifest import Utterance
from lancet.core.errors import LancetError

DEFAULT_FOLDS = 5
DEFAULT_FOLD_SEED = 0
MIN_FOLDS = 3  # leave-one-group-out needs a test, a validation and a training group


def deal_speakers(utterances: Sequence[Utterance], k: int = DEFAULT_FOLDS,
                  seed: int = DEFAULT_FOLD_SEED) -> dict[str, int]:
    """Speaker -> group (1..k), balanced by speakers, gender and class; the same seed gives the same groups."""
    classes: dict[str, Counter] = defaultdict(Counter)
    gender: dict[str, str] = {}
    for u in utterances:
        classes[u.speaker][u.cls] += 1
        gender.setdefault(u.speaker, u.gender)
    speakers = sorted(classes)
    if k < MIN_FOLDS:
        raise LancetError(f"--folds-k {k}: leave-one-group-out needs at least {MIN_FOLDS} groups")
    if len(speakers) < k:
        raise LancetError(f"--folds-k {k}: the corpus has only {len(speakers)} speaker(s); "
                          f"choose at most {len(speakers)} groups")
    rng = np.random.default_rng(seed)
    order = [speakers[i] for i in rng.permutation(len(speakers))]
    order.sort(key=lambda s: gender[s])  # stable: gender by gender, seeded order inside
    total = Counter(u.cls for u in utterances)
    share = {c: n / k for c, n in total.items()}
    members: list[list[str]] = [[] for _ in range(k)]
    counts: list[Counter] = [Counter() for _ in range(k)]

    def cost(g: int, spk: str) -> tuple:
        same = sum(gender[s] == gender[spk] for s in members[g])
        new = sum(1 for c in classes[spk] if counts[g][c] == 0)
        spread = sum((counts[g][c] + classes[spk][c] - share[c]) ** 2 for c in total)
        return (len(members[g]), same, -new, spread, g)

    for spk in order:
        g = min(range(k), key=lambda g: cost(g, spk))
        members[g].append(spk)
        counts[g].update(classes[spk])
    _repair_coverage(members, counts, classes, gender, set(total))
    return {spk: g + 1 for g, group in enumerate(members) for spk in group}


def _repair_coverage(members: list[list[str]], counts: list[Counter], classes: dict[str, Counter],
                     gender: dict[str, str], all_classes: set[str]) -> None:
    """Swap same-gender speakers between groups while that gives a group a class it lacks and takes none
    away from either group (sizes and gender balance are kept). Stops when no such swap is left."""
    def covered(g: int, drop: str, add: str) -> set[str]:
        cnt = counts[g] - classes[drop] + classes[add]
        return {c for c, n in cnt.items() if n > 0}

    for _ in range(4 * sum(len(m) for m in members)):
        swapped = False
        for g, group in enumerate(members):
            missing = all_classes - {c for c, n in counts[g].items() if n > 0}
            if not missing:
                continue
            for h, other in enumerate(members):
                if h == g or swapped:
                    continue
                have_g = {c for c, n in counts[g].items() if n > 0}
                have_h = {c for c, n in counts[h].items() if n > 0}
                for s in other:
                    if swapped or not missing & set(classes[s]):
                        continue
                    for t in group:
                        if gender[t] != gender[s]:
                            continue
                        new_g, new_h = covered(g, t, s), covered(h, s, t)
                        if new_g > have_g and new_h >= have_h:
                            group[group.index(t)], other[other.index(s)] = s, t
                            counts[g] = counts[g] - classes[t] + classes[s]
                            counts[h] = counts[h] - classes[s] + classes[t]
                            swapped = True
                            break
        if not swapped:
            return


def assign_folds(utterances: Sequence[Utterance], k: int = DEFAULT_FOLDS,
                 seed: int = DEFAULT_FOLD_SEED) -> dict[str, int]:
    """Deal the speakers (:func:`deal_speakers`) and write each utterance's group into its ``session``."""
    groups = deal_speakers(utterances, k, seed)
    for u in utterances:
        u.session = groups[u.speaker]
    return groups


def describe_folds(utterances: Sequence[Utterance], groups: dict[str, int], seed: int) -> str:
    """One printable line per group: its speakers (with gender) and utterance count."""
    gender = {u.speaker: u.gender for u in utterances}
    n = Counter(u.session for u in utterances)
    lines = [f"speaker groups (the manifest's session column; seed {seed}):"]
    for g in sorted(set(groups.values())):
        spk = sorted(s for s, v in groups.items() if v == g)
        genders = Counter(gender[s] for s in spk)
        lines.append(f"  group {g}: {len(spk)} speakers ({', '.join(f'{k} {v}' for k, v in sorted(genders.items()))}), "
                     f"{n[g]} utterances: {' '.join(f'{s}({gender[s]})' for s in spk)}")
    return "\n".join(lines)
