"""Evaluation protocols: which utterances train, validate and test in each fold.

Splits are made on *utterances*, never on segments: every segment and every noise condition of an
utterance lands on the same side.

* ``loso`` (default, speaker-independent): one fold per session. The test set is that session's
  speakers; the validation set (model selection, early stopping) is the next session cyclically; the
  remaining sessions train. The test session never picks an epoch.
* ``random`` (the published protocol, speaker-dependent): one stratified 80/10/10 split of the
  utterances with ``random_state=42``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from lancet.core.errors import LancetError

from .config import RANDOM_SPLIT_FRACTIONS, RANDOM_SPLIT_STATE


@dataclass(frozen=True)
class Utterance:
    """One utterance as the trainer sees it (from a feature store's index)."""

    id: str
    session: str
    speaker: str
    cls: str
    improvised: bool
    label: str | None = None


@dataclass
class Fold:
    """One train/validation/test split of utterance ids."""

    name: str
    train: frozenset[str]
    val: frozenset[str]
    test: frozenset[str]
    speaker_independent: bool
    train_speakers: tuple[str, ...] = field(default=())
    val_speakers: tuple[str, ...] = field(default=())
    test_speakers: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        kind = "speaker-independent" if self.speaker_independent else "speaker-dependent"
        text = f"{self.name}: {len(self.train)} train / {len(self.val)} val / {len(self.test)} test utterances ({kind})"
        if self.speaker_independent:
            text += f"; test speakers {','.join(self.test_speakers)}; validation speakers {','.join(self.val_speakers)}"
        return text


def _session_key(session: str) -> tuple[int, str]:
    try:
        return (int(session), session)
    except ValueError:
        return (1 << 30, session)


def utterances_from_index(rows: Iterable[Mapping[str, str]]) -> list[Utterance]:
    """Collapse a segment index (one row per segment) into its utterances, in first-seen order."""
    seen: dict[str, Utterance] = {}
    for row in rows:
        uid = str(row["id"])
        if uid in seen:
            continue
        label = row.get("label")
        seen[uid] = Utterance(
            id=uid,
            session=str(row["session"]),
            speaker=str(row["speaker"]),
            cls=str(row["class"]),
            improvised=str(row.get("improvised", "0")).strip().lower() in ("1", "true", "yes"),
            label=str(label) if label not in (None, "") else None,
        )
    return list(seen.values())


def loso_folds(utterances: Sequence[Utterance]) -> list[Fold]:
    """Leave-one-session-out folds; validation = the next session cyclically. Needs 3 sessions or more."""
    sessions = sorted({u.session for u in utterances}, key=_session_key)
    if len(sessions) < 3:
        raise LancetError(
            f"leave-one-session-out needs at least 3 sessions (test, validation, training), the features hold "
            f"{len(sessions)} ({', '.join(sessions) or 'none'}); use --protocol random"
        )
    folds = []
    for i, test_session in enumerate(sessions):
        val_session = sessions[(i + 1) % len(sessions)]
        groups: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
        speakers: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
        for u in utterances:
            side = "test" if u.session == test_session else "val" if u.session == val_session else "train"
            groups[side].add(u.id)
            speakers[side].add(u.speaker)
        fold = Fold(
            name=f"fold{test_session}",
            train=frozenset(groups["train"]),
            val=frozenset(groups["val"]),
            test=frozenset(groups["test"]),
            speaker_independent=True,
            train_speakers=tuple(sorted(speakers["train"])),
            val_speakers=tuple(sorted(speakers["val"])),
            test_speakers=tuple(sorted(speakers["test"])),
        )
        check_fold(fold, utterances)
        folds.append(fold)
    return folds


def random_split(utterances: Sequence[Utterance], random_state: int = RANDOM_SPLIT_STATE,
                 fractions: tuple[float, float, float] = RANDOM_SPLIT_FRACTIONS) -> Fold:
    """The published stratified 80/10/10 utterance split (speaker-dependent)."""
    from sklearn.model_selection import train_test_split

    ids = np.array([u.id for u in utterances])
    labels = np.array([u.cls for u in utterances])
    counts = {c: int((labels == c).sum()) for c in sorted(set(labels))}
    too_few = [f"{c} ({n})" for c, n in counts.items() if n < 10]
    if too_few:
        raise LancetError(
            f"the random 80/10/10 split is stratified and needs at least 10 utterances per class; too few: {', '.join(too_few)}"
        )
    _, val_frac, test_frac = fractions
    train_ids, rest_ids, _, rest_labels = train_test_split(
        ids, labels, test_size=val_frac + test_frac, stratify=labels, random_state=random_state)
    val_ids, test_ids = train_test_split(
        rest_ids, test_size=test_frac / (val_frac + test_frac), stratify=rest_labels, random_state=random_state)
    speakers = tuple(sorted({u.speaker for u in utterances}))
    fold = Fold(name="random", train=frozenset(train_ids.tolist()), val=frozenset(val_ids.tolist()),
                test=frozenset(test_ids.tolist()), speaker_independent=False,
                train_speakers=speakers, val_speakers=speakers, test_speakers=speakers)
    check_fold(fold, utterances)
    return fold


def make_folds(utterances: Sequence[Utterance], protocol: str, only: Sequence[str] | None = None) -> list[Fold]:
    """All folds of ``protocol``, or the subset named in ``only`` ("3" and "fold3" both name fold3)."""
    if not utterances:
        raise LancetError("no utterances left to split (check --classes / --improvised-only against the features)")
    if protocol == "loso":
        folds = loso_folds(utterances)
    elif protocol == "random":
        folds = [random_split(utterances)]
    else:
        raise LancetError(f"unknown protocol {protocol!r} (choose loso or random)")
    if only:
        names = {f.name for f in folds}
        wanted = []
        for item in only:
            name = item if item in names else f"fold{item}"
            if name not in names:
                raise LancetError(f"--folds: no fold {item!r} (this protocol has {', '.join(sorted(names))})")
            wanted.append(name)
        folds = [f for f in folds if f.name in wanted]
    return folds


def check_fold(fold: Fold, utterances: Sequence[Utterance]) -> None:
    """Raise AssertionError if the sides share an utterance, or (LOSO) a speaker, or a side is empty."""
    if fold.train & fold.val or fold.train & fold.test or fold.val & fold.test:
        raise AssertionError(f"{fold.name}: an utterance is on two sides of the split")
    if fold.speaker_independent:
        spk = {u.id: u.speaker for u in utterances}
        sides = {name: {spk[i] for i in ids} for name, ids in
                 (("train", fold.train), ("val", fold.val), ("test", fold.test))}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = sides[a] & sides[b]
            if shared:
                raise AssertionError(f"{fold.name}: speakers {sorted(shared)} are in both {a} and {b}")
    for side in ("train", "val", "test"):
        if not getattr(fold, side):
            raise LancetError(f"{fold.name}: the {side} split is empty")


def filter_utterances(utterances: Sequence[Utterance], classes: str, improvised_only: bool,
                      class_names: Sequence[str], store_classes: str | None = None, where: str = "features") -> list[Utterance]:
    """Apply ``--classes`` and ``--improvised-only`` to the store's utterances.

    ``4class-noexc`` drops utterances whose raw label is ``exc``; it needs a ``label`` column in the
    index unless the store itself was extracted with that class map (``store_classes``).
    """
    known = set(class_names)
    out = [u for u in utterances if u.cls in known]
    if classes == "4class-noexc":
        if any(u.label is not None for u in out):
            out = [u for u in out if (u.label or "").lower() != "exc"]
        elif store_classes != "4class-noexc":
            raise LancetError(
                f"{where}: --classes 4class-noexc needs the raw IEMOCAP label per segment (a 'label' column), "
                f"which this store lacks; extract features from a 4class-noexc manifest instead")
    elif classes not in ("4class", "improvised", "all"):
        raise LancetError(f"unknown --classes {classes!r} (choose 4class, 4class-noexc, improvised or all)")
    if improvised_only or classes == "improvised":
        out = [u for u in out if u.improvised]
    if not out:
        raise LancetError(f"{where}: no utterances of the classes {', '.join(class_names)} left after --classes {classes}"
                          + (" and --improvised-only" if improvised_only else ""))
    return out
