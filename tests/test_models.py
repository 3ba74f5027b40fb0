"""Tests for lancet/models: shapes, masking, gradients, overfitting, export, counts."""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lancet.core.errors import LancetError
from lancet.features.params import has_frames_axis
from models import FEATURE_SHAPES, GLAM, LANCET, MODELS, TCNet, build_model, count_parameters

ROOT = Path(__file__).resolve().parents[1]
# the models over (features x frames) segments and their kinds; the heads over a self-supervised upstream read
# a per-layer statistic (kind ssl): their entries are checked here, their behaviour in tests/test_ssl*.py
NAMES = [name for name, entry in MODELS.items() if has_frames_axis(entry.input_kind)]
HEADS = [name for name in MODELS if name not in NAMES]
KINDS = [kind for kind in FEATURE_SHAPES if has_frames_axis(kind)]

# Measured parameter counts, 4 classes (also tabulated in docs/MODELS.md).
PARAMS = {
    ("LANCET", "mel"): 292_134,
    ("LANCET", "mfcc"): 267_399,
    ("LANCET", "spectrogram"): 459_822,
    ("GLAM", "mel"): 63_723_748,
    ("GLAM", "mfcc"): 940_283,
    ("GLAM", "spectrogram"): 581_975_548,
    ("TCNet", "mel"): 359_318,
    ("TCNet", "mfcc"): 25_778,
    # PCEN has log-Mel's 128 bands x 201 frames, so every model has its mel size
    ("LANCET", "pcen"): 292_134,
    ("GLAM", "pcen"): 63_723_748,
    ("TCNet", "pcen"): 359_318,
    ("TCNet", "spectrogram"): 3_079_862,
    # the heads on a base upstream's 13 hidden states x 768 (WavLM Base+, HuBERT Base, wav2vec 2.0 Base)
    ("SSLProbe", "ssl"): 197_905,
    ("SSLAttentive", "ssl"): 231_953,
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread is faster than two fighting other processes for cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _is_big(name: str, kind: str) -> bool:
    """GLAM on mel/spectrogram has 64M/582M parameters: build those on the meta device only."""
    return name == "GLAM" and kind != "mfcc"


# ---------------------------------------------------------------- construction and counts

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", KINDS)
def test_parameter_counts(name: str, kind: str) -> None:
    f, t = FEATURE_SHAPES[kind]
    with torch.device("meta"):
        model = build_model(name, 4, f, t)
    assert count_parameters(model) == PARAMS[(name, kind)]


def test_lancet_part_counts_match_published() -> None:
    model = LANCET(4, 128, 201)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(model.attention) == 19_268
    assert n(model.bottleneck) == 8_512
    assert len(model.tcn.blocks) == 15
    assert all(n(b) == 17_602 for b in model.tcn.blocks)
    assert [b.dilation for b in model.tcn.blocks[:5]] == [1, 2, 4, 8, 16]
    assert n(model) == 292_134


def test_docs_list_the_measured_counts() -> None:
    text = (ROOT / "docs" / "MODELS.md").read_text()
    for count in PARAMS.values():
        assert f"{count:,}" in text, f"{count:,} missing from docs/MODELS.md"


def test_unknown_model_and_option() -> None:
    with pytest.raises(LancetError, match=f"known models: {', '.join(MODELS)}$") as err:
        build_model("ResNet", 4, 26, 63)
    assert "\n" not in str(err.value)
    with pytest.raises(LancetError, match="unknown option"):
        build_model("LANCET", 4, 128, 201, depth=3)
    with pytest.raises(LancetError):
        build_model("GLAM", 4, 1, 63)
    with pytest.raises(LancetError, match="expected input"):
        LANCET(4, 128)(torch.zeros(1, 1, 26, 63))


@pytest.mark.parametrize("name", list(MODELS))
def test_registry_entry_states_the_published_input_and_count(name: str) -> None:
    """Each entry names its published input kind; the constructor defaults to that kind's shape and, with
    4 classes, has the published parameter count there (where one was published)."""
    entry = MODELS[name]
    f, t = FEATURE_SHAPES[entry.input_kind]
    defaults = inspect.signature(entry.factory).parameters
    assert (defaults["n_freq"].default, defaults["n_frames"].default) == (f, t)
    assert entry.paper
    with torch.device("meta"):
        count = count_parameters(build_model(name, 4))
    assert count == PARAMS[(name, entry.input_kind)]
    assert entry.published_parameters in (None, count)


def test_defaults_are_published_inputs() -> None:
    assert (LANCET().n_freq, TCNet().n_freq, GLAM().n_freq) == (128, 26, 26)
    assert (TCNet().n_frames, GLAM().n_frames) == (63, 63)
    assert isinstance(build_model("TCNet"), TCNet)


# ---------------------------------------------------------------- shapes

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape(name: str, kind: str, batch: int) -> None:
    f, t = FEATURE_SHAPES[kind]
    if _is_big(name, kind):
        with torch.device("meta"):
            model = build_model(name, 4, f, t)
            y = model(torch.empty(batch, 1, f, t), torch.full((batch,), t))
    else:
        model = build_model(name, 4, f, t).eval()
        with torch.no_grad():
            y = model(torch.randn(batch, 1, f, t))
        assert torch.isfinite(y).all()
    assert tuple(y.shape) == (batch, 4)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("frames", [1, 3, 7, 20, 90])
def test_any_segment_length(name: str, frames: int) -> None:
    options = {"attention_padding": "same"} if name == "LANCET" and frames < 10 else {}
    model = build_model(name, 5, 26, 63, **options).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 1, 26, frames))
        y1 = model(torch.randn(1, 1, 26, frames), torch.tensor([max(1, frames // 2)]))
    assert y.shape == (2, 5) and y1.shape == (1, 5)
    assert torch.isfinite(y).all() and torch.isfinite(y1).all()


def test_glam_odd_small_shapes() -> None:
    for f, t in [(2, 1), (3, 5), (27, 20), (13, 3)]:
        model = GLAM(3, f, t).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 1, f, t)).shape == (1, 3)
            assert model(torch.randn(2, 1, f, t + 9)).shape == (2, 3)


# ---------------------------------------------------------------- masking

@pytest.mark.parametrize("name", ["LANCET", "TCNet"])
def test_padding_with_lengths_equals_unpadded(name: str) -> None:
    f, t = 26, 63
    model = build_model(name, 4, f, t).eval()
    short = [40, 11, 63]
    full = torch.randn(len(short), 1, f, t) * 3.0  # padded frames hold garbage
    with torch.no_grad():
        padded_out = model(full, torch.tensor(short))
        for i, n in enumerate(short):
            alone = model(full[i : i + 1, :, :, :n])
            torch.testing.assert_close(padded_out[i : i + 1], alone, rtol=1e-4, atol=1e-5)
        # without lengths the padding does change the output
        assert not torch.allclose(model(full)[:2], padded_out[:2], atol=1e-4)


def test_lancet_mel_masking_and_length_clamping() -> None:
    model = LANCET(4, 128, 201).eval()
    x = torch.randn(2, 1, 128, 201)
    with torch.no_grad():
        out = model(x, torch.tensor([150, 500]))  # 500 is clamped to 201
        torch.testing.assert_close(out[0:1], model(x[:1, :, :, :150]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out[1:2], model(x[1:]), rtol=1e-4, atol=1e-5)


def test_glam_padding_with_lengths_equals_zero_padded_short_input() -> None:
    model = GLAM(4, 26, 63).eval()
    x = torch.randn(2, 1, 26, 63)
    with torch.no_grad():
        out = model(x, torch.tensor([30, 63]))
        torch.testing.assert_close(out[:1], model(x[:1, :, :, :30]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out[1:], model(x[1:]), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- training behaviour

@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = build_model(name, 4, 26, 63).train()
    x = torch.randn(4, 1, 26, 63)
    loss = torch.nn.functional.cross_entropy(model(x, torch.tensor([63, 50, 30, 63])), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing, f"no gradient for {missing}"


def _separable_batch(n_classes: int = 4, per_class: int = 4, f: int = 26, t: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = torch.randn(len(y), 1, f, t, generator=g) * 0.5
    band = f // n_classes
    for i, c in enumerate(y.tolist()):
        x[i, 0, c * band : (c + 1) * band, :] += 2.0  # class c lights up its own band
    return x, y


@pytest.mark.parametrize("name", NAMES)
def test_overfits_small_separable_batch(name: str) -> None:
    x, y = _separable_batch()
    model = build_model(name, 4, 26, x.shape[-1]).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(60):
        logits = model(x)
        if step >= 5 and (logits.argmax(1) == y).all():
            break
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    else:
        pytest.fail(f"{name} did not reach 100% training accuracy in 60 steps")
    assert (model(x).argmax(1) == y).all()


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_is_deterministic(name: str) -> None:
    model = build_model(name, 4, 26, 63)
    model.train()
    model(torch.randn(4, 1, 26, 63))  # move BN statistics away from their initial values
    model.eval()
    x = torch.randn(3, 1, 26, 63)
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], single, rtol=1e-4, atol=1e-5)  # no batch coupling in eval


# ---------------------------------------------------------------- export

@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_lancet_jit_trace_and_torch_export() -> None:
    model = LANCET().eval()
    x = torch.randn(2, 1, 128, 201)
    other = torch.randn(3, 1, 128, 57)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, (x,))
        torch.testing.assert_close(traced(other), model(other), rtol=1e-4, atol=1e-5)
    dims = {0: torch.export.Dim("batch"), 3: torch.export.Dim("time", min=11)}  # > the largest attention kernel (10)
    exported = torch.export.export(model, (x,), dynamic_shapes=(dims,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(other), model(other), rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore")
def test_lancet_onnx_export(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    model = LANCET().eval()
    path = tmp_path / "lancet.onnx"
    torch.onnx.export(
        model,
        (torch.randn(2, 1, 128, 201),),
        str(path),
        dynamo=False,
        input_names=["features"],
        output_names=["logits"],
        dynamic_axes={"features": {0: "batch", 3: "time"}, "logits": {0: "batch"}},
    )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    x = torch.randn(3, 1, 128, 80)
    (out,) = ReferenceEvaluator(proto).run(None, {"features": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", HEADS)
def test_heads_over_an_upstream_read_statistics_or_say_why_not(name: str) -> None:
    """A head's input is (layers, hidden) per utterance: the probe reads it, attentive pooling needs frames."""
    model = build_model(name, 4, 3, 8)
    x = torch.randn(2, 1, 3, 8)
    if name == "SSLAttentive":
        with pytest.raises(LancetError, match="--finetune") as err:
            model(x)
        assert "\n" not in str(err.value)
    else:
        assert tuple(model(x, torch.tensor([5, 9])).shape) == (2, 4)


def test_models_py_reexports() -> None:
    import models

    assert models.MODELS is MODELS and models.LANCET is LANCET
    assert re.search(r"from lancet\.models import", (ROOT / "models.py").read_text())


# ---------------------------------------------------------------- the published channel attention

def _gate_by_hand(att, x, length=None) -> np.ndarray:
    """The published attention gate with numpy loops: unpadded depthwise convolutions, mean over the
    T - k + 1 windows (only windows inside the first ``length`` frames), ReLU, fuse, SE bottleneck."""
    x = x.detach().double().numpy()
    C, T = x.shape
    length = T if length is None else length
    desc = np.zeros((C, len(att.kernel_sizes)))
    for s, (conv, k) in enumerate(zip(att.convs, att.kernel_sizes)):
        w, b = conv.weight.detach().double().numpy(), conv.bias.detach().double().numpy()
        starts = range(max(length - k + 1, 1))
        for c in range(C):
            outs = [b[c] + sum(w[c, 0, j] * (x[c, t + j] if t + j < length else 0.0) for j in range(k)) for t in starts]
            desc[c, s] = max(sum(outs) / len(outs), 0.0)
    fw, fb = att.fuse.weight.detach().double().numpy()[0], att.fuse.bias.detach().double().numpy()[0]
    d = desc @ fw + fb
    W1, b1 = att.squeeze.weight.detach().double().numpy(), att.squeeze.bias.detach().double().numpy()
    W2, b2 = att.excite.weight.detach().double().numpy(), att.excite.bias.detach().double().numpy()
    h = np.maximum(W1 @ d + b1, 0.0)
    return 1.0 / (1.0 + np.exp(-(W2 @ h + b2)))


def test_attention_gate_matches_hand_computation_of_published_layer() -> None:
    from lancet.models.layers import MultiscaleChannelAttention, frame_mask

    att = MultiscaleChannelAttention(6).eval()  # kernels 3, 5, 10, unpadded by default
    with torch.no_grad():  # weights that keep descriptors and the SE bottleneck out of ReLU's zero
        for conv in att.convs:
            conv.weight.uniform_(-0.2, 0.5)
        for lin in (att.fuse, att.squeeze, att.excite):
            lin.weight.normal_(0.0, 0.5)
        att.squeeze.bias.fill_(0.5)
    x = torch.randn(3, 6, 14) + torch.linspace(0.0, 2.0, 14)  # rises over time: the edge frames matter
    with torch.no_grad():
        gate = att.gate(x).double().numpy()
        assert np.ptp(gate, axis=0).max() > 0.05  # the gate depends on the input
        for i in range(3):
            np.testing.assert_allclose(gate[i], _gate_by_hand(att, x[i]), rtol=1e-5, atol=1e-6)
        # padded frames: only windows whose frames are all valid count; fewer frames than a kernel
        # keeps the first window (zeros past the end)
        lengths = torch.tensor([14, 11, 4])
        mask = frame_mask(lengths, 14, x.device)
        xm = x * mask
        gate = att.gate(xm, mask).double().numpy()
        for i, n in enumerate(lengths.tolist()):
            np.testing.assert_allclose(gate[i], _gate_by_hand(att, x[i], n), rtol=1e-5, atol=1e-6)
        # the whole layer: the input times the gate
        torch.testing.assert_close(att(x), x * att.gate(x).unsqueeze(-1))
        # 'same' padding (the earlier behaviour) is a different function
        same = MultiscaleChannelAttention(6, padding="same")
        same.load_state_dict(att.state_dict())
        assert not torch.allclose(same.gate(x), att.gate(x), atol=1e-4)


def test_lancet_attention_padding_option_and_short_segments() -> None:
    model = LANCET(4, 26, 63).eval()
    assert model.attention.padding == "valid"
    with pytest.raises(ValueError, match="attention_padding='same'"):
        model(torch.randn(1, 1, 26, 9))
    with pytest.raises(LancetError, match="attention_padding=same"):
        LANCET(4, 26, 8)
    with pytest.raises(LancetError, match="attention_padding"):
        LANCET(4, 26, 63, attention_padding="reflect")
    same = build_model("LANCET", 4, 26, 8, attention_padding="same").eval()
    assert count_parameters(same) == count_parameters(model) == PARAMS[("LANCET", "mfcc")]
    with torch.no_grad():
        assert same(torch.randn(2, 1, 26, 3)).shape == (2, 4)


# ---------------------------------------------------------------- --model-options

def test_parse_model_options() -> None:
    from lancet.models import parse_model_options

    got = parse_model_options(["attention_padding=same", "LANCET.attn_kernels=3,5,9", "TCNet.residual=false",
                               "LANCET.se_reduction=4"], ["LANCET", "TCNet"])
    assert got == {"LANCET": {"attention_padding": "same", "attn_kernels": (3, 5, 9), "se_reduction": 4},
                   "TCNet": {"residual": False}}
    assert parse_model_options([]) == {}
    # an unprefixed option goes only to the models that have it
    assert parse_model_options(["ff_mult=2"], ["LANCET", "GLAM"]) == {"GLAM": {"ff_mult": 2}}
    model = build_model("LANCET", 4, 26, 8, **got["LANCET"])
    assert model.attention.padding == "same" and model.attention.kernel_sizes == (3, 5, 9)


@pytest.mark.parametrize("items,message", [
    (["dropout=0.1"], r"unknown option 'dropout'; valid options: LANCET: .*attention_padding.*; GLAM: ff_mult"),
    (["LANCET.dropout=0.1"], r"unknown option 'dropout'; valid options: LANCET: bn_chan, hid_chan"),
    (["ResNet.depth=3"], rf"unknown model 'ResNet'; known models: {', '.join(MODELS)}$"),
    (["LANCET.bn_chan=1.5"], r"LANCET.bn_chan: expects an integer, got 1.5"),
    (["TCNet.residual=maybe"], r"TCNet.residual: expects true or false"),
    (["attention_padding"], r"write option=value"),
])
def test_parse_model_options_refuses(items, message) -> None:
    from lancet.models import parse_model_options

    with pytest.raises(LancetError, match=message) as err:
        parse_model_options(items, ["LANCET", "GLAM"])
    assert "\n" not in str(err.value)
