"""Write the built-in demo corpus: synthetic speech-like audio in the exact IEMOCAP release layout.

    python datasets/make_demo_corpus.py [--out datasets/IEMOCAP_demo] [--seed 0]

Deterministic for a seed; takes a few seconds. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.corpora.demo import make_demo_corpus  # noqa: E402
from lancet.core.errors import run_cli  # noqa: E402
from lancet.core.checks import check_number  # noqa: E402

OUT_DIR = "datasets/IEMOCAP_demo"
SEED = 0
UTTERANCES_PER_SPEAKER = 38


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    parser.add_argument("--utterances-per-speaker", type=int, default=UTTERANCES_PER_SPEAKER,
                        help=f"utterances per speaker, 10 speakers (default {UTTERANCES_PER_SPEAKER})")
    args = parser.parse_args()
    check_number("--seed", args.seed, minimum=0)
    check_number("--utterances-per-speaker", args.utterances_per_speaker, minimum=1, maximum=100_000)
    counts = make_demo_corpus(args.out, seed=args.seed, utterances_per_speaker=args.utterances_per_speaker)
    total = sum(counts.values())
    print(f"wrote {total} utterances to {args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    run_cli(main)
