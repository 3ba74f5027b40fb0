#!/usr/bin/env bash
# One GPU check in one go (about 7-10 minutes on one H100): the CUDA tests, the feature-extraction and
# training benchmarks, a scaled full-recipe run, a short torchrun run with 2 processes on one GPU, the
# SSL upstream extraction benchmark and the SSL path (store, probe, fine-tuning) on the device;
# the figures are printed as a table at the end and saved as JSON.
#
#   bash bench/gpu_check.sh                      # from the repository root, with the project's Python
#   PYTHON=.venv/bin/python bash bench/gpu_check.sh
#   OUT=/some/dir bash bench/gpu_check.sh        # keep the logs and JSON there (default: a temp dir)
#
# Machines without the project's packages (e.g. a bare GPU box with python3 and a CUDA torch, but
# without librosa and soundfile): bring them as wheels in a folder, default .whl/ in the repository
# root (or LANCET_WHEELS=dir); this script installs every *.whl there into /tmp/lancet-site first.
# Prepare the folder on any machine with pip and internet (match the GPU box's Python, here 3.12):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl librosa==0.11.0 soundfile==0.14.0 soxr==1.1.0 audioread==3.1.0 pooch==1.9.0 \
#       decorator==5.3.1 platformdirs==4.14.8 cffi==2.1.1 pycparser==3.12
#
# (the versions the project is tested with; 2.3 MB in all; checked 2026-11-27). The device machine of
# this project's workplace then runs it with `carry: [".whl"]` and `bash bench/gpu_check.sh`.
# (numpy, scipy, scikit-learn, numba, matplotlib, tqdm, pytest come with most CUDA images; add any
# that `python3 -c "import librosa, soundfile, sklearn, matplotlib, tqdm"` reports missing. The SSL step
# also needs transformers>=4.57 with huggingface_hub, tokenizers, safetensors and regex: add them to the
# same `pip download` line, or that one step fails with a line saying so and the others still run.)
# Each step has its own time limit, so one slow step cannot take the whole budget.
# A dry run on a CPU-only machine checks the script itself (tiny sizes; figures meaningless):
#   DEVICE=cpu SMALL=1 PYTHON=.venv/bin/python bash bench/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-0}
if [ "$SMALL" = 1 ]; then
  N_WAVS=40; RECIPE_ARGS="--scale 0.01 --epochs 1 --folds 1 --only TCNet GLAM"; TR_UTT=60; TR_EPOCHS=1; TRAIN_ARGS="--steps 1 --rounds 1 --batches 32"
else
  N_WAVS=1500; RECIPE_ARGS="--epochs 2"; TR_UTT=400; TR_EPOCHS=3; TRAIN_ARGS="--steps 2 --rounds 2"
fi
export N_WAVS TR_UTT TR_EPOCHS DEVICE
OUT_DIR=${OUT:-$(mktemp -d /tmp/lancet-gpu-check.XXXXXX)}
mkdir -p "$OUT_DIR"
WHEELS=${LANCET_WHEELS:-.whl}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  echo "== installing $(ls "$WHEELS"/*.whl | wc -l) wheel(s) from $WHEELS into /tmp/lancet-site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/lancet-site \
      "$WHEELS"/*.whl || { echo "error: installing the wheels of $WHEELS failed"; exit 2; }
  export PYTHONPATH="/tmp/lancet-site:$PYTHONPATH"
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
STATUS="$OUT_DIR/status.txt"; : > "$STATUS"
T_START=$(date +%s)

step() {  # step NAME LIMIT_S command...: run with a time limit, log to $OUT_DIR/NAME.log, note the outcome
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  tail -n 25 "$OUT_DIR/$name.log"
  echo "$name rc=$rc seconds=$dt" >> "$STATUS"
  [ $rc -eq 124 ] && echo "   ($name stopped at its ${limit}s limit)"
  return 0
}

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$OUT_DIR/gpu.txt"
"$PY" - <<'EOF' 2>&1 | tee "$OUT_DIR/env.txt"
import os, platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"GPU {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NONE'}, {os.cpu_count()} CPUs")
import librosa, soundfile, sklearn, matplotlib, tqdm  # fail here, not in the middle
EOF
if [ "$DEVICE" = cuda ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "error: no CUDA device visible to $PY (DEVICE=cpu SMALL=1 for a dry run)"; exit 2; }
fi

# 1. CUDA tests (features within 1e-3 of librosa on the GPU; compiled/graphed step == plain loop)
step tests 80 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_features_torch.py tests/test_features.py \
    tests/test_training_step.py -k "cuda"

# 2. feature extraction: 16-worker CPU path vs GPU path, same files (target: GPU >= 3x)
step features 70 "$PY" bench/bench_features.py --n-synthetic "$N_WAVS" --kinds mel --methods cpu cuda \
    --json "$OUT_DIR/features.json"

# 3. training throughput: the trainer's loop and the bare step, batch 32 and 256
#    (targets: LANCET on log-Mel >= 10,000 seg/s at batch 32; TC-Net and GLAM on MFCC >= 20,000)
step training 70 "$PY" bench/bench_training.py --models LANCET TCNet $TRAIN_ARGS --no-before --devices cuda \
    --json "$OUT_DIR/training.json"
step training_mfcc 40 "$PY" bench/bench_training.py --kind mfcc --models GLAM TCNet $TRAIN_ARGS --no-before --devices cuda \
    --json "$OUT_DIR/training_mfcc.json"

# 4. the full recipe's data (IEMOCAP size), 5 folds, few epochs: minutes extrapolated to 50 epochs
step recipe 120 "$PY" bench/bench_recipe.py $RECIPE_ARGS --device "$DEVICE" --json "$OUT_DIR/recipe.json"

# 5. torchrun: 2 processes sharing one GPU, each unit trained once, the summary written once
step torchrun 55 "$PY" - "$OUT_DIR" <<'EOF'
import json, os, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, "bench")
import bench_recipe
out = Path(sys.argv[1])
d = Path(tempfile.mkdtemp())
bench_recipe.make_store(d / "f", "mfcc", int(os.environ["TR_UTT"]))
t0 = time.perf_counter()
r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    "train_LANCET.py", "--features-dir", str(d / "f"), "--features", "mfcc", "--models", "TCNet", "GLAM",
                    "--folds", "1", "2", "3", "--epochs", os.environ["TR_EPOCHS"], "--device", os.environ["DEVICE"], "--jobs", "1", "--no-progress",
                    "--train-on", "clean",  # a generated store without audio: no online noise
                    "--results-dir", str(d / "r"), "--run-name", "tr"], capture_output=True, text=True)
seconds = time.perf_counter() - t0
print(r.stdout[-2500:], r.stderr[-2500:])
started = [line for line in r.stdout.splitlines() if "training /" in line and "validation segments" in line]
units = len(list((d / "r" / "tr" / "metrics").glob("*.json")))
ok = r.returncode == 0 and units == 6 and len(started) == 6 and (d / "r" / "tr" / "summary.json").is_file()
ranks = sorted({line.split("]")[0] for line in started})
print(f"torchrun: exit {r.returncode}, {units} units with metrics, {len(started)} unit starts by {ranks}, {seconds:.1f} s")
json.dump({"units": units, "starts": len(started), "ranks": ranks, "seconds": seconds, "ok": ok},
          open(out / "torchrun.json", "w"))
sys.exit(0 if ok else 1)
EOF

# 6. SSL upstream extraction (lancet.ssl): a random WavLM with a base model's sizes (nothing downloaded),
#    float32 and autocast, batches sorted by length vs in the given order, in seconds of audio per second
if [ "$SMALL" = 1 ]; then SSL_ARGS="--utterances 8 --repeats 1"; else SSL_ARGS="--size base --utterances 256"; fi
step ssl 90 "$PY" bench/bench_ssl.py --arch wavlm $SSL_ARGS --devices "$DEVICE" --threads "$(nproc)" \
    --json "$OUT_DIR/ssl.json"

# 7. the SSL path on the device: extraction into a store (autocast), its statistics against the CPU's float32
#    ones, a probe on the stored statistics and one epoch fine-tuning the top 2 layers (random base-size WavLM)
if [ "$SMALL" = 1 ]; then SSLP_ARGS="--size tiny --utterances 40"; else SSLP_ARGS="--size base --utterances 160"; fi
step ssl_pipeline 80 "$PY" bench/bench_ssl_pipeline.py $SSLP_ARGS --device "$DEVICE" --json "$OUT_DIR/ssl_pipeline.json"

echo "== figures ($(( $(date +%s) - T_START )) s in all; logs and JSON in $OUT_DIR)"
"$PY" - "$OUT_DIR" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    p = out / name
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None
rows = []
for line in (out / "status.txt").read_text().splitlines():
    name, rc, sec = line.split()
    rows.append((f"step {name}", "ok" if rc == "rc=0" else f"FAILED ({rc})", sec.split("=")[1] + " s"))
f = load("features.json") or []
by = {(r["kind"], r["method"]): r for r in f}
for kind in sorted({r["kind"] for r in f}):
    cpu, gpu = by.get((kind, "cpu")), by.get((kind, "cuda"))
    if cpu:
        rows.append((f"features {kind} CPU path", f"{cpu['utt_per_s']:.0f} utt/s", f"{cpu['segments']} segments"))
    if gpu:
        rows.append((f"features {kind} GPU path", f"{gpu['utt_per_s']:.0f} utt/s",
                     f"x{gpu['utt_per_s'] / cpu['utt_per_s']:.2f} vs CPU (target >= 3)" if cpu else ""))
for name in ("training.json", "training_mfcc.json"):
    for r in load(name) or []:
        if r.get("device") == "cuda":
            figs = ", ".join(f"{k} {r[k]:.0f}" for k in ("bare", "loop", "fast") if k in r)
            rows.append((f"train {r['model']} {r['kind']} batch {r['batch']}", f"{figs} seg/s",
                         f"compile {r['compile_s']:.0f} s" if "compile_s" in r else ""))
r = load("recipe.json")
if r:
    rows.append((f"recipe ({r['utterances']} utt, {len(r['folds'])} folds)", f"{r['total_s'] / 60:.2f} min for {r['epochs']} epochs",
                 f"~{r['extrapolated_total_min']:.1f} min at 50 epochs (linear, target <= 10)"
                 if r.get("extrapolated_total_min") else "full recipe"))
tr = load("torchrun.json")
if tr:
    rows.append(("torchrun 2 ranks on 1 GPU", f"{tr['units']} units, {tr['starts']} starts by {len(tr['ranks'])} rank(s)",
                 f"{tr['seconds']:.1f} s" + ("" if tr["ok"] else "  FAILED")))
s = load("ssl.json")
if s:
    for r in s["rows"]:
        rows.append((f"ssl {s['upstream']} {r['device']} {r['precision']} {r['batches']}",
                     f"{r['audio_s_per_s']:.0f} s of audio/s", f"{100 * r['padded_fraction']:.0f} % padding"))
p = load("ssl_pipeline.json")
if p:
    rows.append((f"ssl pipeline {p['arch']} {p['size']} {p['device']}: extraction", f"{p['extract_audio_s_per_s']:.0f} s of audio/s",
                 f"device fp32 vs CPU fp32 {p['max_abs_diff_device_fp32_vs_cpu_fp32']:.1e}, stored {p['max_abs_diff_stored_vs_cpu_fp32']:.1e}"))
    rows.append(("ssl pipeline: probe epoch / fine-tuning epoch", f"{p['probe_epoch_s']:.3f} s / {p['finetune_epoch_s']:.1f} s",
                 f"fine-tuning {p['finetune_audio_s_per_s']:.0f} s of audio/s"))
w = [max(len(str(c[i])) for c in rows) for i in range(3)]
for c in rows:
    print("  ".join(str(v).ljust(w[i]) for i, v in enumerate(c)))
json.dump(rows, open(out / "figures.json", "w"), indent=1)
EOF
