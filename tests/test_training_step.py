"""The fast training path (lancet.training.compiled) computes the plain loop's recipe: same random numbers,
same batches, same loss trajectory, compiled or not, with no recompilation after the first steps."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lancet.models import build_model
from lancet.training.data import SegmentTable, _make_batch, batch_indices, mixup
from lancet.training.config import TrainSettings
from lancet.training.fit import FitHooks, seed_everything, train_model
from lancet.training.compiled import DeviceTable, SegmentPredictor, draw_epoch, use_compile

ROOT = Path(__file__).resolve().parents[1]
SLOW = pytest.mark.skipif(not os.environ.get("LANCET_SLOW_TESTS"),
                          reason="aot_eager compilation takes about a minute per model on 2 cores; set LANCET_SLOW_TESTS=1")


def _table(n: int, shape: tuple[int, int], parts: int = 1, seed: int = 0) -> SegmentTable:
    """A learnable table (class c raises band c) split over ``parts`` sources, rows in shuffled order."""
    rng = np.random.default_rng(seed)
    f, t = shape
    labels = rng.integers(0, 4, n).astype(np.int64)
    x = rng.normal(0, 1, (n, f, t)).astype(np.float32)
    for c in range(4):
        x[labels == c, c * (f // 4):(c + 1) * (f // 4)] += 1.5
    lengths = np.where(rng.random(n) < 0.3, t // 2, t).astype(np.int64)
    part = (np.arange(n) % parts).astype(np.int32)
    sources, local = [], np.zeros(n, np.int64)
    for p in range(parts):
        rows = np.nonzero(part == p)[0]
        order = rng.permutation(len(rows))        # a source's rows are not in table order
        src = np.empty((len(rows), f, t), np.float32)
        src[order] = x[rows]
        sources.append(src)
        local[rows] = order
    return SegmentTable(sources, part, local, labels, lengths, np.arange(n), [("clean", str(i)) for i in range(n)],
                        ["clean"])


def test_use_compile_auto_is_cuda_only():
    assert use_compile("auto", torch.device("cpu")) is False
    assert use_compile("on", torch.device("cpu")) and not use_compile("off", torch.device("cpu"))
    with pytest.raises(ValueError):
        use_compile("yes", torch.device("cpu"))


def test_epoch_plan_draws_what_the_plain_loop_draws():
    """Shuffle, then per batch Beta and permutation, from one generator: the plain loop's sequence."""
    n, bs, alpha = 45, 8, 0.5
    plan = draw_epoch(n, bs, alpha, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    batches = batch_indices(n, bs, True, rng, min_last=2)
    assert [b.tolist() for b in batches] == [b.tolist() for b in plan.batches] and len(batches[-1]) == 5
    for b, lam, perm in zip(batches, plan.lams, plan.perms):
        y = torch.arange(len(b), dtype=torch.float32).reshape(-1, 1, 1)
        t = torch.zeros(len(b), 4)
        mixed, _, _, lam_plain = mixup(y, t, torch.ones(len(b), dtype=torch.long), alpha, rng)
        assert lam_plain == lam
        assert torch.equal(mixed, lam * y + (1.0 - lam) * y[torch.from_numpy(perm)])
    r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
    draw_epoch(n, bs, alpha, r1)
    batches = batch_indices(n, bs, True, r2, min_last=2)
    for b in batches:
        mixup(torch.zeros(len(b), 1), torch.zeros(len(b), 4), torch.ones(len(b), dtype=torch.long), alpha, r2)
    assert r1.bit_generator.state == r2.bit_generator.state  # the next epoch starts from the same state
    no_mix = draw_epoch(n, bs, 0.0, np.random.default_rng(3))
    assert all(p is None for p in no_mix.perms) and np.all(no_mix.lams == 1.0)


@pytest.mark.parametrize("backend", [None, "eager"])
def test_segment_predictor_equals_the_plain_evaluation(backend):
    """Static padded batches (resident or gathered, compiled or not) give predict_segments' softmax rows:
    the padding of the last batch never leaks into the real rows (eval-mode batch norm)."""
    from lancet.training.evaluate import predict_segments

    table = _table(21, (26, 63), parts=2)  # 21 = 2 full batches of 8 + a padded one of 5
    seed_everything(1)
    model = build_model("TCNet", 4, 26, 63)
    model.train()(torch.randn(8, 1, 26, 63))  # batch-norm running statistics that are not the defaults
    mean, std = torch.full((26, 1), 0.1), torch.full((26, 1), 1.3)
    cpu = torch.device("cpu")
    reference = predict_segments(model, table, mean, std, cpu, batch_size=32)
    predictor = SegmentPredictor(model, mean, std, cpu, None, 8, backend=backend)
    for resident in (None, DeviceTable.load(table, cpu)):
        probs = predictor.predict(table, resident)
        assert probs.shape == (21, 4) and np.allclose(probs, reference, rtol=1e-4, atol=1e-6)


def test_compiled_run_evaluates_the_test_conditions_like_the_plain_run(tmp_path, monkeypatch):
    """--compile on: the test conditions go through the compiled predictor and give the plain metrics."""

    from lancet.training.grid import GridRun as Trainer, run_training
    from test_training import cfg_for, make_store

    store = make_store(tmp_path / "features")
    plain_settings = Trainer.settings
    monkeypatch.setattr(Trainer, "settings", lambda self: dataclasses.replace(plain_settings(self),
                                                                               compile_backend="eager"))
    used = []
    original = SegmentPredictor.predict
    monkeypatch.setattr(SegmentPredictor, "predict", lambda self, *a: used.append(a[0]) or original(self, *a))
    runs = {mode: run_training(cfg_for(tmp_path / mode, store, folds=("1",), epochs=2, compile=mode),
                               log=lambda m: None) for mode in ("off", "on")}
    tested = runs["on"]["records"]
    assert len(used) >= len(tested) + 2  # validation every epoch, then each test condition
    for a, b in zip(runs["off"]["records"], tested):
        assert a["condition"] == b["condition"]
        assert abs(a["ua"] - b["ua"]) <= 0.06 and abs(a["wa"] - b["wa"]) <= 0.06  # float-rounding flips at most


def test_device_table_gives_the_streamed_batches():
    table = _table(37, (6, 5), parts=3)
    dt = DeviceTable.load(table, torch.device("cpu"), chunk=8)  # several chunks
    for idx in batch_indices(len(table), 8, True, np.random.default_rng(0)):
        streamed = _make_batch(table, idx, pin=False)
        x, lengths, labels = dt.batch(torch.from_numpy(idx))
        assert torch.equal(x, streamed.x) and torch.equal(lengths, streamed.lengths)
        assert torch.equal(labels, streamed.labels)


def _run(model_name: str, shape, compile: str, backend: str | None, tmp_path, epochs: int = 2, n: int = 45,
         device: str = "cpu"):
    train, val = _table(n, shape, seed=1), _table(19, shape, seed=2)
    seed_everything(5)
    model = build_model(model_name, 4, *shape)
    s = TrainSettings(epochs=epochs, batch_size=8, lr=3e-3, mixup_alpha=0.5, class_weighted=True, workers=0,
                      eval_batch_size=16, progress=False, compile=compile, compile_backend=backend)
    res = train_model(model, train, val, np.zeros(shape[0]), np.ones(shape[0]), 4, s, torch.device(device), None,
                      tmp_path / f"{compile}-{backend}", 5, {})
    return res, model


def _same_trajectory(a, b, rtol: float, wa_tol: float = 0.0) -> None:
    la, lb = [h["loss"] for h in a.history], [h["loss"] for h in b.history]
    assert len(la) == len(lb) and np.allclose(la, lb, rtol=rtol, atol=0), (la, lb)
    assert [h["lr"] for h in a.history] == pytest.approx([h["lr"] for h in b.history], rel=1e-6)
    assert np.allclose([h["val_wa"] for h in a.history], [h["val_wa"] for h in b.history], rtol=0, atol=wa_tol)


def test_fast_path_uncompiled_matches_plain_loop(tmp_path):
    """Resident data, pre-drawn randomness, batched validation: the plain loop's numbers."""
    plain, m1 = _run("TCNet", (26, 63), "off", None, tmp_path)
    fast, m2 = _run("TCNet", (26, 63), "on", None, tmp_path)
    _same_trajectory(plain, fast, 1e-5)
    for p1, p2 in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.allclose(p1.float(), p2.float(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model_name,shape,backend", [
    ("TCNet", (26, 63), "eager"),  # dynamo's graphs run by eager torch: seconds
    pytest.param("TCNet", (26, 63), "aot_eager", marks=SLOW),  # + autograd graphs, functionalised: ~40 s on 2 cores
    pytest.param("LANCET", (32, 40), "aot_eager", marks=SLOW),
])
def test_compiled_step_matches_plain_loop_without_recompiling(model_name, shape, backend, tmp_path):
    """torch.compile (aot_eager: the graphs inductor gets, run without code generation; inductor's own
    code generation takes minutes per model on 2 cores, so it is left to bench/) of the whole
    step and of evaluation; the epoch's last batch (5 of 8 rows) runs uncompiled, so after the first
    compilation nothing is compiled again (error_on_recompile).

    Tolerance: compiled, RAdam computes its rectification and bias corrections in float32 tensors
    (rho_t = 1999 - 1993.0... at step 6 keeps about 4 digits) where the eager step uses Python doubles,
    which moves the loss by up to 1.1e-3 relative by epoch 3 (LANCET); a learning rate 5 % off moves
    it by 0.9 %, 2.7 % and 5.9 % in epochs 1-3 (measured on this test's data)."""
    import torch._dynamo

    plain, _ = _run(model_name, shape, "off", None, tmp_path, epochs=3)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled, _ = _run(model_name, shape, "on", backend, tmp_path, epochs=3)
    _same_trajectory(plain, compiled, 3e-3, wa_tol=0.06)  # one validation segment in 19


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (bench/gpu_check.sh runs this on a GPU)")
@pytest.mark.parametrize("model_name,shape", [("TCNet", (26, 63)), ("LANCET", (32, 40))])
def test_cuda_graphs_step_matches_plain_loop(model_name, shape, tmp_path, monkeypatch):
    """On CUDA: inductor, mode reduce-overhead (CUDA graphs), capturable RAdam, resident data: the
    plain loop's trajectory (TF32 off on both sides, no autocast), no recompilation."""
    import torch._dynamo

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    plain, _ = _run(model_name, shape, "off", None, tmp_path, epochs=3, device="cuda")
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled, _ = _run(model_name, shape, "on", "inductor", tmp_path, epochs=3, device="cuda")
    assert compiled.step == "compiled"
    _same_trajectory(plain, compiled, 5e-3, wa_tol=0.06)  # + cuDNN/inductor kernels; 5 % lr off: 2.7 % by epoch 2


def test_parser_is_generated_from_train_config():
    """Every TrainConfig field is a flag with the field's default; parsing nothing gives TrainConfig()."""

    from lancet.training.config import TrainConfig, build_parser, config_from_args

    p = build_parser()
    assert config_from_args(p.parse_args([])) == TrainConfig()
    cfg = config_from_args(p.parse_args(["--epochs", "3", "--no-progress", "--class-weighted", "--folds", "1", "3",
                                         "--compile", "on", "--models", "TCNet", "--model-options", "residual=false"]))
    assert cfg.epochs == 3 and not cfg.progress and cfg.class_weighted and cfg.folds == ("1", "3")
    assert cfg.compile == "on" and cfg.model_options == {"TCNet": {"residual": False}}
    flags = {a.dest for a in p._actions}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= flags
    with pytest.raises(SystemExit):
        p.parse_args(["--compile", "maybe"])
    assert build_parser({"results_dir": "elsewhere"}).parse_args([]).results_dir == "elsewhere"


def test_train_script_defaults_are_train_config_defaults():
    """train_LANCET.py keeps only its paths as constants; everything else is TrainConfig's."""
    import importlib.util

    from lancet.training.config import TrainConfig
    from lancet.training.config import TrainSettings

    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train_LANCET.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.build_parser().parse_args([])
    d = TrainConfig()
    assert args.epochs == d.epochs == TrainSettings().epochs and args.workers == d.workers == TrainSettings().workers
    assert args.features_dir == script.FEATURES_DIR and args.results_dir == script.RESULTS_DIR


class _Stop(Exception):
    pass


def test_resume_across_paths_continues_the_trajectory(tmp_path):
    """last.pt of the compiled path (tensor learning rate) resumes in the plain loop, and the reverse,
    on the uninterrupted trajectory: the resume state is the same for both."""
    shape = (26, 63)
    train, val = _table(45, shape, seed=1), _table(19, shape, seed=2)

    def run(compile, backend, ckpt, stop_after=None):
        seed_everything(5)
        model = build_model("TCNet", 4, *shape)
        s = TrainSettings(epochs=2, batch_size=8, lr=3e-3, workers=0, eval_batch_size=16, progress=False,
                          compile=compile, compile_backend=backend)

        def hook(epoch):
            if epoch == stop_after:
                raise _Stop

        return train_model(model, train, val, np.zeros(shape[0]), np.ones(shape[0]), 4, s, torch.device("cpu"), None,
                           ckpt, 5, {}, FitHooks(on_epoch_end=hook))

    ref = run("off", None, tmp_path / "ref")
    for first, then, name in ((("on", "eager"), ("off", None), "a"), (("off", None), ("on", "eager"), "b")):
        with pytest.raises(_Stop):
            run(*first, tmp_path / name, stop_after=1)
        saved = torch.load(tmp_path / name / "last.pt", weights_only=True)  # plain values and tensors only
        assert "__numpy__" not in saved and saved["epoch"] == 1 and len(saved["history"]) == 1
        res = run(*then, tmp_path / name)
        assert res.resumed_from == 1
        _same_trajectory(ref, res, 1e-3, wa_tol=0.06)
