"""The SSL upstreams (lancet.ssl) on tiny random WavLM, HuBERT and wav2vec 2.0 checkpoints built here, offline.

Every test runs with the network shut: HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set, sockets refusing to
connect, and the hub's download functions refusing anything but a cache lookup; the ``offline`` fixture
asserts after each test that nothing tried to fetch.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
import huggingface_hub  # noqa: E402 - comes with transformers
import huggingface_hub.file_download  # noqa: E402
import transformers.utils.hub  # noqa: E402

from lancet.core.errors import LancetError  # noqa: E402
from lancet.ssl import stats  # noqa: E402
from lancet.ssl import (  # noqa: E402
    AttentiveStatsHead, SuperbProbe, UpstreamClassifier, download_command, extract_layer_means, iter_layer_means,
    layer_means, load_upstream, pad_waves, plan_batches, save_tiny_upstream, trainable_upstream_names,
)

ROOT = Path(__file__).resolve().parents[1]
SR = 16_000
# (name, architecture, CNN with per-frame layer norm, feature extractor normalises): the base models'
# group norm for all three, and the large models' layer norm for wav2vec 2.0 and WavLM
CHECKPOINTS = [("wav2vec2", "wav2vec2", False, True), ("hubert", "hubert", False, False), ("wavlm", "wavlm", False, False),
               ("wav2vec2-layer", "wav2vec2", True, True), ("wavlm-layer", "wavlm", True, False)]
NAMES = [c[0] for c in CHECKPOINTS]
PROJ = 16


# ----------------------------------------------------------------------------- the network is shut
def shut_network(patch: pytest.MonkeyPatch) -> list[str]:
    """Through ``patch``: the environment says offline, sockets cannot connect, hub downloads only read the
    cache. Returns the list every attempt to fetch is recorded in (the caller asserts it stays empty)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        patch.setenv(name, "1")
    attempts: list[str] = []

    def no_connect(self, address, *args, **kwargs):
        attempts.append(f"socket connect {address}")
        raise OSError("the network is shut in this test")

    patch.setattr(socket.socket, "connect", no_connect)
    for module in (huggingface_hub, huggingface_hub.file_download, transformers.utils.hub):
        for name in ("hf_hub_download", "snapshot_download"):
            original = getattr(module, name, None)
            if original is not None:
                patch.setattr(module, name, _cache_only(original, name, attempts))
    return attempts


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may fetch (:func:`shut_network`); asserted after each test."""
    attempts = shut_network(monkeypatch)
    yield attempts
    assert not attempts, f"something tried to fetch: {attempts}"


def test_the_network_is_shut(offline):
    """The guard itself: a connection and a hub download both fail, and both are recorded."""
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    with pytest.raises(OSError):
        huggingface_hub.hf_hub_download("lancet-tests/none", "config.json")
    assert len(offline) == 2
    offline.clear()  # recorded on purpose


def _cache_only(original, name, attempts):
    def guarded(*args, **kwargs):
        if not kwargs.get("local_files_only"):
            attempts.append(f"{name}{args}")
            raise OSError(f"{name} without local_files_only in a test")
        return original(*args, **kwargs)

    return guarded


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread (extraction too): on the shared 2-core CI machine spinning threads cost more than they give."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stats, "available_cpus", lambda: 1)
        yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- checkpoints and data
@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("upstreams")
    return {name: save_tiny_upstream(base / name, arch, layer_norm=layer, do_normalize=norm, seed=i)
            for i, (name, arch, layer, norm) in enumerate(CHECKPOINTS)}


@pytest.fixture(scope="module")
def upstreams(folders):
    return {name: load_upstream(folder) for name, folder in folders.items()}


def utterances(lengths=(16000, 9000, 4000, 12345), seed=0) -> list[np.ndarray]:
    """Noise with an offset and a different level per utterance (the normalisation has work to do)."""
    rng = np.random.default_rng(seed)
    return [(0.05 + rng.uniform(0.05, 0.5) * rng.standard_normal(n)).astype(np.float32) for n in lengths]


def transformers_classifier(folder: Path, n_layers: int, seed: int = 1):
    """transformers' own SUPERB-style classifier on the same upstream weights, its head drawn at random."""
    transformers.utils.logging.set_verbosity_error()  # "newly initialized: projector, classifier": on purpose
    model = transformers.AutoModelForAudioClassification.from_pretrained(
        folder, use_weighted_layer_sum=True, num_labels=4, classifier_proj_size=PROJ, local_files_only=True).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.layer_weights.copy_(torch.randn(n_layers, generator=gen))  # not the uniform start: the weights matter
        for p in (*model.projector.parameters(), *model.classifier.parameters()):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


def reference_logits(folder: Path, model, waves) -> torch.Tensor:
    """transformers, one utterance at a time (nothing padded), its feature extractor preparing the input."""
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        return torch.cat([model(extractor(w, sampling_rate=SR, return_tensors="pt").input_values).logits for w in waves])


# ----------------------------------------------------------------------------- equality with transformers
@pytest.mark.parametrize("name", NAMES)
def test_probe_equals_transformers_sequence_classifier(name, folders, upstreams):
    """SUPERB's probe on the fly and from stored per-layer means equals transformers' own head, to 1e-5."""
    up, waves = upstreams[name], utterances()
    hf = transformers_classifier(folders[name], up.n_layers)
    expected = reference_logits(folders[name], hf, waves)
    probe = SuperbProbe(4, up.n_layers, up.hidden_size, PROJ).load_transformers_head(hf)

    x, lengths = pad_waves(waves)
    with torch.no_grad():
        on_the_fly = UpstreamClassifier(up, probe, train_layers=0).eval()(x, lengths)
    means, frames = extract_layer_means(up, waves)
    with torch.no_grad():
        from_stats = probe(torch.as_tensor(means).unsqueeze(1))

    assert expected.abs().max() > 0.1  # logits of a size where 1e-5 means something
    torch.testing.assert_close(on_the_fly, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(from_stats, expected, rtol=0, atol=1e-5)
    assert frames.tolist() == up.frames(torch.tensor([len(w) for w in waves])).tolist()
    with torch.no_grad():  # a float16 store (extraction's --dtype float16) feeds the same float32 head
        from_half = probe(torch.as_tensor(means.astype(np.float16)).unsqueeze(1))
    torch.testing.assert_close(from_half, expected, rtol=0, atol=0.05)


@pytest.mark.parametrize("name", ["wav2vec2-layer", "wavlm-layer"])
def test_layer_norm_models_batched_with_mask_equal_transformers_batched(name, folders, upstreams):
    """Per-frame-norm models: transformers' own padded batch with its attention mask is exact, and so is ours."""
    up, waves = upstreams[name], utterances()
    hf = transformers_classifier(folders[name], up.n_layers)
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folders[name], local_files_only=True)
    batch = extractor(waves, sampling_rate=SR, padding=True, return_attention_mask=True, return_tensors="pt")
    with torch.no_grad():
        expected = hf(batch.input_values, attention_mask=batch.attention_mask).logits
        probe = SuperbProbe(4, up.n_layers, up.hidden_size, PROJ).load_transformers_head(hf)
        ours = UpstreamClassifier(up, probe, train_layers=0).eval()(*pad_waves(waves))
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["wav2vec2", "hubert", "wavlm"])
def test_transformers_own_padding_shifts_group_norm_models(name, folders, upstreams):
    """Why group-norm models run their CNN per utterance here: padded as transformers' extractor says, a short
    utterance's logits move (the first layer's GroupNorm sees the zeros), by far more than 1e-5."""
    up, waves = upstreams[name], utterances()
    hf = transformers_classifier(folders[name], up.n_layers)
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folders[name], local_files_only=True)
    batch = extractor(waves, sampling_rate=SR, padding=True, return_tensors="pt")
    with torch.no_grad():
        padded = hf(batch.input_values, attention_mask=batch.get("attention_mask")).logits
    alone = reference_logits(folders[name], hf, waves)
    assert (padded[1:] - alone[1:]).abs().max() > 1e-3  # the shorter, padded ones
    torch.testing.assert_close(padded[0], alone[0], rtol=0, atol=1e-5)  # the longest has no padding


# ----------------------------------------------------------------------------- masks and padding
@pytest.mark.parametrize("name", NAMES)
def test_utterance_alone_and_padded_in_a_batch_pool_the_same(name, upstreams):
    """The per-layer means and the attentive-pooling head of an utterance do not depend on its batch."""
    up = upstreams[name]
    waves = utterances((5000, 16000, 7777, 345 + 320 * 2), seed=3)
    head = AttentiveStatsHead(3, up.n_layers, up.hidden_size, proj_size=PROJ).eval()
    model = UpstreamClassifier(up, head, train_layers=0).eval()
    batch_means, _ = extract_layer_means(up, waves)
    with torch.no_grad():
        batch_logits = model(*pad_waves(waves))
    for i, wave in enumerate(waves):
        alone_means, _ = extract_layer_means(up, [wave])
        np.testing.assert_allclose(batch_means[i], alone_means[0], rtol=0, atol=1e-5)
        with torch.no_grad():
            alone_logits = model(*pad_waves([wave]))
        torch.testing.assert_close(batch_logits[i], alone_logits[0], rtol=0, atol=1e-5)


def test_padding_garbage_is_ignored(upstreams):
    """Whatever lies past an utterance's length (here loud noise) does not reach it."""
    up = upstreams["wavlm"]
    waves = utterances((6000, 12000))
    x, lengths = pad_waves(waves)
    dirty = x.clone()
    dirty[0, 6000:] = 10 * torch.randn(6000)
    with torch.no_grad():
        clean = layer_means(*_hidden_and_mask(up(x, lengths)))
        noisy = layer_means(*_hidden_and_mask(up(dirty, lengths)))
    torch.testing.assert_close(clean, noisy, rtol=0, atol=1e-5)


def _hidden_and_mask(out):
    return out.hidden_states, out.mask


def test_normalisation_is_the_feature_extractors(folders, upstreams):
    """Zero-mean unit-variance per utterance over its own samples, as Wav2Vec2FeatureExtractor on it alone."""
    up = upstreams["wav2vec2"]
    assert up.do_normalize and not upstreams["wavlm"].do_normalize
    extractor = transformers.AutoFeatureExtractor.from_pretrained(folders["wav2vec2"], local_files_only=True)
    waves = utterances((3000, 8000))
    x, lengths = pad_waves(waves)
    ours = up.normalise(x, lengths)
    for i, wave in enumerate(waves):
        theirs = extractor(wave, sampling_rate=SR, return_tensors="pt").input_values[0]
        torch.testing.assert_close(ours[i, : len(wave)], theirs, rtol=0, atol=1e-5)
        assert not ours[i, len(wave):].any()


def test_frame_counts_and_shortest_input(upstreams):
    up = upstreams["hubert"]
    shortest = up.min_samples
    assert shortest == 10 + 5 * (8 - 1) + 5 * 4 * (4 - 1) + 5 * 4 * 4 * (4 - 1)  # kernels 10, 8, 4, 4, strides 5, 4, 4, 4
    for n in (shortest, shortest + 319, shortest + 320, 16000):
        out = up(torch.randn(1, n))
        assert out.hidden_states[0].shape[1] == int(up.frames(n)) == int(out.frames[0])
    assert int(up.frames(shortest)) == 1 and int(up.frames(shortest - 1)) == 0
    with pytest.raises(LancetError, match=f"shorter than the model's first frame \\({shortest} samples"):
        up(torch.randn(2, 5000), torch.tensor([5000, shortest - 1]))


# ----------------------------------------------------------------------------- batched extraction
def test_plan_batches_cover_every_utterance_within_the_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 1000, size=200).tolist()
    for sort in (True, False):
        batches = plan_batches(lengths, max_samples=3000, max_items=16, sort=sort)
        assert sorted(i for b in batches for i in b) == list(range(200))
        assert all(len(b) <= 16 and (len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 3000) for b in batches)
    padded = {s: sum(max(lengths[i] for i in b) * len(b) for b in plan_batches(lengths, 3000, 16, s)) for s in (True, False)}
    assert padded[True] < 0.7 * padded[False]


def test_extraction_keeps_the_input_order_whatever_the_batching(upstreams):
    up = upstreams["wav2vec2"]
    waves = utterances((2000, 15000, 700, 9000, 4000, 11000), seed=5)
    reference, frames = extract_layer_means(up, waves, window=1)  # one at a time
    for options in ({"window": 4}, {"window": 4, "sort": False}, {"batch_seconds": 1.0, "max_items": 2}):
        means, frames_b = extract_layer_means(up, waves, **options)
        np.testing.assert_allclose(means, reference, rtol=0, atol=1e-5)
        assert frames_b.tolist() == frames.tolist()
    stream = iter_layer_means(up, iter(waves), window=4, threads=1)
    assert [s.frames for s in stream] == frames.tolist()
    assert means.shape == (6, up.n_layers, up.hidden_size) and means.dtype == np.float32


def test_extraction_under_autocast(upstreams):
    """The autocast path (bf16 here on the CPU; on CUDA the default): means accumulated in float32, close to full precision."""
    up = upstreams["wavlm"]
    waves = utterances((3000, 8000))
    full, _ = extract_layer_means(up, waves, amp=None)
    half, _ = extract_layer_means(up, waves, amp="bf16")
    assert half.dtype == np.float32 and not np.array_equal(full, half)
    np.testing.assert_allclose(half, full, rtol=0, atol=0.1 * np.abs(full).max())
    assert np.array_equal(extract_layer_means(up, waves)[0], full)  # "auto" is full precision on the CPU


def test_extraction_refuses_an_utterance_too_short(upstreams):
    up = upstreams["wavlm"]
    with pytest.raises(LancetError, match="leave such utterances out"):
        extract_layer_means(up, utterances((3000, up.min_samples - 1)))


# ----------------------------------------------------------------------------- fine-tuning
def tones(n: int, rng: np.random.Generator) -> tuple[list[np.ndarray], torch.Tensor]:
    """A separable toy task: a low (220 Hz) or a high (1,100 Hz) tone in noise, random level, phase and length."""
    labels = rng.integers(0, 2, size=n)
    waves = []
    for label in labels:
        length = int(rng.integers(4000, 9600))
        t = np.arange(length) / SR
        tone = np.sin(2 * np.pi * (220.0 if label == 0 else 1100.0) * t + rng.uniform(0, 2 * np.pi))
        waves.append((rng.uniform(0.1, 1.0) * tone + 0.1 * rng.standard_normal(length)).astype(np.float32))
    return waves, torch.as_tensor(labels)


def fit(model: UpstreamClassifier, steps: int, seed: int = 0, batch: int = 8) -> None:
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(steps):
        waves, labels = tones(batch, rng)
        loss = torch.nn.functional.cross_entropy(model(*pad_waves(waves)), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def test_fine_tuning_the_top_layer_learns_a_toy_task_and_moves_only_it(folders):
    torch.manual_seed(0)
    up = load_upstream(folders["wavlm"])
    model = UpstreamClassifier(up, SuperbProbe(2, up.n_layers, up.hidden_size, PROJ), train_layers=1)
    before = snapshot(up.model)
    fit(model, steps=40)
    waves, labels = tones(64, np.random.default_rng(99))
    with torch.no_grad():
        accuracy = (model(*pad_waves(waves)).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.9, accuracy
    moved = changed(before, up.model)
    assert moved and all(k.startswith("encoder.layers.1.") for k in moved), sorted(moved)
    assert trainable_upstream_names(up, 1) == {n for n, p in up.model.named_parameters() if p.requires_grad}


def test_full_fine_tuning_keeps_the_feature_encoder_frozen(folders):
    torch.manual_seed(0)
    up = load_upstream(folders["wav2vec2-layer"])
    model = UpstreamClassifier(up, SuperbProbe(2, up.n_layers, up.hidden_size, PROJ), train_layers=None)
    before = snapshot(up.model)
    fit(model, steps=3)
    moved = changed(before, up.model)
    assert not any(k.startswith("feature_extractor.") for k in moved)
    # (the pre-LN encoder's final layer norm trains too, but transformers 5 returns the last hidden state
    # before it, so no weighted layer sum reaches it)
    for part in ("feature_projection.", "encoder.layers.0.", "encoder.layers.1."):
        assert any(k.startswith(part) for k in moved), part


def test_a_frozen_upstream_trains_the_head_only(folders):
    torch.manual_seed(0)
    up = load_upstream(folders["hubert"])
    head = AttentiveStatsHead(2, up.n_layers, up.hidden_size, proj_size=PROJ)
    model = UpstreamClassifier(up, head, train_layers=0)
    before, head_before = snapshot(up.model), snapshot(head)
    fit(model, steps=3)
    assert not changed(before, up.model)
    assert changed(head_before, head)
    model.train()
    assert not up.model.training and head.training  # frozen layers keep eval mode: no dropout in the features


def test_train_layers_out_of_range(upstreams):
    with pytest.raises(LancetError, match="between 0 and its 2 transformer layers"):
        trainable_upstream_names(upstreams["wavlm"], 3)


# ----------------------------------------------------------------------------- loading
def test_a_hub_checkpoint_missing_from_the_cache_is_one_line_naming_the_download(tmp_path):
    name = "lancet-tests/no-such-upstream"
    with pytest.raises(LancetError) as info:
        load_upstream(name, cache_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message and name in message and download_command(name) in message
    assert "not in the local Hugging Face cache" in message


def test_a_missing_or_incomplete_folder_is_one_line(tmp_path, folders):
    with pytest.raises(LancetError, match="no such folder"):
        load_upstream(tmp_path / "nothing" / "here")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((folders["wavlm"] / "config.json").read_text())
    with pytest.raises(LancetError, match="no preprocessor_config.json"):
        load_upstream(partial)


def test_downloading_is_an_explicit_choice(monkeypatch):
    """Only allow_download=True lets transformers look beyond the cache (here it is told to fail instead)."""
    seen = []

    def from_pretrained(source, **kwargs):
        seen.append(kwargs["local_files_only"])
        raise OSError("no network in tests")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", from_pretrained)
    for allow in (False, True):
        with pytest.raises(LancetError, match="could not be fetched" if allow else "download it once"):
            load_upstream("lancet-tests/opt-in", allow_download=allow)
    assert seen == [True, False]


def test_a_classification_checkpoint_is_loaded_with_a_warning(tmp_path, folders):
    """A checkpoint saved with a task head (as superb/*-superb-er, trained on IEMOCAP) is named as such."""
    folder = tmp_path / "classifier"
    transformers_classifier(folders["wavlm"], 3).save_pretrained(folder)
    transformers.AutoFeatureExtractor.from_pretrained(folders["wavlm"], local_files_only=True).save_pretrained(folder)
    notes = []
    up = load_upstream(folder, log=notes.append)
    assert len(notes) == 1 and "WavLMForSequenceClassification" in notes[0] and "IEMOCAP" in notes[0]
    assert up.n_layers == 3


def test_identity_names_the_weights(folders, upstreams):
    a, b = upstreams["wavlm"].identity(), load_upstream(folders["wavlm"]).identity()
    assert a == b and a["model_type"] == "wavlm" and a["n_layers"] == 3 and a["feat_extract_norm"] == "group"
    assert a["transformers"] == transformers.__version__
    assert upstreams["wavlm-layer"].identity()["weights_sha256"] != a["weights_sha256"]


def test_importing_the_package_does_not_import_transformers():
    code = "import sys, lancet.ssl; assert 'transformers' not in sys.modules, 'transformers imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
