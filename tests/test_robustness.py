"""Noise-robustness components: normalisation modes, SpecAugment, the degenerate flag,
the noise-file train/test split, fold-safe babble and on-the-fly augmentation."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
import torch

from lancet.training import metrics as M
from lancet.training import feature_norm as N
from lancet.training import specaugment as SA


# ----------------------------------------------------------------------------- normalisation
def _known():
    """Two utterances: utt 0 = segments 0 (3 valid frames) and 1 (full); utt 1 = segment 2 (2 valid frames)."""
    x = np.zeros((3, 2, 4))
    x[0] = [[1, 2, 3, 99], [0, 0, 6, 99]]        # frame 3 is padding: must not count
    x[1] = [[4, 4, 4, 4], [2, 2, 2, 2]]
    x[2] = [[10, 20, -5, -5], [7, 7, 0, 0]]
    return x, np.array([3, 4, 2]), np.array([0, 0, 1])


def test_segment_stats_on_known_arrays():
    x, lengths, _ = _known()
    mean, std = N.segment_stats(x, lengths)
    assert np.allclose(mean, [[2, 2], [4, 2], [15, 7]])
    assert np.allclose(std[0], [np.std([1, 2, 3]), np.std([0, 0, 6])])
    assert np.allclose(std[1], N.MIN_STD) and np.allclose(std[2], [5, N.MIN_STD])
    tm, ts = N.segment_stats_torch(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(lengths))
    assert np.allclose(tm.numpy(), mean, atol=1e-5) and np.allclose(ts.numpy(), std, atol=1e-5)


def test_utterance_stats_on_known_arrays():
    x, lengths, utt = _known()
    mean, std = N.utterance_stats(x, lengths, utt)
    bin0 = [1, 2, 3, 4, 4, 4, 4]
    bin1 = [0, 0, 6, 2, 2, 2, 2]
    assert np.allclose(mean[0], [np.mean(bin0), np.mean(bin1)])
    assert np.allclose(std[0], [np.std(bin0), np.std(bin1)], atol=1e-6)
    assert np.allclose(mean[1], [15, 7]) and np.allclose(std[1], [5, N.MIN_STD])
    chunked = N.utterance_stats(x, lengths, utt, chunk=1)
    assert np.allclose(chunked[0], mean) and np.allclose(chunked[1], std)


def _table(x, lengths, utt):
    from lancet.training.data import SegmentTable

    n = len(x)
    keys = [("clean", f"u{i}") for i in range(int(utt.max()) + 1)]
    return SegmentTable([x.astype(np.float32)], np.zeros(n, np.int32), np.arange(n), np.zeros(n, np.int64),
                        lengths, utt, keys, ["clean"])


@pytest.mark.parametrize("mode", N.NORM_MODES)
def test_normaliser_modes_on_a_batch(mode):
    x, lengths, utt = _known()
    table = _table(x, lengths, utt)
    g_mean, g_std = np.array([1.0, 2.0]), np.array([2.0, 4.0])
    norm = N.Normaliser(mode, g_mean, g_std).bind(table)
    idx = np.array([2, 0])  # out of order: the lookup must follow the batch's indices
    out = norm(torch.as_tensor(x[idx], dtype=torch.float32), torch.as_tensor(lengths[idx]), idx).numpy()
    assert out.shape == (2, 1, 2, 4)
    if mode == "global":
        assert np.allclose(out[:, 0], (x[idx] - g_mean[:, None]) / g_std[:, None])
        return
    if mode == "segment":
        mean, std = N.segment_stats(x, lengths)
    else:
        um, us = N.utterance_stats(x, lengths, utt)
        mean, std = um[utt], us[utt]
    for b, i in enumerate(idx):
        v = lengths[i]
        expect = (x[i, :, :v] - mean[i][:, None]) / std[i][:, None]
        assert np.allclose(out[b, 0, :, :v], expect, atol=1e-4)
        assert np.all(out[b, 0, :, v:] == 0)  # padding is zero, whatever it held (99, -5)
    if mode == "segment":  # every valid bin of a segment has mean 0 (std 1 unless constant)
        assert np.allclose(out[1, 0, :, :3].mean(axis=-1), 0, atol=1e-5)


def test_utterance_norm_removes_a_stationary_offset():
    """A constant added in one band (a stationary noise floor in the log domain) disappears under CMVN."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 10))
    shifted = x.copy()
    shifted[:, 1] += 5.0
    lengths, utt = np.array([10, 10, 7, 10]), np.array([0, 0, 1, 1])
    a = N.Normaliser("utterance", np.zeros(3), np.ones(3)).bind(_table(x, lengths, utt))
    b = N.Normaliser("utterance", np.zeros(3), np.ones(3)).bind(_table(shifted, lengths, utt))
    idx = np.arange(4)
    xa = a(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(lengths), idx)
    xb = b(torch.as_tensor(shifted, dtype=torch.float32), torch.as_tensor(lengths), idx)
    assert torch.allclose(xa, xb, atol=1e-4)


def test_normaliser_rejects_unknown_mode():
    with pytest.raises(ValueError, match="unknown normalisation"):
        N.Normaliser("frame", np.zeros(2), np.ones(2))


# ----------------------------------------------------------------------------- SpecAugment
def test_specaugment_masks_shapes_and_counts():
    b, f, t = 64, 40, 50
    lengths = torch.tensor([50] * 32 + [20] * 32)
    x = torch.ones(b, 1, f, t)
    out, mask = SA.spec_augment(x, lengths, np.random.default_rng(1), time_masks=2, time_width=6,
                                freq_masks=1, freq_width=5, return_mask=True)
    assert out.shape == x.shape and mask.shape == x.shape and mask.dtype == torch.bool
    assert torch.equal(out == 0, mask)
    m = mask[:, 0]
    assert not m[32:, :, 20:].any()  # nothing beyond the valid frames
    full_t = m.all(dim=1)            # frames masked in every bin = time masks
    full_f = m[:, :, :20].all(dim=2)  # bins masked over all (common) valid frames = frequency masks
    assert int(full_t.sum(dim=1).max()) <= 2 * 6 and int(full_f.sum(dim=1).max()) <= 5
    assert full_t.any() and full_f.any()
    # masked cells are exactly the union of the masked frames and bins (within the valid frames)
    valid = torch.arange(t)[None, :] < lengths[:, None]
    assert torch.equal(m, (full_t[:, None, :] | full_f[:, :, None]) & valid[:, None, :])


def test_specaugment_draws_follow_the_generator_and_counts():
    t_s, t_w, f_s, f_w = SA.draw_masks(1000, 30, 100, np.full(1000, 60), np.random.default_rng(0), 3, 10, 2, 0.2)
    assert t_s.shape == t_w.shape == (1000, 3) and f_s.shape == f_w.shape == (1000, 2)
    assert t_w.max() == 10 and f_w.max() == 6 and t_w.min() == 0
    assert np.all(t_s + t_w <= 60) and np.all(f_s + f_w <= 30) and np.all(t_s >= 0)
    again = SA.draw_masks(1000, 30, 100, np.full(1000, 60), np.random.default_rng(0), 3, 10, 2, 0.2)
    assert all(np.array_equal(a, b) for a, b in zip((t_s, t_w, f_s, f_w), again))


# ----------------------------------------------------------------------------- degenerate flag
def test_degenerate_flag_on_a_constant_predictor(tmp_path):
    from lancet.training.evaluate import robustness_matrix
    from lancet.training.report import flag_degenerate, format_summary

    classes = ("neutral", "happy", "sad", "angry")
    y = np.repeat(np.arange(4), 10)
    const = M.classification_metrics(y, np.full(40, 3), 4)        # everything "angry"
    good = M.classification_metrics(y, y, 4)
    nearly = np.where(np.arange(40) < 5, y, 3)                    # 35/40 = 87.5 % angry: not flagged
    almost = M.classification_metrics(y, nearly, 4)
    assert const["ua"] == 0.25
    records = []
    for cond, m in (("white_10dB", const), ("clean", good), ("babble_0dB", almost)):
        records.append({"model": "LANCET", "train_on": "clean", "fold": "fold1", "seed": 1, "condition": cond,
                        "wa": m["wa"], "ua": m["ua"], "macro_f1": m["macro_f1"], "confusion": m["confusion"]})
    flag_degenerate(records, classes)
    assert [r["degenerate"] for r in records] == ["angry", "", ""]
    assert records[0]["dominant_share"] == 1.0 and records[2]["dominant_share"] == pytest.approx(0.875)
    rows = robustness_matrix(records)
    by = {r["condition"]: r for r in rows}
    assert by["white_10dB"]["degenerate_runs"] == 1 and by["white_10dB"]["degenerate"] == "angry"
    assert by["clean"]["degenerate_runs"] == 0
    table = format_summary(rows, True)
    white_line = next(line for line in table.splitlines() if line.startswith("white_10dB"))
    clean_line = next(line for line in table.splitlines() if line.startswith("clean"))
    assert white_line.rstrip().endswith("!") and not clean_line.rstrip().endswith("!")
    assert "white_10dB: angry in 1 of 1 runs" in table


# ----------------------------------------------------------------------------- noise-file split
def test_noise_split_keeps_recordings_together_and_is_stable():
    from lancet.noise import pools as S

    files = [f"/n/ambient/aircon_{r}_{c}.wav" for r in range(3) for c in range(6)] + \
            [f"/n/ambient/street_{r}_{c}.wav" for r in range(2) for c in range(4)] + \
            ["/n/ambient/sc_running_tap.wav", "/n/ambient/sc_exercise_bike.wav"]
    sp = S.split_recordings(files, seed=3)
    assert sp.train and sp.test and not set(sp.train) & set(sp.test)
    assert len(sp.train) + len(sp.test) == 7           # 3 aircon + 2 street recordings + 2 single files
    for r in range(3):                                 # every chunk of a recording is on the same side
        assert len({sp.pool(f"/elsewhere/ambient/aircon_{r}_{c}.wav") for c in range(6)}) == 1
    # a file's side does not depend on the other files listed
    sub = S.split_recordings(files[:6] + files[-2:], seed=3)
    assert all(sub.pool(f) == sp.pool(f) for f in files[:6] + files[-2:])
    assert S.split_recordings(files, seed=4).to_json() != sp.to_json()  # the seed matters
    two = S.split_recordings(["/a/x.wav", "/a/y.wav"], seed=0, test_fraction=0.01)
    assert len(two.train) == 1 and len(two.test) == 1  # never an empty pool


def test_noise_split_assertion_catches_a_test_recording_in_training():
    from lancet.noise import pools as S

    files = [f"/n/music/song{i}.wav" for i in range(6)]
    sp = S.split_recordings(files, seed=0)
    train = [f for f in files if sp.pool(f) == S.TRAIN]
    test = [f for f in files if sp.pool(f) == S.TEST]
    S.assert_unseen(train, test, {"music": sp}, "music")
    with pytest.raises(AssertionError, match="test-pool"):
        S.assert_unseen(train + test[:1], [], {"music": sp}, "music")
    with pytest.raises(AssertionError, match="training and in testing"):
        S.assert_unseen(train, train[:1], {"music": sp}, "music")
    assert S.entry_pool("generated:white", sp) is None and S.entry_pool("babble:Ses01F_a+Ses01M_b", sp) is None
    assert S.entry_pool(test[0], sp) == S.TEST
    assert S.entry_pool("babble:" + "+".join([train[0], test[0]]), sp) == "mixed"


# ----------------------------------------------------------------------------- fold babble
def test_session_babble_never_holds_another_folds_speaker(tmp_path):
    from test_augment import config, make_corpus, quiet, rows_of

    from lancet.core.manifest import read_manifest
    from lancet.noise.augment import augment
    from lancet.noise.babble import assert_fold_babble
    from lancet.training.folds import Utterance as U, loso_folds

    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M"))
    utts = read_manifest(manifest)
    augment(utts, config(tmp_path / "aug", noise_types=["babble"], snrs=[0]), log=quiet)
    speaker = {u.id: u.speaker for u in utts}
    talkers = {r["id"]: [speaker[t] for t in r["noise_file"].removeprefix("babble:").split("+")]
               for r in rows_of(tmp_path / "aug" / "augmented_manifest.csv")}
    assert len(talkers) == len(utts)
    folds = loso_folds([U(u.id, str(u.session), u.speaker, u.cls, u.improvised) for u in utts])
    for fold in folds:
        for uid in fold.train:
            assert_fold_babble(talkers[uid], fold.train_speakers, fold.test_speakers, fold.val_speakers, uid)
    # the old behaviour (any other speaker of the corpus) is caught by the assertion
    fold = folds[0]
    with pytest.raises(AssertionError, match="test/validation speaker"):
        assert_fold_babble([fold.test_speakers[0]], fold.train_speakers, fold.test_speakers, fold.val_speakers)


def test_session_babble_needs_two_speakers_per_session(tmp_path):
    from test_augment import config, make_corpus, quiet

    from lancet.core.manifest import read_manifest
    from lancet.core.errors import LancetError
    from lancet.noise.augment import augment

    manifest = make_corpus(tmp_path / "IEMOCAP", speakers=("Ses01F", "Ses02M"))
    with pytest.raises(LancetError, match="one speaker only"):
        augment(read_manifest(manifest), config(tmp_path / "aug", noise_types=["babble"], snrs=[0]), log=quiet)


# ----------------------------------------------------------------------------- online augmentation
@pytest.fixture(scope="module")
def online_corpus(tmp_path_factory):
    from test_augment import make_corpus

    from lancet.core.manifest import read_manifest

    root = tmp_path_factory.mktemp("online")
    manifest = make_corpus(root / "IEMOCAP", speakers=("Ses01F", "Ses01M", "Ses02F", "Ses02M", "Ses03F", "Ses03M"),
                           per_speaker=2, seconds=2.6)
    noise = root / "noise"
    rng = np.random.default_rng(5)
    from lancet.core.audio import write_wav

    for i in range(4):   # four short "ambient" recordings (looped with a crossfade when needed)
        write_wav(noise / "ambient" / f"hum{'abcd'[i]}.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32))
    return read_manifest(manifest), noise


def _augmenter(online_corpus, noise_types=("babble", "ambient", "white"), reverb_prob=0.5, epochs=0, **kw):
    from lancet.features.params import SegmentParams, make_params, params_record
    from lancet.training.online import OnlineAugmenter, OnlineSettings, TrainUtterance

    utts, noise = online_corpus
    train = [u for u in utts if u.session in (1, 2)]
    record = params_record(make_params("mfcc"), SegmentParams(), "float32")
    kw.setdefault("paired", False)  # one noisy view per segment unless a test asks for the paired table
    settings = OnlineSettings(noise_types=noise_types, reverb_prob=reverb_prob, noise_dir=str(noise),
                              shared_noise_dir=None, **kw)
    return OnlineAugmenter([TrainUtterance(u.id, u.path, u.speaker, 0) for u in train],
                           sorted({u.speaker for u in train}), ["Ses03F", "Ses03M"], record, settings, seed=7,
                           log=lambda m: None, epochs=epochs)


def test_online_mixer_snr_measured_back_and_sources_fold_safe(online_corpus):
    from lancet.noise.mixing import measure_snr
    from lancet.noise.pools import TEST, TRAIN

    aug = _augmenter(online_corpus)
    rng = np.random.default_rng(0)
    seen = set()
    for k in range(40):
        u = aug.utts[k % len(aug.utts)]
        m = aug.mix(u, rng)
        seen.add((m.noise_type, bool(m.room)))
        assert -5.0 <= m.snr_db <= 20.0
        assert abs(measure_snr(m.speech, m.audio) - m.snr_db) < 0.1
        assert np.max(np.abs(m.audio)) < 1.0
        if m.noise_type == "babble":
            assert m.talkers and u.speaker not in m.talkers and not set(m.talkers) & {"Ses03F", "Ses03M"}
        if m.noise_type == "ambient":
            assert aug.splits["ambient"].pool(m.noise_file) == TRAIN
    assert {t for t, _ in seen} == {"babble", "ambient", "white"} and any(r for _, r in seen)
    all_files = sorted(str(p) for p in (online_corpus[1] / "ambient").glob("*.wav"))
    test_pool = [f for f in all_files if aug.splits["ambient"].pool(f) == TEST]
    assert test_pool and not set(test_pool) & set(aug.sources["ambient"].files)


def test_online_babble_refuses_a_test_speaker(online_corpus):
    from lancet.training.online import OnlineAugmenter, TrainUtterance

    aug = _augmenter(online_corpus)
    with pytest.raises(AssertionError, match="test/validation"):
        OnlineAugmenter([TrainUtterance("x", aug.utts[0].path, "Ses03F", 0)], ["Ses03F"], ["Ses03F"],
                        {"kind": "mfcc"}, aug.s, seed=0)


def test_online_features_equal_stored_features(online_corpus, tmp_path):

    from lancet.core.audio import write_wav
    from lancet.features import extract_features, open_features

    aug = _augmenter(online_corpus, reverb_prob=0.0)
    u = aug.utts[0]
    m = aug.mix(u, np.random.default_rng(3))
    wav = tmp_path / "mix.wav"
    write_wav(wav, m.audio, subtype="FLOAT")
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["id", "condition", "path", "session", "speaker", "gender", "improvised", "label", "class"])
        w.writeheader()
        w.writerow(dict(id=u.id, condition="white_5dB", path=str(wav), session=1, speaker=u.speaker, gender="F",
                        improvised=1, label="neu") | {"class": "neutral"})
    extract_features(manifest, tmp_path / "mfcc", kind="mfcc", workers=1, progress=False, log=lambda m: None)
    store = open_features(tmp_path / "mfcc")
    stored = np.asarray(store.segments("white_5dB"))
    lengths = [r["valid_frames"] for r in store.index("white_5dB")]
    online, online_len = aug.features_of(m.audio)
    assert online.shape == stored.shape and len(stored) == 2   # 2.6 s: one regular and one end-aligned segment
    assert np.allclose(online, stored, atol=2e-3, rtol=1e-4)
    assert list(online_len) == lengths
    table = aug.epoch_table(0)   # the epoch's table holds the same segmentation
    assert table.sources[0].shape[1:] == stored.shape[1:] and len(table.utt_keys) == len(aug.utts)


def test_online_epochs_differ_and_repeat_for_a_seed(online_corpus):
    aug = _augmenter(online_corpus, noise_types=("white", "ambient"), reverb_prob=0.0)
    a, b, a2 = aug.epoch_table(0), aug.epoch_table(1), aug.epoch_table(0)
    assert np.array_equal(a.sources[0], a2.sources[0])
    assert not np.allclose(a.sources[0], b.sources[0])
    assert len(a) == len(b) and np.array_equal(a.labels, b.labels)
    ahead = _augmenter(online_corpus, noise_types=("white", "ambient"), reverb_prob=0.0, epochs=3)
    first = ahead.epoch_table(0)           # starts mixing epoch 1 in the background
    assert 1 in ahead._ahead
    assert np.array_equal(first.sources[0], a.sources[0])
    assert np.array_equal(ahead.epoch_table(1).sources[0], b.sources[0])


def test_online_clean_share_keeps_utterances_untouched(online_corpus):
    """--online-clean-prob p: about p of the mixtures are the speech itself; 0 leaves the noise draws as they were."""
    from scipy.stats import binomtest

    from lancet.core.errors import LancetError

    aug = _augmenter(online_corpus, noise_types=("white",), reverb_prob=0.0, clean_prob=0.3)
    rng = np.random.default_rng(1)
    n_clean, n = 0, 400
    for k in range(n):
        u = aug.utts[k % len(aug.utts)]
        m = aug.mix(u, rng)
        if m.noise_type == "clean":
            n_clean += 1
            assert m.snr_db == float("inf") and np.array_equal(m.audio, aug.cache.get(u.path).astype(np.float64))
        else:
            assert m.noise_type == "white" and -5.0 <= m.snr_db <= 20.0
    assert binomtest(n_clean, n, 0.3).pvalue > 1e-3, n_clean
    plain = _augmenter(online_corpus, noise_types=("white",), reverb_prob=0.0)
    zero = _augmenter(online_corpus, noise_types=("white",), reverb_prob=0.0, clean_prob=0.0)
    assert np.array_equal(plain.epoch_table(0).sources[0], zero.epoch_table(0).sources[0])
    with pytest.raises(LancetError, match="online-clean-prob"):
        _augmenter(online_corpus, clean_prob=1.0)


# ----------------------------------------------------------------------------- through the trainer
@pytest.fixture(scope="module")
def ambient_store(tmp_path_factory):
    """A synthetic store with clean + ambient_0dB, and an augmented manifest naming each mixture's recording."""

    from test_training import make_store

    root = tmp_path_factory.mktemp("ambient")
    folder = make_store(root / "features", conditions=("clean", "ambient_0dB"))
    ids = sorted({r["id"] for r in csv.DictReader(open(folder / "mfcc" / "clean.csv"))})
    manifest = root / "augmented" / "augmented_manifest.csv"
    manifest.parent.mkdir()
    with open(manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["id", "condition", "noise_type", "snr_db", "noise_file"])
        w.writeheader()
        for k, uid in enumerate(ids):
            w.writerow({"id": uid, "condition": "ambient_0dB", "noise_type": "ambient", "snr_db": 0,
                        "noise_file": f"/noise/ambient/rec{'abcdefgh'[k % 8]}.wav"})
    return folder, manifest, ids


def test_trainer_tests_only_on_unseen_recordings(ambient_store, tmp_path):
    from test_training import cfg_for

    from lancet.core.errors import LancetError
    from lancet.noise.pools import TEST, split_recordings
    from lancet.training.grid import run_training

    folder, manifest, ids = ambient_store
    with pytest.raises(LancetError, match="--noise-manifest"):
        run_training(cfg_for(tmp_path / "a", folder, folds=("1",), epochs=1, train_on="all"), log=lambda m: None)
    logs: list[str] = []
    out = run_training(cfg_for(tmp_path / "b", folder, folds=("1",), epochs=1, train_on="all",
                               noise_manifest=str(manifest)), log=logs.append)
    split = split_recordings([f"/noise/ambient/rec{c}.wav" for c in "abcdefgh"])
    test_ids = [u for k, u in enumerate(ids) if u.startswith("Ses01")
                and split.pool(f"/noise/ambient/rec{'abcdefgh'[ids.index(u) % 8]}.wav") == TEST]
    amb = next(r for r in out["records"] if r["condition"] == "ambient_0dB")
    clean = next(r for r in out["records"] if r["condition"] == "clean")
    assert clean["n_utterances"] == 24 and amb["n_utterances"] == len(test_ids) < 24
    assert amb["test_noise"].startswith("test-pool")
    saved = json.loads((tmp_path / "b" / "results" / "t" / "noise_split.json").read_text())
    assert saved["splits"]["ambient"]["test"] == split.test
    assert "test noise: ambient: test-pool recordings" in out["table"]
    assert any("tested on test-pool recordings only" in line for line in logs)


def test_trainer_norm_and_specaugment_options(tmp_path):
    from test_training import cfg_for, make_store

    from lancet.training.grid import run_training

    folder = make_store(tmp_path / "f", conditions=("clean",), sessions=3, per_class=2)
    out = run_training(cfg_for(tmp_path, folder, folds=("1",), epochs=2, norm="utterance", specaugment=True,
                               run_name=None), log=lambda m: None)
    run_dir = out["run_dir"]
    assert re.fullmatch(r".*_norm-utterance_specaug_[0-9a-f]{8}", run_dir.name)  # the settings, then the data's digest
    config = json.loads((run_dir / "config.json").read_text())
    assert config["norm"] == "utterance" and config["specaugment"] is True
    best = next(run_dir.glob("checkpoints/**/best.pt"))
    assert torch.load(best, weights_only=False)["norm"] == "utterance"
    assert all(r["norm"] == "utterance" for r in out["records"])
    # (this store's classes differ only by a constant offset of one band, which CMVN removes by design,
    # so no accuracy is asserted here; tests above check the transform itself)


def test_online_training_end_to_end_on_the_demo_corpus(tmp_path):
    """Demo corpus -> augmented (white, ambient) -> standard -> MFCC; one online epoch of TC-Net on fold 1."""
    from test_pipeline import run

    from lancet.core.audio import write_wav
    from lancet.corpora.demo import make_demo_corpus

    make_demo_corpus(tmp_path / "IEMOCAP", seed=2, utterances_per_speaker=5)
    noise = tmp_path / "noise"
    rng = np.random.default_rng(0)
    for name in ("fan", "road", "rain", "hum"):
        write_wav(noise / "ambient" / f"{name}.wav", (0.1 * rng.standard_normal(24000)).astype(np.float32))
    run("datasets/prepare_IEMOCAP.py", "--iemocap-dir", str(tmp_path / "IEMOCAP"), "--manifest", str(tmp_path / "m.csv"))
    run("datasets/augment_IEMOCAP.py", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "augmented"),
        "--noise-types", "white", "ambient", "--snrs", "0", "--no-reverb", "--no-progress", "--workers", "1",
        "--noise-dir", str(noise))
    run("datasets/handleIEMOCAP.py", "--manifest", str(tmp_path / "m.csv"), "--augmented-dir",
        str(tmp_path / "augmented"), "--out", str(tmp_path / "standard"))
    run("feature_extraction/extract_features_iemocap_mfcc.py", "--manifest", str(tmp_path / "standard" / "manifest.csv"),
        "--out", str(tmp_path / "features" / "mfcc"), "--no-progress", "--workers", "1")
    log = run("train_LANCET.py", "--features-dir", str(tmp_path / "features"), "--features", "mfcc", "--models", "TCNet",
              "--epochs", "1", "--folds", "1", "--train-on", "online", "--noise-dir", str(noise),
              "--online-noise-types", "white", "ambient", "babble", "--online-reverb-prob", "0.3",
              "--norm", "utterance", "--specaugment", "--run-name", "online", "--results-dir", str(tmp_path / "results"),
              "--no-progress", "--threads", "1", "--workers", "0")
    run_dir = tmp_path / "results" / "online"
    records = json.loads((run_dir / "metrics_all.json").read_text())
    assert {r["condition"] for r in records} == {"clean", "white_0dB", "ambient_0dB"}
    assert all(r["train_on"] == "online" for r in records)
    amb = next(r for r in records if r["condition"] == "ambient_0dB")
    assert amb["test_noise"].startswith("test-pool") and 0 < amb["n_utterances"]
    split = json.loads((run_dir / "noise_split.json").read_text())["splits"]["ambient"]
    assert split["train"] and split["test"]
    assert "training-pool files" in log and "fold training speakers only" in log
    assert (run_dir / "checkpoints" / "TCNet" / "train-online" / "seed987654" / "fold1" / "best.pt").is_file()
    # prediction from a wav applies the checkpoint's --norm exactly as evaluation on the stored features did

    from lancet.features import open_features
    from lancet.training.data import StoreView, build_table
    from lancet.training.evaluate import predict_segments
    from lancet.training.feature_norm import Normaliser
    from lancet.training.predict import load_predictor, predict_file

    pred = load_predictor(run_dir / "checkpoints" / "TCNet" / "train-online" / "seed987654" / "fold1" / "best.pt", "cpu")
    assert pred.norm == "utterance"
    rows = [r for r in csv.DictReader(open(tmp_path / "standard" / "manifest.csv"))
            if r["condition"] == "clean" and r["session"] == "1" and r["class"] in pred.class_names]
    table = build_table(StoreView(open_features(tmp_path / "features" / "mfcc")), ["clean"], {rows[0]["id"]},
                        {c: i for i, c in enumerate(pred.class_names)})
    norm = Normaliser("utterance", pred.mean.cpu().numpy(), pred.std.cpu().numpy()).bind(table)
    probs = predict_segments(pred.model, table, pred.mean, pred.std, torch.device("cpu"), norm=norm)
    assert np.allclose(predict_file(pred, rows[0]["path"])["scores"], probs.mean(axis=0), atol=1e-4)
