"""The feature store on disk: ``params.json`` + per condition ``<condition>.npy`` and ``<condition>.csv``.

Integrity: params.json records a checksum of every condition's ``.npy`` (SHA-256 of the whole file, written
with the data) and of its index ``.csv`` (``index_checksum``, checked whenever the index is read, with its
row count against the recorded segments: :func:`read_index`). :meth:`FeatureStore.segments` checks the
array's the first time a process opens a condition (one read of the file, 1-3 s per GB on one core), and the
extraction checks both before it calls a condition "already complete". A mismatch or a truncated file is a
one-line LancetError naming the file and the command that rebuilds it. A verified file is remembered by its
inode, size, modification and change times (ctime cannot be set back by any user tool) in this process and
in a marker under ``~/.cache/lancet/verified`` ($XDG_CACHE_HOME), so later runs and worker processes do not
hash it again until it changes. Stores written before checksums existed open with a warning ("unverified")
until the extraction command is run again, which records their checksums once.

Reading: :func:`open_features` -> :class:`FeatureStore`. Normalisation helpers:
:func:`compute_norm_stats` and :func:`normalise`. Writing: :class:`NpyStreamWriter` appends segments
to a ``.npy`` file whose header is fixed up at the end, so a condition of any size is written with
constant memory; the extraction driver wraps it in ``lancet.core.atomic.atomic_path`` (temporary name,
rename on success).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from lancet.core.atomic import bytes_checksum, file_checksum, read_csv, save_json
from lancet.core.conditions import condition_sort_key
from lancet.core.errors import LancetError
from lancet.core.paths import inside, safe_component
from lancet.features.params import DEFAULT_KIND, KINDS, SegmentParams

PARAMS_FILE = "params.json"
INDEX_COLUMNS = ("row", "id", "condition", "session", "speaker", "gender", "improvised", "label", "class", "start_s",
                 "valid_frames")
_INT_COLUMNS = ("row", "session", "improvised", "valid_frames")
_FLOAT_COLUMNS = ("start_s",)


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------
class FeatureStore:
    """One feature folder (one kind, e.g. ``features/mel``), its conditions loaded lazily."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        record = load_params(self.folder)
        if record is None:
            raise LancetError(f"{self.folder}: no {PARAMS_FILE} (not a feature folder; run feature extraction first)")
        self.params: dict[str, Any] = record
        self.kind: str = record["kind"]
        self.shape: tuple[int, int] = tuple(int(v) for v in record["shape"])  # type: ignore[assignment]
        self.dtype = np.dtype(record.get("dtype", "float32"))
        self.conditions: list[str] = sorted(
            (c for c in record.get("conditions", {})
             if (self.folder / f"{c}.npy").is_file() and (self.folder / f"{c}.csv").is_file()),
            key=condition_sort_key,
        )

    def _check(self, condition: str) -> None:
        if condition not in self.conditions:
            raise LancetError(
                f"{self.folder}: no complete condition {condition!r} (have: {', '.join(self.conditions) or 'none'})"
            )

    def segments(self, condition: str) -> np.ndarray:
        """The (n_segments, F, T) array of ``condition``, memory-mapped read-only.

        The first call for a condition in this process checks the file against its recorded checksum
        (see the module docstring); a truncated or changed file is a one-line LancetError.
        """
        self._check(condition)
        path = self.folder / f"{condition}.npy"
        verify_condition(self.folder, self.params, condition)
        try:
            return np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:  # "mmap length is greater than file size", bad header
            raise LancetError(f"{path}: unreadable feature array ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                              f"rebuild it: {rebuild_command(self.folder, self.params, condition)}") from None

    def index(self, condition: str) -> list[dict[str, Any]]:
        """One dict per segment (columns INDEX_COLUMNS; row/session/improvised/valid_frames int, start_s float).

        The index is checked against params.json as the array is (:func:`read_index`): a cut or edited index
        would pair segments with the wrong utterances and labels, or leave some out.
        """
        self._check(condition)
        return [_typed(row) for row in read_index(self.folder, self.params, condition)]

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.folder)!r}, kind={self.kind!r}, shape={self.shape}, conditions={self.conditions})"


def _typed(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    for col in _INT_COLUMNS:
        if col in out:
            try:
                out[col] = int(out[col])
            except ValueError:
                pass
    for col in _FLOAT_COLUMNS:
        if col in out:
            try:
                out[col] = float(out[col])
            except ValueError:
                pass
    return out


# ---------------------------------------------------------------------------------------------------
# Integrity
# ---------------------------------------------------------------------------------------------------
_VERIFIED: dict[tuple, str] = {}  # (path, device, inode, size, mtime_ns, ctime_ns) -> checksum, per process
_WARNED: set[str] = set()




def rebuild_command(folder: str | os.PathLike, record: dict[str, Any], condition: str) -> str:
    """The command that recomputes ``condition`` of the store in ``folder`` with the recorded settings."""
    kind = record.get("kind", DEFAULT_KIND)
    args = [f"python feature_extraction/{KINDS.get(kind, KINDS[DEFAULT_KIND]).script}"]
    if record.get("manifest"):
        args.append(f"--manifest {record['manifest']}")
    args += [f"--out {folder}", f"--conditions {condition}"]
    seg = SegmentParams()
    for name, flag in (("segment_s", "--segment-s"), ("hop_s", "--hop-s"), ("tail_min_s", "--tail-min-s"),
                       ("short", "--short")):
        if name in record and record[name] != getattr(seg, name):
            args.append(f"{flag} {record[name]}")
    if record.get("dtype", "float32") != "float32":
        args.append(f"--dtype {record['dtype']}")
    if kind in KINDS:
        defaults = KINDS[kind].params()
        flags = {f.name for f in dataclasses.fields(defaults) if f.metadata.get("flag", True)}
        for name, value in record.get("params", {}).items():
            if name in flags and getattr(defaults, name) != value:
                args.append(f"--{name.replace('_', '-')} {value}")
    return " ".join(args)


def _expected_bytes(path: Path) -> tuple[int, int]:
    """(bytes the .npy header promises, bytes on disk); raises ValueError for a file that is not .npy."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(fh)
        offset = fh.tell()
        size = os.fstat(fh.fileno()).st_size
    return offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, size


def verify_condition(folder: str | os.PathLike, record: dict[str, Any], condition: str,
                     use_cache: bool = True) -> str | None:
    """Check ``<condition>.npy`` against the checksum in ``record`` (params.json); return the checksum.

    Raises LancetError (one line: the file, what is wrong, the command that rebuilds it) for a truncated
    file or a checksum mismatch. A condition recorded without a checksum (a store of an older version)
    returns None after a one-time warning. Verified files are remembered for this process by their
    inode, size, mtime and ctime, so a run hashes each file once.
    """
    folder = Path(folder)
    path = folder / f"{condition}.npy"
    rebuild = rebuild_command(folder, record, condition)
    try:
        expected, size = _expected_bytes(path)
    except (ValueError, OSError, EOFError) as exc:
        raise LancetError(f"{path}: not a readable .npy file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                          f"rebuild it: {rebuild}") from None
    if size < expected:
        raise LancetError(f"{path}: truncated: {size} bytes where its header promises {expected}; rebuild it: {rebuild}")
    recorded = record.get("conditions", {}).get(condition, {}).get("checksum")
    if recorded is None:
        if str(path) not in _WARNED:
            _WARNED.add(str(path))
            print(f"warning: {path}: no checksum recorded (a store written before checksums): unverified; "
                  f"run the extraction command again to record one", file=sys.stderr)
        return None
    st = os.stat(path)
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    marker = _marker(key, recorded)
    if use_cache and (_VERIFIED.get(key) == recorded or (marker is not None and marker.is_file())):
        _VERIFIED[key] = recorded
        return recorded
    actual = file_checksum(path)
    if actual != recorded:
        raise LancetError(f"{path}: checksum mismatch (the file changed after extraction: {actual} != {recorded} "
                          f"in {folder / PARAMS_FILE}); rebuild it: {rebuild}")
    _VERIFIED[key] = actual
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:  # a read-only home: this process still remembers it
            pass
    return actual


def read_index(folder: str | os.PathLike, record: dict[str, Any], condition: str) -> list[dict[str, str]]:
    """The rows of ``<condition>.csv``, read once and checked against ``record`` (params.json): as many rows as
    the condition's recorded segments, and the recorded index checksum (``index_checksum``) when there is one.

    A mismatch is a one-line LancetError naming the file and the command that rebuilds it. A store written
    before index checksums warns once (unless its arrays lack checksums too: that warning already says how to
    record them) and the next extraction records it.
    """
    path = Path(folder) / f"{condition}.csv"
    data = path.read_bytes()
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    entry = record.get("conditions", {}).get(condition, {})
    rebuild = rebuild_command(folder, record, condition)
    expected = entry.get("n_segments")
    if isinstance(expected, int) and len(rows) != expected:
        raise LancetError(f"{path}: {len(rows)} rows where {Path(folder) / PARAMS_FILE} records {expected} segments "
                          f"(cut or edited after extraction); rebuild it: {rebuild}")
    recorded = entry.get("index_checksum")
    if recorded is None:
        if entry.get("checksum") is not None and str(path) not in _WARNED:
            _WARNED.add(str(path))
            print(f"warning: {path}: no checksum recorded for this index (a store written before index checksums): "
                  f"unverified; run the extraction command again to record one", file=sys.stderr)
        return rows
    actual = bytes_checksum(data)
    if actual != recorded:
        raise LancetError(f"{path}: checksum mismatch (the index changed after extraction: {actual} != {recorded} in "
                          f"{Path(folder) / PARAMS_FILE}); rebuild it: {rebuild}")
    return rows


def _marker(key: tuple, checksum: str) -> Path | None:
    """The cache marker of a verified (file state, checksum), or None when there is no home to keep it in."""
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.path.expanduser("~"), ".cache")
                                                  if os.path.expanduser("~") != "~" else None)
    if not base:
        return None
    name = hashlib.sha256(repr((key, checksum)).encode()).hexdigest()
    return Path(base) / "lancet" / "verified" / name[:2] / name


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings that differ, ``params.<name>`` for the kind's own (an upstream's weights, a Mel band count).

    Example:
        >>> changed_settings({"hop_s": 1.0, "params": {"a": 1, "b": 2}}, {"hop_s": 0.5, "params": {"a": 1, "b": 3}})
        ['hop_s', 'params.b']
    """
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "params" and isinstance(a, dict) and isinstance(b, dict):
            out += [f"params.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(key)
    return out


def condition_file(folder: str | os.PathLike, condition: str, ext: str) -> Path:
    """``<folder>/<condition><ext>``, refused when the condition (from a manifest) is not one plain file name."""
    return inside(folder, Path(folder) / f"{safe_component(condition, 'condition')}{ext}")


def open_features(folder: str | os.PathLike) -> FeatureStore:
    """Open a feature folder written by the extraction scripts."""
    return FeatureStore(folder)


def load_params(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's params.json as a dict, or None when there is none."""
    path = Path(folder) / PARAMS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LancetError(f"{path}: not valid JSON ({exc.__class__.__name__}); delete it or use --overwrite") from None


def save_params(folder: str | os.PathLike, record: dict[str, Any]) -> None:
    save_json(Path(folder) / PARAMS_FILE, record, allow_nan=False)


# ---------------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------------
def compute_norm_stats(
    x: np.ndarray, valid_frames: Iterable[int] | None = None, min_std: float = 1e-5, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per frequency bin over segments and time of ``x`` (n, F, T), as float32 (F,).

    Works chunk-wise in float64, so a large memory-mapped array is never loaded at once. With
    ``valid_frames`` (one count per segment) only the real frames of padded segments count.
    The std is floored at ``min_std`` so that normalising never divides by zero.
    """
    x = np.asarray(x) if not isinstance(x, np.memmap) else x
    if x.ndim != 3:
        raise ValueError(f"compute_norm_stats expects (segments, freq, time), got shape {x.shape}")
    n, F, T = x.shape
    valid = None if valid_frames is None else np.asarray(list(valid_frames), dtype=np.int64)
    if valid is not None and valid.shape != (n,):
        raise ValueError(f"valid_frames has {valid.shape[0]} entries for {n} segments")
    count = 0
    mean = np.zeros(F, dtype=np.float64)
    m2 = np.zeros(F, dtype=np.float64)
    for start in range(0, n, chunk):
        block = np.asarray(x[start : start + chunk], dtype=np.float64)
        if valid is None:
            values = block.transpose(1, 0, 2).reshape(F, -1)
        else:
            mask = np.arange(T)[None, :] < valid[start : start + chunk, None]
            values = block.transpose(1, 0, 2)[:, mask]
        nb = values.shape[1]
        if nb == 0:
            continue
        mb = values.mean(axis=1)
        m2b = np.square(values - mb[:, None]).sum(axis=1)
        delta = mb - mean
        total = count + nb
        mean = mean + delta * (nb / total)
        m2 = m2 + m2b + np.square(delta) * (count * nb / total)
        count = total
    if count == 0:
        raise ValueError("compute_norm_stats: no frames to compute statistics from")
    std = np.sqrt(m2 / count)
    return mean.astype(np.float32), np.maximum(std, min_std).astype(np.float32)


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std per frequency bin; ``x`` is (..., F, T), the result float32."""
    mean = np.asarray(mean, dtype=np.float32)[:, None]
    std = np.asarray(std, dtype=np.float32)[:, None]
    return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------
class NpyStreamWriter:
    """Append (k, F, T) blocks to a ``.npy`` file of unknown final length; :meth:`close` fixes the header.

    The header (format 1.0) is reserved at a fixed size and rewritten with the true segment count.
    """

    HEADER_BYTES = 256

    def __init__(self, path: str | os.PathLike, frame_shape: tuple[int, ...], dtype: str | np.dtype = "float32"):
        self.path = Path(path)
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._fh = open(self.path, "wb")
        self._fh.write(self._header(0))

    def _header(self, n: int) -> bytes:
        descr = np.lib.format.dtype_to_descr(self.dtype)
        shape = (n, *self.frame_shape)
        text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, shape)
        prefix = b"\x93NUMPY\x01\x00"
        body_len = self.HEADER_BYTES - len(prefix) - 2
        body = text.ljust(body_len - 1).encode("latin1") + b"\n"
        if len(body) != body_len:
            raise ValueError("npy header does not fit")
        return prefix + body_len.to_bytes(2, "little") + body

    def append(self, block: np.ndarray) -> None:
        block = np.asarray(block)
        if block.shape[1:] != self.frame_shape:
            raise ValueError(f"{self.path}: block of shape {block.shape} does not match {self.frame_shape}")
        self._fh.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.count += block.shape[0]

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.seek(0)
        self._fh.write(self._header(self.count))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def condition_state(folder: Path, condition: str, record: dict[str, Any], fingerprint: str) -> tuple[bool, str]:
    """Whether ``condition`` is completely extracted for the current parameters and manifest rows.

    Returns (complete, reason-if-not). Checks params.json's entry, that both files exist, and that the
    array's shape and dtype agree with the index rows and the parameters.
    """
    npy, csv = folder / f"{condition}.npy", folder / f"{condition}.csv"
    entry = record.get("conditions", {}).get(condition)
    if not npy.is_file() and not csv.is_file():
        return False, "not extracted yet"
    if entry is None:
        return False, "files present but not recorded as complete in params.json"
    if not npy.is_file() or not csv.is_file():
        return False, f"{(npy if not npy.is_file() else csv).name} is missing"
    if entry.get("fingerprint") != fingerprint:
        return False, "the manifest rows of this condition changed since it was extracted"
    try:
        arr = np.load(npy, mmap_mode="r")
    except Exception as exc:  # a corrupt or truncated file
        return False, f"{npy.name} unreadable ({exc.__class__.__name__})"
    n_rows = len(read_csv(csv))
    expected = (n_rows, *record["shape"])
    if tuple(arr.shape) != tuple(expected):
        return False, f"{npy.name} has shape {tuple(arr.shape)} but {csv.name} and params say {tuple(expected)}"
    if arr.dtype != np.dtype(record["dtype"]):
        return False, f"{npy.name} is {arr.dtype}, expected {record['dtype']}"
    if entry.get("n_segments") != n_rows:
        return False, f"params.json records {entry.get('n_segments')} segments, {csv.name} has {n_rows}"
    if entry.get("checksum") is not None:
        try:
            verify_condition(folder, record, condition)
        except LancetError:
            return False, f"{npy.name} does not match its checksum (changed after extraction)"
    if entry.get("index_checksum") not in (None, file_checksum(csv)):
        return False, f"{csv.name} does not match its checksum (changed after extraction)"
    return True, ""
