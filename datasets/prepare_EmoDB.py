"""Read EmoDB (Berlin Database of Emotional Speech) and write the manifest every later step reads.

    python datasets/prepare_EmoDB.py [--emodb-dir datasets/EmoDB] [--manifest datasets/EmoDB_manifest.csv]

Reads <emodb-dir>/wav/SSTTTEV.wav (speaker, text, emotion letter, version). Prints utterance counts per
class and speaker group, letters dropped by the class map, names rejected and files skipped, and the
speaker groups (the manifest's session column). The corpus folder is only read, never written.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.core.errors import run_cli  # noqa: E402
from lancet.corpora.prepare import prepare  # noqa: E402
from lancet.corpora.registry import CORPORA  # noqa: E402

EMODB_DIR = "datasets/EmoDB"
MANIFEST = "datasets/EmoDB_manifest.csv"
CONVERTED_DIR = "datasets/EmoDB_16k"  # 16 kHz mono copies of audio stored otherwise
CLASSES = "4class"                    # 4class (N F T W) | all (7 letters)
FOLDS_K = 5                           # speaker groups (10 speakers: 2 per group)
FOLD_SEED = 0


def main() -> int:
    return prepare(CORPORA["emodb"], __doc__.splitlines()[0], EMODB_DIR, MANIFEST, CONVERTED_DIR, CLASSES,
                   FOLDS_K, FOLD_SEED)


if __name__ == "__main__":
    run_cli(main)
