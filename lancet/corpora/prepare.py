"""The one body of every corpus script (datasets/prepare_*.py): flags, reading, speaker groups, manifest, report.

Every script writes the same manifest columns, prints the same class-by-group table, the same dropped
and skipped counts, and the speaker groups it dealt; it differs only in its registry entry
(:mod:`lancet.corpora.registry`) and its path constants.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from lancet.core.errors import HelpFormatter, LancetError
from lancet.core.manifest import CorpusScan, report, write_manifest
from lancet.core.paths import check_outside
from lancet.corpora.registry import Corpus
from lancet.corpora.speaker_groups import DEFAULT_FOLD_SEED, DEFAULT_FOLDS, assign_folds, describe_folds


def build_parser(corpus: Corpus, description: str, source: str, manifest: str, converted_dir: str, classes: str,
                 folds_k: int = DEFAULT_FOLDS, fold_seed: int = DEFAULT_FOLD_SEED,
                 switches: dict[str, bool] | None = None) -> argparse.ArgumentParser:
    """The script's flags, with its constants as defaults: the corpus folder, the manifest, converted copies,
    the class map, speaker groups (corpora without sessions) and the reader's own switches."""
    p = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    p.add_argument(corpus.source_flag, dest="source", default=source, help=corpus.source_help)
    p.add_argument("--manifest", default=manifest, help="manifest CSV to write")
    p.add_argument("--converted-dir", default=converted_dir,
                   help="where audio that is not 16 kHz mono is converted, once")
    p.add_argument("--classes", default=classes, choices=corpus.class_maps,
                   help="4class: neutral/happy/sad/angry, shared by every corpus; all: the corpus's own full set")
    if corpus.speaker_groups:
        p.add_argument("--folds-k", type=int, default=folds_k,
                       help="speaker groups for leave-one-group-out, written as the session column")
        p.add_argument("--fold-seed", type=int, default=fold_seed,
                       help="seed of the speaker groups; the same seed gives the same groups")
    for switch in corpus.switches:
        p.add_argument("--" + switch.name.replace("_", "-"), dest=switch.name, action="store_true",
                       default=(switches or {}).get(switch.name, False), help=switch.help)
    return p


def prepare(corpus: Corpus, description: str, source: str, manifest: str, converted_dir: str, classes: str,
            folds_k: int = DEFAULT_FOLDS, fold_seed: int = DEFAULT_FOLD_SEED, switches: dict[str, bool] | None = None,
            argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, read the corpus and write its manifest (see :func:`finish`); the script's ``main``."""
    args = build_parser(corpus, description, source, manifest, converted_dir, classes, folds_k, fold_seed,
                        switches).parse_args(argv)
    given = Path(args.source)  # a corpus folder, or a labelled folder's CSV; a missing one is the reader's to say
    folder = given if given.is_dir() else given.parent if given.is_file() else None
    check_outside(args.manifest, "--manifest", [("the corpus folder", folder)])
    scan = corpus.read(args.source, args.classes, args.converted_dir,
                       **{s.name: getattr(args, s.name) for s in corpus.switches})
    return finish(scan, args, args.source, corpus.speaker_groups)


def finish(scan: CorpusScan, args: argparse.Namespace, source: str, speaker_groups: bool = True) -> int:
    """Deal the speaker groups (corpora without sessions), write the manifest and print what was found."""
    column = "G" if speaker_groups else "S"
    if not scan.utterances:
        report(scan, file=sys.stderr, column=column)
        raise LancetError(f"{source}: no usable utterances found")
    groups = assign_folds(scan.utterances, args.folds_k, args.fold_seed) if speaker_groups else None
    write_manifest(args.manifest, scan.utterances)
    report(scan, column=column)
    if groups is not None:
        print(describe_folds(scan.utterances, groups, args.fold_seed))
        print(f"wrote {len(scan.utterances)} utterances of {len(groups)} speakers to {args.manifest}")
    else:
        print(f"wrote {len(scan.utterances)} utterances to {args.manifest}")
    return 0
