"""Give the original and augmented audio standard names and write the combined manifest.

    python datasets/handleIEMOCAP.py [--manifest datasets/IEMOCAP_manifest.csv]
        [--augmented-dir datasets/IEMOCAP_augmented] [--out datasets/IEMOCAP_standard] [--mode link|copy|symlink]

Makes <out>/<condition>/<id>__<condition>.wav (condition: clean, <noise>_<snr>dB, reverberation_<room>) as hard
links (copies where linking is impossible), and <out>/manifest.csv. The original IEMOCAP folder is only read,
never renamed or modified. A second run changes nothing; --dry-run shows what would be done and touches nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too

from lancet.core.errors import HelpFormatter, run_cli  # noqa: E402
from lancet.core.locking import WAIT_FLAG_HELP  # noqa: E402
from lancet.corpora.standard_names import MODES, standardise  # noqa: E402

MANIFEST = "datasets/IEMOCAP_manifest.csv"
AUGMENTED_DIR = "datasets/IEMOCAP_augmented"
OUT = "datasets/IEMOCAP_standard"
MODE = "link"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--manifest", default=MANIFEST, help="corpus manifest (datasets/prepare_IEMOCAP.py)")
    p.add_argument("--augmented-dir", default=AUGMENTED_DIR, help="output of datasets/augment_IEMOCAP.py")
    p.add_argument("--clean-only", action="store_true", help="only the clean audio (no augmented folder)")
    p.add_argument("--out", default=OUT, help="standardised folder")
    p.add_argument("--mode", default=MODE, choices=MODES,
                   help="hard link (falls back to copy), copy, or symbolic link")
    p.add_argument("--dry-run", action="store_true", help="print what would be done; touch nothing")
    p.add_argument("--wait", action="store_true", help=WAIT_FLAG_HELP)
    args = p.parse_args()
    standardise(args.manifest, None if args.clean_only else args.augmented_dir, args.out, mode=args.mode,
                dry_run=args.dry_run, wait=args.wait)
    return 0


if __name__ == "__main__":
    run_cli(main)
