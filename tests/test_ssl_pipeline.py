"""The self-supervised baselines through the pipeline: extraction into a store, training, the noise matrix,
cross-corpus testing, prediction and fine-tuning, on the demo corpus and tiny random upstreams, offline.

Nothing is fetched: the in-process parts run with the network shut (sockets refuse to connect, the hub's
downloads refuse anything but a cache lookup; asserted at the end of the module), the scripts with the hub
in offline mode.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from lancet.core.atomic import save_csv  # noqa: E402
from lancet.core.audio import load_audio, write_wav  # noqa: E402
from lancet.core.errors import LancetError  # noqa: E402
from lancet.corpora.demo import make_demo_corpus  # noqa: E402
from lancet.features import open_features  # noqa: E402
from lancet.features.extract_ssl import extract_ssl_features  # noqa: E402
from lancet.ssl import SuperbProbe, UpstreamClassifier, layer_means, load_upstream, save_tiny_upstream  # noqa: E402
from lancet.training.config import TrainConfig, TrainSettings  # noqa: E402
from lancet.training.fit import make_optimizer  # noqa: E402
from lancet.training.grid import run_training  # noqa: E402
from lancet.training.plan import validate_config  # noqa: E402
from lancet.training.predict import load_predictor, predict_files  # noqa: E402
from lancet.training.ssl_upstream import load_recorded_upstream  # noqa: E402

from test_ssl import shut_network  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
CONDITIONS = {"clean", "white_0dB", "babble_0dB"}


@pytest.fixture(scope="module", autouse=True)
def network_shut():
    """For the whole module: offline hub, no socket connects, hub downloads only from the cache; nothing tried."""
    with pytest.MonkeyPatch.context() as patch:
        attempts = shut_network(patch)
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # the shared 2-core CI machine: spinning threads cost more than they give
        yield attempts
        torch.set_num_threads(before)
    assert not attempts, f"something tried to fetch: {attempts}"


def run(script: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **OFFLINE)
    result = subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True, text=True, cwd=REPO,
                            env=env, timeout=600)
    if ok:
        assert result.returncode == 0, f"{script} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def quiet(_message: str) -> None:
    pass


# ----------------------------------------------------------------------------- the demo pipeline
@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict:
    """Demo corpus -> noise -> standard names -> ssl statistics (script) -> train_LANCET.py --features ssl with
    the default online recipe and a cross-corpus store (a second demo corpus, clean) -> predict.py."""
    tmp = tmp_path_factory.mktemp("ssl_pipeline")
    p = {"tmp": tmp, "tiny": save_tiny_upstream(tmp / "tiny-wavlm", "wavlm", seed=3),
         "features": tmp / "features", "results": tmp / "results", "other": tmp / "other" / "features"}
    labels = make_demo_corpus(tmp / "IEMOCAP", seed=1, utterances_per_speaker=4)
    p["kept"] = sum(n for label, n in labels.items() if label in ("neu", "hap", "exc", "sad", "ang"))
    run("datasets/prepare_IEMOCAP.py", "--iemocap-dir", str(tmp / "IEMOCAP"), "--manifest", str(tmp / "manifest.csv"))
    run("datasets/augment_IEMOCAP.py", "--manifest", str(tmp / "manifest.csv"), "--out", str(tmp / "augmented"),
        "--noise-types", "white", "babble", "--snrs", "0", "--no-reverb", "--no-progress")
    run("datasets/handleIEMOCAP.py", "--manifest", str(tmp / "manifest.csv"), "--augmented-dir",
        str(tmp / "augmented"), "--out", str(tmp / "standard"))
    p["extract_log"] = run("feature_extraction/extract_features_ssl.py", "--upstream", str(p["tiny"]), "--manifest",
                           str(tmp / "standard" / "manifest.csv"), "--out", str(p["features"] / "ssl"),
                           "--no-progress", "--threads", "1", "--workers", "1").stdout
    # the test corpus of the cross-corpus table: another demo corpus (other voices), clean only, same upstream
    make_demo_corpus(tmp / "other" / "IEMOCAP", seed=2, utterances_per_speaker=3)
    run("datasets/prepare_IEMOCAP.py", "--iemocap-dir", str(tmp / "other" / "IEMOCAP"), "--manifest",
        str(tmp / "other" / "manifest.csv"))
    run("datasets/handleIEMOCAP.py", "--manifest", str(tmp / "other" / "manifest.csv"), "--clean-only", "--out",
        str(tmp / "other" / "standard"))
    extract_ssl_features(tmp / "other" / "standard" / "manifest.csv", p["other"] / "ssl", p["tiny"], device="cpu",
                         threads=1, workers=1, progress=False, log=quiet)
    p["train_log"] = run(
        "train_LANCET.py", "--features-dir", str(p["features"]), "--features", "ssl", "--upstream", str(p["tiny"]),
        "--models", "SSLProbe", "--epochs", "2", "--folds", "1", "2", "--online-noise-types", "white", "babble",
        "--online-reverb-prob", "0", "--test-features-dir", str(p["other"]), "--results-dir", str(p["results"]),
        "--run-name", "probe", "--no-progress", "--threads", "1", "--workers", "0").stdout
    p["run"] = p["results"] / "probe"
    return p


def test_the_store_holds_one_statistic_per_utterance_and_condition(pipeline):
    store = open_features(pipeline["features"] / "ssl")
    assert store.kind == "ssl" and store.shape == (3, 32)  # 2 tiny layers + the CNN projection, 32 units
    assert set(store.conditions) == CONDITIONS
    params = store.params["params"]
    identity = load_upstream(pipeline["tiny"]).identity()
    assert params["upstream"] == str(pipeline["tiny"].resolve()) and params["weights_sha256"] == identity["weights_sha256"]
    assert params["transformers"] == transformers.__version__ and params["precision"] == "float32"
    for cond in CONDITIONS:
        index = store.index(cond)
        assert len(index) == pipeline["kept"] and len({r["id"] for r in index}) == pipeline["kept"]
        assert all(r["start_s"] == 0.0 and r["valid_frames"] >= 45 for r in index)  # >= 1 s at 50 frames per s
        assert np.isfinite(store.segments(cond)).all() and store.params["conditions"][cond]["checksum"]
    assert f"clean: {pipeline['kept']} utterances -> {pipeline['kept']} segments" in pipeline["extract_log"]


def test_train_reports_every_condition_and_the_cross_corpus_table(pipeline):
    run_dir, log = pipeline["run"], pipeline["train_log"]
    config = json.loads((run_dir / "config.json").read_text())
    store = open_features(pipeline["features"] / "ssl")
    assert config["features"] == "ssl" and config["feature_shape"] == [3, 32] and config["train_on"] == "online"
    # the run's identity carries the upstream's: another checkpoint's statistics would be another run
    assert config["identity"]["features"]["settings"]["params"] == store.params["params"]
    assert "--train-on online: the upstream computed the statistics of" in log  # one upstream pass per epoch
    records = [r for f in sorted((run_dir / "metrics").glob("*.json")) for r in json.loads(f.read_text())]
    assert Counter(r["condition"] for r in records) == {c: 2 for c in CONDITIONS}  # 2 folds
    for r in records:
        assert r["model"] == "SSLProbe" and r["train_on"] == "online" and r["n_utterances"] == 10  # 1 session
        assert 0.0 <= r["ua"] <= 1.0 and 0.0 <= r["wa"] <= 1.0 and np.isfinite(r["macro_f1"])
    summary = {row["condition"]: row for row in csv.DictReader(open(run_dir / "summary.csv"))}
    assert set(summary) == CONDITIONS and all(int(row["runs"]) == 2 for row in summary.values())
    assert "SSLProbe (train online)" in log and "CROSS-CORPUS" in log
    cross = [r for f in sorted((run_dir / "cross_corpus" / "metrics").glob("*.json")) for r in json.loads(f.read_text())]
    other = open_features(pipeline["other"] / "ssl")
    assert [r["condition"] for r in cross] == ["clean", "clean"]
    assert all(r["n_utterances"] == len(other.index("clean")) for r in cross)
    best = torch.load(run_dir / "checkpoints/SSLProbe/train-online/seed987654/fold1/best.pt", weights_only=True)
    assert best["input"] == "statistics" and best["feature_kind"] == "ssl"
    assert set(best["model_state"]) == {"layer_sum.weights", "projector.weight", "projector.bias", "classifier.weight",
                                        "classifier.bias"}
    assert best["norm_mean"].tolist() == [0.0] and best["norm_std"].tolist() == [1.0]  # the statistics as they are


def test_stored_statistics_give_the_logits_of_the_head_on_the_frames(pipeline):
    """Through the real store: a row of the clean array equals the per-layer means of its wav computed here, and
    the probe on the row gives the logits of the probe on the upstream's frames."""
    store = open_features(pipeline["features"] / "ssl")
    rows = {r["id"]: r for r in store.index("clean")}
    manifest = {r["id"]: r["path"] for r in csv.DictReader(open(pipeline["tmp"] / "standard" / "manifest.csv"))
                if r["condition"] == "clean"}
    upstream = load_upstream(pipeline["tiny"])
    torch.manual_seed(0)
    probe = SuperbProbe(4, upstream.n_layers, upstream.hidden_size, proj_size=16).eval()
    with torch.no_grad():
        probe.layer_sum.weights.normal_()
    for uid in sorted(rows)[:4]:
        wave = torch.from_numpy(load_audio(manifest[uid]))[None]
        with torch.no_grad():
            out = upstream(wave)
            stored = torch.from_numpy(np.array(store.segments("clean")[rows[uid]["row"]]))[None]
            assert rows[uid]["valid_frames"] == int(out.frames[0])
            assert torch.allclose(stored, layer_means(out.hidden_states, out.mask), atol=1e-5)
            assert torch.allclose(probe(stored[:, None]), probe.forward_frames(out.hidden_states, out.mask), atol=1e-5)


def test_predict_labels_a_wav_as_the_run_tested_its_stored_statistics(pipeline):
    """predict.py's path (the upstream named in the checkpoint, loaded from local files, identity checked) gives
    the probabilities the trainer's evaluation computed from the store."""
    best = pipeline["run"] / "checkpoints/SSLProbe/train-online/seed987654/fold1/best.pt"
    predictor = load_predictor(best, device="cpu")
    assert predictor.input == "statistics" and predictor.upstream is not None
    store = open_features(pipeline["features"] / "ssl")
    test = [r for r in store.index("clean") if r["session"] == 1][:3]
    paths = {r["id"]: r["path"] for r in csv.DictReader(open(pipeline["tmp"] / "standard" / "manifest.csv"))
             if r["condition"] == "clean"}
    results, names = predict_files(best, [paths[r["id"]] for r in test], device="cpu")
    x = torch.from_numpy(np.asarray(store.segments("clean"))[[r["row"] for r in test]])
    with torch.no_grad():
        expected = torch.softmax(predictor.model(x[:, None]), -1).numpy()
    assert names == ["neutral", "happy", "sad", "angry"]
    assert np.allclose([r["scores"] for r in results], expected, atol=1e-5)
    assert all(r["n_segments"] == 1 for r in results)  # a clip of up to 30 s is one utterance
    out = run("predict.py", "--checkpoint", str(pipeline["run"]), "--no-progress", paths[test[0]["id"]]).stdout
    assert "2 models vote (SSLProbe" in out and Path(paths[test[0]["id"]]).name in out


def test_a_store_of_another_upstream_is_refused_for_cross_corpus_testing(pipeline, tmp_path):
    hubert = save_tiny_upstream(tmp_path / "tiny-hubert", "hubert")
    other = tmp_path / "features"
    extract_ssl_features(pipeline["tmp"] / "other" / "standard" / "manifest.csv", other / "ssl", hubert, device="cpu",
                         threads=1, workers=1, progress=False, log=quiet)
    cfg = TrainConfig(features_dir=str(pipeline["features"]), features="ssl", models=("SSLProbe",), epochs=1,
                      folds=("1",), train_on="clean", test_features_dir=str(other), results_dir=str(tmp_path / "r"),
                      device="cpu", amp="off", workers=0, threads=1, progress=False)
    with pytest.raises(LancetError) as err:
        run_training(cfg, log=quiet)
    text = str(err.value)
    assert "extracted with other settings" in text and "params.weights_sha256" in text and "\n" not in text
    assert "params.model_type (wavlm -> hubert)" in text
    # the upstream of online noise and fine-tuning is held to the store's too
    wrong = TrainConfig(**{**cfg.__dict__, "test_features_dir": None, "train_on": "online", "upstream": str(hubert)})
    with pytest.raises(LancetError, match=r"--upstream .*tiny-hubert: model_type hubert, but .*ssl records wavlm") as err:
        run_training(wrong, log=quiet)
    assert "\n" not in str(err.value)


def test_a_missing_checkpoint_is_one_line_naming_the_download(pipeline, tmp_path):
    result = run("feature_extraction/extract_features_ssl.py", "--upstream", "lancet-tests/no-such-upstream",
                 "--manifest", str(pipeline["tmp"] / "standard" / "manifest.csv"), "--out", str(tmp_path / "ssl"),
                 ok=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: upstream lancet-tests/no-such-upstream: not in the local Hugging Face cache")
    assert ("download it once with: python -c \"from transformers import AutoModel as M, AutoFeatureExtractor as F; "
            "M.from_pretrained('lancet-tests/no-such-upstream')") in lines[0]
    assert not (tmp_path / "ssl").exists()


def test_a_float16_store_keeps_the_statistics(pipeline, tmp_path):
    manifest = pipeline["tmp"] / "other" / "standard" / "manifest.csv"
    summary = extract_ssl_features(manifest, tmp_path / "ssl", pipeline["tiny"], dtype="float16", device="cpu",
                                   threads=1, workers=1, progress=False, log=quiet)
    half, full = open_features(tmp_path / "ssl"), open_features(pipeline["other"] / "ssl")
    assert summary.n_segments == len(full.index("clean")) and half.dtype == np.float16
    a, b = np.asarray(half.segments("clean"), np.float32), np.asarray(full.segments("clean"))
    assert np.allclose(a, b, rtol=1e-3, atol=1e-3)


def test_short_utterances_are_counted_and_another_upstream_is_refused_in_the_same_folder(pipeline, tmp_path):
    rows = []
    for k, n in enumerate((16000, 200, 8000)):  # 200 samples: shorter than the upstream's first frame (345)
        write_wav(tmp_path / f"u{k}.wav", (0.1 * np.random.default_rng(k).standard_normal(n)).astype(np.float32))
        rows.append({"id": f"Ses01F_impro01_F00{k}", "condition": "clean", "path": f"u{k}.wav", "session": 1,
                     "speaker": "Ses01F", "gender": "F", "improvised": 1, "label": "neu", "class": "neutral"})
    save_csv(tmp_path / "manifest.csv", rows, list(rows[0]))
    summary = extract_ssl_features(tmp_path / "manifest.csv", tmp_path / "ssl", pipeline["tiny"], device="cpu",
                                   threads=1, workers=1, progress=False, log=quiet)
    assert summary.n_segments == 2 and summary.conditions[0].short_dropped == 1
    index = open_features(tmp_path / "ssl").index("clean")
    assert [r["id"] for r in index] == ["Ses01F_impro01_F000", "Ses01F_impro01_F002"]
    assert [r["valid_frames"] for r in index] == [49, 24]  # (samples - 345) // 320 + 1
    hubert = save_tiny_upstream(tmp_path / "tiny-hubert", "hubert")
    with pytest.raises(LancetError, match=r"other settings \(differs: .*params\.weights_sha256.*--overwrite") as err:
        extract_ssl_features(tmp_path / "manifest.csv", tmp_path / "ssl", hubert, device="cpu", threads=1, workers=1,
                             progress=False, log=quiet)
    assert "\n" not in str(err.value)


def test_a_checkpoint_whose_upstream_changed_is_refused(pipeline):
    record = open_features(pipeline["features"] / "ssl").params
    changed = {**record, "params": {**record["params"], "weights_sha256": "0" * 64}}
    with pytest.raises(LancetError, match=r"upstream .*tiny-wavlm: weights [0-9a-f]{12}, but best\.pt records "
                                          r"000000000000 .*give the checkpoint it was extracted with") as err:
        load_recorded_upstream(changed, "best.pt", flag="upstream")
    assert "\n" not in str(err.value)


def test_fine_tuning_has_two_parameter_groups_and_a_warm_up(pipeline):
    upstream = load_upstream(pipeline["tiny"])
    model = UpstreamClassifier(upstream, SuperbProbe(4, upstream.n_layers, upstream.hidden_size, 16), train_layers=1)
    settings = TrainSettings(lr=1e-3, finetune_lr=3e-5, finetune_warmup_epochs=2, lr_decay=0.5, lr_floor=1e-6)
    optimizer, scheduler = make_optimizer(model, settings)
    head, top = optimizer.param_groups
    assert len(head["params"]) == 5 and {id(p) for p in top["params"]} == {
        id(p) for n, p in upstream.model.named_parameters() if n.startswith("encoder.layers.1.")}
    lrs = []
    for _ in range(4):
        lrs += [head["lr"], top["lr"]]
        optimizer.step()  # no gradients: nothing moves; the schedule is stepped in the loop's order
        scheduler.step()
    # the head decays from --lr; the upstream rises over 2 epochs (1/3, 2/3 of --finetune-lr) while decaying too
    assert lrs == pytest.approx([1e-3, 1e-5, 5e-4, 1e-5, 2.5e-4, 7.5e-6, 1.25e-4, 3.75e-6])


@pytest.mark.parametrize("settings, message", [
    (dict(models=("LANCET",)), "--models LANCET: reads \\(features x frames\\) segments"),
    (dict(features="mel"), "--models SSLProbe: a head over a self-supervised upstream"),
    (dict(norm="utterance"), "--norm utterance: --features ssl has no frames"),
    (dict(specaugment=True), "--specaugment: masks frequency bins and frames"),
    (dict(models=("SSLAttentive",)), "SSLAttentive: attentive pooling needs the upstream's frames"),
    (dict(finetune=True, compile="on"), "--compile on: --finetune runs the plain loop"),
    (dict(finetune_layers=1), "--finetune-layers: goes with --finetune"),
    (dict(features="mfcc", models=("TCNet",), upstream="x"), "--upstream: for a self-supervised upstream"),
])
def test_settings_that_do_not_fit_the_kind_are_one_line(settings, message):
    cfg = TrainConfig(**{"features": "ssl", "models": ("SSLProbe",), **settings})
    with pytest.raises(LancetError, match=message) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- fine-tuning
FREQUENCIES = {"neutral": 250.0, "happy": 600.0, "sad": 1400.0, "angry": 3200.0}


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    """A separable toy corpus in the pipeline's format: each class a tone of its own in noise (5 sessions x 2
    speakers x 4 classes x 3 utterances of 0.6-1.2 s), one combined manifest, its ssl store."""
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    rows = []
    for s in range(1, 6):
        for g in "FM":
            for c, f in FREQUENCIES.items():
                for k in range(3):
                    uid = f"Ses{s:02d}{g}_impro01_{g}{c[0]}{k}"
                    t = np.arange(int(rng.uniform(0.6, 1.2) * 16000)) / 16000
                    x = (0.3 * np.sin(2 * np.pi * f * (1 + 0.03 * rng.standard_normal()) * t + rng.uniform(0, 6.3))
                         + 0.05 * rng.standard_normal(len(t)))
                    write_wav(root / "wav" / f"{uid}.wav", x.astype(np.float32))
                    rows.append({"id": uid, "condition": "clean", "path": f"wav/{uid}.wav", "session": s,
                                 "speaker": f"Ses{s:02d}{g}", "gender": g, "improvised": 1, "label": c[:3], "class": c})
    save_csv(root / "manifest.csv", rows, list(rows[0]))
    extract_ssl_features(root / "manifest.csv", root / "features" / "ssl", save_tiny_upstream(root / "tiny", "wavlm"),
                         device="cpu", threads=1, workers=1, progress=False, log=quiet)
    return root


def finetune_cfg(tones: Path, results: Path, **kw) -> TrainConfig:
    base = dict(features_dir=str(tones / "features"), features="ssl", models=("SSLProbe",), finetune=True,
                finetune_layers=1, finetune_lr=1e-3, epochs=20, batch_size=8, mixup_alpha=0.0, folds=("1",),
                train_on="clean", results_dir=str(results), run_name="ft", device="cpu", amp="off", workers=0,
                threads=1, progress=False)
    return TrainConfig(**{**base, **kw})


def test_the_probe_learns_tones_from_stored_statistics(tones, tmp_path):
    cfg = finetune_cfg(tones, tmp_path, finetune=False, finetune_layers=None, epochs=40, mixup_alpha=0.5)
    clean = run_training(cfg, log=quiet)["records"][0]
    assert clean["n_utterances"] == 24 and clean["ua"] >= 0.8  # chance 0.25


def test_fine_tuning_learns_tones_and_trains_only_the_top_layer(tones, tmp_path):
    out = run_training(finetune_cfg(tones, tmp_path), log=quiet)
    clean = out["records"][0]
    assert clean["condition"] == "clean" and clean["n_utterances"] == 24 and clean["ua"] >= 0.8  # chance 0.25
    best = torch.load(Path(out["run_dir"]) / "checkpoints/SSLProbe/train-clean/seed987654/fold1/best.pt",
                      weights_only=True)
    assert best["input"] == "audio" and best["finetune_layers"] == 1
    upstream_keys = {k for k in best["model_state"] if k.startswith("upstream.")}
    # the checkpoint holds what trained: the top transformer layer (and the head), not the frozen rest
    assert upstream_keys and all(k.startswith("upstream.model.encoder.layers.1.") for k in upstream_keys)
    pretrained = load_upstream(tones / "tiny").model.state_dict()
    moved = [k for k in upstream_keys if not torch.equal(best["model_state"][k], pretrained[k[len("upstream.model."):]])]
    assert moved
    # predict.py rebuilds it from the checkpoint it started from and gives the tested labels
    predictor = load_predictor(Path(out["run_dir"]) / "checkpoints/SSLProbe/train-clean/seed987654/fold1/best.pt",
                               device="cpu")
    assert predictor.input == "audio"
    tests = sorted((tones / "wav").glob("Ses01*.wav"))
    results, names = predict_files(predictor.source, tests, device="cpu")
    correct = [names.index(r["label"]) == list(FREQUENCIES).index(
        {"n": "neutral", "h": "happy", "s": "sad", "a": "angry"}[Path(r["path"]).stem.split("_")[-1][1]])
        for r in results]
    assert np.mean(correct) == pytest.approx(clean["wa"])


class _Stop(Exception):
    pass


def test_an_interrupted_fine_tuning_resumes_with_the_same_metrics(tones, tmp_path):
    """Every layer above the CNN trains, so transformers' time masking draws from numpy's global generator:
    last.pt restores it, and the resumed run is the uninterrupted one."""
    settings = dict(epochs=3, mixup_alpha=0.5, finetune_layers=None)
    ref = run_training(finetune_cfg(tones, tmp_path / "ref", **settings), log=quiet)

    def stop_after_2(unit, epoch):
        if epoch == 2:
            raise _Stop

    cfg = finetune_cfg(tones, tmp_path / "cut", **settings)
    with pytest.raises(_Stop):
        run_training(cfg, on_epoch_end=stop_after_2, log=quiet)
    ckpt = Path(cfg.results_dir) / "ft/checkpoints/SSLProbe/train-clean/seed987654/fold1"
    assert torch.load(ckpt / "last.pt", weights_only=True)["epoch"] == 2
    seen: list[int] = []
    out = run_training(cfg, on_epoch_end=lambda u, e: seen.append(e), log=quiet)
    assert seen == [3]
    a = torch.load(Path(ref["run_dir"]) / "checkpoints/SSLProbe/train-clean/seed987654/fold1/best.pt", weights_only=True)
    b = torch.load(ckpt / "best.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] and set(a["model_state"]) == set(b["model_state"])
    for key, value in a["model_state"].items():
        assert torch.allclose(value, b["model_state"][key], atol=1e-6), key
    assert [(r["wa"], r["ua"]) for r in out["records"]] == [(r["wa"], r["ua"]) for r in ref["records"]]


def test_online_noise_goes_into_a_frozen_upstream_under_attentive_pooling(pipeline, tmp_path):
    """--finetune --finetune-layers 0 --train-on online: fresh mixtures as audio into the upstream on the training
    device, a head that needs frames; tested on every stored condition's wavs."""
    cfg = TrainConfig(features_dir=str(pipeline["features"]), features="ssl", models=("SSLAttentive",), finetune=True,
                      finetune_layers=0, epochs=1, folds=("1",), online_noise_types=("white",), online_reverb_prob=0.0,
                      results_dir=str(tmp_path), run_name="asp", device="cpu", amp="off", workers=0, threads=1,
                      progress=False)
    out = run_training(cfg, log=quiet)
    assert Counter(r["condition"] for r in out["records"]) == {c: 1 for c in CONDITIONS}
    assert all(r["n_utterances"] == 10 and 0 <= r["ua"] <= 1 for r in out["records"])
    best = torch.load(Path(out["run_dir"]) / "checkpoints/SSLAttentive/train-online/seed987654/fold1/best.pt",
                      weights_only=True)
    assert best["input"] == "audio" and not any(k.startswith("upstream.") for k in best["model_state"])
