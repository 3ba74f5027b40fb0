"""The online recipes beyond one noisy copy: K copies, paired clean/noisy views and their consistency term."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lancet.core.errors import LancetError
from lancet.corpora.demo import make_demo_corpus
from lancet.training.config import TrainConfig
from lancet.training.grid import run_training
from lancet.training.online import OnlineSettings
from lancet.training.plan import validate_config
from lancet.training.views import consistency, view_permutation, view_rows

from test_distributed import _env, _free_port
from test_pipeline import run
from test_training import ROOT
from test_robustness import _augmenter, online_corpus  # noqa: F401  (the module's fixture)


def test_one_copy_is_plain_online_and_k_copies_extend_it(online_corpus):  # noqa: F811
    plain = _augmenter(online_corpus).make_table(3)
    assert np.array_equal(_augmenter(online_corpus, copies=1).make_table(3).sources[0], plain.sources[0])
    three = _augmenter(online_corpus, copies=3).make_table(3)
    n = len(plain)
    assert plain.views == 1 and three.views == 1 and len(three) == 3 * n
    x3, per = three.sources[0], 2                       # every utterance here gives 2 segments
    # an utterance's copies follow one another, drawn one after the other from the epoch's generator: the
    # first utterance's first copy is plain online's; every copy is fresh noise on the same speech
    assert np.array_equal(x3[:per], plain.sources[0][:per])
    copies = x3.reshape(n // per, 3, per, *x3.shape[1:])
    assert all(not np.array_equal(copies[i, 0], copies[i, k]) for i in range(n // per) for k in (1, 2))
    assert np.array_equal(np.repeat(plain.labels.reshape(-1, per), 3, axis=0).ravel(), three.labels)
    assert len({k for k in three.utt_keys}) == 3 * (n // per)   # each copy is its own utterance key


def test_paired_views_share_the_utterance_and_resume_the_same(online_corpus):  # noqa: F811
    aug = _augmenter(online_corpus, paired=True)
    table = aug.make_table(2)
    n = len(table) // 2
    assert table.views == 2 and len(table) == 2 * n
    clean, noisy = table.sources[0][:n], table.sources[0][n:]
    assert np.array_equal(table.labels[:n], table.labels[n:]) and np.array_equal(table.lengths[:n], table.lengths[n:])
    keys = table.utt_keys
    assert [k[1] for k in keys[: len(keys) // 2]] == [k[1] for k in keys[len(keys) // 2:]]   # the same utterances
    assert [table.utt_keys[c][1] for c in table.utt[:n]] == [table.utt_keys[c][1] for c in table.utt[n:]]
    # view 0 is the clean audio's features: the same whatever the epoch; view 1 is fresh noise each epoch
    again = _augmenter(online_corpus, paired=True)
    assert np.array_equal(again.make_table(2).sources[0], table.sources[0])    # a resumed run sees the same
    other = aug.make_table(3).sources[0]
    assert np.array_equal(other[:n], clean) and not np.allclose(other[n:], noisy)
    assert float(np.mean(np.abs(noisy - clean))) > 0.1
    with pytest.raises(LancetError, match="online-clean-prob"):
        _augmenter(online_corpus, paired=True, clean_prob=0.3)


def test_the_consistency_term_is_zero_for_identical_views_and_grows_with_disagreement():
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.standard_normal((6, 4)))
    same = torch.cat([logits, logits])
    for kind in ("kl", "js"):
        assert abs(float(consistency(same, 2, kind))) < 1e-7
        apart = [float(consistency(torch.cat([logits, logits + s * torch.from_numpy(rng.standard_normal((6, 4)))]),
                                   2, kind)) for s in (0.1, 1.0, 5.0)]
        assert 0 < apart[0] < apart[1] < apart[2]
    assert float(consistency(torch.tensor([[9.0, -9.0], [-9.0, 9.0]]), 2, "js")) <= np.log(2) + 1e-6
    assert view_rows(np.array([1, 0]), 4, 3).tolist() == [1, 0, 5, 4, 9, 8]
    assert view_permutation(torch.tensor([2, 0, 1]), 2).tolist() == [2, 0, 1, 5, 3, 4]


def test_kl_pulls_only_the_noisy_view():
    logits = torch.randn(8, 4, requires_grad=True)
    consistency(logits + torch.cat([torch.zeros(4, 4), torch.randn(4, 4)]), 2, "kl").backward()
    assert torch.all(logits.grad[:4] == 0) and torch.any(logits.grad[4:] != 0)


@pytest.mark.parametrize("settings,message", [
    (dict(consistency="kl", online_paired=False), "--consistency kl: needs paired views"),
    (dict(consistency="js", train_on="clean"), "--consistency js: needs paired views"),
    (dict(consistency="kl", finetune=True, features="ssl", models=("SSLProbe",)), "--consistency kl: needs paired"),
    (dict(online_copies=2, train_on="clean"), "--online-copies: it shapes --train-on online's epochs"),
    (dict(online_copies=0), "--online-copies 0: must be >= 1"),
    (dict(online_clean_prob=0.2), "paired views .the default. show every segment clean already; pass "
                                  "--no-online-paired"),
])
def test_recipe_settings_that_cannot_work_are_one_line(tmp_path, settings, message):
    with pytest.raises(LancetError, match=message):
        validate_config(TrainConfig(**{"train_on": "online", **settings}))


def test_paired_views_are_the_default_where_they_apply():
    """Online training of stored features pairs its views by default; clean training and fine-tuning (batches of
    audio planned by length) take none, and config.json says which."""
    assert TrainConfig().paired_views and TrainConfig().to_json()["paired_views"] is True
    assert not TrainConfig(online_paired=False).paired_views
    assert not TrainConfig(train_on="clean").paired_views and not TrainConfig(train_on="all").paired_views
    finetune = TrainConfig(features="ssl", models=("SSLProbe",), finetune=True)
    assert not finetune.paired_views and finetune.to_json()["paired_views"] is False
    assert OnlineSettings.from_config(TrainConfig()).paired
    assert not OnlineSettings.from_config(finetune).paired
    validate_config(TrainConfig(train_on="clean"))          # the default does not stand in clean training's way
    validate_config(TrainConfig(online_paired=False, online_clean_prob=0.2))


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    """A demo corpus's clean MFCC store whose params.json names the audio (online training reads it)."""
    root = tmp_path_factory.mktemp("demo_store")
    make_demo_corpus(root / "IEMOCAP", seed=4, utterances_per_speaker=4)
    run("datasets/prepare_IEMOCAP.py", "--iemocap-dir", str(root / "IEMOCAP"), "--manifest", str(root / "m.csv"))
    run("datasets/handleIEMOCAP.py", "--manifest", str(root / "m.csv"), "--clean-only", "--out",
        str(root / "standard"))
    run("feature_extraction/extract_features_iemocap_mfcc.py", "--manifest", str(root / "standard" / "manifest.csv"),
        "--out", str(root / "features" / "mfcc"), "--no-progress", "--workers", "1")
    return root / "features"


def test_paired_training_end_to_end_resumes_with_the_same_metrics(demo_store, tmp_path):
    """Demo corpus, online paired views with the JS consistency term: killed after epoch 1, resumed, the same."""
    def cfg(name):
        return TrainConfig(features_dir=str(demo_store), features="mfcc", models=("TCNet",), epochs=3,
                           folds=("1",), train_on="online", online_paired=True, consistency="js",
                           online_noise_types=("white", "babble"), online_reverb_prob=0.0, run_name=name,
                           results_dir=str(tmp_path / "results"), device="cpu", amp="off", workers=0, threads=1,
                           progress=False)

    class Stop(Exception):
        pass

    def stop(unit, epoch):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        run_training(cfg("killed"), log=lambda *_: None, on_epoch_end=stop)
    resumed = run_training(cfg("killed"), log=lambda *_: None)
    whole = run_training(cfg("whole"), log=lambda *_: None)
    assert [r["ua"] for r in resumed["records"]] == [r["ua"] for r in whole["records"]]
    history = [json.loads(p.read_text()) for p in sorted((tmp_path / "results" / "whole" / "metrics").glob("*.json"))]
    assert history and history[0][0]["train_on"] == "online"


def test_paired_views_train_data_parallel_with_each_segments_views_on_one_rank(demo_store, tmp_path):
    """Under torchrun --ddp each rank takes its shard of a global batch's segments with all their views: the
    ranks together see every training segment once per view, in the global batches of the plain run."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), str(ROOT / "train_LANCET.py"), "--features-dir", str(demo_store),
           "--results-dir", str(tmp_path), "--run-name", "ddp", "--features", "mfcc", "--models", "TCNet",
           "--folds", "1", "--epochs", "2", "--batch-size", "8", "--device", "cpu", "--amp", "off", "--workers", "0",
           "--threads", "1", "--no-progress", "--ddp", "--online-noise-types", "white", "babble",
           "--online-reverb-prob", "0", "--consistency", "js"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = re.search(r"data-parallel on 2 ranks: (\d+) steps per epoch, (\d+) segments per epoch, global batch (\d+)",
                  r.stdout)
    assert m, r.stdout[-2000:]
    steps, segments, batch = map(int, m.groups())
    n_train = int(re.search(r"fold1 online seed \d+\] (\d+) training x 2 views", r.stdout).group(1))
    assert batch == 8 and segments == 2 * n_train and steps == -(-n_train // 8)
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["paired_views"] is True and config["ddp"] is True
    metrics = json.loads((tmp_path / "ddp" / "metrics" / "TCNet__train-online__seed987654__fold1.json").read_text())
    assert {m["condition"] for m in metrics} >= {"clean"}
