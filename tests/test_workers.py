"""The one worker-pool driver (lancet.core.workers): order, lazy feeding, errors naming the item, Ctrl-C."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lancet.core.atomic import pid_alive
from lancet.core.errors import LancetError
from lancet.core.workers import WorkerError, WorkerPool, default_context, imap

ROOT = Path(__file__).resolve().parents[1]  # (no test_training import: workers import this module, keep it light)


def _slow_square(x: int) -> int:
    time.sleep(0.02 * (x % 3))  # finish out of order
    return x * x


def _fail_on_5(x: int) -> int:
    if x == 5:
        raise ValueError("five is bad")
    return x


def _lancet_error(x: str) -> str:
    raise LancetError(f"{x}: not a wav file")


def _pid(_: int) -> int:
    time.sleep(0.05)
    return os.getpid()


def _die_on_3(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
    time.sleep(0.05)
    return x


_INIT: dict = {}


def _init(value: int) -> None:
    _INIT["v"] = value


def _add_init(x: int) -> int:
    return x + _INIT["v"]


def test_default_start_method_is_never_fork():
    assert default_context() in ("forkserver", "spawn")


@pytest.mark.parametrize("workers", [1, 2])
def test_ordered_and_unordered_results(workers):
    items = list(range(12))
    assert list(imap(_slow_square, items, workers=workers, chunksize=2, progress=False)) == [x * x for x in items]
    got = list(imap(_slow_square, items, workers=workers, ordered=False, progress=False))
    assert sorted(got) == [x * x for x in items]


@pytest.mark.parametrize("workers", [1, 2])
def test_initializer_runs_in_every_worker(workers):
    assert list(imap(_add_init, [1, 2, 3], workers=workers, initializer=_init, initargs=(10,), progress=False)) == [11, 12, 13]


def test_items_are_pulled_lazily():
    """At most max_pending items are taken ahead: a claiming generator claims no more than can run."""
    pulled: list[int] = []

    def items():
        for i in range(20):
            pulled.append(i)
            yield i

    gen = imap(math.sqrt, items(), workers=2, max_pending=2, progress=False)
    assert next(gen) == 0.0
    assert len(pulled) <= 3
    gen.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_error_names_the_item(workers):
    with pytest.raises(WorkerError, match=r"item 5: ValueError: five is bad") as info:
        list(imap(_fail_on_5, range(10), workers=workers, chunksize=3, describe=lambda x: f"item {x}", progress=False))
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(LancetError, match=r"^utt7: utt7: not a wav file$"):
        list(imap(_lancet_error, ["utt7"], workers=workers, describe=str, progress=False))


def test_pool_serves_several_maps_and_stops_its_workers():
    with WorkerPool(2) as pool:
        pids = set(pool.imap(_pid, range(6), progress=False)) | set(pool.imap(_pid, range(6), progress=False))
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    time.sleep(0.2)
    assert not any(pid_alive(p) for p in pids)


def test_closing_early_terminates_the_workers():
    gen = imap(_pid, range(100), workers=2, progress=False)
    pid = next(gen)
    gen.close()
    time.sleep(0.2)
    assert not pid_alive(pid)


def test_ctrl_c_stops_the_pool_cleanly(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from lancet.core.workers import imap

        def pid(_):
            time.sleep(0.05)
            return os.getpid()

        if __name__ == "__main__":
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job may start with SIGINT ignored
            try:
                for p in imap(pid, range(10_000), workers=2, progress=False):
                    print(p, flush=True)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pids = {int(proc.stdout.readline()) for _ in range(4)}
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.strip().endswith("interrupted")
    time.sleep(0.2)
    assert not any(pid_alive(p) for p in pids)


def test_pool_survives_a_map_read_with_zip():
    """zip() over a list stops without exhausting the map; with every result taken the pool stays up."""
    with WorkerPool(2) as pool:
        first = [r for _, r in zip(range(5), pool.imap(_slow_square, range(5), progress=False))]
        second = list(pool.imap(_slow_square, range(3), progress=False))
    assert first == [0, 1, 4, 9, 16] and second == [0, 1, 4]


def test_a_killed_worker_is_an_error_not_a_hang():
    with pytest.raises(WorkerError, match=r"item 3.*: WorkerDied: a worker process died"):
        list(imap(_die_on_3, range(8), workers=2, describe=lambda x: f"item {x}", progress=False))
