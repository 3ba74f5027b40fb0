"""The augmentation driver: every corpus utterance under every noise type x SNR and every reverberant room.

Output (docs/PIPELINE.md, step 2)::

    <out>/<noise>/<snr>/SessionN/sentences/wav/<dialog>/<id>.wav
    <out>/reverberation/<room>/SessionN/sentences/wav/<dialog>/<id>.wav
    <out>/<condition dir>/SessionN/dialog/EmoEvaluation/*.txt      label files, copied
    <out>/<noise>/<snr>/<relative path>.wav                       any other corpus (EmoDB: wav/03a01Fa.wav)
    <out>/augmented_manifest.csv                                  one row per written file
    <out>/augment_config.json                                     what produced the tree

SNR: speech power / noise power over the whole utterance (silence included), in dB; see
:mod:`lancet.noise.mixing`. Randomness (noise file, offset, babble talkers, RIR) comes from a generator
seeded by (seed, utterance id, noise type or room), so results do not depend on worker order or count, and
one utterance gets the same noise segment at every SNR (only the level changes along the SNR ladder).
Each task is made by :mod:`lancet.noise.augment_worker`, in worker processes.

Resumable: every wav is written under a temporary name and renamed; finished files are recorded in a
journal (``<out>/.augment_journal.jsonl``) as they complete; a rerun skips files that exist, removes
temporary leftovers of a killed run, and rebuilds the manifest from the journal, the previous manifest, or
(for a file written just before a kill) by measuring the file again.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from lancet.core.atomic import atomic_path, read_csv, remove_stale_temporaries, save_csv, save_json
from lancet.core.audio import SAMPLE_RATE, load_audio
from lancet.core.checks import check_number, check_snrs
from lancet.core.conditions import REVERB, condition_name, snr_name
from lancet.core.errors import LancetError, printable
from lancet.core.locking import output_lock
from lancet.core.manifest import Utterance
from lancet.core.paths import check_outside, inside
from lancet.core.workers import available_cpus, imap
from lancet.corpora.layout import (
    AUGMENT_CONFIG, AUGMENTED_MANIFEST, corpus_folders, corpus_root, output_path, release_layout,
)
from lancet.noise import babble as babble_mod
from lancet.noise import reverb as reverb_mod
from lancet.noise.augment_worker import Task, init_inline, init_worker, run_task
from lancet.noise.mixing import CROSSFADE_S
from lancet.noise.sources import NOISE_TYPES, SHARED_NOISE_DIR, NoiseSource, resolve_sources

DEFAULT_SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
JOURNAL_NAME = ".augment_journal.jsonl"
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
SNR_TOLERANCE_DB = 0.1
MANIFEST_COLUMNS = ["id", "condition", "noise_type", "snr_db", "snr_measured_db", "noise_file", "noise_offset_s",
                    "gain", "level_db", "path", "session", "speaker", "gender", "improvised", "label", "class",
                    "duration_s", "sample_rate"]
# Settings whose change would make existing outputs inconsistent with new ones.
_FIXED_SETTINGS = ("seed", "babble_speakers", "babble_pool", "subtype", "crossfade_s")


@dataclass
class AugmentConfig:
    """Everything :func:`augment` needs; the script's flags map one to one onto these fields."""

    out: Path
    snrs: Sequence[float] = DEFAULT_SNRS
    noise_types: Sequence[str] = field(default_factory=lambda: tuple(NOISE_TYPES))  # every registered type, now
    noise_dir: Path | None = None
    shared_noise_dir: Path | None = SHARED_NOISE_DIR
    babble_speakers: int = babble_mod.DEFAULT_TALKERS
    babble_pool: str = "session"  # session: talkers from the target's own session only (no fold leaks); corpus
    reverb: bool = True
    rir_dir: Path | None = None
    rooms: Sequence[str] = reverb_mod.DEFAULT_ROOMS
    rirs_per_room: int = reverb_mod.RIRS_PER_ROOM
    iemocap_dir: Path | None = None
    seed: int = 0
    workers: int = field(default_factory=available_cpus)
    subtype: str = "PCM_16"
    crossfade_s: float = CROSSFADE_S
    progress: bool = True
    wait: bool = False  # another run holds --out: wait for it instead of stopping


@dataclass
class AugmentSummary:
    """What a run did: files written now, found done, skipped (by reason), and off-target SNRs."""

    written: int = 0
    existing: int = 0
    skipped: Counter = field(default_factory=Counter)
    skip_examples: list[str] = field(default_factory=list)
    off_target: int = 0
    label_files: int = 0
    manifest: Path | None = None
    rows: int = 0


# ----------------------------------------------------------------------------------------------------------
# Main side

def _load_previous(out: Path) -> dict[str, dict]:
    """Rows already known for files that still exist: previous manifest first, then the journal (newer)."""
    rows: dict[str, dict] = {}
    manifest = out / AUGMENTED_MANIFEST
    if manifest.is_file():
        for row in read_csv(manifest):
            rows[row["path"]] = row
    journal = out / JOURNAL_NAME
    if journal.is_file():
        with open(journal) as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                if isinstance(row, dict) and "path" in row:
                    rows[row["path"]] = row
    return {p: r for p, r in rows.items() if Path(p).is_file()}


def _check_config(out: Path, settings: dict) -> None:
    path = out / AUGMENT_CONFIG
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
        for key in _FIXED_SETTINGS:
            if key in old and old[key] != settings[key]:
                raise LancetError(f"{path}: {out} was made with {key}={old[key]!r}, not {settings[key]!r}; "
                                  f"use another --out or delete it")
        for group in ("sources", "rooms"):
            for name, value in settings[group].items():
                if name in old.get(group, {}) and old[group][name] != value:
                    raise LancetError(f"{path}: {out} was made with {group[:-1]} {name} = {old[group][name]!r}, "
                                      f"now {value!r}; use another --out or delete it")
        for group in ("sources", "rooms"):
            settings[group] = {**old.get(group, {}), **settings[group]}
        settings["snrs"] = sorted(set(old.get("snrs", [])) | set(settings["snrs"]))
    save_json(path, settings, allow_nan=False)


def find_iemocap_dir(utterances: Sequence[Utterance]) -> Path | None:
    """The release folder the manifest's paths point into (``<root>/SessionN/sentences/wav/<dialog>/<id>.wav``)."""
    p = Path(utterances[0].path)
    if len(p.parents) >= 5 and p.parents[1].name == "wav" and p.parents[3].name.startswith("Session"):
        root = p.parents[4]
        if any(root.glob("Session*/dialog/EmoEvaluation")):
            return root
    return None


def copy_label_files(iemocap_dir: Path, condition_dirs: Iterable[Path]) -> int:
    """Copy ``Session*/dialog/EmoEvaluation/*.txt`` into every condition folder; unchanged copies are kept."""
    sources = sorted(p for p in iemocap_dir.glob("Session*/dialog/EmoEvaluation/*.txt") if not p.name.startswith("._"))
    n = 0
    for cdir in condition_dirs:
        for src in sources:
            dst = inside(cdir, cdir / src.relative_to(iemocap_dir))
            if dst.is_file() and dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
                continue
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
            n += 1
    return n


def _print(msg: str) -> None:
    print(printable(msg), flush=True)  # a noise or corpus file name with a newline must not split a line


def validate_config(config: AugmentConfig) -> None:
    """One-line errors for settings that cannot work, before anything is written (NaN SNRs once wrote -32768)."""
    check_snrs(config.snrs)
    check_number("--babble-speakers", config.babble_speakers, minimum=1, integer=True)
    check_number("--rirs-per-room", config.rirs_per_room, minimum=1, integer=True)
    check_number("--workers", config.workers, minimum=1, integer=True)
    check_number("--seed", config.seed, minimum=0, integer=True)
    check_number("crossfade_s", config.crossfade_s, minimum=0.0, maximum=1.0)


def input_folders(utterances: Sequence[Utterance], config: AugmentConfig) -> list[tuple[str, Path | None]]:
    """What augmentation reads: the corpus (release folder and audio), the noise and RIR recordings. Its
    output inside any of them would write into a corpus (and noise written among the noise would be read
    back as noise by the next run)."""
    return [("the original corpus folder", config.iemocap_dir), *corpus_folders(u.path for u in utterances),
            ("the noise folder", config.noise_dir), ("the RIR folder", config.rir_dir),
            ("the shared noise folder", config.shared_noise_dir)]


def augment(utterances: Sequence[Utterance], config: AugmentConfig, log=_print) -> AugmentSummary:
    """Write the augmented tree and manifest for ``utterances`` (see the module docstring); resumable.

    The output folder is locked for the whole run (:func:`lancet.core.locking.output_lock`): the manifest is
    read, merged and written by one run at a time, and a second run stops (or waits with ``wait``).
    """
    validate_config(config)
    check_outside(config.out, "--out", input_folders(utterances, config))  # before the lock makes the folder
    with output_lock(Path(config.out).resolve(), wait=config.wait, log=log):
        return _augment_locked(utterances, config, log)


def _augment_locked(utterances: Sequence[Utterance], config: AugmentConfig, log=_print) -> AugmentSummary:
    """The run, in order: checks, sources and rooms, the settings record, the task plan, the tasks (with the
    journal), the manifest, the label files and the report."""
    _check_run(utterances, config)
    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    snrs = [float(s) for s in config.snrs]
    sources = _resolve_sources(config, log)
    rooms = _rooms(config, log)
    _record_settings(out, config, snrs, sources, rooms, log)
    by_speaker = _speakers(utterances)
    _check_babble(utterances, sources, by_speaker, config)
    plan = _Plan.make(utterances, config.noise_types, snrs, rooms, out)
    known = _load_previous(out)
    pending = [t for t in plan.tasks if not all(str(p) in known for p in plan.expected[t])]
    summary = AugmentSummary(existing=plan.outputs(plan.tasks) - plan.outputs(pending))
    if summary.existing:
        log(f"resuming: {summary.existing} file(s) already done, {len(pending)} task(s) to run")
    # each worker's read-only state (lancet.noise.augment_worker)
    state = {"utterances": list(utterances), "out": out, "subtype": config.subtype, "seed": config.seed,
             "corpus_root": plan.root, "snrs": snrs, "sources": sources, "rooms": rooms, "by_speaker": by_speaker,
             "babble_pool": config.babble_pool, "group_of": {u.speaker: str(u.session) for u in utterances},
             "babble_speakers": config.babble_speakers, "crossfade_s": config.crossfade_s}
    _run_with_journal(pending, state, config, out / JOURNAL_NAME, known, summary)
    _write_manifest(out, known, plan, _condition_order(config.noise_types, snrs, rooms), summary)
    _copy_labels(utterances, config, [out / nt / snr_name(s) for nt in config.noise_types for s in snrs] +
                 [out / REVERB / name for name in rooms], summary, log)
    _report(summary, log)
    return summary


def _check_run(utterances: Sequence[Utterance], config: AugmentConfig) -> None:
    """Settings and inputs that cannot work, before anything is written."""
    if not utterances:
        raise LancetError("no utterances to augment")
    if config.subtype not in SUBTYPES:
        raise LancetError(f"unknown wav subtype {config.subtype!r} (choose {', '.join(SUBTYPES)})")
    if config.babble_speakers < 1:
        raise LancetError(f"--babble-speakers must be at least 1, got {config.babble_speakers}")
    for nt in config.noise_types:
        if nt not in NOISE_TYPES:
            raise LancetError(f"unknown noise type {nt!r} (choose from {', '.join(NOISE_TYPES)})")
    if config.noise_dir is not None and not Path(config.noise_dir).is_dir():
        raise LancetError(f"{config.noise_dir}: noise folder not found")
    if not any(Path(u.path).is_file() for u in utterances):  # else every task is skipped, and exit 0
        raise LancetError(f"none of the manifest's {len(utterances)} audio files exists (e.g. "
                          f"{printable(utterances[0].path)}); moved or deleted? run the corpus's prepare script again")
    ids = [u.id for u in utterances]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise LancetError(f"utterance id {dup} appears twice in the manifest")


def _resolve_sources(config: AugmentConfig, log) -> dict[str, NoiseSource]:
    """Every noise type's source, each said in one line."""
    sources = resolve_sources(config.noise_types, config.noise_dir, config.shared_noise_dir, log=log, silent_ok=True)
    for nt, src in sources.items():
        log(f"{nt}: {src.description}")
    return sources


def _rooms(config: AugmentConfig, log) -> dict[str, reverb_mod.Room]:
    """The reverberant rooms by name: RIRs of ``--rir-dir``, or simulated large rooms; none without reverb."""
    if not config.reverb:
        return {}
    if config.rir_dir is not None:
        if not Path(config.rir_dir).is_dir():
            raise LancetError(f"{config.rir_dir}: RIR folder not found")
        found = reverb_mod.rooms_from_dir(config.rir_dir, lambda p: load_audio(p, SAMPLE_RATE))
        if not found:
            raise LancetError(f"{config.rir_dir}: no RIR wav/flac files inside")
    else:
        log(f"reverberation: no --rir-dir given; simulating large rooms {', '.join(config.rooms)} "
            f"with pyroomacoustics (seed {config.seed}, {config.rirs_per_room} "
            f"RIR{'s' if config.rirs_per_room != 1 else ''} each)")
        try:
            found = reverb_mod.simulated_rooms(config.rooms, config.seed, config.rirs_per_room, SAMPLE_RATE)
        except ValueError as exc:
            raise LancetError(str(exc)) from None
    for r in found:
        log(f"reverberation {r.name}: {len(r.rirs)} RIR{'s' if len(r.rirs) != 1 else ''}")
    return {r.name: r for r in found}


def _record_settings(out: Path, config: AugmentConfig, snrs: list[float], sources: dict[str, NoiseSource],
                     rooms: dict[str, reverb_mod.Room], log) -> None:
    """Check the settings against those ``out`` was made with and save them; clear a killed run's leftovers."""
    settings = {"seed": config.seed, "babble_speakers": config.babble_speakers, "babble_pool": config.babble_pool,
                "subtype": config.subtype,
                "crossfade_s": config.crossfade_s, "snrs": snrs,
                "sources": {nt: s.description for nt, s in sources.items()},
                "rooms": {name: r.rir_names for name, r in rooms.items()},
                "snr_definition": "speech power / noise power over the whole utterance, dB"}
    _check_config(out, settings)
    leftovers = remove_stale_temporaries(out)  # only those of processes that are gone
    if leftovers:
        log(f"removed {leftovers} temporary file(s) left by an interrupted run")


def _speakers(utterances: Sequence[Utterance]) -> dict[str, list[int]]:
    """Speaker -> indices of their utterances (the talkers babble is made of)."""
    by_speaker: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        by_speaker.setdefault(u.speaker, []).append(i)
    return by_speaker


def _check_babble(utterances: Sequence[Utterance], sources: dict[str, NoiseSource],
                  by_speaker: dict[str, list[int]], config: AugmentConfig) -> None:
    """Babble from the corpus needs other speakers: of the target's own session with ``--babble-pool session``."""
    if config.babble_pool not in babble_mod.BABBLE_POOLS:
        raise LancetError(f"--babble-pool {config.babble_pool!r}: choose one of {', '.join(babble_mod.BABBLE_POOLS)}")
    for nt in (nt for nt, src in sources.items() if src.kind == "corpus"):
        if config.babble_pool == "session":
            per_session: dict[str, set[str]] = {}
            for u in utterances:
                per_session.setdefault(str(u.session), set()).add(u.speaker)
            alone = sorted(s for s, spk in per_session.items() if len(spk) < 2)
            if alone:
                raise LancetError(f"{nt} from the corpus: session(s) {', '.join(alone)} hold one speaker only, and "
                                  f"session {nt} needs another speaker of the same session (regroup the speakers, "
                                  f"or --babble-pool corpus, which lets other folds' voices into training {nt})")
        if len(by_speaker) < 2:
            folders = " or ".join(f"{f}/" for f in NOISE_TYPES[nt].folders) or "recordings"
            raise LancetError(f"{nt} from the corpus needs at least two speakers; give --noise-dir with {folders}")


@dataclass
class _Plan:
    """Every task of the run and the files each one writes (output trees keyed by the path relative to
    the corpus root)."""

    tasks: list[Task]
    expected: dict[Task, list[Path]]
    root: Path

    @classmethod
    def make(cls, utterances: Sequence[Utterance], noise_types: Sequence[str], snrs: list[float],
             rooms: dict[str, reverb_mod.Room], out: Path) -> "_Plan":
        plan = cls([], {}, corpus_root(u.path for u in utterances))
        for i, u in enumerate(utterances):
            for nt in noise_types:
                plan._add(Task(i, nt, nt), [output_path(out, u, nt, snr_name(s), plan.root) for s in snrs])
            for name in rooms:
                plan._add(Task(i, REVERB, name), [output_path(out, u, REVERB, name, plan.root)])
        return plan

    def _add(self, task: Task, paths: list[Path]) -> None:
        self.tasks.append(task)
        self.expected[task] = paths

    def outputs(self, tasks: Iterable[Task]) -> int:
        """How many files ``tasks`` write."""
        return sum(len(self.expected[t]) for t in tasks)


def _run_with_journal(pending: list[Task], state: dict, config: AugmentConfig, journal_path: Path,
                      known: dict[str, dict], summary: AugmentSummary) -> None:
    """Run ``pending``, recording every finished file in the journal as it comes (so a killed run resumes)."""
    workers = max(1, min(int(config.workers), len(pending) or 1))
    prev_term = signal.signal(signal.SIGTERM, _raise_interrupt) if _is_main_thread() else None
    try:
        with open(journal_path, "a") as journal:
            for records in _run_all(pending, state, workers, config.progress):
                for rec in records:
                    _count(rec, known, summary, journal)
                journal.flush()
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:  # the journal's write() on a full disk names no file
            raise OSError(exc.errno, exc.strerror, str(journal_path)) from exc
        raise
    finally:
        if prev_term is not None:
            signal.signal(signal.SIGTERM, prev_term)


def _count(rec: dict, known: dict[str, dict], summary: AugmentSummary, journal) -> None:
    """One task record into the summary, and a written file's row into ``known`` and the journal."""
    if "skip" in rec:
        summary.skipped[rec["skip"]] += 1
        if len(summary.skip_examples) < 5:
            summary.skip_examples.append(rec["message"])
        return
    existed = rec.pop("existed", False)
    if existed:
        summary.existing += 1
    else:
        summary.written += 1
    known[rec["path"]] = rec
    journal.write(json.dumps(rec) + "\n")


def _condition_order(noise_types: Sequence[str], snrs: list[float],
                     rooms: dict[str, reverb_mod.Room]) -> dict[str, int]:
    """Manifest order of this run's conditions: noise types as asked, SNRs as asked, then the rooms."""
    order: dict[str, int] = {}
    for nt in noise_types:
        for s in snrs:
            order[condition_name(nt, snr_name(s))] = len(order)
    for name in rooms:
        order[condition_name(REVERB, name)] = len(order)
    return order


def _write_manifest(out: Path, known: dict[str, dict], plan: _Plan, order: dict[str, int],
                    summary: AugmentSummary) -> None:
    """The manifest: this run's rows, then rows of earlier runs' other conditions (e.g. more SNRs), sorted by
    condition (``order``) and id; the journal is then no longer needed."""
    wanted = {str(p) for paths in plan.expected.values() for p in paths}
    rows = [r for p, r in known.items() if p in wanted]
    rows += [r for p, r in known.items() if p not in wanted]
    rows.sort(key=lambda r: (order.get(r["condition"], len(order)), r["condition"], r["id"]))
    summary.off_target += sum(_off_target(r) for r in rows)
    summary.manifest = out / AUGMENTED_MANIFEST
    save_csv(summary.manifest, rows, MANIFEST_COLUMNS)
    summary.rows = len(rows)
    (out / JOURNAL_NAME).unlink(missing_ok=True)


def _off_target(row: dict) -> bool:
    """Whether a row's measured SNR is more than :data:`SNR_TOLERANCE_DB` off its target."""
    try:
        m = float(row.get("snr_measured_db") or "nan")
        return bool(np.isfinite(m) and abs(m - float(row["snr_db"])) > SNR_TOLERANCE_DB)
    except ValueError:
        return False


def _copy_labels(utterances: Sequence[Utterance], config: AugmentConfig, condition_dirs: list[Path],
                 summary: AugmentSummary, log) -> None:
    """IEMOCAP's label files into every condition folder, so the corpus reader reads each condition as a release."""
    iemocap_dir = Path(config.iemocap_dir) if config.iemocap_dir else find_iemocap_dir(utterances)
    if iemocap_dir is None:
        if release_layout(utterances[0].path):  # other corpora carry their labels in the manifest only
            log("note: label files not copied (give --iemocap-dir, the original release folder)")
    else:
        summary.label_files = copy_label_files(Path(iemocap_dir), condition_dirs)


def _report(summary: AugmentSummary, log) -> None:
    """Skips, off-target SNRs and what was written, in a few lines."""
    if summary.skipped:
        log(f"warning: skipped {sum(summary.skipped.values())} file(s): " +
            ", ".join(f"{n} {reason}" for reason, n in sorted(summary.skipped.items())))
        for msg in summary.skip_examples:
            log(f"  e.g. {msg}")
    if summary.off_target:
        log(f"warning: {summary.off_target} file(s) measure more than {SNR_TOLERANCE_DB} dB off their SNR "
            f"(very quiet speech and 16-bit rounding); --subtype FLOAT avoids it")
    log(f"wrote {summary.written} file(s), {summary.existing} already there; manifest {summary.manifest} "
        f"({summary.rows} rows); {summary.label_files} label file(s) copied")


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_all(pending: list[Task], state: dict, workers: int, progress: bool):
    """Yield each task's records, as they finish, in one process or a pool (lancet.core.workers), with a progress bar."""
    if workers <= 1:
        init_inline(state)
    utts = state["utterances"]
    yield from imap(run_task, pending, workers=workers, initializer=init_worker if workers > 1 else None,
                    initargs=(state,), ordered=False, chunksize=max(1, min(8, len(pending) // (workers * 8) or 1)),
                    progress=progress and bool(pending), desc="augment", unit="task",
                    describe=lambda t: f"{utts[t.index].id} [{t.kind} {t.name}]",
                    preload=("numpy", "soundfile", "lancet.noise.augment_worker"))
