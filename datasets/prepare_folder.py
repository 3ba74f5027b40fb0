"""Read any labelled corpus from a CSV (path, label, speaker[, gender]) and write the manifest.

    python datasets/prepare_folder.py --csv my_corpus/labels.csv [--manifest datasets/folder_manifest.csv]

Paths in the CSV are relative to its folder (or absolute). Labels are matched onto neutral/happy/sad/angry
(anger, ang, Angry, ... all count); --classes all keeps every label as a class. Prints utterance counts
per class and speaker group, labels dropped, rows and files skipped, and the speaker groups (the
manifest's session column). The corpus folder is only read, never written.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.core.errors import run_cli  # noqa: E402
from lancet.corpora.prepare import prepare  # noqa: E402
from lancet.corpora.registry import CORPORA  # noqa: E402

CSV = "datasets/folder/labels.csv"
MANIFEST = "datasets/folder_manifest.csv"
CONVERTED_DIR = "datasets/folder_16k"  # 16 kHz mono copies of audio stored otherwise
CLASSES = "4class"                     # 4class | all (every label its own class)
FOLDS_K = 5                            # speaker groups
FOLD_SEED = 0


def main() -> int:
    return prepare(CORPORA["folder"], __doc__.splitlines()[0], CSV, MANIFEST, CONVERTED_DIR, CLASSES,
                   FOLDS_K, FOLD_SEED)


if __name__ == "__main__":
    run_cli(main)
