"""Read RAVDESS speech (audio-only) and write the manifest every later step reads.

    python datasets/prepare_RAVDESS.py [--ravdess-dir datasets/RAVDESS] [--manifest datasets/RAVDESS_manifest.csv]

Reads <ravdess-dir>/Actor_XX/03-01-EE-II-SS-RR-AA.wav (speech, audio-only; song and video files are
counted and left out). Prints utterance counts per class and speaker group, emotions dropped by the
class map, names rejected and files skipped, and the speaker groups (the manifest's session column).
RAVDESS is 48 kHz: 16 kHz copies are made once in --converted-dir. The corpus folder is only read.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.core.errors import run_cli  # noqa: E402
from lancet.corpora.prepare import prepare  # noqa: E402
from lancet.corpora.registry import CORPORA  # noqa: E402

RAVDESS_DIR = "datasets/RAVDESS"
MANIFEST = "datasets/RAVDESS_manifest.csv"
CONVERTED_DIR = "datasets/RAVDESS_16k"  # 16 kHz mono copies (RAVDESS is 48 kHz)
CLASSES = "4class"                      # 4class | all (8 emotions)
CALM_AS_NEUTRAL = False                 # count calm (02) as neutral
FOLDS_K = 5                             # speaker groups (24 actors)
FOLD_SEED = 0


def main() -> int:
    return prepare(CORPORA["ravdess"], __doc__.splitlines()[0], RAVDESS_DIR, MANIFEST, CONVERTED_DIR, CLASSES, FOLDS_K,
                   FOLD_SEED, switches={"calm_as_neutral": CALM_AS_NEUTRAL})


if __name__ == "__main__":
    run_cli(main)
