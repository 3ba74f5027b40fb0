"""Read an IEMOCAP release (or the demo corpus) and write the manifest every later step reads.

    python datasets/prepare_IEMOCAP.py [--iemocap-dir datasets/IEMOCAP] [--manifest datasets/IEMOCAP_manifest.csv]

Prints utterance counts per class and session, labels dropped by the class map and files skipped.
The user's release folder is only read, never written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.core.manifest import report, write_manifest  # noqa: E402
from lancet.core.classes import DEFAULT_CLASS_MAP  # noqa: E402
from lancet.corpora.iemocap import IEMOCAP_CLASS_MAPS, scan_iemocap  # noqa: E402
from lancet.core.errors import LancetError, run_cli  # noqa: E402

IEMOCAP_DIR = "datasets/IEMOCAP"
MANIFEST = "datasets/IEMOCAP_manifest.csv"
CONVERTED_DIR = "datasets/IEMOCAP_16k"  # 16 kHz mono copies of audio stored otherwise
CLASS_MAP = DEFAULT_CLASS_MAP


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iemocap-dir", default=IEMOCAP_DIR, help=f"IEMOCAP release folder (default {IEMOCAP_DIR})")
    parser.add_argument("--manifest", default=MANIFEST, help=f"manifest CSV to write (default {MANIFEST})")
    parser.add_argument("--converted-dir", default=CONVERTED_DIR,
                        help=f"where audio that is not 16 kHz mono is converted, once (default {CONVERTED_DIR})")
    parser.add_argument("--classes", default=CLASS_MAP, choices=sorted(IEMOCAP_CLASS_MAPS),
                        help=f"class map (default {CLASS_MAP}: neutral/happy+excited/sad/angry)")
    args = parser.parse_args()
    scan = scan_iemocap(args.iemocap_dir, class_map=args.classes, converted_dir=args.converted_dir)
    if not scan.utterances:
        report(scan, file=sys.stderr)
        raise LancetError(f"{args.iemocap_dir}: no usable utterances found")
    write_manifest(args.manifest, scan.utterances)
    report(scan)
    print(f"wrote {len(scan.utterances)} utterances to {args.manifest}")
    return 0


if __name__ == "__main__":
    run_cli(main)
