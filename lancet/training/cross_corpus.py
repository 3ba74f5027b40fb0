"""Cross-corpus evaluation: every fold's model, trained on one corpus, tested on all of another.

``train_LANCET.py --test-features-dir DIR`` (``TrainConfig.test_features_dir``): after the run's own
summary, each trained unit's best checkpoint labels every utterance of ``DIR/<kind>`` whose class the
training used, in every condition the unit's training allows (a clean or multi-condition model: all of
the test store's conditions; a matched model: its own condition). No test-corpus speaker was ever seen,
so this is the honest measure of generalisation; the spread over folds shows how much it depends on
which training speakers were used. The features must have been extracted with the same settings, and
the class maps must agree: test utterances of classes the model does not know are left out and counted.

Outputs under ``<results>/<run-name>/cross_corpus/``: ``metrics/<unit>.json|csv`` (written last per
unit, so a rerun skips finished units), ``metrics_all``, ``summary.json|csv``, plots, and the table
printed as its own block.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from lancet.core.conditions import CLEAN, sort_conditions
from lancet.core.errors import LancetError
from lancet.features import FeatureStore
from lancet.features.store import changed_settings

from .checkpoint import BEST
from .config import TrainConfig
from .data import StoreView
from .evaluate import evaluate_table, robustness_matrix
from .folds import utterances_from_index
from .identity import feature_settings, first_change, store_identity
from .plan import Unit
from .predict import load_predictor
from .records import condition_record
from .report import format_summary, write_records, write_summary
from .stores import RunData, open_store
from .unit import UnitRunner

CROSS_DIR = "cross_corpus"


def check_same_features(train_params: dict, test_params: dict, train_where: str, test_where: str) -> None:
    """A one-line error when the two stores' features were extracted differently (the model would see other numbers).

    The first difference is named with both values (an ssl store of another upstream: its source, or its weights'
    hash when the same name holds other weights)."""
    a, b = feature_settings(train_params), feature_settings(test_params)
    differs = changed_settings(a, b)
    if differs:
        raise LancetError(f"{test_where}: extracted with other settings than {train_where} "
                          f"(differs: {', '.join(differs)}; first: {first_change(a, b)}); extract the test corpus "
                          f"with the same flags")


def eval_conditions(unit: Unit, test_conditions: list[str]) -> list[str]:
    """The test store's conditions a unit is evaluated on: its own condition for a matched model, else all."""
    if unit.train_on == "matched":
        return [c for c in unit.train_conditions if c in test_conditions]
    return list(test_conditions)


def open_test_store(cfg: TrainConfig, data: RunData) -> tuple[FeatureStore, str]:
    """The test corpus's store of the run's feature kind, checked against the training store (called
    before training too, so that a wrong folder stops the run at once rather than after it)."""
    store = open_store(cfg.test_features_dir, cfg.features)
    where = str(Path(cfg.test_features_dir) / cfg.features)
    check_same_features(dict(data.store.params), dict(store.params), data.where, where)
    arrays = [{c["array"] for c in store_identity(s)["conditions"].values()} for s in (data.store, store)]
    if arrays[0] & arrays[1]:
        raise LancetError(f"{where}: holds the training store's own features (the same arrays as {data.where}); "
                          f"cross-corpus testing needs another corpus")
    return store, where


def evaluate_cross_corpus(runner: UnitRunner, units: list[Unit]) -> dict[str, Path]:
    """Evaluate every unit on ``runner.cfg.test_features_dir``; returns the report paths."""
    cfg, data = runner.cfg, runner.data
    store, where = open_test_store(cfg, data)
    view = StoreView(store, where)
    conditions = sort_conditions(store.conditions)
    utterances = utterances_from_index(r for c in conditions for r in view.index(c).utterance_rows())
    known = data.class_to_label
    kept = frozenset(u.id for u in utterances if u.cls in known)
    dropped = Counter(u.cls for u in utterances if u.cls not in known)
    out = runner.run_dir / CROSS_DIR
    runner.log(f"cross-corpus: trained on {data.where}, testing on {where}: {len(kept)} utterances of "
               f"{len({u.speaker for u in utterances if u.id in kept})} speakers in {', '.join(conditions)}"
               + (f"; left out (classes the model does not know): "
                  f"{', '.join(f'{c} {n}' for c, n in sorted(dropped.items()))}" if dropped else ""))
    if not kept:
        raise LancetError(f"{where}: no utterance of the training classes {', '.join(data.class_names)}; "
                          f"prepare both corpora with the same --classes")
    absent = [c for c in data.class_names if not any(u.cls == c and u.id in kept for u in utterances)]
    if absent:
        runner.log(f"cross-corpus: the test corpus has no {', '.join(absent)}; UA averages the classes it has")
    records: list[dict] = []
    for unit in units:
        path = out / "metrics" / f"{unit.key}.json"
        if not path.is_file():
            unit_records = _test_unit(runner, unit, view, conditions, kept, where)
            write_records(path.with_suffix(""), unit_records, data.class_names)
        records.extend(json.loads(path.read_text()))
    rows = robustness_matrix(records)
    paths = write_summary(out, records, rows, data.class_names, speaker_independent=True)
    table = format_summary(rows, speaker_independent=True)
    runner.log(f"CROSS-CORPUS: trained on {data.where}, tested on every utterance of {where} "
               f"(each fold's model; mean ± std over folds x seeds)\n{table}")
    return {f"cross_corpus_{k}": v for k, v in paths.items()}


def _test_unit(runner: UnitRunner, unit: Unit, view: StoreView, conditions: list[str], kept: frozenset[str],
               where: str) -> list[dict]:
    """One trained unit's best checkpoint on every test-corpus condition it is evaluated on."""
    cfg, data = runner.cfg, runner.data
    checkpoint = runner.ckpt_dir(unit) / BEST
    if not checkpoint.is_file():
        raise LancetError(f"{checkpoint}: no trained model for {unit.key}; rerun the training first")
    predictor = load_predictor(checkpoint, device=runner.device.type, featurise=False)  # stored features in
    if list(predictor.class_names) != list(data.class_names):
        raise LancetError(f"{checkpoint}: trained for classes {predictor.class_names}, the run has "
                          f"{list(data.class_names)}")
    records = []
    for cond in eval_conditions(unit, conditions):
        table = runner.condition_table(view, [cond], kept, record=view.store.params)
        if len(table) == 0:
            continue
        m = evaluate_table(predictor.model, table, predictor.mean, predictor.std, predictor.device,
                           len(data.class_names), cfg.pooling, cfg.eval_batch_size, runner.amp_dtype, cfg.workers)
        records.append(condition_record(unit, cond, m, train_features=data.where, test_features=where))
    if not records:
        raise LancetError(f"{where}: no segments to test {unit.key} on (conditions {', '.join(conditions)})")
    clean = next((r for r in records if r["condition"] == CLEAN), records[0])
    runner.log(f"[cross-corpus {unit.key}] {clean['condition']} WA {100 * clean['wa']:.1f} "
               f"UA {100 * clean['ua']:.1f}")
    return records
