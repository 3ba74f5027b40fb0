"""What a run leaves for people: learning curves (history.csv per unit, plots/curves_<model>.png, TensorBoard
when installed), a config.json that reruns the run (--config), and --help that says what each switch does."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lancet.core.atomic import read_csv
from lancet.core.errors import LancetError
from lancet.training import grid
from lancet.training.config import TrainConfig, build_parser, config_from_args
from lancet.training.config_file import RUN_FACTS, parse_with_config, read_config_file
from lancet.training.grid import run_training
from lancet.training.history import HISTORY_FIELDS, history_path

from test_training import ROOT, cfg_for, make_store

ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
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


# ----------------------------------------------------------------------------- --config
def _settings(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "run_name"}


def test_config_reproduces_a_run(store, tmp_path, capsys):
    cfg = cfg_for(tmp_path, store, folds=("1",), epochs=1, seeds=(3,), lr=2e-3, specaugment=True, mixup_alpha=0.0,
                  model_options={"TCNet": {"residual": False}}, class_weighted=True)
    run_training(cfg, log=lambda m: None)
    saved = Path(cfg.results_dir) / "t" / "config.json"
    first = json.loads(saved.read_text())
    assert set(first) <= {f for f in TrainConfig.__dataclass_fields__} | RUN_FACTS  # every key is known
    script = _train_script()
    assert script.main(["--config", str(saved), "--run-name", "again", "--device", "cpu"]) == 0
    again = json.loads((Path(cfg.results_dir) / "again" / "config.json").read_text())
    assert again["run_name"] == "again" and _settings(again) == _settings(first)
    # flags beside it override, booleans either way; the rest stays the file's
    args = parse_with_config(script.build_parser(), ["--config", str(saved), "--epochs", "7", "--no-specaugment",
                                                     "--no-class-weighted", "--progress"])
    changed = config_from_args(args)
    assert (changed.epochs, changed.specaugment, changed.class_weighted, changed.progress) == (7, False, False, True)
    assert changed.lr == 2e-3 and changed.seeds == (3,) and changed.model_options == {"TCNet": {"residual": False}}
    assert changed.run_name is None and changed.device == "auto"  # resolved afresh


def test_config_refuses_unknown_keys_and_wrong_types_in_one_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"epochs": 3, "epoch": 5, "lerning_rate": 0.1, "conditions": ["clean"]}))
    with pytest.raises(LancetError, match=r"unknown setting\(s\) epoch, lerning_rate;"):
        read_config_file(path)
    r = subprocess.run([sys.executable, str(ROOT / "train_LANCET.py"), "--config", str(path)], capture_output=True,
                       text=True, env=ENV, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and str(path) in lines[0] and "epoch, lerning_rate" in lines[0]
    for bad, expected in (({"epochs": "ten"}, "expected an integer"), ({"seeds": 4}, "expected a list of integers"),
                          ({"specaugment": "yes"}, "expected true or false")):
        path.write_text(json.dumps(bad))
        with pytest.raises(LancetError, match=f"{next(iter(bad))} = .*: {expected}"):
            read_config_file(path)
    path.write_text("{not json")
    with pytest.raises(LancetError, match="not readable JSON"):
        read_config_file(path)
    with pytest.raises(LancetError, match="not found"):
        read_config_file(tmp_path / "none.json")
    path.write_text(json.dumps({"epochs": 0}))  # a value out of range is refused by the usual checks
    with pytest.raises(LancetError, match="--epochs 0: must be >= 1"):
        from lancet.training.plan import validate_config

        validate_config(config_from_args(parse_with_config(_train_script().build_parser(), ["--config", str(path)])))


# ----------------------------------------------------------------------------- --help
def test_help_says_what_each_switch_does_and_its_default():
    text = _train_script().build_parser().format_help()
    assert "(default: True)" not in text and "(default: False)" not in text
    assert "--no-progress, --progress" in text and "turn off tqdm progress bars (default: on, unless --no-progress is given)" in " ".join(text.split())
    assert "--class-weighted, --no-class-weighted" in text and "--config CONFIG_JSON" in text
    p = build_parser()
    assert p.parse_args([]).progress is True and p.parse_args(["--no-progress"]).progress is False
    assert p.parse_args(["--class-weighted"]).class_weighted is True
    assert p.parse_args(["--class-weighted", "--no-class-weighted"]).class_weighted is False
