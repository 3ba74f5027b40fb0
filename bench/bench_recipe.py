"""Time the FULL recipe as a user waits for it: 5 folds x 50 epochs of LANCET and TC-Net on log-Mel and
GLAM on MFCC (clean training), on a generated store of IEMOCAP's size, and print minutes.

The store is written directly (random features with a learnable class signal, no audio): 5,531
utterances in IEMOCAP's class mix over 10 speakers in 5 sessions, about 15,000 two-second segments
per condition (1 + Poisson(1.7) per utterance), float16 as extraction writes it. Each feature kind is
one ``train_LANCET.py`` run (LANCET and TC-Net share the log-Mel run; ``--jobs`` may pack their
units), in its own process, timed from start to summary; ``--nproc N`` runs it under torchrun.

    python bench/bench_recipe.py                                   # the full recipe (needs a GPU)
    python bench/bench_recipe.py --scale 0.02 --epochs 2 --folds 1 2 --device cpu --threads 2
    python bench/bench_recipe.py --nproc 2 --jobs 2                # torchrun, 2 ranks, 2 units each

A scaled-down run (``--scale`` < 1, fewer ``--epochs`` or ``--folds``) also prints a *linear
extrapolation* to the full recipe (time x 1/scale x 50/epochs x 5/folds): an upper bound, since start-up,
store opening and evaluation set-up are scaled along. It is labelled as such; it is not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

FULL_UTTERANCES = 5531
FULL_EPOCHS = 50
FULL_FOLDS = 5
# IEMOCAP's four-class mix (excited merged into happy): neutral, happy+excited, sad, angry
CLASS_COUNTS = {"neutral": 1708, "happy": 1636, "sad": 1084, "angry": 1103}
RECIPE = (("mel", ("LANCET", "TCNet")), ("mfcc", ("GLAM",)))


def make_store(root: Path, kind: str, n_utterances: int, conditions=("clean",), dtype: str = "float16",
               seed: int = 0) -> dict:
    """Write ``<root>/<kind>/`` in the feature-store format; returns counts. Skips a store already complete."""
    from lancet.core.atomic import atomic_path, save_csv
    from lancet.features.params import SegmentParams, make_params, params_record
    from lancet.features.store import INDEX_COLUMNS, NpyStreamWriter, file_checksum, load_params, save_params

    folder = root / kind
    record = params_record(make_params(kind), SegmentParams(), dtype)
    old = load_params(folder)
    if old is not None and old.get("bench_utterances") == n_utterances and set(old.get("conditions", {})) == set(conditions):
        return {"utterances": n_utterances, "segments": old["conditions"][conditions[0]]["n_segments"], "reused": True}
    rng = np.random.default_rng(seed)
    F, T = record["shape"]
    total = sum(CLASS_COUNTS.values())
    classes = rng.choice(list(CLASS_COUNTS), size=n_utterances, p=[c / total for c in CLASS_COUNTS.values()])
    n_seg = 1 + rng.poisson(1.7, size=n_utterances)
    rows = []
    for i, (cls, k) in enumerate(zip(classes, n_seg)):
        session, gender = 1 + i % 5, "MF"[(i // 5) % 2]
        spk = f"Ses{session:02d}{gender}"
        impro = (i // 10) % 2
        uid = f"{spk}_{'impro' if impro else 'script'}{i % 7:02d}_{gender}{i:04d}"
        for j in range(k):
            rows.append({"id": uid, "session": session, "speaker": spk, "gender": gender, "improvised": impro,
                         "label": {"happy": "hap"}.get(cls, cls[:3]), "class": cls, "start_s": float(j),
                         "valid_frames": T})
    band = max(1, F // 8)
    offsets = {c: i for i, c in enumerate(CLASS_COUNTS)}
    record["conditions"] = {}
    record["bench_utterances"] = n_utterances
    record["class_names"] = list(CLASS_COUNTS)
    for cond in conditions:
        path = folder / f"{cond}.npy"
        with atomic_path(path, ".npy") as tmp:
            writer = NpyStreamWriter(tmp, (F, T), dtype)
            for start in range(0, len(rows), 2048):
                block = rows[start:start + 2048]
                x = rng.standard_normal((len(block), F, T), dtype=np.float32)
                for b, r in enumerate(block):  # a weak class signal: one band raised
                    c = offsets[r["class"]]
                    x[b, c * band:(c + 1) * band] += 0.5
                writer.append(x.astype(dtype))
            writer.close()
            checksum = file_checksum(tmp)
        index = [dict(r, row=n, condition=cond) for n, r in enumerate(rows)]
        save_csv(folder / f"{cond}.csv", index, INDEX_COLUMNS)
        record["conditions"][cond] = {"n_utterances": n_utterances, "n_segments": len(rows), "fingerprint": "bench",
                                      "checksum": checksum}
    save_params(folder, record)
    return {"utterances": n_utterances, "segments": len(rows), "reused": False}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        tv = torch.__version__
    except ImportError:  # pragma: no cover
        gpu, tv = "torch missing", "-"
    return f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {gpu}, torch {tv}, Python {platform.python_version()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--out", default=None, help="where the generated stores and results go (default: a temp dir, removed)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of IEMOCAP's 5,531 utterances")
    ap.add_argument("--epochs", type=int, default=FULL_EPOCHS)
    ap.add_argument("--folds", nargs="+", default=[str(i) for i in range(1, FULL_FOLDS + 1)])
    ap.add_argument("--only", nargs="+", default=None, help="run only these models of the recipe (e.g. LANCET GLAM)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--jobs", type=int, default=0, help="train_LANCET.py --jobs (0: as many as fit)")
    ap.add_argument("--nproc", type=int, default=1, help="run each training under torchrun with this many ranks")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further train_LANCET.py flags (last)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    n_utt = max(20, int(round(FULL_UTTERANCES * args.scale)))
    tmp = None if args.out else tempfile.TemporaryDirectory(prefix="lancet-recipe-")
    out = Path(args.out or tmp.name)
    print(machine(), flush=True)
    runs = []
    try:
        for kind, models in RECIPE:
            models = tuple(m for m in models if args.only is None or m in args.only)
            if not models:
                continue
            t0 = time.perf_counter()
            info = make_store(out / "features", kind, n_utt)
            gen_s = time.perf_counter() - t0
            print(f"{kind} store: {info['utterances']} utterances, {info['segments']} segments "
                  f"({'reused' if info['reused'] else f'generated in {gen_s:.1f} s'})", flush=True)
            train = [str(ROOT / "train_LANCET.py"), "--features-dir", str(out / "features"), "--features", kind,
                     "--models", *models, "--folds", *args.folds, "--epochs", str(args.epochs),
                     "--results-dir", str(out / "results"), "--run-name", f"recipe-{kind}-{args.epochs}ep",
                     "--device", args.device, "--jobs", str(args.jobs), "--threads", str(args.threads),
                     "--train-on", "clean", "--no-progress", *args.extra]  # a store without audio: no online noise
            if args.nproc > 1:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                       str(args.nproc), *train]
            else:
                cmd = [sys.executable, *train]
            env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            t0 = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if r.returncode != 0:
                print(r.stdout[-3000:], r.stderr[-3000:], sep="\n", file=sys.stderr)
                raise SystemExit(f"error: training on {kind} failed (exit {r.returncode})")
            table = r.stdout[r.stdout.rfind("Utterance-level"):].strip().splitlines()
            runs.append({"kind": kind, "models": list(models), "units": len(models) * len(args.folds),
                         "segments": info["segments"], "seconds": seconds})
            print(f"{kind} {'+'.join(models)}: {len(models) * len(args.folds)} units in {seconds / 60:.2f} min", flush=True)
            print("  " + "\n  ".join(table[:4]), flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()

    total = sum(r["seconds"] for r in runs)
    factor = (FULL_UTTERANCES / n_utt) * (FULL_EPOCHS / args.epochs) * (FULL_FOLDS / len(args.folds))
    full = abs(factor - 1.0) < 1e-9
    print()
    print(f"{'run':<22}{'units':>6}{'segments':>10}{'minutes':>10}" + ("" if full else f"{'x' + format(factor, '.0f') + ' (extrapolated)':>26}"))
    for r in runs:
        line = f"{r['kind'] + ' ' + '+'.join(r['models']):<22}{r['units']:>6}{r['segments']:>10}{r['seconds'] / 60:>10.2f}"
        print(line + ("" if full else f"{r['seconds'] * factor / 60:>26.1f}"))
    print(f"{'total':<38}{total / 60:>10.2f}" + ("" if full else f"{total * factor / 60:>26.1f}"))
    if not full:
        print(f"scaled down: {n_utt} utterances, {args.epochs} epochs, {len(args.folds)} fold(s); the last column is a "
              f"LINEAR EXTRAPOLATION to the full recipe (x{factor:.0f}), an upper bound, not a measurement")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "utterances": n_utt, "epochs": args.epochs,
                                               "folds": args.folds, "jobs": args.jobs, "nproc": args.nproc,
                                               "device": args.device, "runs": runs, "total_s": total,
                                               "extrapolation_factor": factor,
                                               "extrapolated_total_min": None if full else total * factor / 60}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
