"""Which stored noisy mixtures a fold may train and test on: noise recordings split into training and test pools.

Unseen noise at test time (docs/ROBUSTNESS.md): stored noisy conditions are made once for all folds, and
``augmented_manifest.csv`` records the noise recording of every mixture. The recordings are split into a
training and a test pool (:mod:`lancet.noise.pools`, seeded, saved as ``noise_split.json`` in the run
folder). Every model, whatever it trained on, is tested only on mixtures whose recordings are in the test
pool, so all columns of the matrix are measured on the same utterances; ``all``/``matched`` training uses
only mixtures whose recordings are in the training pool, and ``online`` draws from the training pool
only. Generated noise is new at every draw, and stored babble holds only voices of the target's own
session (:func:`lancet.noise.babble.session_talkers`), so both are unseen by construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

from lancet.core.atomic import read_csv, save_json
from lancet.core.manifest import refuse_duplicates
from lancet.core.conditions import CLEAN, REVERB, parse_condition
from lancet.core.errors import LancetError, printable
from lancet.corpora.layout import AUGMENTED_MANIFEST
from lancet.corpora.standard_names import augmented_manifest_of
from lancet.noise.pools import NoiseSplit, assert_unseen, entry_pool, split_by_type
from lancet.noise.registry import NOISE_TYPES

TEST_POOL_NOISE = "test-pool recordings (unseen in training)"
UNSPLIT_NOISE = "all recordings (no noise split: --noise-manifest not given)"


def recording_types() -> tuple[str, ...]:
    """Stored noise types whose mixtures may reuse recordings: the registry's types that use recordings, and
    reverberation (room impulse responses). Read when asked, so a noise type registered later counts.

    Example:
        >>> recording_types()
        ('music', 'ambient', 'reverberation')
    """
    return tuple(name for name, e in NOISE_TYPES.items() if e.uses_recordings) + (REVERB,)


def noise_manifest_of(feature_params: Mapping) -> Path | None:
    """The ``augmented_manifest.csv`` the store's noisy conditions came from: the one its standardised manifest's
    provenance names (checked against its checksum), or None when the store records none."""
    manifest = feature_params.get("manifest")
    return augmented_manifest_of(manifest) if manifest else None


def sibling_candidates(feature_params: Mapping) -> list[Path]:
    """Augmented manifests beside the standardised folder, to name in an error (never chosen by guessing)."""
    manifest = feature_params.get("manifest")
    return sorted(Path(manifest).resolve().parent.parent.glob(f"*/{AUGMENTED_MANIFEST}")) if manifest else []


class NoisePools:
    """Per stored (condition, utterance), the pool of the recording its mixture used; see the module docstring."""

    def __init__(self, entries: dict[tuple[str, str], str] | None, splits: dict[str, NoiseSplit], source: str = "",
                 seed: int = 0, fraction: float = 0.5) -> None:
        self.entries = entries
        self.splits = splits
        self.source = source
        self.seed, self.fraction = seed, fraction

    @property
    def active(self) -> bool:
        return self.entries is not None

    @classmethod
    def load(cls, cfg, conditions: Iterable[str], ids: set[str], feature_params: Mapping,
             log: Callable[[str], None]) -> "NoisePools":
        recorded = sorted({c for c in conditions if parse_condition(c)[0] in recording_types()})
        path = Path(cfg.noise_manifest) if cfg.noise_manifest else noise_manifest_of(feature_params)
        if path is None:
            if recorded and cfg.train_on in ("all", "matched", "online"):
                found = sibling_candidates(feature_params)
                raise LancetError(
                    f"--train-on {cfg.train_on}: the stored conditions {', '.join(recorded[:3])}"
                    f"{'...' if len(recorded) > 3 else ''} may reuse noise recordings in training and testing, and "
                    f"the store names no augmentation; give --noise-manifest <augmented folder>/{AUGMENTED_MANIFEST}"
                    + (f" (candidates: {', '.join(map(str, found))})" if found else "")
                    + (" or --train-on clean" if cfg.train_on == "online" else ""))
            return cls(None, {})
        rows = read_csv(path)
        if rows and not {"id", "condition", "noise_type", "noise_file"} <= set(rows[0]):
            raise LancetError(f"{path}: not an augmented manifest (needs id, condition, noise_type, noise_file)")
        # one mixture twice, with two noise files, would put it in whichever pool the last row says
        refuse_duplicates(path, rows, lambda r: (r["id"], r["condition"]), "utterance {} under condition {}",
                          "one mixture with two noise records")
        described = {r["condition"] for r in rows}
        unknown = [c for c in recorded if c not in described]
        if unknown or (rows and not ids & {r["id"] for r in rows}):
            raise LancetError(f"{path}: does not describe this store's mixtures (e.g. "
                              f"{unknown[0] if unknown else 'none of its utterances'}); give the augmented manifest "
                              f"of the augmentation the features were extracted from")
        entries = {(r["condition"], r["id"]): r["noise_file"] for r in rows}
        by_type: dict[str, list[str]] = {}
        for r in rows:
            by_type.setdefault(r["noise_type"], []).append(r["noise_file"])
        splits = split_by_type(by_type, cfg.noise_split_seed, cfg.noise_test_fraction)
        pools = cls(entries, splits, str(path), cfg.noise_split_seed, cfg.noise_test_fraction)
        log(f"noise recordings split into training/test pools from {path} (seed {cfg.noise_split_seed}, "
            f"test fraction {cfg.noise_test_fraction}); every model is tested on test-pool recordings only:")
        for nt, sp in splits.items():
            shown = printable(", ".join(sp.test[:6])) + (" ..." if len(sp.test) > 6 else "")  # names from the disk
            log(f"  {nt}: {sp.describe()}; test: {shown}")
        return pools

    def ids(self, conditions: Iterable[str], ids: frozenset[str], pool: str) -> frozenset[str] | dict[str, frozenset[str]]:
        """``ids`` per condition, keeping only mixtures whose recordings are in ``pool`` (all without a manifest)."""
        if not self.active:
            return ids
        out = {}
        for cond in conditions:
            if cond == CLEAN:
                out[cond] = ids
                continue
            split = self.splits.get(parse_condition(cond)[0])
            keep = set()
            for uid in ids:
                entry = self.entries.get((cond, uid))
                if entry is None:
                    continue  # a stored mixture the manifest does not know: its noise cannot be vouched for
                side = entry_pool(entry, split)
                if side is None or side == pool:
                    keep.add(uid)
            out[cond] = frozenset(keep)
        return out

    def check_unit(self, train_conditions: Iterable[str], train_ids: Mapping[str, frozenset[str]] | frozenset[str],
                   test_ids: Mapping[str, frozenset[str]] | frozenset[str], eval_conditions: Iterable[str]) -> None:
        """Assert that no recording heard in training is in the test pool or in any test mixture."""
        if not self.active:
            return
        types: dict[str, tuple[list[str], list[str]]] = {}
        for cond in train_conditions:
            for uid in (train_ids.get(cond, ()) if isinstance(train_ids, Mapping) else train_ids):
                if (cond, uid) in self.entries:
                    types.setdefault(parse_condition(cond)[0], ([], []))[0].append(self.entries[(cond, uid)])
        for cond in eval_conditions:
            for uid in (test_ids.get(cond, ()) if isinstance(test_ids, Mapping) else test_ids):
                if (cond, uid) in self.entries:
                    types.setdefault(parse_condition(cond)[0], ([], []))[1].append(self.entries[(cond, uid)])
        for nt, (train, test) in types.items():
            assert_unseen(train, test, self.splits, nt)

    def describe(self, condition: str) -> str:
        """What noise the test mixtures of ``condition`` hold, for the records and the printed table."""
        noise = parse_condition(condition)[0]
        if condition == CLEAN:
            return ""
        if noise in self.splits and self.active:
            return TEST_POOL_NOISE
        if not self.active and noise in recording_types():
            return UNSPLIT_NOISE
        entry = NOISE_TYPES.get(noise)
        return entry.test_noise if entry is not None else "generated"  # reverberation outside the split, or unregistered

    def save(self, run_dir: Path) -> None:
        if self.active:
            save_json(Path(run_dir) / "noise_split.json",
                      {"source": self.source, "seed": self.seed, "test_fraction": self.fraction,
                       "splits": {nt: sp.to_json() for nt, sp in self.splits.items()}})
