"""The shared part of the corpus scripts (datasets/prepare_*.py): common flags, folds, manifest, report.

Every script writes the same manifest columns, prints the same class-by-group table, the same dropped
and skipped counts, and the speaker groups it dealt.
"""

from __future__ import annotations

import argparse
import sys

from lancet.core.manifest import CorpusScan, report, write_manifest
from lancet.core.classes import DEFAULT_CLASS_MAP
from lancet.corpora.labels import SHARED_CLASS_MAPS
from lancet.corpora.speaker_groups import DEFAULT_FOLD_SEED, DEFAULT_FOLDS, assign_folds, describe_folds
from lancet.core.errors import LancetError


def add_common_flags(parser: argparse.ArgumentParser, manifest: str, converted_dir: str,
                     classes: str = DEFAULT_CLASS_MAP, folds_k: int = DEFAULT_FOLDS,
                     fold_seed: int = DEFAULT_FOLD_SEED) -> None:
    """``--manifest``, ``--converted-dir``, ``--classes``, ``--folds-k`` and ``--fold-seed``, with the script's
    defaults (its constants)."""
    parser.add_argument("--manifest", default=manifest, help=f"manifest CSV to write (default {manifest})")
    parser.add_argument("--converted-dir", default=converted_dir,
                        help=f"where audio that is not 16 kHz mono is converted, once (default {converted_dir})")
    parser.add_argument("--classes", default=classes, choices=SHARED_CLASS_MAPS,
                        help=f"4class: neutral/happy/sad/angry, shared by every corpus; all: the corpus's own "
                             f"full set (default {classes})")
    parser.add_argument("--folds-k", type=int, default=folds_k,
                        help=f"speaker groups for leave-one-group-out, written as the session column "
                             f"(default {folds_k})")
    parser.add_argument("--fold-seed", type=int, default=fold_seed,
                        help=f"seed of the speaker groups; the same seed gives the same groups (default {fold_seed})")


def finish(scan: CorpusScan, args: argparse.Namespace, source: str) -> int:
    """Deal the speaker groups, write the manifest and print what was found; ``source`` names the input."""
    if not scan.utterances:
        report(scan, file=sys.stderr, column="G")
        raise LancetError(f"{source}: no usable utterances found")
    groups = assign_folds(scan.utterances, args.folds_k, args.fold_seed)
    write_manifest(args.manifest, scan.utterances)
    report(scan, column="G")
    print(describe_folds(scan.utterances, groups, args.fold_seed))
    print(f"wrote {len(scan.utterances)} utterances of {len(groups)} speakers to {args.manifest}")
    return 0
