"""Read CREMA-D and write the manifest every later step reads.

    python datasets/prepare_CREMAD.py [--cremad-dir datasets/CREMA-D] [--manifest datasets/CREMAD_manifest.csv]

Reads <cremad-dir>/AudioWAV/AAAA_SSS_EEE_LL.wav (actor, sentence, emotion, level) and, when present,
<cremad-dir>/VideoDemographics.csv for each actor's gender. Prints utterance counts per class and speaker
group, emotions dropped by the class map, names rejected and files skipped, and the speaker groups (the
manifest's session column). The corpus folder is only read, never written.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.core.errors import run_cli  # noqa: E402
from lancet.corpora.prepare import prepare  # noqa: E402
from lancet.corpora.registry import CORPORA  # noqa: E402

CREMAD_DIR = "datasets/CREMA-D"
MANIFEST = "datasets/CREMAD_manifest.csv"
CONVERTED_DIR = "datasets/CREMAD_16k"  # 16 kHz mono copies of audio stored otherwise
CLASSES = "4class"                     # 4class | all (6 emotions)
FOLDS_K = 5                            # speaker groups (91 actors)
FOLD_SEED = 0


def main() -> int:
    return prepare(CORPORA["cremad"], __doc__.splitlines()[0], CREMAD_DIR, MANIFEST, CONVERTED_DIR, CLASSES,
                   FOLDS_K, FOLD_SEED)


if __name__ == "__main__":
    run_cli(main)
