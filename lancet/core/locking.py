"""One lock per output folder, so two runs never write the same folder at once.

Augmentation, standardisation, feature extraction and a training run each hold
``<folder>/.lancet.lock`` while they write. The file is created atomically (``O_CREAT | O_EXCL``) and
holds the holder's pid, host name, start time and command line, so a second run can say exactly who
holds the folder. A lock left by a process that no longer exists on this host (a kill, a power cut)
is stale and taken over; a lock of another host is never taken over (its pid means nothing here):
delete the file by hand once sure that run is gone.

Usage::

    with output_lock(out, wait=args.wait):
        ...  # read-modify-write the folder's manifest, write files

A second run stops with a one-line :class:`lancet.core.errors.LancetError` naming the holder, or, with
``wait=True``, waits until the folder is free.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from lancet.core.atomic import pid_alive
from lancet.core.errors import LancetError

LOCK_NAME = ".lancet.lock"
WAIT_FLAG_HELP = "if another run holds the output folder, wait for it to finish instead of stopping"


def _holder_text(info: dict) -> str:
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {when} ({info.get('command', '?')})"


def read_lock(folder: str | os.PathLike) -> dict | None:
    """The holder recorded in ``folder``'s lock, or None when the folder is not locked.

    A lock file being written right now (empty or cut short) reads as ``{}``.
    """
    path = Path(folder) / LOCK_NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def _is_stale(info: dict, path: Path) -> bool:
    """A lock of a dead process of this host; an unreadable lock older than a minute counts as stale too."""
    if not info:
        try:
            return time.time() - path.stat().st_mtime > 60
        except FileNotFoundError:
            return False
    if info.get("host") != socket.gethostname():
        return False
    pid = info.get("pid")
    return isinstance(pid, int) and not pid_alive(pid)


def _try_create(path: Path, info: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(info) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _take_over(path: Path, stale: dict) -> None:
    """Move a stale lock aside, making sure it is the one judged stale (another starter may have replaced it)."""
    aside = path.with_name(f"{LOCK_NAME}.stale{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # someone else took it over first
    try:
        moved = json.loads(aside.read_text() or "{}")
    except (json.JSONDecodeError, OSError):
        moved = {}
    if stale and moved != stale:
        # we moved a fresh lock of a run that just took over: put it back (link fails if yet another exists)
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, wait: bool = False, poll_s: float = 0.5,
                log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold ``<folder>/.lancet.lock`` for the block (the folder is created if needed); see the module docstring.

    Raises LancetError naming the holder when the folder is locked by a live run and ``wait`` is False.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d, output_lock(d) as lock:
        ...     lock.name
        '.lancet.lock'
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)  # an OSError (read-only, full) names the path: run_cli prints it
    path = folder / LOCK_NAME
    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300] if sys.argv else "?"}
    said = False
    while True:
        try:
            if _try_create(path, info):
                break
        except FileNotFoundError:  # the holder we waited for created the folder and removed it, empty, on release
            folder.mkdir(parents=True, exist_ok=True)
            continue
        holder = read_lock(folder)
        if holder is None:
            continue  # released between our two looks
        if _is_stale(holder, path):
            (log or _stderr)(f"note: {path}: taking over the lock of a run that is gone ({_holder_text(holder)})")
            _take_over(path, holder)
            continue
        if not wait:
            raise LancetError(f"{folder}: another run is writing this folder: {_holder_text(holder)}; wait for it "
                              f"to finish (or rerun with --wait), or delete {path} if that process is gone")
        if not said:
            (log or _stderr)(f"waiting: {folder} is locked by {_holder_text(holder)}")
            said = True
        time.sleep(poll_s)
    try:
        yield path
    finally:
        current = read_lock(folder)
        if current is not None and current.get("pid") == info["pid"] and current.get("started") == info["started"]:
            path.unlink(missing_ok=True)
        if created:  # a run that stopped before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
