"""Read an IEMOCAP release (or the demo corpus) and write the manifest every later step reads.

    python datasets/prepare_IEMOCAP.py [--iemocap-dir datasets/IEMOCAP] [--manifest datasets/IEMOCAP_manifest.csv]

Prints utterance counts per class and session, labels dropped by the class map and files skipped.
The user's release folder is only read, never written.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.core.errors import run_cli  # noqa: E402
from lancet.corpora.prepare import prepare  # noqa: E402
from lancet.corpora.registry import CORPORA  # noqa: E402

IEMOCAP_DIR = "datasets/IEMOCAP"
MANIFEST = "datasets/IEMOCAP_manifest.csv"
CONVERTED_DIR = "datasets/IEMOCAP_16k"    # 16 kHz mono copies of audio stored otherwise
CLASSES = "4class"                        # 4class (excited counts as happy) | 4class-noexc | improvised


def main() -> int:
    return prepare(CORPORA["iemocap"], __doc__.splitlines()[0], IEMOCAP_DIR, MANIFEST, CONVERTED_DIR, CLASSES)


if __name__ == "__main__":
    run_cli(main)
