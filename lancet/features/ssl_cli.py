"""The command line of ``feature_extraction/extract_features_ssl.py`` (its flags differ from the spectral kinds':
an upstream to load instead of spectrogram settings, a precision, CPU threads)."""

from __future__ import annotations

import argparse
from typing import Sequence

from lancet.core.device import AMP_MODES
from lancet.core.errors import HelpFormatter, run_cli
from lancet.core.locking import WAIT_FLAG_HELP
from lancet.features.extract import DTYPES
from lancet.features.extract_ssl import DEFAULT_WORKERS, extract_ssl_features
from lancet.features.params import SslParams


def build_parser(manifest: str, out: str, upstream: str, description: str | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    g = ap.add_argument_group("input and output")
    g.add_argument("--upstream", default=upstream,
                   help="checkpoint folder, or a Hugging Face hub name in the local cache (microsoft/wavlm-base-plus, "
                        "facebook/hubert-base-ls960, facebook/wav2vec2-base, ...)")
    g.add_argument("--revision", default=SslParams().revision or None, help="hub revision (commit) to load")
    g.add_argument("--allow-download", action="store_true",
                   help="fetch a hub checkpoint missing from the local cache (default: never; the error names the "
                        "command that fetches it)")
    g.add_argument("--manifest", default=manifest, help="combined manifest CSV (datasets/handleIEMOCAP.py)")
    g.add_argument("--out", default=out, help="output folder (params.json, <condition>.npy/.csv)")
    g.add_argument("--conditions", nargs="+", default=None, metavar="COND",
                   help="only these conditions (space or comma separated); default all in the manifest")
    g.add_argument("--dtype", choices=DTYPES, default="float32", help="storage type of the statistics")
    g.add_argument("--overwrite", action="store_true", help="recompute even complete conditions / replace another "
                   "upstream's statistics")
    r = ap.add_argument_group("running")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the upstream runs")
    r.add_argument("--amp", choices=AMP_MODES, default="auto",
                   help="autocast: auto = bf16 (else fp16) on CUDA, float32 on the CPU; recorded in params.json")
    r.add_argument("--threads", type=int, default=0, help="CPU threads of the upstream (0: every usable core)")
    r.add_argument("--batch-seconds", type=float, default=None,
                   help="padded seconds of audio per batch (default: 32 on the CPU, 320 on CUDA)")
    r.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="processes decoding the audio")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--wait", action="store_true", help=WAIT_FLAG_HELP)
    return ap


def main(manifest: str, out: str, upstream: str, argv: Sequence[str] | None = None,
         description: str | None = None) -> int:
    args = build_parser(manifest, out, upstream, description).parse_args(argv)
    conditions = [c for item in args.conditions for c in item.split(",") if c] if args.conditions else None
    extract_ssl_features(args.manifest, args.out, args.upstream, revision=args.revision, device=args.device,
                         amp=args.amp, threads=args.threads or None, batch_seconds=args.batch_seconds,
                         dtype=args.dtype, allow_download=args.allow_download, workers=args.workers,
                         conditions=conditions, overwrite=args.overwrite, progress=not args.no_progress,
                         wait=args.wait)
    return 0


def run_script(manifest: str, out: str, upstream: str, description: str | None = None) -> None:
    """Entry point of the thin script: :func:`main` inside ``lancet.core.errors.run_cli``."""
    run_cli(lambda: main(manifest, out, upstream, description=description))
