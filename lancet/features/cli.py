"""One command-line builder for the three extraction scripts (mel, mfcc, spectrogram)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Sequence

from lancet.core.errors import HelpFormatter, LancetError, run_cli
from lancet.features.extract import DTYPES, GPU_BATCH_SEGMENTS, extract_features
from lancet.features.params import KINDS, SegmentParams, make_params
from lancet.core.locking import WAIT_FLAG_HELP
from lancet.core.workers import available_cpus


def build_parser(kind: str, manifest: str, out: str, description: str | None = None) -> argparse.ArgumentParser:
    """Flags shared by every script plus one flag per field of the kind's parameter dataclass."""
    if kind not in KINDS:
        raise LancetError(f"unknown feature kind {kind!r}")
    seg = SegmentParams()
    ap = argparse.ArgumentParser(
        description=description or f"Extract {kind} features of every condition of a combined manifest.",
        formatter_class=HelpFormatter,
    )
    g = ap.add_argument_group("input and output")
    g.add_argument("--manifest", default=manifest, help="combined manifest CSV (datasets/handleIEMOCAP.py)")
    g.add_argument("--out", default=out, help="output folder (params.json, <condition>.npy/.csv)")
    g.add_argument("--conditions", nargs="+", default=None, metavar="COND",
                   help="only these conditions (space or comma separated); default all in the manifest")
    g.add_argument("--dtype", choices=DTYPES, default="float32", help="storage type of the features")
    g.add_argument("--overwrite", action="store_true", help="recompute even complete conditions / replace other settings")
    s = ap.add_argument_group("segmenting")
    s.add_argument("--segment-s", type=float, default=seg.segment_s, help="segment length in seconds")
    s.add_argument("--hop-s", type=float, default=seg.hop_s, help="hop between segments in seconds")
    s.add_argument("--tail-min-s", type=float, default=seg.tail_min_s,
                   help="add an end-aligned last segment when more than this much audio is left uncovered "
                        "(>= --hop-s: never, as in the original)")
    s.add_argument("--short", choices=("pad", "drop"), default=seg.short,
                   help="utterances shorter than a segment: zero-pad (this project) or drop (the original)")
    r = ap.add_argument_group("running")
    r.add_argument("--workers", type=int, default=available_cpus(), help="processes reading/computing (all cores)")
    r.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="where features are computed: numpy on CPU workers, or batched torch on CUDA")
    r.add_argument("--batch-size", type=int, default=GPU_BATCH_SEGMENTS, help="segments per GPU batch")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--wait", action="store_true", help=WAIT_FLAG_HELP)
    f = ap.add_argument_group(f"{kind} parameters", KINDS[kind].description)
    for fld in dataclasses.fields(KINDS[kind].params):
        if not fld.metadata.get("flag", True):  # found by the extraction (an upstream's sizes), not chosen
            continue
        kwargs = {"type": type(fld.default), "default": fld.default, "help": fld.metadata.get("help", ""),
                  "metavar": fld.name.upper()}
        if "choices" in fld.metadata:
            kwargs["choices"] = fld.metadata["choices"]
        f.add_argument("--" + fld.name.replace("_", "-"), dest=f"p_{fld.name}", **kwargs)
    return ap


def main_for(kind: str, manifest: str, out: str, argv: Sequence[str] | None = None, description: str | None = None) -> int:
    """Parse ``argv`` and run the extraction; returns the exit status."""
    args = build_parser(kind, manifest, out, description).parse_args(argv)
    overrides = {k[2:]: v for k, v in vars(args).items() if k.startswith("p_")}
    params = make_params(kind, **overrides)
    seg = SegmentParams(segment_s=args.segment_s, hop_s=args.hop_s, tail_min_s=args.tail_min_s, short=args.short)
    conditions = None
    if args.conditions:
        conditions = [c for item in args.conditions for c in item.split(",") if c]
    extract_features(
        args.manifest, args.out, params=params, seg=seg, dtype=args.dtype, workers=args.workers,
        device=args.device, conditions=conditions, overwrite=args.overwrite, batch_size=args.batch_size,
        progress=not args.no_progress, wait=args.wait,
    )
    return 0


def run_script(kind: str, manifest: str, out: str, description: str | None = None) -> None:
    """Entry point of a thin script: run :func:`main_for` inside ``lancet.core.errors.run_cli``."""
    run_cli(lambda: main_for(kind, manifest, out, description=description))
