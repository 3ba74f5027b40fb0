"""Write files under a temporary name and rename, so no half-written output is ever left behind."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the real extension last (``x.tmp123.wav``) so that libraries which pick a
    format from the extension still do. On failure the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = suffix if suffix is not None else path.suffix
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{ext}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        # name the real file, not its temporary; a write() on a full disk names no file at all
        names = [str(path) if f is None or str(f) == str(tmp) else f for f in (exc.filename, exc.filename2)]
        if exc.errno is not None and names != [exc.filename, exc.filename2]:
            if exc.filename2 is None:
                raise OSError(exc.errno, exc.strerror, names[0]) from exc
            raise OSError(exc.errno, exc.strerror, names[0], None, names[1]) from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an array atomically as ``.npy`` (loadable with ``np.load(mmap_mode="r")``)."""
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, array)


def save_json(path: str | os.PathLike, obj: Any, allow_nan: bool = True) -> None:
    """Save JSON atomically, indented for people to read.

    ``allow_nan=False`` (configurations, parameter records): NaN or infinity is refused with a ValueError
    naming the file, since ``NaN`` is not valid JSON and a setting of NaN is always a mistake.
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, default=str, allow_nan=allow_nan)
    except ValueError as exc:
        raise ValueError(f"{path}: refusing to write a non-finite number (NaN or infinity) into JSON ({exc})") from None
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def save_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    """Save rows of dicts as CSV atomically, columns in ``fieldnames`` order."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read a CSV written by :func:`save_csv` into a list of dicts (all values as strings)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's BOM would rename column 1
        return list(csv.DictReader(fh))


_TEMPORARY = re.compile(r"^\..+\.tmp(?P<pid>\d+)(\.[^.]*)?$")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a killed process not yet reaped by its parent (a zombie) still answers signal 0 but is gone
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except FileNotFoundError:  # gone meanwhile, or no /proc at all (not Linux)
        return not os.path.isdir("/proc/self")
    except (OSError, IndexError):
        return True


def remove_stale_temporaries(folder: str | os.PathLike, recursive: bool = True) -> int:
    """Delete temporary files (``.<name>.tmp<pid>.<ext>``, see :func:`atomic_path`) of processes that are gone.

    A temporary file whose writer is still alive (another run, a worker) is left alone, so a run's
    start-up never deletes a file another live run is writing. Returns the number removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for p in (folder.rglob(".*.tmp*") if recursive else folder.glob(".*.tmp*")):
        match = _TEMPORARY.match(p.name)
        if match is None or not p.is_file() or pid_alive(int(match["pid"])):
            continue
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:  # removed meanwhile by its writer
            pass
    return n


CHECKSUM_ALGORITHM = "sha256"  # with the CPU's SHA instructions the fastest in hashlib (about 0.6-2 GB/s)


def file_checksum(path: str | os.PathLike, chunk_bytes: int = 8 << 20) -> str:
    """``sha256:<hex>`` of the whole file, read in chunks into one buffer (constant memory, no copies).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     file_checksum(f.name)[:15]
        'sha256:e3b0c442'
    """
    h = hashlib.new(CHECKSUM_ALGORITHM)
    buf = bytearray(chunk_bytes)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return _tagged(h)


def bytes_checksum(data: bytes) -> str:
    """``sha256:<hex>`` of bytes already read, the same text :func:`file_checksum` gives for a file holding them.

    Example:
        >>> bytes_checksum(b"")[:15]
        'sha256:e3b0c442'
    """
    return _tagged(hashlib.new(CHECKSUM_ALGORITHM, data))


def _tagged(h) -> str:  # a hashlib object of CHECKSUM_ALGORITHM
    return f"{CHECKSUM_ALGORITHM}:{h.hexdigest()}"
