"""Standard names for every version of every utterance, and the combined manifest (docs/PIPELINE.md, step 3).

The standardised tree is ``<std>/<condition>/<id>__<condition>.wav`` with condition ``clean``,
``<noise>_<snr>dB`` or ``reverberation_<room>``; each file is a hard link to the original or augmented wav
(a copy where a link is impossible, e.g. across file systems), or a copy or a symbolic link on request.
Files are created under a temporary name and renamed; the user's IEMOCAP folder is only ever read (a hard
link adds a directory entry elsewhere and changes neither the original's bytes nor its modification time).
Running it again changes nothing and says so.
"""

from __future__ import annotations

import csv
import filecmp
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from lancet.core.atomic import atomic_path, file_checksum, read_csv, remove_stale_temporaries, save_json
from lancet.core.conditions import REVERB
from lancet.corpora.layout import AUGMENT_CONFIG, AUGMENTED_MANIFEST, corpus_folders, output_path
from lancet.corpora.layout import corpus_root as audio_root
from lancet.core.manifest import Utterance, read_manifest, refuse_duplicates
from lancet.core.errors import LancetError, printable
from lancet.core.locking import output_lock
from lancet.core.paths import check_outside, inside, safe_component

MODES = ("link", "copy", "symlink")
COLUMNS = ["id", "condition", "noise_type", "snr_db", "path", "session", "speaker", "gender", "improvised",
           "label", "class"]
MANIFEST_NAME = "manifest.csv"
NOISE_SOURCES_NAME = "noise_sources.json"  # where each noise type came from, copied from the augmentation
# which augmented manifest the noisy conditions came from, and its checksum: the trainer's noise split reads
# exactly that one, never a sibling folder's
PROVENANCE_NAME = "provenance.json"
_SHOW = 20


@dataclass
class Entry:
    source: Path
    target: Path
    row: dict
    action: str = ""  # create, replace, unchanged


@dataclass
class StandardiseReport:
    """Counts of what was (or, in a dry run, would be) done."""

    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    missing: list[str] = field(default_factory=list)
    extra: int = 0
    manifest_changed: bool = False
    copied_instead_of_linked: int = 0
    manifest: Path | None = None

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced or self.manifest_changed)


def standard_name(utt_id: str, condition: str) -> str:
    """``<id>__<condition>.wav``."""
    return f"{utt_id}__{condition}.wav"


def standardised_folders(rows: Iterable[Mapping[str, str]]) -> list[tuple[str, Path]]:
    """The standardised trees a combined manifest's rows point into (``<std>/<condition>/<id>__<condition>.wav``),
    as (what it is, folder): the folders feature extraction reads and must not write into."""
    roots = {Path(r["path"]).parent.parent for r in rows
             if Path(r["path"]).name == standard_name(r["id"], r["condition"])
             and Path(r["path"]).parent.name == r["condition"]}
    return [("the standardised folder", root) for root in sorted(roots)]


def _corpus_row(utt: Utterance, condition: str, noise_type: str, snr_db: str, path: Path) -> dict:
    row = utt.to_row()
    return {"id": utt.id, "condition": condition, "noise_type": noise_type, "snr_db": snr_db, "path": str(path),
            "session": row["session"], "speaker": row["speaker"], "gender": row["gender"],
            "improvised": row["improvised"], "label": row["label"], "class": row["class"]}


def _augmented_source(aug_dir: Path, row: dict, utt: Utterance, root: Path) -> Path:
    """The augmented wav of ``row``: its recorded path, else the same file under ``aug_dir`` (tree moved).

    A recorded path outside ``aug_dir`` (a hand-edited row naming, say, a private file) is not followed.
    """
    recorded = Path(row["path"])
    if recorded.is_file() and _is_within(recorded, aug_dir):
        return recorded
    if row["noise_type"] == REVERB:
        level = row["condition"][len(REVERB) + 1:]
    else:
        level = row["snr_db"]
    return output_path(aug_dir, utt, row["noise_type"], level, root)


def check_same_corpus(aug_manifest: Path, aug_rows: list[dict], by_id: dict[str, Utterance],
                      manifest: str | Path) -> None:
    """Refuse an augmented manifest none of whose mixtures is of the corpus manifest's utterances: another
    corpus's augmentation would otherwise give a tree of clean audio only, without a word."""
    if aug_rows and not any(r.get("id") in by_id for r in aug_rows):
        raise LancetError(f"{aug_manifest}: none of its {len(aug_rows)} mixtures is of an utterance of {manifest} "
                          f"(another corpus's augmentation?); give the --augmented-dir made from this manifest")


def plan(manifest: str | Path, augmented_dir: str | Path | None, out: str | Path) -> tuple[list[Entry], list[str]]:
    """Every (source, standard target, manifest row), clean first then augmented; plus sources not found."""
    utts = read_manifest(manifest)
    by_id = {u.id: u for u in utts}
    out = Path(out).resolve()
    entries: list[Entry] = []
    missing: list[str] = []
    for u in utts:
        target = inside(out, out / "clean" / standard_name(u.id, "clean"))
        entries.append(Entry(Path(u.path), target, _corpus_row(u, "clean", "clean", "", target)))
    if augmented_dir is not None:
        aug_dir = Path(augmented_dir).resolve()
        root = audio_root(u.path for u in utts)  # augmentation keyed its tree by paths relative to it
        aug_manifest = aug_dir / AUGMENTED_MANIFEST
        if not aug_manifest.is_file():
            raise LancetError(f"{aug_manifest}: augmented manifest not found (run datasets/augment_IEMOCAP.py "
                              f"first, or use --clean-only)")
        aug_rows = read_csv(aug_manifest)
        try:
            refuse_duplicates(aug_manifest, aug_rows, lambda r: (r["id"], r["condition"]),
                              "utterance {} under condition {}", "two mixtures for one standard name")
        except KeyError as exc:
            raise LancetError(f"{aug_manifest}: missing column {exc}") from None
        check_same_corpus(aug_manifest, aug_rows, by_id, manifest)
        for line_no, row in enumerate(aug_rows, start=2):
            try:
                utt = by_id.get(row["id"])
                cond, nt = row["condition"], row["noise_type"]
            except KeyError as exc:
                raise LancetError(f"{aug_manifest}:{line_no}: missing column {exc}") from None
            if utt is None:
                continue  # an utterance the corpus manifest no longer keeps (other class map)
            try:  # a hand-edited row must not place a file outside --out (e.g. condition "../../x")
                target = inside(out, out / safe_component(cond, "condition") / standard_name(utt.id, cond))
                source = _augmented_source(aug_dir, row, utt, root)
            except LancetError as exc:
                raise LancetError(f"{aug_manifest}:{line_no}: {exc}") from None
            entries.append(Entry(source, target, _corpus_row(utt, cond, nt, row.get("snr_db", ""), target)))
    if utts and not any(e.source.is_file() for e in entries[:len(utts)]):
        raise LancetError(f"{manifest}: none of its {len(utts)} audio files exists (e.g. {printable(utts[0].path)}); "
                          f"moved or deleted? run the corpus's prepare script again")
    seen: set[Path] = set()
    kept = []
    for e in entries:
        if e.target in seen:
            raise LancetError(f"{e.row['id']} appears twice under condition {e.row['condition']}")
        seen.add(e.target)
        if not e.source.is_file():
            missing.append(str(e.source))
            continue
        kept.append(e)
    return kept, missing


def _up_to_date(source: Path, target: Path, mode: str) -> bool:
    if not (target.exists() or target.is_symlink()):
        return False
    if mode == "symlink":
        return target.is_symlink() and os.readlink(target) == str(source.resolve())
    if target.is_symlink():
        return False
    if mode == "link" and os.path.samefile(source, target):
        return True
    return filecmp.cmp(source, target, shallow=True)


def _place(source: Path, target: Path, mode: str) -> bool:
    """Make ``target`` (atomically); returns True when a link was asked for but a copy was made."""
    copied = False
    with atomic_path(target, ".wav") as tmp:
        if mode == "symlink":
            os.symlink(source.resolve(), tmp)
        elif mode == "link":
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copy2(source, tmp)
                copied = True
        else:
            shutil.copy2(source, tmp)
    return copied


def _render_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def inputs_of(entries: list[Entry], augmented_dir: str | Path | None) -> list[tuple[str, Path]]:
    """The folders standardisation reads (the corpus's audio, the augmented tree): its output stays out of them."""
    inputs = corpus_folders(e.source for e in entries if e.row["condition"] == "clean")
    if augmented_dir is not None:
        inputs.append(("the augmented folder", Path(augmented_dir)))
    return inputs


def standardise(manifest: str | Path, augmented_dir: str | Path | None, out: str | Path, mode: str = "link",
                dry_run: bool = False, log=print, wait: bool = False) -> StandardiseReport:
    """Build (or bring up to date) the standardised tree and ``<out>/manifest.csv``; see the module docstring.

    With ``dry_run`` nothing is created or changed; the actions are printed through ``log``. Otherwise
    ``out`` is locked for the run (:func:`lancet.core.locking.output_lock`; ``wait``: wait for another run).
    """
    if mode not in MODES:
        raise LancetError(f"unknown mode {mode!r} (choose {', '.join(MODES)})")
    out = Path(out).resolve()
    entries, missing = plan(manifest, augmented_dir, out)
    check_outside(out, "--out", inputs_of(entries, augmented_dir))
    if dry_run:
        return _standardise(entries, missing, out, mode, dry_run, log)
    with output_lock(out, wait=wait, log=log):
        leftovers = remove_stale_temporaries(out)
        if leftovers:
            log(f"removed {leftovers} temporary file(s) left by an interrupted run")
        _record_noise_sources(augmented_dir, out)
        _record_provenance(augmented_dir, out)
        return _standardise(entries, missing, out, mode, dry_run, log)


def _record_noise_sources(augmented_dir: str | Path | None, out: Path) -> None:
    """Copy the augmentation's noise sources next to the combined manifest, so that reports can say whether
    music and ambient noise were real recordings or generated stand-ins (:func:`describe_noise_sources`)."""
    path = out / NOISE_SOURCES_NAME
    if augmented_dir is None:
        path.unlink(missing_ok=True)
        return
    try:
        config = json.loads((Path(augmented_dir) / AUGMENT_CONFIG).read_text())
        record = {"sources": config.get("sources", {}), "babble_pool": config.get("babble_pool", "corpus")}
    except (OSError, json.JSONDecodeError, AttributeError):
        return
    if not path.is_file() or json.loads(path.read_text() or "{}") != record:
        save_json(path, record, allow_nan=False)


def _record_provenance(augmented_dir: str | Path | None, out: Path) -> None:
    """Name the augmented manifest (with its checksum) beside the combined manifest; none for a clean-only tree."""
    path = out / PROVENANCE_NAME
    source = Path(augmented_dir).resolve() / AUGMENTED_MANIFEST if augmented_dir is not None else None
    if source is None or not source.is_file():
        path.unlink(missing_ok=True)
        return
    record = {"augmented_manifest": str(source), "checksum": file_checksum(source)}
    if not path.is_file() or json.loads(path.read_text() or "{}") != record:
        save_json(path, record, allow_nan=False)


def augmented_manifest_of(manifest: str | Path) -> Path | None:
    """The augmented manifest that the combined ``manifest``'s noisy conditions came from, checked against the
    checksum recorded at standardisation; None when none was recorded (a clean-only or older tree)."""
    prov = Path(manifest).parent / PROVENANCE_NAME
    try:
        record = json.loads(prov.read_text())
        source, checksum = Path(record["augmented_manifest"]), record["checksum"]
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise LancetError(f"{prov}: unreadable; rerun datasets/handleIEMOCAP.py to write it again") from None
    if not source.is_file():
        raise LancetError(f"{source}: the augmented manifest named in {prov} is gone; restore it, rerun "
                          f"datasets/handleIEMOCAP.py with the right --augmented-dir, or pass --noise-manifest")
    if file_checksum(source) != checksum:
        raise LancetError(f"{source}: changed since {prov.parent} was standardised (another augmentation wrote into "
                          f"its folder?); rerun datasets/handleIEMOCAP.py and the feature extraction")
    return source


def describe_noise_sources(manifest: str | Path | None) -> str | None:
    """One line saying, per noise type, whether its noise was real or generated, for the combined manifest
    ``manifest`` (None when unknown, e.g. a clean-only tree).

    Example: ``noise: babble from other corpus speakers; music REAL (5 shared files ...); white generated``.
    """
    if not manifest:
        return None
    try:
        record = json.loads((Path(manifest).parent / NOISE_SOURCES_NAME).read_text())
        sources, pool = record["sources"], record.get("babble_pool", "corpus")
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    parts = []
    for nt, text in sources.items():
        if "stand-in" in text:
            parts.append(f"{nt} GENERATED stand-in (not real {nt})")
        elif text.startswith("generated"):
            parts.append(f"{nt} generated")
        elif "utterances of other speakers" in text:
            parts.append(f"{nt} from the other speakers of the target's own session" if pool == "session"
                         else f"{nt} from other speakers of the corpus")
        else:
            parts.append(f"{nt} REAL ({text})")
    return "noise: " + "; ".join(parts) if parts else None


def _standardise(entries: list[Entry], missing: list[str], out: Path, mode: str, dry_run: bool,
                 log) -> StandardiseReport:
    report = StandardiseReport(missing=missing, manifest=out / MANIFEST_NAME)
    shown = 0
    for e in entries:
        if _up_to_date(e.source, e.target, mode):
            e.action = "unchanged"
            report.unchanged += 1
            continue
        e.action = "replace" if (e.target.exists() or e.target.is_symlink()) else "create"
        if e.action == "create":
            report.created += 1
        else:
            report.replaced += 1
        if dry_run:
            if shown < _SHOW:
                log(f"would {e.action} {e.target} ({mode} of {printable(str(e.source))})")
            shown += 1
        else:
            report.copied_instead_of_linked += _place(e.source, e.target, mode)
    if dry_run and shown > _SHOW:
        log(f"... and {shown - _SHOW} more")

    planned = {e.target for e in entries}
    conditions = {e.target.parent for e in entries}
    for cdir in conditions:
        if cdir.is_dir():
            report.extra += sum(1 for p in cdir.iterdir() if p not in planned)

    text = _render_csv([e.row for e in entries])
    old = None
    if report.manifest.is_file():
        with open(report.manifest, newline="") as fh:
            old = fh.read()
    report.manifest_changed = old != text
    if report.manifest_changed:
        if dry_run:
            log(f"would {'write' if old is None else 'update'} {report.manifest} ({len(entries)} rows)")
        else:
            with atomic_path(report.manifest) as tmp:
                tmp.write_text(text, newline="")

    verb = "would be" if dry_run else "were"
    if missing:
        log(f"warning: {len(missing)} source file(s) not found, left out: e.g. {printable(missing[0])}")
    if report.extra:
        log(f"note: {report.extra} file(s) in {out} are not in the manifest; left as they are")
    if report.copied_instead_of_linked:
        log(f"note: {report.copied_instead_of_linked} file(s) copied because a hard link was impossible")
    if not report.changed:
        log(f"nothing to do: {report.unchanged} file(s) already in place and {report.manifest} up to date")
    else:
        log(f"{report.created} file(s) {verb} created, {report.replaced} replaced, {report.unchanged} unchanged; "
            f"manifest {report.manifest} {('would be written' if dry_run else 'written') if report.manifest_changed else 'unchanged'} "
            f"({len(entries)} rows)" + (" -- dry run, nothing touched" if dry_run else ""))
    return report
