"""The transformer exporter: explicit attention with integer Q, K, V and P, the trace v2 it
writes (checked against hand-computed quantisers), per-token and SmoothQuant options, and
the refusals (nn.MultiheadAttention, F.scaled_dot_product_attention, a bare activation
product)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from simulator.errors import SasimError  # noqa: E402
from simulator.export.tiny_transformers import Block  # noqa: E402
from simulator.export.transformer import (MatMul, TransformerOptions,  # noqa: E402
                                          export_transformer, quantize_transformer)
from simulator.workloads.matmul import exact_matmul  # noqa: E402
from simulator.workloads.trace import load_trace, read_input_scale, read_manifest  # noqa: E402


class Tiny(nn.Module):
    """Two causal GQA blocks (4 query heads, 2 K/V heads) on float tokens, a linear head."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(16, 4, 2, 32, True, False),
                                    Block(16, 4, 2, 32, True, True))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.blocks(x))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = Tiny().eval()
    data = torch.randn(24, 6, 16)
    return model, data


def _captured(model, data):
    """Float inputs of every MatMul and Linear (float or integer), by module name."""
    seen = {}
    handles = [m.register_forward_pre_hook(
        lambda mod, inputs, name=name: seen.__setitem__(name, [t.detach().double()
                                                               for t in inputs]))
        for name, m in model.named_modules()
        if isinstance(m, MatMul | nn.Linear) or hasattr(m, "layer_name")]
    with torch.no_grad():
        model(data)
    for handle in handles:
        handle.remove()
    return seen


def test_trace_records_quantised_q_k_v_and_p(tiny, tmp_path):
    model, data = tiny
    out = tmp_path / "tiny.npz"
    result = export_transformer(model, data, data[:2], out, "tiny")
    manifest = read_manifest(out)
    assert manifest["schema_version"] == 2
    workload = load_trace(out)
    ops = [layer.op for layer in workload.layers]
    assert ops.count("matmul") == 4 and ops.count("linear") == 13
    assert {"layernorm", "rmsnorm", "softmax", "gelu", "silu", "add"} <= set(ops)
    assert list(result.layers) == [layer.name for layer in workload.layers]
    specs = {s["name"]: s for s in manifest["layers"]}
    # the float model's inputs at the traced samples, quantised by hand with the recorded scales
    qmodel = quantize_transformer(model, data)
    floats = _captured(qmodel.model, data[:2])
    for layer in workload.layers:
        spec = specs[layer.name]
        if layer.op == "matmul":
            assert (layer.heads, layer.kv_heads, layer.tokens, layer.role) == (4, 2, 6, "attention")
            tensors = workload.tensors(layer.name)
            np.testing.assert_array_equal(exact_matmul(tensors.input, tensors.weight, layer),
                                          tensors.output)
            left, right = floats[layer.name]
            if layer.name.endswith("context"):
                assert spec["activation_scale"] == pytest.approx(1 / 255)
                assert not layer.activation_signed
                assert tensors.input.min() >= 0 and tensors.input.max() <= 255
            low = -128 if layer.activation_signed else 0
            high = 127 if layer.activation_signed else 255
            want = np.clip(np.round(left.numpy() / spec["activation_scale"]), low, high)
            np.testing.assert_array_equal(tensors.input, want)
            want = np.clip(np.round(right.numpy() / spec["weight_scale"]), -128, 127)
            np.testing.assert_array_equal(tensors.weight, want)
        elif layer.op == "linear":
            tensors = workload.tensors(layer.name)
            x = floats[layer.name][0].reshape(-1, layer.in_channels).numpy()
            low = -128 if layer.activation_signed else 0
            want = np.clip(np.round(x / spec["activation_scale"]), low, 127 if low else 255)
            np.testing.assert_array_equal(tensors.input, want)
            np.testing.assert_array_equal(tensors.output, tensors.input @ tensors.weight.T)
    roles = {layer.name: layer.role for layer in workload.layers}
    assert roles["blocks.0.attn.q"] == "attention" and roles["blocks.0.mlp.fc1"] == "ffn"
    assert roles["blocks.0.add1"] == "other" and roles["head"] == ""


def test_int8_model_is_close_to_float(tiny):
    model, data = tiny
    with torch.no_grad():
        ref = model(data)
        for options in (TransformerOptions(), TransformerOptions(activations="dynamic"),
                        TransformerOptions(smooth_alpha=0.5),
                        TransformerOptions(probability_scale="calibrated")):
            got = quantize_transformer(model, data, options)(data)
            error = float((got - ref).norm() / ref.norm())
            assert error < 0.05, (options, error)


def test_dynamic_per_token_scales(tiny, tmp_path):
    model, data = tiny
    out = tmp_path / "dyn.npz"
    export_transformer(model, data, data[:2], out, "tiny",
                       TransformerOptions(activations="dynamic"))
    workload = load_trace(out)
    layer = next(layer for layer in workload.layers if layer.name == "blocks.0.attn.q")
    x = workload.tensors(layer.name).input
    scale = read_input_scale(out, layer.name)
    assert scale.shape == (x.shape[0],)
    assert (np.abs(x).max(axis=1) == 127).all()  # every token uses its full range
    floats = _captured(quantize_transformer(model, data, TransformerOptions(
        activations="dynamic")).model, data[:2])
    rows = floats[layer.name][0].reshape(-1, 16).numpy()
    np.testing.assert_allclose(scale, np.abs(rows).max(axis=1) / 127)
    scores = next(layer for layer in workload.layers if layer.name == "blocks.0.attn.scores")
    assert read_input_scale(out, scores.name).shape == (2, 4, 6)


def test_smoothquant_migrates_the_scale_into_the_weights(tiny):
    model, data = tiny
    qmodel = quantize_transformer(model, data, TransformerOptions(smooth_alpha=0.5))
    layer = qmodel.integer_layers()["blocks.0.mlp.fc2"]
    # the dequantised smoothed weight divided by the factors is the float weight (to half a step)
    weight = model.blocks[0].mlp.fc2.weight.detach().double()
    rebuilt = layer.weight_int * layer.weight_scales[:, None] / layer.smoothing[None, :]
    step = (layer.weight_scales[:, None] / layer.smoothing[None, :]) / 2
    assert bool(((rebuilt - weight).abs() <= step + 1e-12).all())
    # s_j = max|X_j|^0.5 / max|W_j|^0.5, X the layer's float input over the calibration set
    floats = _captured(model, data)["blocks.0.mlp.fc2"][0].reshape(-1, 32)
    want = (floats.abs().amax(0) ** 0.5 / weight.abs().amax(0) ** 0.5).clamp(min=1e-5)
    torch.testing.assert_close(layer.smoothing, want)


class _MHA(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x)[0]


class _SDPA(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x):
        q, k, v = self.qkv(x).reshape(x.shape[0], x.shape[1], 3, 1, 8).unbind(2)
        return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                              v.transpose(1, 2))


class _BareProduct(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8)

    def forward(self, x):
        q = self.q(x)
        return q @ q.transpose(-1, -2)


@pytest.mark.parametrize("module, message", [
    (_MHA, "module 'attn' is an nn.MultiheadAttention"),
    (_SDPA, "F.scaled_dot_product_attention"),
    (_BareProduct, "outside a simulator.export.transformer.MatMul"),
])
def test_attention_inside_one_op_is_refused(module, message, tmp_path):
    torch.manual_seed(0)
    with pytest.raises(SasimError, match=message) as info:
        export_transformer(module().eval(), torch.randn(4, 3, 8), torch.randn(1, 3, 8),
                           tmp_path / "x.npz", "x")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x.npz").exists()


def test_bad_options_are_refused():
    with pytest.raises(SasimError, match="alpha must be in"):
        TransformerOptions(smooth_alpha=1.5)
    with pytest.raises(SasimError, match="static or dynamic"):
        TransformerOptions(activations="per-channel")


def test_missing_text_says_how_to_point_the_gpt_elsewhere(tmp_path, capsys):
    import runpy

    from simulator.export.tiny_transformers import read_text
    with pytest.raises(SasimError, match="--text PATH"):
        read_text(tmp_path / "absent.txt")
    script = runpy.run_path(str(__import__("simulator").shipped.WORKLOAD_DIR / "char_gpt.py"))
    threads = torch.get_num_threads()
    try:
        assert script["main"](["accuracy", "--text", str(tmp_path / "absent.txt")]) == 2
    finally:
        torch.set_num_threads(threads)  # the script runs on one thread
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent.txt: file not found" in err


FACTORY = """
import torch
from torch import nn
from simulator.export.tiny_transformers import Block


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block(8, 2, 1, 16, False, False)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.block(x)[:, 0])


def factory():
    torch.manual_seed(0)
    return Net()


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block(8, 2, 1, 16, True, True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.block(x))


def decoder():
    torch.manual_seed(0)
    return Decoder()
"""


def test_cli_exports_a_transformer(cli, tmp_path):
    (tmp_path / "net.py").write_text(FACTORY)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(16, 5, 8)).astype(np.float32),
             y=rng.integers(0, 3, 16))
    data, out = str(tmp_path / "data.npz"), tmp_path / "t.npz"
    result = cli("export", f"{tmp_path / 'net.py'}:factory", "--transformer", "--activations",
                 "dynamic", "--calibration", data, "--trace-data", data, "--trace-samples", "2",
                 "--eval", data, "--out", out)
    assert result.status == 0, result.err
    assert "trace format version 2" in result.out and "top-1 on" in result.out
    manifest = read_manifest(out)
    assert manifest["provenance"]["quantisation"]["activations"] == "dynamic"
    assert {layer.op for layer in load_trace(out).layers} >= {"matmul", "linear", "softmax"}
    result = cli("export", f"{tmp_path / 'net.py'}:decoder", "--transformer", "--phase",
                 "decode", "--calibration", data, "--trace-data", data, "--trace-samples", "2",
                 "--out", tmp_path / "d.npz")
    assert result.status == 0, result.err
    decode = load_trace(tmp_path / "d.npz")
    assert (decode.phase, decode.sequences, decode.context_len) == ("decode", 2, 4)
    assert all(layer.kv_cache for layer in decode.layers if layer.op == "matmul")
    result = cli("export", f"{tmp_path / 'net.py'}:factory", "--transformer", "--phase",
                 "decode", "--calibration", data, "--trace-data", data, "--out", tmp_path / "e.npz")
    assert result.status == 2 and "layer 'head': a decode trace needs a token axis" in result.err
    result = cli("export", f"{tmp_path / 'net.py'}:factory", "--smooth-alpha", "0.5",
                 "--calibration", data, "--trace-data", data, "--out", tmp_path / "u.npz")
    assert result.status == 2 and "apply to --transformer exports only" in result.err
    result = cli("export", f"{tmp_path / 'net.py'}:factory", "--transformer", "--calibration",
                 str(tmp_path / "bad.npz"), "--trace-data", data, "--out", tmp_path / "v.npz")
    assert result.status == 2
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 5, 7), np.float32))
    result = cli("export", f"{tmp_path / 'net.py'}:factory", "--transformer", "--calibration",
                 str(tmp_path / "bad.npz"), "--trace-data", data, "--out", tmp_path / "v.npz")
    assert result.status == 2 and "cannot run on the calibration data" in result.err
    assert result.err.count("\n") == 1 and not (tmp_path / "v.npz").exists()
