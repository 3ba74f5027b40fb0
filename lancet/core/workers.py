"""One worker-pool driver for every parallel step (augmentation, feature extraction, training units).

Why one: each step used to carry its own ``multiprocessing.Pool`` loop with its own start method
(extraction hard-coded ``fork``, which is unsafe once torch, tqdm or any other thread is running and
cannot use CUDA in the children), its own progress bar and its own Ctrl-C handling. :func:`imap` does
it once:

* start method ``forkserver`` where the platform has it, else ``spawn`` (never ``fork`` by default):
  workers start from a clean interpreter, so CUDA works in them and no lock held by a parent thread
  is inherited. ``preload`` names modules the fork server imports once, so workers start warm.
* ordered or unordered results; at most ``max_pending`` items in flight, and the items are taken
  from the iterable only as slots free up (a claiming generator claims no more than it can run);
* a tqdm bar over the results;
* an error in a worker stops the pool and is raised in the caller naming the item
  (:class:`WorkerError`, or the same :class:`~lancet.core.errors.LancetError` prefixed with the item);
* Ctrl-C (or SIGTERM turned into KeyboardInterrupt by the caller) terminates the workers and
  re-raises: workers ignore SIGINT so that only the parent decides.

``workers <= 1`` runs everything inline in the calling process (same results, no pool): the
initializer is called once in the caller.

Example:
    >>> list(imap(abs, [-1, 2, -3], workers=1, progress=False))
    [1, 2, 3]
"""

from __future__ import annotations

import concurrent.futures as cf
import concurrent.futures.process  # noqa: F401 - BrokenProcessPool
import multiprocessing as mp
import os
import pickle
import queue
import signal
import sys
from typing import Any, Callable, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from lancet.core.errors import LancetError

__all__ = ["WorkerError", "WorkerDied", "WorkerPool", "imap", "default_context", "available_cpus",
           "default_torch_threads"]


class WorkerError(RuntimeError):
    """An item failed in a worker; the message names the item, ``__cause__`` holds the worker's error."""


class WorkerDied(WorkerError):
    """A worker process ended abruptly (a signal, the out-of-memory killer); the message names the items in flight."""


def available_cpus() -> int:
    """CPU cores this process may use (its affinity mask where the platform has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_torch_threads() -> int:
    """Torch's CPU threads when none are asked for: half the usable cores, at least one.

    Why not all of them: torch's OpenMP threads spin while they wait for each other, and when another
    job shares the cores a step can take 10-100x longer (on a 2-core machine with one other busy job:
    10.7 ms per step with one thread, 175-388 ms with two; docs/BENCHMARKS.md). Half the cores
    degrades gracefully; ``--threads N`` takes them all back on a quiet machine (there, two threads
    instead of one made the same step 1.4x faster). Letting the threads sleep instead
    (``OMP_WAIT_POLICY=PASSIVE``) was measured too: slower than one thread even on a quiet machine.

    Example:
        >>> default_torch_threads() >= 1
        True
    """
    return max(1, available_cpus() // 2)


def default_context() -> str:
    """``forkserver`` where available (Linux), else ``spawn`` (macOS, Windows)."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


# ----------------------------------------------------------------------------- worker side
def _worker_init(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    if initializer is not None:
        initializer(*initargs)


def _run_chunk(fn: Callable[[Any], Any], chunk: list) -> list:
    """Run ``fn`` over a chunk; on failure report which element of the chunk failed."""
    out = []
    for i, item in enumerate(chunk):
        try:
            out.append(fn(item))
        except BaseException as exc:
            raise _Failed(i, exc) from exc
    return out


class _Failed(Exception):
    """Carries the position of the failing element of a chunk back to the parent (picklable)."""

    def __init__(self, pos: int, exc: BaseException) -> None:
        super().__init__(pos, exc)
        self.pos = pos
        self.exc = exc

    def __reduce__(self):
        try:  # the worker's exception may not pickle: fall back to its text
            pickle.dumps(self.exc)
            exc = self.exc
        except Exception:
            exc = RuntimeError(f"{type(self.exc).__name__}: {self.exc}")
        return (_Failed, (self.pos, exc))


# ----------------------------------------------------------------------------- parent side
def _raise_for(item: Any, exc: BaseException, describe: Callable[[Any], str]) -> None:
    label = describe(item)
    if isinstance(exc, LancetError):
        raise type(exc)(f"{label}: {exc}") from exc
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    raise WorkerError(f"{label}: {type(exc).__name__}: {exc}") from exc


class WorkerPool:
    """``workers`` processes (or, with ``workers <= 1``, the calling process) that stay up across
    several :meth:`imap` calls (extraction runs one per condition on the same pool).

    A failure or Ctrl-C inside :meth:`imap` terminates the pool; leaving the ``with`` block closes it.
    """

    def __init__(self, workers: int = 1, initializer: Callable[..., Any] | None = None, initargs: Sequence[Any] = (),
                 context: str | None = None, preload: Sequence[str] = ()) -> None:
        self.workers = max(1, int(workers))
        self._pool = None
        self._stopped = False
        if self.workers <= 1:
            if initializer is not None:
                initializer(*initargs)
            return
        ctx = mp.get_context(context or default_context())
        if ctx.get_start_method() == "forkserver" and preload:
            ctx.set_forkserver_preload(list(preload))
        # concurrent.futures rather than multiprocessing.Pool: a worker that dies (killed, out of
        # memory) breaks the executor with an error, where Pool silently replaces it and waits forever
        self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_worker_init,
                                            initargs=(initializer, tuple(initargs)))

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()

    def close(self) -> None:
        """Let the workers finish and exit."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._stopped = True

    def terminate(self) -> None:
        """Stop the workers now (an error or Ctrl-C)."""
        if self._pool is not None:
            procs = list((getattr(self._pool, "_processes", None) or {}).values())  # no public handle before 3.14
            self._pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.join(timeout=10)
            self._pool = None
        self._stopped = True

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any], *, ordered: bool = True, chunksize: int = 1,
             max_pending: int | None = None, progress: bool = True, desc: str | None = None, unit: str = "item",
             total: int | None = None, describe: Callable[[Any], str] = repr) -> Iterator[Any]:
        """Yield ``fn(item)`` for every item (see :func:`imap` for the arguments)."""
        if self._stopped:
            raise RuntimeError("this WorkerPool was closed or stopped by an earlier error")
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        bar = tqdm(total=total, desc=desc, unit=unit, disable=not progress, file=sys.stderr, dynamic_ncols=True,
                   leave=False)
        try:
            if self._pool is None:
                for item in items:
                    try:
                        result = fn(item)
                    except Exception as exc:
                        _raise_for(item, exc, describe)
                    bar.update(1)
                    yield result
                return
            busy = [0]  # chunks submitted and not yet yielded
            try:
                yield from _pool_imap(self._pool, fn, items, self.workers, ordered, max(1, int(chunksize)),
                                      max_pending, bar, describe, busy)
            except GeneratorExit:
                # the caller stopped reading: harmless when every result was taken (zip() over a list
                # stops that way), else the workers are busy with results nobody wants
                if busy[0]:
                    self.terminate()
                raise
            except BaseException:
                self.terminate()
                raise
        finally:
            bar.close()


def imap(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 1, *,
         initializer: Callable[..., Any] | None = None, initargs: Sequence[Any] = (),
         ordered: bool = True, chunksize: int = 1, max_pending: int | None = None,
         progress: bool = True, desc: str | None = None, unit: str = "item", total: int | None = None,
         describe: Callable[[Any], str] = repr, context: str | None = None,
         preload: Sequence[str] = ()) -> Iterator[Any]:
    """Yield ``fn(item)`` for every item, in order (``ordered``) or as they finish, on ``workers`` processes.

    ``fn``, ``initializer`` and ``initargs`` must be picklable (top-level functions): workers are
    started with ``context`` (default :func:`default_context`), not forked from the caller.
    ``max_pending`` bounds the chunks of ``chunksize`` items in flight (default ``4 * workers``);
    items are pulled from ``items`` lazily. ``describe(item)`` names the item in errors.

    Shapes: items (N,) -> results (N,), same order when ``ordered``.
    """
    with WorkerPool(workers, initializer, initargs, context, preload) as pool:
        yield from pool.imap(fn, items, ordered=ordered, chunksize=chunksize, max_pending=max_pending,
                             progress=progress, desc=desc, unit=unit, total=total, describe=describe)


class _InFlight:
    """Chunks of ``items`` submitted to the executor and not yet yielded; ``done`` receives
    ``(chunk number, results, error)`` as each one finishes. Items are pulled from the iterable only
    when a chunk is submitted, so a claiming generator claims no more than can run."""

    def __init__(self, pool: cf.Executor, fn: Callable[[Any], Any], items: Iterable[Any], chunksize: int) -> None:
        self.pool, self.fn, self.chunksize = pool, fn, chunksize
        self.items = iter(items)
        self.done: queue.Queue = queue.Queue()
        self.chunks: dict[int, list] = {}  # submitted, not yet yielded
        self.next_submit = 0
        self.exhausted = False

    def fill(self, limit: int) -> None:
        """Submit chunks until ``limit`` are in flight or the items run out."""
        while not self.exhausted and len(self.chunks) < limit:
            if not self._submit():
                self.exhausted = True

    def _submit(self) -> bool:
        chunk = []
        for item in self.items:
            chunk.append(item)
            if len(chunk) >= self.chunksize:
                break
        if not chunk:
            return False
        k = self.next_submit
        self.chunks[k] = chunk
        try:
            fut = self.pool.submit(_run_chunk, self.fn, chunk)
        except cf.BrokenExecutor as exc:  # a worker died earlier
            self.done.put((k, None, exc))
        else:
            fut.add_done_callback(lambda f, k=k: self.done.put((k, None, f.exception()) if f.exception() is not None
                                                               else (k, f.result(), None)))
        self.next_submit += 1
        return True

    def raise_failure(self, k: int, err: BaseException, describe: Callable[[Any], str]) -> None:
        """Raise the error of chunk ``k`` naming its item (all items in flight when a worker died)."""
        chunk = self.chunks[k]
        item, exc = (chunk[err.pos], err.exc) if isinstance(err, _Failed) else (chunk[0], err)
        if isinstance(exc, cf.process.BrokenProcessPool):  # which item killed it is unknowable: name all in flight
            flight = [describe(i) for c in self.chunks.values() for i in c]
            raise WorkerDied(f"{', '.join(flight[:6])}{' ...' if len(flight) > 6 else ''}: WorkerDied: a worker "
                             f"process died (killed, or out of memory?) while "
                             f"{'this item was' if len(flight) == 1 else 'one of these items was'} in flight") from exc
        _raise_for(item, exc, describe)


def _pool_imap(pool, fn, items, workers, ordered, chunksize, max_pending, bar, describe, busy) -> Iterator[Any]:
    limit = max(1, int(max_pending if max_pending is not None else 4 * workers))
    flight = _InFlight(pool, fn, items, chunksize)
    results: dict[int, list] = {}  # finished, waiting for their turn (ordered)
    next_yield = 0
    while True:
        flight.fill(limit)
        busy[0] = len(flight.chunks)
        if not flight.chunks:
            return
        k, res, err = flight.done.get()
        if err is not None:
            flight.raise_failure(k, err, describe)
        if ordered:
            results[k] = res
            while next_yield in results:
                flight.chunks.pop(next_yield)
                busy[0] = len(flight.chunks)
                for r in results.pop(next_yield):
                    bar.update(1)
                    yield r
                next_yield += 1
        else:
            flight.chunks.pop(k)
            busy[0] = len(flight.chunks)
            for r in res:
                bar.update(1)
                yield r
