"""The extraction driver: combined manifest -> feature store, in parallel, resumable.

For every condition of the manifest (``clean``, ``white_0dB``, ...) the utterances are read
(``lancet.core.audio.load_audio``), cut into segments (``lancet.features.segment``), turned into features
(``lancet.features.compute``) and streamed, in manifest order, into ``<condition>.npy`` under a
temporary name that is renamed only when the condition is complete; ``<condition>.csv`` (the index)
follows, then the condition is recorded in ``params.json``. A rerun skips every condition whose files
agree with params.json, the parameters and the manifest rows, and recomputes the others.

CPU path: a process pool over files (:mod:`lancet.core.workers`; one BLAS/OpenMP thread per worker), each
worker computing all segments of an utterance in one batched call. GPU path: the pool only decodes
and segments the audio; the main process sends batches of ``batch_size`` segments from many
utterances to the device (:class:`~lancet.features.compute.TorchFeatures`, float64 FFT/Mel/log: within
1e-5 of librosa) and writes batch k while batch k + 1 computes. A kind computed from whole utterances in
the main process (the self-supervised statistics, :mod:`lancet.features.extract_ssl`) plugs in its own
:class:`ConditionStream` through ``streams``; everything else (resuming, checksums, params.json) is shared.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from tqdm import tqdm

from lancet.core.atomic import atomic_path, read_csv, remove_stale_temporaries, save_csv
from lancet.core.audio import AudioError, load_audio
from lancet.core.classes import ordered_classes
from lancet.core.errors import LancetError
from lancet.core.locking import output_lock
from lancet.core.manifest import refuse_duplicates
from lancet.core.paths import check_outside, is_safe_component
from lancet.core.checks import check_number
from lancet.core.workers import WorkerPool, available_cpus
from lancet.corpora.standard_names import standardised_folders
from lancet.features.compute import TorchFeatures, compute_features
from lancet.features.params import (
    DEFAULT_KIND, FeatureParams, SegmentParams, feature_shape, make_params, params_record, validate_segmenting,
)
from lancet.features.segment import segment_audio, segment_starts, valid_frames
from lancet.features.store import (
    INDEX_COLUMNS, NpyStreamWriter, changed_settings, condition_file, condition_state, file_checksum, load_params,
    save_params,
)

GPU_BATCH_SEGMENTS = 1024  # segments per device batch: large enough to fill a GPU, two pinned buffers of 131 MB
WORKER_PRELOAD = ("numpy", "scipy.fft", "soundfile", "soxr", "librosa", "librosa.filters", "lancet.features.extract")
MANIFEST_COLUMNS = ("id", "condition", "path", "session", "speaker", "gender", "improvised", "class")
DTYPES = ("float32", "float16")


# ---------------------------------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------------------------------
def read_combined_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of the combined manifest (PIPELINE.md step 3), checked; relative paths resolved.

    Raises LancetError (one line, naming the file) when it is missing, empty, lacks required columns,
    or when none of its audio paths exists.
    """
    path = Path(path)
    if not path.is_file():
        raise LancetError(f"{path}: manifest not found (run datasets/handleIEMOCAP.py first)")
    try:
        rows = read_csv(path)
    except (UnicodeDecodeError, OSError) as exc:
        raise LancetError(f"{path}: unreadable manifest ({exc.__class__.__name__})") from None
    with open(path, newline="") as fh:
        header = fh.readline().strip().split(",")
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise LancetError(f"{path}: manifest lacks column(s) {', '.join(missing)} (needs {', '.join(MANIFEST_COLUMNS)})")
    if not rows:
        raise LancetError(f"{path}: manifest has no rows")
    base = path.resolve().parent
    for line_no, row in enumerate(rows, start=2):
        p = Path(row["path"])
        row["path"] = str(p if p.is_absolute() else base / p)
        if not row["condition"]:
            raise LancetError(f"{path}: row with id {row['id']!r} has an empty condition")
        if not is_safe_component(row["condition"]):  # it names <out>/<condition>.npy: no "../" (hand-edited rows)
            raise LancetError(f"{path}:{line_no}: unsafe condition {row['condition'][:80]!r} "
                              f"(one file name: no path separators, '..' or leading dot)")
    refuse_duplicates(path, rows, lambda r: (r["id"], r["condition"]), "utterance {} under condition {}")
    if not any(os.path.exists(r["path"]) for r in rows):
        raise LancetError(
            f"{path}: none of its {len(rows)} audio paths exists (e.g. {rows[0]['path']}); wrong manifest or moved data?"
        )
    return rows


def group_by_condition(rows: Iterable[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(row["condition"], []).append(row)
    return groups


def rows_fingerprint(rows: Sequence[dict[str, str]]) -> str:
    """A hash of the rows that decide a condition's content (ids, paths, metadata), in order."""
    h = hashlib.sha1()
    for r in rows:
        h.update("\t".join(r.get(c, "") for c in MANIFEST_COLUMNS).encode())
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init_worker(params: FeatureParams, seg: SegmentParams, dtype: str, mode: str, limit_threads: bool) -> None:
    """``mode``: 'features' (compute them here), 'audio' (decode and segment for the GPU) or 'utterance'
    (decode the whole utterance for a model that takes it whole)."""
    if limit_threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["NUMBA_NUM_THREADS"] = "1"
        try:
            from threadpoolctl import threadpool_limits

            _STATE["limits"] = threadpool_limits(limits=1)
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn/librosa
            pass
    _STATE.update(params=params, seg=seg, dtype=dtype, mode=mode)


def skip_reason(message: str, path: str = "") -> str:
    """A short category for an AudioError message about ``path`` (for the summary counts)."""
    prefix = f"{Path(path)}: "
    m = (message[len(prefix):] if path and message.startswith(prefix) else message).lower()
    m = m.split("(", 1)[0]  # the detail in brackets may quote the path again
    if "not found" in m:
        return "missing"
    if m.startswith("empty"):
        return "empty"
    if m.startswith("implausible"):  # a damaged header, a sample far beyond full scale
        return "implausible"
    if "nan" in m or "infinite" in m:
        return "non-finite"
    return "unreadable"


def _work(path: str) -> tuple:
    """Read, segment and (in 'features' mode) compute one utterance.

    Returns ("ok", array, starts, real_samples), ("short",) or ("skip", reason, message). The array
    is the features ('features' mode) or, for the GPU path ('audio' mode), the decoded audio itself:
    half the bytes of its overlapping segments through the pipe; the caller cuts them. In 'utterance'
    mode it is the whole audio as one unit, "short" below the parameters' ``min_samples``.
    """
    params, seg = _STATE["params"], _STATE["seg"]
    try:
        audio = load_audio(path, sr=seg.sample_rate)
    except AudioError as exc:
        return ("skip", skip_reason(str(exc), path), str(exc))
    if _STATE["mode"] == "utterance":
        if len(audio) < params.min_samples:
            return ("short",)
        return ("ok", np.ascontiguousarray(audio, dtype=np.float32), [0], [len(audio)])
    if _STATE["mode"] == "audio":
        starts = segment_starts(len(audio), seg)
        if not starts:
            return ("short",)
        length = seg.segment_samples
        return ("ok", np.ascontiguousarray(audio, dtype=np.float32), starts,
                [min(length, len(audio) - s) for s in starts])
    segments, starts, real = segment_audio(audio, seg)
    if not starts:
        return ("short",)
    if _STATE["mode"] == "features":
        out = compute_features(segments, params, seg.sample_rate).astype(_STATE["dtype"], copy=False)
    else:
        out = segments
    return ("ok", out, starts, real)


# ---------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------
@dataclass
class ConditionResult:
    condition: str
    status: str  # "computed" or "complete" (already there, skipped)
    n_utterances: int
    n_segments: int
    skipped: dict[str, int] = field(default_factory=dict)
    short_dropped: int = 0
    seconds: float = 0.0


@dataclass
class ExtractSummary:
    out: Path
    kind: str
    shape: tuple[int, int]
    device: str
    conditions: list[ConditionResult] = field(default_factory=list)

    @property
    def skipped(self) -> dict[str, int]:
        total: Counter = Counter()
        for c in self.conditions:
            total.update(c.skipped)
        return dict(total)

    @property
    def n_segments(self) -> int:
        return sum(c.n_segments for c in self.conditions)


def _settings(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a params record that decides the numbers (JSON-normalised for comparison)."""
    keep = {k: v for k, v in record.items()
            if k not in ("conditions", "manifest", "device", "created", "class_names")}
    return json.loads(json.dumps(keep))


def extract_features(manifest: str | os.PathLike, out: str | os.PathLike, *args: Any, wait: bool = False,
                     **kwargs: Any) -> ExtractSummary:
    """Extract ``kind`` features for every (or the chosen) condition of ``manifest`` into ``out``.

    Arguments as :func:`_extract_features_locked`. ``out`` is locked for the run
    (:func:`lancet.core.locking.output_lock`; ``wait``: wait for another run instead of stopping), and
    temporary arrays of killed runs (``.<condition>.tmp<pid>.npy``) are removed first.
    """
    log = kwargs.get("log", print)
    _check_out_outside(manifest, out)
    with output_lock(out, wait=wait, log=log):
        removed = remove_stale_temporaries(out, recursive=False)
        if removed:
            log(f"removed {removed} temporary file(s) left by an interrupted run")
        return _extract_features_locked(manifest, out, *args, **kwargs)


def _check_out_outside(manifest: str | os.PathLike, out: str | os.PathLike) -> None:
    """``out`` never inside the standardised tree the manifest names (checked before the lock makes the folder).
    A manifest that cannot be read is left to the run, which reports it after the settings."""
    try:
        rows = read_combined_manifest(manifest)
    except LancetError:
        return
    check_outside(out, "--out", standardised_folders(rows))


def _extract_features_locked(
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    kind: str = DEFAULT_KIND,
    params: FeatureParams | None = None,
    seg: SegmentParams | None = None,
    dtype: str = "float32",
    workers: int | None = None,
    device: str = "cpu",
    conditions: Sequence[str] | None = None,
    overwrite: bool = False,
    batch_size: int = GPU_BATCH_SEGMENTS,
    progress: bool = True,
    log: Callable[[str], None] = print,
    streams: "StreamFactory | None" = None,
) -> ExtractSummary:
    """Extract ``kind`` features for every (or the chosen) condition of ``manifest`` into ``out``.

    ``streams``: a kind computed from whole utterances in this process (:class:`StreamFactory`); the
    workers then only decode, and ``device`` is the factory's."""
    params = params if params is not None else make_params(kind)
    kind = params.kind
    seg = seg if seg is not None else SegmentParams()
    workers = _checked_workers(seg, dtype, workers, batch_size)
    manifest = Path(manifest)
    out = Path(out)
    rows = read_combined_manifest(manifest)
    groups = _chosen_conditions(manifest, rows, conditions)
    dev = _device_name(device) if streams is None else streams.device
    record = _start_record(out, manifest, rows, params, seg, dtype, overwrite)
    run = _Run(out, params, seg, dtype, record, workers, dev, batch_size, progress, streams)

    shape = feature_shape(params, seg)
    summary = ExtractSummary(out=out, kind=kind, shape=shape, device=dev)
    unit = (f"per {seg.segment_s:g} s segment (hop {seg.hop_s:g} s" if streams is None
            else "per utterance (whole")
    log(f"{kind} features -> {out}: {shape[0]} x {shape[1]} {unit}, {dtype}, device {dev}, {workers} worker(s))")
    log(f"parameters: {json.dumps(record['params'])}")
    todo = _conditions_to_compute(run, groups, overwrite, summary, log)
    if todo:
        _compute_conditions(run, todo, summary, log)

    order = {c: i for i, c in enumerate(groups)}
    summary.conditions.sort(key=lambda r: order[r.condition])
    totals = summary.skipped
    n_done = sum(c.status == "computed" for c in summary.conditions)
    log(f"done: {n_done} condition(s) computed, {len(summary.conditions) - n_done} already complete; "
        f"{summary.n_segments} segments in {out}; skipped utterances: "
        + (", ".join(f"{v} {k}" for k, v in sorted(totals.items())) if totals else "none"))
    return summary


@dataclass(frozen=True)
class _Run:
    """What every condition of one extraction run shares."""

    out: Path
    params: FeatureParams
    seg: SegmentParams
    dtype: str
    record: dict[str, Any]  # params.json as it is being written: each finished condition is added
    workers: int
    device: str  # 'cpu' (numpy in the workers), 'torch-cpu' or a CUDA device (batched torch)
    batch_size: int
    progress: bool
    streams: "StreamFactory | None" = None  # whole utterances computed in this process (see StreamFactory)


class StreamFactory:
    """How a kind computed in the main process from whole utterances plugs into the driver: the workers decode
    each utterance whole (``mode`` 'utterance'), and :meth:`open` gives the :class:`ConditionStream` that turns
    them into rows of a condition's array. ``device``: where the computing runs (for the log and summary)."""

    mode = "utterance"
    device = "cpu"

    def open(self, writer: NpyStreamWriter, cond: str, sample_rate: int) -> "ConditionStream":  # pragma: no cover
        raise NotImplementedError


def _checked_workers(seg: SegmentParams, dtype: str, workers: int | None, batch_size: int) -> int:
    """Refuse settings that cannot work (one line each); the number of workers to start."""
    validate_segmenting(seg)
    if dtype not in DTYPES:
        raise LancetError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if workers is not None:
        check_number("--workers", workers, minimum=0, integer=True)
    check_number("--batch-size", batch_size, minimum=1, integer=True)
    return available_cpus() if not workers or workers < 1 else int(workers)


def _chosen_conditions(manifest: Path, rows: list[dict[str, str]],
                       conditions: Sequence[str] | None) -> dict[str, list[dict[str, str]]]:
    """The manifest's rows by condition, only the ``conditions`` asked for (all by default), in that order."""
    groups = group_by_condition(rows)
    if conditions:
        unknown = [c for c in conditions if c not in groups]
        if unknown:
            raise LancetError(f"{manifest}: no condition(s) {', '.join(unknown)} (has: {', '.join(groups)})")
        groups = {c: groups[c] for c in conditions}
    return groups


def _device_name(device: str) -> str:
    """Where features are computed: ``cpu`` (numpy in the workers) or the torch device the name resolves to."""
    # 'torch-cpu' (API only) runs the batched torch path on the CPU: the GPU code path, testable without CUDA
    if device in ("cpu", "torch-cpu"):
        return device
    # lancet.core.device imports torch, so it loads on the torch path only: the CPU workers import this
    # module and must not pay for torch
    from lancet.core.device import resolve_device

    return str(resolve_device(device))


def _start_record(out: Path, manifest: Path, rows: list[dict[str, str]], params: FeatureParams,
                  seg: SegmentParams, dtype: str, overwrite: bool) -> dict[str, Any]:
    """params.json for this run, saved before any work: the conditions of an earlier run with the same
    settings are kept; other settings are refused, or (``overwrite``) their files removed."""
    record = params_record(params, seg, dtype)
    existing = load_params(out)
    kept: dict[str, Any] = {}
    if existing is not None:
        if _settings(existing) != _settings(record):
            if not overwrite:
                changed = changed_settings(_settings(existing), _settings(record))
                raise LancetError(
                    f"{out / 'params.json'}: features there were extracted with other settings "
                    f"(differs: {', '.join(changed)}); use another --out or --overwrite"
                )
            for c in existing.get("conditions", {}):
                for ext in (".npy", ".csv"):
                    (out / f"{c}{ext}").unlink(missing_ok=True)
        else:
            kept = dict(existing.get("conditions", {}))
    record.update(manifest=str(manifest), conditions=kept)
    # the class list travels with the features: the trainer and reports take it from here (any corpus, any number)
    record["class_names"] = list(ordered_classes(r["class"] for r in rows))
    out.mkdir(parents=True, exist_ok=True)
    save_params(out, record)
    return record


def _conditions_to_compute(run: _Run, groups: dict[str, list[dict[str, str]]], overwrite: bool,
                           summary: ExtractSummary,
                           log: Callable[[str], None]) -> list[tuple[str, list[dict[str, str]], str]]:
    """(condition, rows, fingerprint) of every condition not complete yet; complete ones go to ``summary``."""
    out, record = run.out, run.record
    todo = []
    for cond, crows in groups.items():
        fp = rows_fingerprint(crows)
        done, why = condition_state(out, cond, record, fp)
        if done and not overwrite:
            entry = record["conditions"][cond]
            if entry.get("checksum") is None or entry.get("index_checksum") is None:  # an older store: record once
                entry["checksum"] = entry.get("checksum") or file_checksum(condition_file(out, cond, ".npy"))
                entry["index_checksum"] = file_checksum(condition_file(out, cond, ".csv"))
                save_params(out, record)
            log(f"{cond}: already complete ({entry['n_segments']} segments), skipped")
            summary.conditions.append(ConditionResult(cond, "complete", entry["n_utterances"], entry["n_segments"],
                                                      dict(entry.get("skipped_counts", {})), entry.get("short_dropped", 0)))
        else:
            if why and why != "not extracted yet":
                log(f"{cond}: recomputing ({why})")
            todo.append((cond, crows, fp))
    return todo


def _compute_conditions(run: _Run, todo: list[tuple[str, list[dict[str, str]], str]], summary: ExtractSummary,
                        log: Callable[[str], None]) -> None:
    """Extract every condition of ``todo`` on one worker pool (and, off the CPU, one torch device)."""
    params, seg, dev = run.params, run.seg, run.device
    _warm_up(params, seg, features=run.streams is None)  # the caller's own caches (and, with one worker, the only ones)
    mode = run.streams.mode if run.streams is not None else "features" if dev == "cpu" else "audio"
    gpu = None
    # one pool for every condition (lancet.core.workers: forkserver, never fork); the fork server imports
    # librosa and friends once, so each worker starts warm
    with WorkerPool(run.workers, _init_worker, (params, seg, run.dtype, mode, run.workers > 1),
                    preload=WORKER_PRELOAD) as pool:
        if dev != "cpu" and run.streams is None:
            gpu = TorchFeatures(params, seg.sample_rate, "cpu" if dev == "torch-cpu" else dev)
        for cond, crows, fp in todo:
            result = _extract_condition(run, cond, crows, fp, pool, gpu)
            summary.conditions.append(result)
            log(_describe(result))


def _warm_up(params: FeatureParams, seg: SegmentParams, features: bool = True) -> None:
    """Import librosa's lazily loaded parts, fill the filterbank caches and compile numba functions once
    (``features``: the kind's own computation too)."""
    import librosa

    if features:
        compute_features(np.zeros((1, seg.segment_samples), np.float32), params, seg.sample_rate)
    librosa.resample(np.zeros(2205, np.float32), orig_sr=22050, target_sr=seg.sample_rate, res_type="soxr_hq")


def _describe(r: ConditionResult) -> str:
    skipped = ", ".join(f"{v} {k}" for k, v in sorted(r.skipped.items()))
    extra = f"; skipped {skipped}" if skipped else ""
    if r.short_dropped:
        extra += f"; {r.short_dropped} shorter than a segment dropped"
    return f"{r.condition}: {r.n_utterances} utterances -> {r.n_segments} segments in {r.seconds:.1f} s{extra}"


class _DeviceBatches:
    """GPU path: cuts segments from the workers' audio straight into a batch buffer (pinned on CUDA)
    and keeps one batch computing on the device while the next one fills. Two buffers take turns; a
    buffer is refilled only after its batch's features are back, so an asynchronous copy never reads
    a half-overwritten buffer.

    Shapes: audio (n_samples,) -> rows of (batch_size, L) -> ``append((rows, F, T))`` in order.
    """

    def __init__(self, gpu: TorchFeatures, batch_size: int, length: int, dtype: str, append) -> None:
        import torch

        pin = gpu.device.type == "cuda"
        self.gpu, self.batch_size, self.dtype, self.append = gpu, batch_size, dtype, append
        self.bufs = [torch.empty((batch_size, length), dtype=torch.float32, pin_memory=pin) for _ in range(2)]
        self.views = [b.numpy() for b in self.bufs]
        self.cur, self.n, self.in_flight = 0, 0, None

    def add(self, audio: np.ndarray, starts: Sequence[int], real: Sequence[int]) -> None:
        for start, n_real in zip(starts, real):
            if self.n == self.batch_size:
                self._flush()
            row = self.views[self.cur][self.n]
            row[:n_real] = audio[start:start + n_real]
            row[n_real:] = 0.0  # a short utterance's padding
            self.n += 1

    def _flush(self) -> None:
        queued = self.gpu.submit(self.bufs[self.cur][: self.n], self.dtype) if self.n else None
        if self.in_flight is not None:
            self.append(self.in_flight.result())  # also frees the other buffer
        self.in_flight, self.n, self.cur = queued, 0, 1 - self.cur

    def finish(self) -> None:
        self._flush()
        if self.in_flight is not None:
            self.append(self.in_flight.result())
            self.in_flight = None


def _extract_condition(run: _Run, cond: str, crows: list[dict[str, str]], fingerprint: str, pool: WorkerPool,
                       gpu: TorchFeatures | None) -> ConditionResult:
    """One condition: its array (renamed into place only when complete), its index, its params.json entry."""
    out, params, seg, dtype, record = run.out, run.params, run.seg, run.dtype, run.record
    t0 = time.perf_counter()
    # forget the old entry first: a crash below must never leave a stale "complete" record
    if record["conditions"].pop(cond, None) is not None:
        save_params(out, record)
    paths = [r["path"] for r in crows]
    results = pool.imap(_work, paths, chunksize=max(1, min(16, len(paths) // (run.workers * 8))), progress=False,
                        describe=str)
    with atomic_path(condition_file(out, cond, ".npy"), ".npy") as tmp:
        writer = NpyStreamWriter(tmp, feature_shape(params, seg), dtype)
        try:
            stream = (_ConditionStream(writer, cond, params, seg, dtype, gpu, run.batch_size) if run.streams is None
                      else run.streams.open(writer, cond, seg.sample_rate))
            bar = tqdm(total=len(paths), desc=f"{params.kind} {cond}", unit="utt", disable=not run.progress,
                       leave=False)
            for row, res in zip(crows, results):
                bar.update(1)
                stream.take(row, res)
            stream.flush()
            bar.close()
            checksum = stream.close()
        except BaseException:
            writer.abort()
            raise
    save_csv(condition_file(out, cond, ".csv"), stream.index, INDEX_COLUMNS)
    n_segments, short = len(stream.index), stream.short
    result = ConditionResult(cond, "computed", len(crows), n_segments, dict(stream.skipped), short,
                             time.perf_counter() - t0)
    record["conditions"][cond] = {
        "n_utterances": len(crows), "n_segments": n_segments, "fingerprint": fingerprint,
        "skipped_counts": dict(stream.skipped), "short_dropped": short, "skipped": stream.skipped_list,
        "checksum": checksum, "index_checksum": file_checksum(condition_file(out, cond, ".csv")),
    }
    save_params(out, record)
    return result


class ConditionStream:
    """The workers' results for one condition, in manifest order, into its ``.npy`` and its index rows;
    skipped and too-short utterances are counted. Subclasses say what an utterance's result becomes
    (:meth:`add`) and write what they hold back at the end (:meth:`flush`)."""

    def __init__(self, writer: NpyStreamWriter, cond: str, sample_rate: int) -> None:
        self.writer, self.cond, self.sr = writer, cond, sample_rate
        self.index: list[dict[str, Any]] = []
        self.skipped: Counter = Counter()
        self.skipped_list: list[dict[str, str]] = []
        self.short = 0

    def take(self, row: dict[str, str], res: tuple) -> None:
        """One utterance's :func:`_work` result."""
        if res[0] == "skip":
            self.skipped[res[1]] += 1
            if len(self.skipped_list) < 1000:
                self.skipped_list.append({"id": row["id"], "reason": res[2]})
            return
        if res[0] == "short":
            self.short += 1
            return
        _, arr, starts, real = res
        self.add(row, arr, starts, real)

    def add(self, row: dict[str, str], arr: np.ndarray, starts: Sequence[int], real: Sequence[int]) -> None:
        raise NotImplementedError  # pragma: no cover

    def index_row(self, row: dict[str, str], start: int, valid: int) -> None:
        """The index entry of the next row written (the same columns for every kind)."""
        self.index.append({
            "row": len(self.index), "id": row["id"], "condition": self.cond, "session": row["session"],
            "speaker": row["speaker"], "gender": row["gender"], "improvised": row["improvised"],
            "label": row.get("label", ""), "class": row["class"], "start_s": round(start / self.sr, 6),
            "valid_frames": int(valid),
        })

    def flush(self) -> None:
        """Write the rows still held back (on their way through a device)."""

    def close(self) -> str:
        """Fix the array's header once every segment is written; the checksum of the complete file."""
        if self.writer.count != len(self.index):  # pragma: no cover - internal consistency
            raise RuntimeError(f"{self.cond}: wrote {self.writer.count} segments but indexed {len(self.index)}")
        self.writer.close()
        return file_checksum(self.writer.path)  # read back once (from the page cache), recorded with the data


class _ConditionStream(ConditionStream):
    """Segments of the spectral kinds: computed by the workers, or cut here into device batches (torch path)."""

    def __init__(self, writer: NpyStreamWriter, cond: str, params: FeatureParams, seg: SegmentParams, dtype: str,
                 gpu: TorchFeatures | None, batch_size: int) -> None:
        super().__init__(writer, cond, seg.sample_rate)
        self.params = params
        self.n_frames = writer.frame_shape[1]
        self.batches = None if gpu is None else _DeviceBatches(gpu, batch_size, seg.segment_samples, dtype, writer.append)

    def add(self, row: dict[str, str], arr: np.ndarray, starts: Sequence[int], real: Sequence[int]) -> None:
        if self.batches is None:
            self.writer.append(arr)
        else:
            self.batches.add(arr, starts, real)
        for start, n_real in zip(starts, real):
            self.index_row(row, start, valid_frames(self.params, n_real, self.n_frames))

    def flush(self) -> None:
        if self.batches is not None:
            self.batches.finish()
