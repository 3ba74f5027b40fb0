"""What a run leaves for people: learning curves (history.csv per unit, plots/curves_<model>.png, TensorBoard
when installed), and --help that says what each switch does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lancet.core.atomic import read_csv
from lancet.training import grid
from lancet.training.config import build_parser
from lancet.training.grid import run_training
from lancet.training.history import HISTORY_FIELDS, history_path

from test_training import ROOT, cfg_for, make_store

UNIT = "TCNet__train-clean__seed987654__fold{}"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("features"))


def _train_script():
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train_LANCET.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


class _Stop(Exception):
    pass


# ----------------------------------------------------------------------------- learning curves
def test_history_has_one_row_per_epoch_as_it_goes_and_the_run_draws_curves(store, tmp_path):
    cfg = cfg_for(tmp_path, store, folds=("1", "2"), epochs=3, batch_size=8)
    run_dir = Path(cfg.results_dir) / "t"
    seen: list[int] = []

    def stop_after_2(unit, epoch):
        seen.append(len(read_csv(history_path(run_dir, unit.key))))  # readable while the unit trains
        if unit.fold.name == "fold2" and epoch == 2:
            raise _Stop

    with pytest.raises(_Stop):
        run_training(cfg, on_epoch_end=stop_after_2, log=lambda m: None)
    assert seen == [1, 2, 3, 1, 2]
    out = run_training(cfg, log=lambda m: None)  # fold 2 resumes after epoch 2: no epoch twice
    for fold in (1, 2):
        rows = read_csv(history_path(run_dir, UNIT.format(fold)))
        assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and list(rows[0]) == HISTORY_FIELDS
        assert all(float(r["seconds"]) > 0 and float(r["loss"]) > 0 for r in rows)
        assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3 * 0.95, 1e-3 * 0.95 ** 2, 1e-3 * 0.95 ** 3])
        assert all(0 <= float(r["val_wa"]) <= 1 and 0 <= float(r["val_ua"]) <= 1 for r in rows)
        record = next(r for r in out["records"] if r["fold"] == f"fold{fold}" and r["condition"] == "clean")
        best = rows[record["best_epoch"] - 1]  # the metrics' validation scores are the best epoch's row
        assert float(best["val_ua"]) == pytest.approx(record["val_ua"]) and float(best["val_wa"]) == pytest.approx(record["val_wa"])
    curves = run_dir / "plots" / "curves_TCNet.png"
    assert curves.read_bytes()[:4] == b"\x89PNG" and out["paths"]["curves_TCNet"] == curves


def test_tensorboard_without_the_package_says_so_in_one_line(store, tmp_path, monkeypatch):
    monkeypatch.setattr(grid, "tensorboard_available", lambda: False)
    import lancet.training.history as history

    monkeypatch.setattr(history, "tensorboard_available", lambda: False)
    logs: list[str] = []
    cfg = cfg_for(tmp_path, store, folds=("1",), epochs=1, tensorboard=str(tmp_path / "tb"))
    run_training(cfg, log=logs.append)
    notes = [line for line in logs if line.startswith("--tensorboard")]
    assert len(notes) == 1 and "pip install tensorboard" in notes[0] and "\n" not in notes[0]
    assert not (tmp_path / "tb").exists()
    assert history_path(Path(cfg.results_dir) / "t", UNIT.format(1)).is_file()  # the curves are still kept


def test_tensorboard_logs_the_curves_when_installed(store, tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is optional (pip install tensorboard); without it the "
                                              "run says so in one line, tested above")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = cfg_for(tmp_path, store, folds=("1",), epochs=2, tensorboard=str(tmp_path / "tb"))
    run_training(cfg, log=lambda m: None)
    events = EventAccumulator(str(tmp_path / "tb" / "t" / UNIT.format(1)))
    events.Reload()
    rows = read_csv(history_path(Path(cfg.results_dir) / "t", UNIT.format(1)))
    for key in ("loss", "lr", "val_wa", "val_ua", "seconds"):
        logged = events.Scalars(key)
        assert [e.step for e in logged] == [1, 2]
        assert [e.value for e in logged] == pytest.approx([float(r[key]) for r in rows], rel=1e-6)


# ----------------------------------------------------------------------------- --help
def test_help_says_what_each_switch_does_and_its_default():
    text = _train_script().build_parser().format_help()
    assert "(default: True)" not in text and "(default: False)" not in text
    assert "--no-progress, --progress" in text and "turn off tqdm progress bars (default: on, unless --no-progress is given)" in " ".join(text.split())
    assert "--class-weighted, --no-class-weighted" in text
    p = build_parser()
    assert p.parse_args([]).progress is True and p.parse_args(["--no-progress"]).progress is False
    assert p.parse_args(["--class-weighted"]).class_weighted is True
    assert p.parse_args(["--class-weighted", "--no-class-weighted"]).class_weighted is False
