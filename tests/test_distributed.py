"""Scale-out: torchrun ranks share a run's units (gloo on CPU), --jobs trains several at once, --ddp
splits each batch across ranks; results equal a one-by-one run and resume after a rank dies."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lancet.training import distributed, jobs
from lancet.training.distributed import DistContext, ShardRng, shard

from test_training import ROOT, make_store

UNITS = ("fold1", "fold2", "fold3")
ARGS = ("--features", "mfcc", "--models", "TCNet", "--folds", "1", "2", "3", "--epochs", "2", "--batch-size", "8",
        "--device", "cpu", "--amp", "off", "--workers", "0", "--threads", "1", "--no-progress", "--train-on", "clean")
STARTED = re.compile(r"\[TCNet (fold\d) clean seed \d+\] \d+ training / \d+ validation segments")


def _env() -> dict:
    return {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1",
            "HOME": os.environ.get("HOME", "/tmp")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmd(features: Path, results: Path, name: str, *extra: str, ranks: int = 0) -> list[str]:
    train = [str(ROOT / "train_LANCET.py"), "--features-dir", str(features), "--results-dir", str(results),
             "--run-name", name, *ARGS, *extra]
    if not ranks:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
            "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), *train]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _metrics(results: Path, name: str) -> dict[str, list]:
    out = {}
    for fold in UNITS:
        path = results / name / "metrics" / f"TCNet__train-clean__seed987654__{fold}.json"
        out[fold] = json.loads(path.read_text())
    return out


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("features"), conditions=("clean", "white_0dB"))


@pytest.fixture(scope="module")
def reference(features, tmp_path_factory):
    """The one-by-one run every scale-out run must reproduce."""
    results = tmp_path_factory.mktemp("results")
    r = _run(_cmd(features, results, "ref", "--jobs", "1"))
    assert Counter(STARTED.findall(r.stdout)) == Counter(UNITS)
    return results, _metrics(results, "ref")


# ----------------------------------------------------------------------------- pieces
def test_shard_keeps_the_global_batch():
    batch = np.arange(13)
    parts = [shard(batch, DistContext(rank=r, world_size=3)) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == batch.tolist()
    assert [len(p) for p in parts] == [5, 4, 4]


def test_shard_rng_keeps_ranks_in_step():
    """Shards of different sizes consume the unit's generator identically (the next epoch's order agrees)."""
    rngs = [np.random.default_rng(5) for _ in range(2)]
    for r, rng in enumerate(rngs):
        view = ShardRng(rng, DistContext(rank=r, world_size=2), global_size=7)
        view.beta(0.5, 0.5)
        perm = view.permutation(4 if r == 0 else 3)
        assert sorted(perm.tolist()) == list(range(4 if r == 0 else 3))
    assert rngs[0].permutation(50).tolist() == rngs[1].permutation(50).tolist()


def test_without_torchrun_everything_is_claimed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = distributed.setup("cpu")
    assert not ctx.enabled and list(distributed.claim(ctx, [1, 2, 3])) == [1, 2, 3]


def test_auto_jobs_fits_free_gpu_memory(monkeypatch):
    """--jobs 0 on CUDA: as many units as fit in 90 % of the free memory, capped by cores, 8 and the units."""
    import torch

    import lancet.core.workers

    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40 * gib, 80 * gib))
    monkeypatch.setattr(lancet.core.workers, "available_cpus", lambda: 16)
    cuda = torch.device("cuda", 0)
    assert jobs.auto_jobs(cuda, 5 * gib, 20) == 6                         # 36 GiB / (5 + 0.6) GiB
    assert jobs.auto_jobs(cuda, 0.1 * gib, 20) == jobs.MAX_AUTO_JOBS
    assert jobs.auto_jobs(cuda, 0.1 * gib, 3) == 3                        # no more than the units
    assert jobs.auto_jobs(cuda, 0.1 * gib, 20, local_world_size=8) == 2   # 16 cores over 8 ranks
    assert jobs.auto_jobs(cuda, 100 * gib, 20) == 1                       # one too big: still one
    assert jobs.auto_jobs(torch.device("cpu"), 0.1 * gib, 20) == 1


# ----------------------------------------------------------------------------- whole runs
def test_torchrun_two_ranks_share_units_exactly_once(features, reference, tmp_path):
    results, ref = reference
    r = _run(_cmd(features, tmp_path, "tr", ranks=2))
    assert Counter(STARTED.findall(r.stdout)) == Counter(UNITS)  # each unit trained once, by one rank
    ranks = set(re.findall(r"\[rank (\d)/2\] \[TCNet fold\d clean", r.stdout))
    assert ranks, r.stdout[-2000:]
    assert r.stdout.count("Utterance-level WA / UA") == 1  # the summary is written and printed once
    assert _metrics(tmp_path, "tr") == ref
    summary = json.loads((tmp_path / "tr" / "summary.json").read_text())
    assert summary == json.loads((results / "ref" / "summary.json").read_text())
    assert not (tmp_path / "tr" / ".lancet.lock").exists()


def test_jobs_two_matches_one_by_one(features, reference, tmp_path):
    _, ref = reference
    r = _run(_cmd(features, tmp_path, "j2", "--jobs", "2"))
    assert "training 2 units at once" in r.stdout
    assert Counter(STARTED.findall(r.stdout)) == Counter(UNITS)
    assert _metrics(tmp_path, "j2") == ref


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(t) for t in text]
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the ranks")
def test_resume_after_a_rank_dies(features, reference, tmp_path):
    """Kill rank 1 mid-run: torchrun stops the launch; the same command again finishes every unit
    (finished ones skipped, the interrupted one continued) with the one-by-one results."""
    _, ref = reference
    proc = subprocess.Popen(_cmd(features, tmp_path, "kill", ranks=2), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=_env())
    ckpts = tmp_path / "kill" / "checkpoints"
    killed = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if any(ckpts.rglob("last.pt")) if ckpts.is_dir() else False:
            ranks = {_rank_of(c): c for c in _children(proc.pid)}
            if 1 in ranks:
                os.kill(ranks[1], signal.SIGKILL)
                killed = True
                break
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=120)
    assert killed, out[-2000:]
    assert proc.returncode != 0
    assert not (tmp_path / "kill" / "summary.json").exists()
    r = _run(_cmd(features, tmp_path, "kill", ranks=2))
    assert _metrics(tmp_path, "kill") == ref
    assert (tmp_path / "kill" / "summary.json").is_file()
    again = Counter(STARTED.findall(r.stdout))
    assert sum(again.values()) + r.stdout.count("finished earlier; skipped") == len(UNITS)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the workers")
def test_jobs_resume_after_a_worker_is_killed(features, reference, tmp_path):
    """--jobs 2: a unit's worker killed (as the out-of-memory killer would) stops the run with a one-line
    error naming the units in flight; the same command again completes with the one-by-one results."""
    _, ref = reference
    proc = subprocess.Popen(_cmd(features, tmp_path, "jk", "--jobs", "2"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    ckpts = tmp_path / "jk" / "checkpoints"
    killed = False
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if ckpts.is_dir() and any(ckpts.rglob("last.pt")):
            # the pool's workers: children of the fork server (which runs the same module as they do)
            server = [p for p in _descendants(proc.pid) if "forkserver" in _cmdline(p)]
            workers = [p for p in server if any(p in _children(q) for q in server)]
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed = True
                break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert killed, out[-2000:] + err[-2000:]
    assert proc.returncode == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert errors[0].startswith("error: unit ") and "worker process died" in errors[0] and "rerun the same command" in errors[0]
    _run(_cmd(features, tmp_path, "jk", "--jobs", "2"))
    assert _metrics(tmp_path, "jk") == ref


def test_ddp_two_ranks_train_each_unit_with_the_global_batch(features, tmp_path):
    r = _run(_cmd(features, tmp_path, "ddp", "--ddp", "--folds", "1", ranks=2))
    # both ranks train the unit; together they see every training segment in global batches of 8
    assert len(STARTED.findall(r.stdout)) == 2
    m = re.search(r"data-parallel on 2 ranks: (\d+) steps per epoch, (\d+) segments per epoch, global batch (\d+)",
                  r.stdout)
    assert m, r.stdout[-2000:]
    steps, segments, batch = map(int, m.groups())
    n_train = int(re.search(r"fold1 clean seed \d+\] (\d+) training", r.stdout).group(1))
    assert batch == 8 and segments == n_train and steps == -(-n_train // 8)
    metrics = json.loads((tmp_path / "ddp" / "metrics" / "TCNet__train-clean__seed987654__fold1.json").read_text())
    clean = next(m for m in metrics if m["condition"] == "clean")
    assert clean["n_utterances"] == 24 and 0.0 <= clean["wa"] <= 1.0
    assert (tmp_path / "ddp" / "summary.json").is_file()
