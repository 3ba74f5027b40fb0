"""Download a real noise corpus, check its checksum, and unpack what the augmentation reads into datasets/noise/.

    python datasets/download_noise.py [--corpus musan] [--out datasets/noise] [--list]

The augmentation (datasets/augment_IEMOCAP.py) and online training (train_LANCET.py) then use it without
flags. Interrupted? Run the same command again: the transfer continues where it stopped, and unpacking
starts again from the checked archive (a half-unpacked folder is never left behind). A file whose checksum
differs is refused and kept aside as <cache-dir>/<file>.rejected. Sizes, licences and sources: docs/NOISE.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

import pooch  # noqa: E402

from lancet.core.errors import HelpFormatter, LancetError, run_cli  # noqa: E402
from lancet.noise.download import CORPORA, corpus_table, download_corpus, with_source  # noqa: E402

OUT = "datasets/noise"                 # where lancet.noise.sources looks when no --noise-dir is given
CACHE_DIR = "datasets/noise_archives"  # archives and unfinished transfers (.part)
CORPUS = "musan"                       # musan (11.09 GB, CC BY 4.0) | demand (638.1 MB, CC BY-SA 3.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    p.add_argument("--corpus", default=CORPUS, choices=sorted(CORPORA), help="noise corpus (--list describes them)")
    p.add_argument("--out", default=OUT, help="folder to unpack into (absent, empty, or holding this corpus)")
    p.add_argument("--cache-dir", default=CACHE_DIR, help="folder for the archive while it downloads")
    p.add_argument("--keep-archive", action="store_true", help="keep the archive after unpacking")
    p.add_argument("--url", help="fetch the archive from this mirror instead (a file:// URL works too)")
    p.add_argument("--sha256", help="the mirror's file has this SHA-256 (64 hex digits) instead of the published one")
    p.add_argument("--list", action="store_true", help="list the corpora: size, licence, what is unpacked")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args()
    if args.list:
        print(corpus_table())
        return 0
    pooch.get_logger().setLevel(logging.WARNING)  # this script says itself what it downloads
    corpus = with_source(CORPORA[args.corpus], args.url, args.sha256)
    if Path(args.out).resolve() == Path(args.cache_dir).resolve():
        raise LancetError(f"--out and --cache-dir are both {args.out}; give them different folders")
    result = download_corpus(corpus, args.out, args.cache_dir, keep_archive=args.keep_archive,
                             progress=not args.no_progress)
    if not result.already:
        print(f"the augmentation and online training now find it in {args.out} without flags"
              + ("" if Path(args.out).resolve() == (Path(__file__).resolve().parents[1] / OUT).resolve()
                 else f" (elsewhere than {OUT}: pass --noise-dir {args.out})"))
    return 0


if __name__ == "__main__":
    run_cli(main)
