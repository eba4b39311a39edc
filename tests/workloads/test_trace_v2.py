"""Trace format version 2: matmul and vector layers, the documented numpy example, the
writer's version choice, version 1 still loading, and bad v2 traces refused in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from simulator.errors import TraceError
from simulator.shipped import WORKLOAD_DIR
from simulator.workloads.layers import Layer, LayerTensors
from simulator.workloads.matmul import exact_matmul, matmul_operands, matmul_output
from simulator.workloads.trace import (TraceEntry, load_trace, read_input_scale, read_manifest,
                                       write_trace)

REPO = Path(__file__).resolve().parents[2]


def _doc_example() -> str:
    text = (REPO / "docs" / "trace-format.md").read_text(encoding="utf-8")
    section = text.split("### Writing a version 2 trace by hand with numpy", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_documented_v2_example_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_doc_example(), "docs/trace-format.md", "exec"), {})
    workload = load_trace(tmp_path / "attention_by_hand.npz")
    scores, softmax, residual = workload.layers
    assert (scores.op, scores.batch, scores.heads, scores.kv_heads, scores.tokens,
            scores.in_channels, scores.out_channels, scores.role) == \
        ("matmul", 1, 2, 1, 4, 8, 4, "attention")
    assert scores.gemm.m == 8 and scores.gemm.groups == 1
    tensors = workload.tensors("scores")
    np.testing.assert_array_equal(exact_matmul(tensors.input, tensors.weight, scores),
                                  tensors.output)
    assert (softmax.op, softmax.heads, softmax.tokens, softmax.in_channels) == \
        ("softmax", 2, 4, 4)
    assert softmax.activation_bits == 32  # a float32 input
    assert workload.tensors("softmax").output.dtype == np.int64
    add = workload.tensors("residual")
    assert add.weight is None and add.other.dtype == np.float64
    np.testing.assert_allclose(add.input + add.other, add.output, rtol=1e-6)
    assert (residual.rows, residual.input_operands) == (4, 2)


def test_shipped_v1_trace_still_loads():
    workload = load_trace(WORKLOAD_DIR / "digits_int8.npz")
    assert read_manifest(WORKLOAD_DIR / "digits_int8.npz")["schema_version"] == 1
    assert [layer.op for layer in workload.layers].count("conv2d") == 8


def _naive_matmul(left, right, heads, kv_heads):
    b, h, t, k = left.shape
    n = right.shape[-1]
    out = np.zeros((b, h, t, n), dtype=np.int64)
    for bi in range(b):
        for hi in range(h):
            g = hi // (heads // kv_heads)
            for ti in range(t):
                for ni in range(n):
                    out[bi, hi, ti, ni] = sum(int(left[bi, hi, ti, ki]) * int(right[bi, g, ki, ni])
                                              for ki in range(k))
    return out


@pytest.mark.parametrize("heads, kv_heads", [(1, 1), (4, 4), (4, 2), (4, 1)])
def test_matmul_lowering_matches_the_naive_product(heads, kv_heads):
    rng = np.random.default_rng(heads * 10 + kv_heads)
    layer = Layer(name="m", op="matmul", in_channels=5, out_channels=3, batch=2, heads=heads,
                  kv_heads=kv_heads, tokens=3, activation_signed=True)
    left = rng.integers(-128, 128, (2, heads, 3, 5))
    right = rng.integers(-128, 128, (2, kv_heads, 5, 3))
    a, b = matmul_operands(left, right, layer)
    assert a.shape == (layer.gemm.groups, layer.gemm.m, 5) and b.shape == (layer.gemm.groups, 5, 3)
    np.testing.assert_array_equal(matmul_output(np.matmul(a, b), layer),
                                  _naive_matmul(left, right, heads, kv_heads))
    np.testing.assert_array_equal(exact_matmul(left, right, layer),
                                  _naive_matmul(left, right, heads, kv_heads))


def _entries(rng):
    mm = Layer(name="attn.scores", op="matmul", in_channels=6, out_channels=5, batch=2, heads=4,
               kv_heads=2, tokens=5, activation_signed=True, role="attention")
    q = rng.integers(-128, 128, (2, 4, 5, 6)).astype(np.int8)
    k = rng.integers(-128, 128, (2, 2, 6, 5)).astype(np.int8)
    fc = Layer(name="fc", op="linear", in_channels=6, out_channels=3, batch=4,
               activation_signed=True, role="ffn")
    x = rng.integers(-128, 128, (4, 6)).astype(np.int8)
    w = rng.integers(-127, 128, (3, 6)).astype(np.int8)
    ln = Layer(name="ln", op="layernorm", in_channels=6, out_channels=6, batch=2, tokens=5,
               activation_bits=32, activation_signed=True)
    h = rng.normal(size=(2, 5, 6)).astype(np.float32)
    pool = Layer(name="pool", op="maxpool", in_channels=3, out_channels=3, batch=1,
                 input_size=(4, 4), kernel_size=(2, 2), stride=(2, 2), activation_bits=8)
    img = rng.integers(0, 256, (1, 3, 4, 4)).astype(np.uint8)
    pooled = img.reshape(1, 3, 2, 2, 2, 2).max(axis=(3, 5))
    return [
        TraceEntry(mm, LayerTensors(q, k, output=exact_matmul(q, k, mm)), activation_scale=0.1,
                   weight_scale=0.2),
        TraceEntry(fc, LayerTensors(x, w), input_scale=rng.uniform(0.1, 1, 4)),
        TraceEntry(ln, LayerTensors(h, None, output=h - h.mean(-1, keepdims=True))),
        TraceEntry(pool, LayerTensors(img, None, output=pooled), activation_scale=0.5),
    ]


def test_writer_round_trips_v2_layers(tmp_path):
    rng = np.random.default_rng(0)
    entries = _entries(rng)
    path = write_trace(tmp_path / "t.npz", "tiny_transformer", entries, {"tool": "test"})
    manifest = read_manifest(path)
    assert manifest["schema_version"] == 2
    workload = load_trace(path)
    for entry, layer in zip(entries, workload.layers):
        want = entry.layer
        if want.op == "matmul":
            want = Layer(**{**want.__dict__, "kv_heads": want.right_heads})
        assert layer == want
        tensors = workload.tensors(layer.name)
        np.testing.assert_array_equal(tensors.input, entry.tensors.input)
    np.testing.assert_allclose(read_input_scale(path, "fc"), entries[1].input_scale)
    assert read_input_scale(path, "ln") is None
    specs = {s["name"]: s for s in manifest["layers"]}
    assert specs["attn.scores"]["weight_scale"] == 0.2
    assert specs["pool"]["output_bits"] == 8 and specs["pool"]["output_signed"] is False


def test_writer_keeps_version_1_for_cnn_layers(tmp_path):
    layer = Layer(name="fc", op="linear", in_channels=3, out_channels=2, batch=1)
    entry = TraceEntry(layer, LayerTensors(np.ones((1, 3), np.uint8), np.ones((2, 3), np.int8)))
    path = write_trace(tmp_path / "w.npz", "m", [entry], {})
    assert read_manifest(path)["schema_version"] == 1


def _valid_v2():
    rng = np.random.default_rng(1)
    q = rng.integers(-128, 128, (1, 4, 3, 8)).astype(np.int8)
    k = rng.integers(-128, 128, (1, 2, 8, 3)).astype(np.int8)
    s = rng.normal(size=(1, 4, 3, 3)).astype(np.float32)
    manifest = {"format": "sasim-trace", "schema_version": 2, "model": "m",
                "layers": [{"name": "qk", "op": "matmul", "heads": 4, "kv_heads": 2,
                            "activation_signed": True, "activation_bits": 8,
                            "weight_signed": True, "weight_bits": 8,
                            "arrays": ["input", "weight"]},
                           {"name": "sm", "op": "softmax", "arrays": ["input", "output"]},
                           {"name": "res", "op": "add", "arrays": ["input", "other"]}]}
    arrays = {"qk.input": q, "qk.weight": k, "sm.input": s, "sm.output": s,
              "res.input": s, "res.other": s}
    return manifest, arrays


def _set(layer, key, value):
    def change(m, a):
        if value is None:
            del m["layers"][layer][key]
        else:
            m["layers"][layer][key] = value
    return change


BAD_V2 = {
    "inner dimensions": (lambda m, a: a.update({"qk.weight": np.zeros((1, 2, 6, 3), np.int8)}),
                         "qk", "inner dimensions differ: input [1, 4, 3, 8] has K=8"),
    "kv_heads does not divide heads": (_set(0, "kv_heads", 3), "qk",
                                       "kv_heads=3 must divide heads=4"),
    "kv_heads vs arrays": (_set(0, "kv_heads", 4), "qk", "do not match the arrays"),
    "batch differs": (lambda m, a: a.update({"qk.weight": np.zeros((2, 2, 8, 3), np.int8)}),
                      "qk", "batch differs"),
    "unknown op": (_set(1, "op", "softmin"), "sm", "unknown op 'softmin'"),
    "missing array": (lambda m, a: a.pop("res.other"), "res", "'res.other' is missing"),
    "add without other": (_set(2, "arrays", ["input"]), "res", "must include 'other'"),
    "softmax with other": (_set(1, "arrays", ["input", "other"]), "sm", "has no 'other'"),
    "missing heads": (_set(0, "heads", None), "qk", "'heads' is missing"),
    "key not applying": (_set(2, "heads", 2), "res", "'heads' does not apply to a add layer"),
    "float matmul": (lambda m, a: a.update({"qk.input": a["qk.input"].astype(np.float32)}),
                     "qk", "dtype float32"),
    "output shape": (lambda m, a: a.update({"sm.output": np.zeros((1, 4, 3), np.float32)}),
                     "sm", "'sm.output' must have shape [1, 4, 3, 3]"),
    "NaN": (lambda m, a: a.update({"sm.input": np.full((1, 4, 3, 3), np.nan, np.float32)}),
            "sm", "not finite"),
    "integer input without bits": (
        lambda m, a: a.update({"sm.input": np.zeros((1, 4, 3, 3), np.int8)}), "sm",
        "'activation_signed' is missing"),
    "integer output without bits": (
        lambda m, a: a.update({"sm.output": np.zeros((1, 4, 3, 3), np.uint8)}), "sm",
        "'output_signed' and 'output_bits' are needed"),
    "right operand out of range": (_set(0, "weight_signed", False), "qk",
                                   "outside the declared unsigned 8-bit range"),
    "bad role": (_set(1, "role", "mlp"), "sm", "manifest key 'role'"),
    "matmul in a v1 manifest": (lambda m, a: m.update({"schema_version": 1}), "qk",
                                "schema_version 2 adds matmul"),
}


@pytest.mark.parametrize("case", sorted(BAD_V2))
def test_bad_v2_trace_is_refused_in_one_line(tmp_path, case):
    change, layer, message = BAD_V2[case]
    manifest, arrays = _valid_v2()
    load_trace(_save(tmp_path / "good.npz", manifest, arrays))
    change(manifest, arrays)
    path = _save(tmp_path / "bad.npz", manifest, arrays)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{path}: layer '{layer}': "), text
    assert message in text, text


def _save(path, manifest, arrays):
    np.savez(path, manifest=np.array(json.dumps(manifest)), **arrays)
    return path


def test_cli_refuses_a_bad_v2_trace_in_one_line(cli, tmp_path):
    manifest, arrays = _valid_v2()
    BAD_V2["inner dimensions"][0](manifest, arrays)
    path = _save(tmp_path / "bad.npz", manifest, arrays)
    result = cli("inspect", str(path))
    assert result.status == 2
    assert result.err.count("\n") == 1 and "inner dimensions differ" in result.err


@pytest.mark.parametrize("argv", [("run", "--arch", "os_sa_16x16", "--workload", "char_gpt_int8"),
                                  ("inspect", "char_gpt_int8")])
def test_cli_runs_and_inspects_a_v2_trace(cli, argv):
    # the pipeline simulates every v2 layer (matmuls, vector ops): no refusal any more
    result = cli(*argv)
    assert result.status == 0, result.err
    assert result.err == "" and "char_gpt" in result.out


def test_inference_object_sets_the_workload_phase(tmp_path):
    manifest, arrays = _valid_v2()
    manifest["inference"] = {"phase": "decode", "sequences": 1, "context_len": 2}
    workload = load_trace(_save(tmp_path / "t.npz", manifest, arrays))
    assert (workload.phase, workload.sequences, workload.seq_len, workload.context_len) == \
        ("decode", 1, 0, 2)
    layer = Layer(name="fc", op="linear", in_channels=3, out_channels=2, batch=1)
    entry = TraceEntry(layer, LayerTensors(np.ones((1, 3), np.uint8), np.ones((2, 3), np.int8)))
    path = write_trace(tmp_path / "w.npz", "m", [entry], {},
                       inference={"phase": "prefill", "sequences": 1, "seq_len": 1})
    assert read_manifest(path)["schema_version"] == 2
    assert load_trace(path).phase == "prefill"


@pytest.mark.parametrize("inference, version, message", [
    ({"phase": "generate"}, 2, "'phase' must be prefill or decode"),
    ({"phase": "decode", "context_len": -1}, 2, "'context_len' must be an integer from 0"),
    ({"phase": "decode", "tokens": 3}, 2, "unknown key 'tokens'"),
    ([1], 2, "expected an object"),
    ({"phase": "prefill"}, 1, "schema_version 2 adds 'inference'"),
])
def test_bad_inference_object_is_refused(tmp_path, inference, version, message):
    manifest, arrays = _valid_v2()
    manifest["inference"] = inference
    manifest["schema_version"] = version
    path = _save(tmp_path / "t.npz", manifest, arrays)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert str(info.value).startswith(f"{path}: manifest: inference: ")
    assert message in str(info.value)
