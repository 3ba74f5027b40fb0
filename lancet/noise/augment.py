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

Resumable: every wav is written under a temporary name and renamed; finished files are recorded in a
journal (``<out>/.augment_journal.jsonl``) as they complete; a rerun skips files that exist, removes
temporary leftovers of a killed run, and rebuilds the manifest from the journal, the previous manifest, or
(for a file written just before a kill) by measuring the file again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from lancet.core.atomic import atomic_path, read_csv, remove_stale_temporaries, save_csv, save_json
from lancet.core.audio import SAMPLE_RATE, AudioError, load_audio, write_wav
from lancet.core.conditions import REVERB, condition_name, snr_name
from lancet.corpora.layout import AUGMENT_CONFIG, AUGMENTED_MANIFEST, corpus_root, output_path, release_layout
from lancet.core.manifest import Utterance
from lancet.core.errors import LancetError
from lancet.core.locking import output_lock
from lancet.core.paths import inside
from lancet.core.checks import check_number, check_snrs
from lancet.core.workers import available_cpus
from lancet.noise import babble as babble_mod
from lancet.noise import reverb as reverb_mod
from lancet.noise.mixing import CROSSFADE_S, SilentSignalError, is_silent, measure_snr, mix_at_snr, power
from lancet.noise.sources import NOISE_TYPES, SHARED_NOISE_DIR, NoiseSource, draw_noise, resolve_sources

DEFAULT_SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
JOURNAL_NAME = ".augment_journal.jsonl"
SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")
SNR_TOLERANCE_DB = 0.1
MANIFEST_COLUMNS = ["id", "condition", "noise_type", "snr_db", "snr_measured_db", "noise_file", "noise_offset_s",
                    "gain", "level_db", "path", "session", "speaker", "gender", "improvised", "label", "class",
                    "duration_s", "sample_rate"]
# Settings whose change would make existing outputs inconsistent with new ones.
_FIXED_SETTINGS = ("seed", "babble_speakers", "babble_pool", "subtype", "crossfade_s")


def task_rng(seed: int, utt_id: str, kind: str) -> np.random.Generator:
    """The random generator of one (utterance, noise type or room): a hash of all three, order-independent."""
    digest = hashlib.sha256(f"{seed}|{utt_id}|{kind}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


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


@dataclass(frozen=True)
class Task:
    """One utterance under one noise type (all SNRs) or one room."""

    index: int
    kind: str   # a noise type or REVERB
    name: str   # noise type again, or the room name


# ----------------------------------------------------------------------------------------------------------
# Worker side

class _LRU:
    """A tiny byte-bounded cache of loaded audio."""

    def __init__(self, budget_bytes: int):
        self.budget, self.used, self.items = budget_bytes, 0, OrderedDict()

    def get(self, key: str, loader):
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = loader(key)
        self.items[key] = value
        self.used += value.nbytes
        while self.used > self.budget and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.used -= old.nbytes
        return value


_STATE: dict = {}


def _init_worker(state: dict) -> None:
    """Pool initializer: keep the shared, read-only state; one BLAS thread per process."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    _STATE.clear()
    _STATE.update(state)
    _STATE["noise_cache"] = _LRU(256 << 20)
    _STATE["speech_cache"] = _LRU(64 << 20)


def _read_written(path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="float64", always_2d=False)
    return data


def _base_row(utt: Utterance, condition: str, noise_type: str, path: Path) -> dict:
    row = utt.to_row()
    row.pop("path")
    row.update(id=utt.id, condition=condition, noise_type=noise_type, path=str(path),
               snr_db="", snr_measured_db="", noise_file="", noise_offset_s="", gain="", level_db="")
    return row


def _noise_for(utt: Utterance, source: NoiseSource, length: int, rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
    """The noise segment for one utterance: (noise, noise_file text, offset text in seconds)."""
    xf = int(round(_STATE["crossfade_s"] * SAMPLE_RATE))

    def load_noise(path: str) -> np.ndarray:
        return _STATE["noise_cache"].get(path, lambda p: load_audio(p, SAMPLE_RATE))

    def corpus_babble(n: int, r: np.random.Generator) -> tuple[np.ndarray, str, list[int]]:
        utts, by_speaker = _STATE["utterances"], _STATE["by_speaker"]
        if _STATE.get("babble_pool", "session") == "session":  # issue 12: no other group's voice, so no fold leaks
            by_speaker = babble_mod.session_talkers(utt.speaker, str(utt.session), by_speaker, _STATE["group_of"])
        load = lambda i: _STATE["speech_cache"].get(utts[i].path, lambda p: load_audio(p, SAMPLE_RATE))  # noqa: E731
        seg, keys, offs = babble_mod.babble_for(utt.speaker, by_speaker, _STATE["babble_speakers"], n, load, r, xf)
        return seg, "babble:" + "+".join(utts[k].id for k in keys), list(offs)

    noise, what, offsets = draw_noise(source, length, rng, xf, load_noise, corpus_babble, _STATE["babble_speakers"])
    return noise, what, ";".join(f"{o / SAMPLE_RATE:.4f}" for o in offsets) or "0"


def run_task(task: Task) -> list[dict]:
    """Make (or find) every output of one task; return one record per output: a manifest row, or a skip
    (``{"skip": reason, "message": ...}``). Existing outputs are not rewritten but are measured again."""
    utt: Utterance = _STATE["utterances"][task.index]
    out: Path = _STATE["out"]
    subtype: str = _STATE["subtype"]
    rng = task_rng(_STATE["seed"], utt.id, f"{task.kind}:{task.name}")
    levels = [snr_name(s) for s in _STATE["snrs"]] if task.kind != REVERB else [task.name]
    paths = [output_path(out, utt, task.kind, lv, _STATE["corpus_root"]) for lv in levels]

    def skip(reason: str, message: str) -> list[dict]:
        return [{"skip": reason, "message": f"{utt.id} [{condition_name(task.kind, lv)}]: {message}"} for lv in levels]

    try:
        speech = load_audio(utt.path, SAMPLE_RATE).astype(np.float64)
    except AudioError as exc:
        return skip("unreadable speech", str(exc))
    if is_silent(speech):
        return skip("silent speech", "speech is silent; no SNR can be set")
    records = []
    if task.kind == REVERB:
        room = _STATE["rooms"][task.name]
        k = int(rng.integers(len(room.rirs)))
        try:
            wet, gain = reverb_mod.reverberate(speech, room.rirs[k])
        except SilentSignalError as exc:
            return skip("silent reverberation", str(exc))
        path = paths[0]
        existed = path.is_file()
        if not existed:
            write_wav(path, wet, SAMPLE_RATE, subtype)
        written = _read_written(path)
        row = _base_row(utt, condition_name(REVERB, task.name), REVERB, path)
        row.update(noise_file=room.rir_names[k], gain=f"{gain:.6f}",
                   level_db=f"{10 * np.log10(power(written) / power(speech)):.4f}", existed=existed)
        return [row]
    try:
        noise, noise_file, offset = _noise_for(utt, _STATE["sources"][task.kind], speech.size, rng)
    except SilentSignalError as exc:
        return skip("silent noise", str(exc))
    except AudioError as exc:
        return skip("unreadable noise", str(exc))
    if is_silent(noise):
        return skip("silent noise", f"noise segment from {noise_file} at {offset} s is silent")
    for snr, level, path in zip(_STATE["snrs"], levels, paths):
        mixture, gain = mix_at_snr(speech, noise, snr)
        existed = path.is_file()
        if not existed:
            write_wav(path, mixture, SAMPLE_RATE, subtype)
        measured = measure_snr(gain * speech, _read_written(path))
        row = _base_row(utt, condition_name(task.kind, level), task.kind, path)
        row.update(snr_db=level, snr_measured_db=f"{measured:.4f}", noise_file=noise_file, noise_offset_s=offset,
                   gain=f"{gain:.6f}", existed=existed)
        records.append(row)
    return records


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
    print(msg, flush=True)


def validate_config(config: AugmentConfig) -> None:
    """One-line errors for settings that cannot work, before anything is written (NaN SNRs once wrote -32768)."""
    check_snrs(config.snrs)
    check_number("--babble-speakers", config.babble_speakers, minimum=1, integer=True)
    check_number("--rirs-per-room", config.rirs_per_room, minimum=1, integer=True)
    check_number("--workers", config.workers, minimum=1, integer=True)
    check_number("--seed", config.seed, minimum=0, integer=True)
    check_number("crossfade_s", config.crossfade_s, minimum=0.0, maximum=1.0)


def augment(utterances: Sequence[Utterance], config: AugmentConfig, log=_print) -> AugmentSummary:
    """Write the augmented tree and manifest for ``utterances`` (see the module docstring); resumable.

    The output folder is locked for the whole run (:func:`lancet.core.locking.output_lock`): the manifest is
    read, merged and written by one run at a time, and a second run stops (or waits with ``wait``).
    """
    validate_config(config)
    with output_lock(Path(config.out).resolve(), wait=config.wait, log=log):
        return _augment_locked(utterances, config, log)


def _augment_locked(utterances: Sequence[Utterance], config: AugmentConfig, log=_print) -> AugmentSummary:
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
    ids = [u.id for u in utterances]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise LancetError(f"utterance id {dup} appears twice in the manifest")
    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    snrs = [float(s) for s in config.snrs]

    sources = resolve_sources(config.noise_types, config.noise_dir, config.shared_noise_dir, log=log)
    for nt, src in sources.items():
        log(f"{nt}: {src.description}")
    rooms: dict[str, reverb_mod.Room] = {}
    if config.reverb:
        if config.rir_dir is not None:
            if not Path(config.rir_dir).is_dir():
                raise LancetError(f"{config.rir_dir}: RIR folder not found")
            found = reverb_mod.rooms_from_dir(config.rir_dir, lambda p: load_audio(p, SAMPLE_RATE))
            if not found:
                raise LancetError(f"{config.rir_dir}: no RIR wav/flac files inside")
        else:
            log(f"reverberation: no --rir-dir given; simulating large rooms {', '.join(config.rooms)} "
                f"with pyroomacoustics (seed {config.seed}, {config.rirs_per_room} RIR{'s' if config.rirs_per_room != 1 else ''} each)")
            try:
                found = reverb_mod.simulated_rooms(config.rooms, config.seed, config.rirs_per_room, SAMPLE_RATE)
            except ValueError as exc:
                raise LancetError(str(exc)) from None
        rooms = {r.name: r for r in found}
        for r in found:
            log(f"reverberation {r.name}: {len(r.rirs)} RIR{'s' if len(r.rirs) != 1 else ''}")

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

    by_speaker: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        by_speaker.setdefault(u.speaker, []).append(i)
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

    tasks: list[Task] = []
    expected: dict[Task, list[Path]] = {}
    root = corpus_root(u.path for u in utterances)  # output trees keyed by the path relative to it
    for i, u in enumerate(utterances):
        for nt in config.noise_types:
            t = Task(i, nt, nt)
            tasks.append(t)
            expected[t] = [output_path(out, u, nt, snr_name(s), root) for s in snrs]
        for name in rooms:
            t = Task(i, REVERB, name)
            tasks.append(t)
            expected[t] = [output_path(out, u, REVERB, name, root)]
    known = _load_previous(out)
    pending = [t for t in tasks if not all(str(p) in known for p in expected[t])]
    summary = AugmentSummary(existing=sum(len(expected[t]) for t in tasks) - sum(len(expected[t]) for t in pending))
    if summary.existing:
        log(f"resuming: {summary.existing} file(s) already done, {len(pending)} task(s) to run")

    state = {"utterances": list(utterances), "out": out, "subtype": config.subtype, "seed": config.seed,
             "corpus_root": root,
             "snrs": snrs, "sources": sources, "rooms": rooms, "by_speaker": by_speaker,
             "babble_pool": config.babble_pool, "group_of": {u.speaker: str(u.session) for u in utterances},
             "babble_speakers": config.babble_speakers, "crossfade_s": config.crossfade_s}
    journal_path = out / JOURNAL_NAME
    workers = max(1, min(int(config.workers), len(pending) or 1))
    prev_term = signal.signal(signal.SIGTERM, _raise_interrupt) if _is_main_thread() else None
    try:
        with open(journal_path, "a") as journal:
            for records in _run_all(pending, state, workers, config.progress):
                for rec in records:
                    if "skip" in rec:
                        summary.skipped[rec["skip"]] += 1
                        if len(summary.skip_examples) < 5:
                            summary.skip_examples.append(rec["message"])
                        continue
                    existed = rec.pop("existed", False)
                    if existed:
                        summary.existing += 1
                    else:
                        summary.written += 1
                    known[rec["path"]] = rec
                    journal.write(json.dumps(rec) + "\n")
                journal.flush()
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:  # the journal's write() on a full disk names no file
            raise OSError(exc.errno, exc.strerror, str(journal_path)) from exc
        raise
    finally:
        if prev_term is not None:
            signal.signal(signal.SIGTERM, prev_term)

    order = {}
    for nt in config.noise_types:
        for s in snrs:
            order[condition_name(nt, snr_name(s))] = len(order)
    for name in rooms:
        order[condition_name(REVERB, name)] = len(order)
    wanted = {str(p) for paths in expected.values() for p in paths}
    rows = [r for p, r in known.items() if p in wanted]
    # Rows of earlier runs with other conditions (e.g. more SNRs) stay, after this run's.
    rows += [r for p, r in known.items() if p not in wanted]
    rows.sort(key=lambda r: (order.get(r["condition"], len(order)), r["condition"], r["id"]))
    for r in rows:
        try:
            m = float(r.get("snr_measured_db") or "nan")
            if np.isfinite(m) and abs(m - float(r["snr_db"])) > SNR_TOLERANCE_DB:
                summary.off_target += 1
        except ValueError:
            pass
    summary.manifest = out / AUGMENTED_MANIFEST
    save_csv(summary.manifest, rows, MANIFEST_COLUMNS)
    summary.rows = len(rows)
    journal_path.unlink(missing_ok=True)

    iemocap_dir = Path(config.iemocap_dir) if config.iemocap_dir else find_iemocap_dir(utterances)
    if iemocap_dir is None:
        if release_layout(utterances[0].path):  # other corpora carry their labels in the manifest only
            log("note: label files not copied (give --iemocap-dir, the original release folder)")
    else:
        cond_dirs = [out / nt / snr_name(s) for nt in config.noise_types for s in snrs] + \
                    [out / REVERB / name for name in rooms]
        summary.label_files = copy_label_files(Path(iemocap_dir), cond_dirs)

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
    return summary


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_all(pending: list[Task], state: dict, workers: int, progress: bool):
    """Yield each task's records, as they finish, in one process or a pool (lancet.core.workers), with a progress bar."""
    from lancet.core.workers import imap

    if workers <= 1:
        _init_worker_inline(state)
    utts = state["utterances"]
    yield from imap(run_task, pending, workers=workers, initializer=_init_worker if workers > 1 else None,
                    initargs=(state,), ordered=False, chunksize=max(1, min(8, len(pending) // (workers * 8) or 1)),
                    progress=progress and bool(pending), desc="augment", unit="task",
                    describe=lambda t: f"{utts[t.index].id} [{t.kind} {t.name}]",
                    preload=("numpy", "soundfile", "lancet.noise.augment"))


def _init_worker_inline(state: dict) -> None:
    _STATE.clear()
    _STATE.update(state)
    _STATE["noise_cache"] = _LRU(256 << 20)
    _STATE["speech_cache"] = _LRU(64 << 20)
