"""Tests of lancet.training: metrics, protocols, data, pooling, mixup, the loop, resume, end to end."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from lancet.core.atomic import save_csv, save_json, save_npy
from lancet.core.errors import LancetError
from lancet.training import metrics as M
from lancet.training.config import TrainConfig
from lancet.training.data import SegmentTable, batch_indices, build_table, class_weights, iter_batches, mixup
from lancet.core.conditions import parse_condition, sort_conditions
from lancet.training.evaluate import pool_utterances, robustness_matrix
from lancet.training.folds import Utterance, loso_folds, make_folds, random_split

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("neutral", "happy", "sad", "angry")
INDEX_COLUMNS = ["row", "id", "condition", "session", "speaker", "gender", "improvised", "class", "start_s", "valid_frames"]


# ----------------------------------------------------------------------------- a tiny store on disk
def make_store(root: Path, conditions=("clean", "white_0dB", "white_20dB"), sessions=5, per_class=3,
               improvised=True, seed=0, kind="mfcc") -> Path:
    """A feature store in the PIPELINE.md format with a learnable signal: class c raises frequency band c.

    Noisy conditions add more noise (0 dB more than 20 dB). Some utterances are short: one padded segment.
    """
    from lancet.features.params import SegmentParams, make_params, params_record

    rng = np.random.default_rng(seed)
    record = params_record(make_params(kind), SegmentParams(), "float32")
    F, T = record["shape"]
    band = F // 4
    utts = []
    for s in range(1, sessions + 1):
        for g in "MF":
            for c, name in enumerate(CLASSES):
                for k in range(per_class):
                    uid = f"Ses{s:02d}{g}_impro0{k}_{g}{c}{k:02d}"
                    n_seg = 1 + (k % 3)
                    utts.append((uid, s, f"Ses{s:02d}{g}", g, name, c, n_seg, k == 0))
    record["conditions"] = {}
    folder = root / kind
    for cond in conditions:
        noise = {"clean": 0.6, "white_20dB": 0.8}.get(cond, 1.2)
        xs, rows = [], []
        for uid, s, spk, g, name, c, n_seg, short in utts:
            for j in range(n_seg):
                x = rng.normal(0, noise, (F, T)).astype(np.float32) + 3.0
                x[c * band:(c + 1) * band] += 1.5
                valid = T // 2 if short else T
                x[:, valid:] = 0.0
                rows.append({"row": len(rows), "id": uid, "condition": cond, "session": s, "speaker": spk, "gender": g,
                             "improvised": int(improvised), "class": name, "start_s": float(j), "valid_frames": valid})
                xs.append(x)
        save_npy(folder / f"{cond}.npy", np.stack(xs))
        save_csv(folder / f"{cond}.csv", rows, INDEX_COLUMNS)
        record["conditions"][cond] = {"n_utterances": len(utts), "n_segments": len(rows), "fingerprint": "test"}
    save_json(folder / "params.json", record)
    return root


def cfg_for(tmp: Path, features_dir: Path, **kw) -> TrainConfig:
    base = dict(features_dir=str(features_dir), features="mfcc", models=("TCNet",), epochs=2, results_dir=str(tmp / "results"),
                device="cpu", amp="off", workers=0, threads=1, progress=False, run_name="t",
                train_on="clean")   # synthetic stores have no audio to mix noise into
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("features"))


# ----------------------------------------------------------------------------- metrics
@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_sklearn(seed):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    t = rng.integers(0, 4, n)
    p = np.where(rng.random(n) < 0.6, t, rng.integers(0, 4, n))
    if seed == 5:  # a class never predicted, and one with very few samples
        p[p == 3] = 0
    m = M.classification_metrics(t, p, 4)
    assert m["wa"] == pytest.approx(accuracy_score(t, p))
    assert m["ua"] == pytest.approx(balanced_accuracy_score(t, p))
    if len(set(t)) == 4:
        assert m["ua"] == pytest.approx(recall_score(t, p, average="macro", zero_division=0))
    assert m["macro_f1"] == pytest.approx(f1_score(t, p, average="macro", zero_division=0))
    assert np.array_equal(np.array(m["confusion"]), confusion_matrix(t, p, labels=range(4)))


def test_metrics_known_case():
    t = [0, 0, 0, 0, 1, 1, 2, 3]
    p = [0, 0, 0, 1, 1, 1, 0, 3]
    m = M.classification_metrics(t, p, 4)
    assert m["wa"] == pytest.approx(6 / 8)
    assert m["ua"] == pytest.approx((3 / 4 + 1 + 0 + 1) / 4)
    assert M.selection_score(m) == pytest.approx((6 / 8 + 11 / 16) / 2)
    # class 2 absent from both reference and predictions does not count in UA or F1
    from sklearn.metrics import balanced_accuracy_score, f1_score
    t2, p2 = [0, 1, 1, 3], [0, 1, 3, 3]
    m2 = M.classification_metrics(t2, p2, 4)
    assert m2["ua"] == pytest.approx(balanced_accuracy_score(t2, p2))
    assert m2["macro_f1"] == pytest.approx(f1_score(t2, p2, average="macro"))
    assert M.mean_std([0.5, 0.7]) == pytest.approx((0.6, 0.1))


# ----------------------------------------------------------------------------- protocols
def _utterances(n_sessions=5, per=20, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(1, n_sessions + 1):
        for g in "MF":
            for k in range(per):
                out.append(Utterance(f"Ses{s:02d}{g}_x_{g}{k:03d}", str(s), f"Ses{s:02d}{g}",
                                     CLASSES[int(rng.integers(0, 4))], bool(k % 2)))
    return out


def test_loso_no_speaker_overlap_and_validation_disjoint():
    utts = _utterances()
    folds = loso_folds(utts)
    assert [f.name for f in folds] == [f"fold{s}" for s in range(1, 6)]
    spk = {u.id: u.speaker for u in utts}
    ses = {u.id: u.session for u in utts}
    tested = set()
    for i, f in enumerate(folds):
        sides = [{spk[u] for u in ids} for ids in (f.train, f.val, f.test)]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
        assert not (f.val & f.test) and not (f.train & f.test) and not (f.train & f.val)
        assert f.train | f.val | f.test == {u.id for u in utts}
        assert {ses[u] for u in f.test} == {str(i + 1)}
        assert {ses[u] for u in f.val} == {str((i + 1) % 5 + 1)}  # next session cyclically
        tested |= f.test
    assert tested == {u.id for u in utts}  # every utterance tested exactly once over the folds
    with pytest.raises(LancetError, match="at least 3 sessions"):
        loso_folds([u for u in utts if u.session in ("1", "2")])


def test_loso_on_store_index(store, tmp_path):
    from lancet.training.grid import GridRun as Trainer

    tr = Trainer(cfg_for(tmp_path, store))
    idx = tr.view.index("clean")
    spk = dict(zip(idx.ids, idx.speakers))
    for f in tr.folds:
        assert not ({spk[i] for i in f.train} & {spk[i] for i in f.test})
        assert not ({spk[i] for i in f.val} & {spk[i] for i in f.test})
        assert not ({spk[i] for i in f.train} & {spk[i] for i in f.val})


def test_random_split_stratified_and_reproducible():
    utts = _utterances(per=50)
    f = random_split(utts)
    assert not f.speaker_independent
    n = len(utts)
    assert abs(len(f.train) - 0.8 * n) <= 2 and abs(len(f.val) - 0.1 * n) <= 2 and abs(len(f.test) - 0.1 * n) <= 2
    cls = {u.id: u.cls for u in utts}
    overall = Counter(cls.values())
    for side in (f.train, f.val, f.test):
        counts = Counter(cls[i] for i in side)
        for c, total in overall.items():
            assert abs(counts[c] - total * len(side) / n) <= 1.5
    assert random_split(utts).test == f.test  # random_state 42
    assert not (f.train & f.test or f.val & f.test or f.train & f.val)


def test_fold_subset_and_unknown_fold():
    utts = _utterances()
    assert [f.name for f in make_folds(utts, "loso", ["2", "fold4"])] == ["fold2", "fold4"]
    with pytest.raises(LancetError, match="no fold"):
        make_folds(utts, "loso", ["9"])


def test_split_is_per_utterance_across_segments_and_conditions(store, tmp_path):
    from lancet.training.grid import GridRun as Trainer

    tr = Trainer(cfg_for(tmp_path, store))
    fold = tr.folds[0]
    conds = tr.conditions
    train = build_table(tr.view, conds, fold.train, tr.class_to_label, 1e9)
    test = build_table(tr.view, conds, fold.test, tr.class_to_label, None)
    assert train.in_ram and not test.in_ram
    train_ids = {k[1] for k in train.utt_keys}
    test_ids = {k[1] for k in test.utt_keys}
    assert not train_ids & test_ids
    # every segment of every test utterance, in every condition, is in the test table
    n_expected = sum(int(np.isin(tr.view.index(c).ids, list(fold.test)).sum()) for c in conds)
    assert len(test) == n_expected
    # gathering from RAM and from the memory map gives the same arrays
    idx = np.array([3, 0, len(test) - 1, 5])
    mm = build_table(tr.view, conds, fold.test, tr.class_to_label, None)
    ram = build_table(tr.view, conds, fold.test, tr.class_to_label, 1e12)
    assert np.array_equal(mm.gather(idx), ram.gather(idx))


# ----------------------------------------------------------------------------- pooling, mixup, batches
def test_pooling_mean_and_vote():
    probs = np.array([
        [0.6, 0.4, 0, 0], [0.6, 0.4, 0, 0], [0.0, 1.0, 0, 0],   # utt 0: votes 2x class 0, mean favours class 1
        [0.1, 0.2, 0.7, 0],                                       # utt 1: one segment
        [0.9, 0.1, 0, 0], [0.0, 0.0, 0.05, 0.95],                 # utt 2: vote tie 0 vs 3 -> mean decides (0.475 > 0.45)
    ])
    utt = np.array([0, 0, 0, 1, 2, 2])
    scores, pred = pool_utterances(probs, utt, 3, "mean")
    assert pred.tolist() == [1, 2, 3]
    assert np.allclose(scores[0], [0.4, 0.6, 0, 0])
    vscores, vpred = pool_utterances(probs, utt, 3, "vote")
    assert vpred.tolist() == [0, 2, 3]
    assert np.allclose(vscores[0], [2 / 3, 1 / 3, 0, 0])


def test_mixup_mixes_inputs_targets_and_lengths():
    rng = np.random.default_rng(1)
    x = torch.arange(4 * 2 * 3, dtype=torch.float32).reshape(4, 2, 3)
    y = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3]), 4).float()
    lengths = torch.tensor([3, 1, 2, 3])
    xm, ym, lm, lam = mixup(x, y, lengths, 0.5, rng)
    assert 0.0 <= lam <= 1.0
    assert torch.allclose(ym.sum(1), torch.ones(4))
    # the same generator draws lam and then the permutation
    rng2 = np.random.default_rng(1)
    lam2 = rng2.beta(0.5, 0.5)
    p = torch.from_numpy(rng2.permutation(4))
    assert lam == pytest.approx(lam2)
    assert torch.allclose(xm, lam * x + (1 - lam) * x[p])
    assert torch.allclose(ym, lam * y + (1 - lam) * y[p])
    assert torch.equal(lm, torch.maximum(lengths, lengths[p]))
    x0, y0, l0, lam0 = mixup(x, y, lengths, 0.0, rng)
    assert lam0 == 1.0 and x0 is x and y0 is y


def test_batches_and_class_weights():
    rng = np.random.default_rng(0)
    b = batch_indices(65, 32, True, rng, min_last=2)
    assert [len(i) for i in b] == [32, 32]  # a last batch of one is dropped (batch norm)
    b = batch_indices(66, 32, False, None, min_last=2)
    assert np.array_equal(np.concatenate(b), np.arange(66))
    w = class_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    assert w.tolist() == pytest.approx([6 / 9, 6 / 3, 6 / 6, 0.0])


def _table(n=40, F=8, T=10, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(rng.integers(0, 2, n // 2), 2)  # two segments per utterance
    x = rng.normal(0, 1, (n, F, T)).astype(np.float32)
    x[labels == 1, :2] += 2.0
    return SegmentTable([x], np.zeros(n, np.int32), np.arange(n), labels.astype(np.int64), np.full(n, T, np.int64),
                        np.arange(n) // 2, [("clean", str(i)) for i in range(n // 2)], ["clean"]), labels


def test_prefetch_threads_give_same_batches():
    table, _ = _table()
    b = batch_indices(len(table), 7, True, np.random.default_rng(3))
    sync = [x.x for x in iter_batches(table, b, workers=0)]
    threaded = [x.x for x in iter_batches(table, b, workers=2)]
    assert all(torch.equal(a, c) for a, c in zip(sync, threaded)) and len(sync) == len(threaded)


def test_device_normalisation_matches_features_normalise():
    from lancet.features import compute_norm_stats, normalise
    from lancet.training.evaluate import to_model_input

    x = np.random.default_rng(0).normal(2, 3, (5, 6, 7)).astype(np.float32)
    mean, std = compute_norm_stats(x)
    got = to_model_input(torch.from_numpy(x), torch.from_numpy(mean).reshape(-1, 1), torch.from_numpy(std).reshape(-1, 1))
    assert torch.allclose(got[:, 0], torch.from_numpy(normalise(x, mean, std)), atol=1e-5)


class _Tiny(torch.nn.Module):
    def __init__(self, F=8):
        super().__init__()
        self.lin = torch.nn.Linear(F, 2)

    def forward(self, x, lengths=None):
        return self.lin(x[:, 0].mean(-1))


def test_loop_learns_and_decays_lr_to_floor(tmp_path):
    from lancet.training.checkpoint import BEST, load_checkpoint
    from lancet.training.config import TrainSettings
    from lancet.training.fit import make_optimizer, seed_everything, train_model

    table, _ = _table(n=80)
    seed_everything(0)
    model = _Tiny()
    s = TrainSettings(epochs=4, batch_size=8, lr=0.2, mixup_alpha=0.5, class_weighted=True, progress=False)
    res = train_model(model, table, table, np.zeros(8), np.ones(8), 2, s, torch.device("cpu"), None, tmp_path, 0,
                      {"model_name": "tiny"})
    assert res.best_val["ua"] > 0.8 and res.epochs_run == 4
    best = load_checkpoint(tmp_path / BEST)
    assert best["model_name"] == "tiny" and best["epoch"] == res.best_epoch and "norm_mean" in best
    opt, sched = make_optimizer(torch.nn.Linear(1, 1), TrainSettings(lr=1e-3, lr_decay=0.95))
    lrs = []
    for _ in range(200):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1e-3 * 0.95) and min(lrs) == pytest.approx(1e-6)
    assert isinstance(opt, torch.optim.RAdam) and opt.defaults["weight_decay"] == 1e-6


def test_early_stopping(tmp_path):
    from lancet.training.config import TrainSettings
    from lancet.training.fit import train_model

    table, _ = _table(n=40)
    s = TrainSettings(epochs=30, batch_size=8, lr=0.0 + 1e-9, lr_floor=1e-12, patience=2, progress=False)
    res = train_model(_Tiny(), table, table, np.zeros(8), np.ones(8), 2, s, torch.device("cpu"), None, tmp_path, 0, {})
    assert res.epochs_run == 3  # first epoch sets the best, then 2 without a gain


# ----------------------------------------------------------------------------- conditions and the matrix
def test_conditions_and_matrix():
    assert parse_condition("clean") == ("clean", None)
    assert parse_condition("babble_-5dB") == ("babble", -5.0)
    assert parse_condition("reverberation_large") == ("reverberation", None)
    assert sort_conditions(["white_20dB", "babble_0dB", "clean", "white_-5dB"]) == ["clean", "babble_0dB", "white_-5dB", "white_20dB"]
    recs = [{"model": "A", "train_on": "clean", "condition": "clean", "fold": f, "seed": 1, "wa": wa, "ua": ua, "macro_f1": 0.5}
            for f, wa, ua in (("fold1", 0.5, 0.4), ("fold2", 0.7, 0.6))]
    rows = robustness_matrix(recs)
    assert len(rows) == 1 and rows[0]["wa_mean"] == pytest.approx(0.6) and rows[0]["wa_std"] == pytest.approx(0.1)
    assert rows[0]["runs"] == 2 and rows[0]["folds"] == 2
