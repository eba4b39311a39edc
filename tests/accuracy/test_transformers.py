"""sasim accuracy on the shipped transformers: the exact PE reproduces the exporter's INT8
model bit for bit, an approximate PE is really in the loop, the shipped weights and traces
meet their accuracy bounds, SQNR per layer, and the CLI."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simulator import api  # noqa: E402
from simulator.accuracy.transformers import (evaluate_transformer, hardware_gemm,  # noqa: E402
                                             layer_sqnr, prepare_transformer)
from simulator.hw.pe import get_pe_model  # noqa: E402
from simulator.shipped import WORKLOAD_DIR  # noqa: E402
from simulator.workloads.matmul import exact_matmul  # noqa: E402
from simulator.workloads.trace import load_trace, read_manifest  # noqa: E402


@pytest.fixture(scope="module")
def vit():
    return prepare_transformer("digits_vit", limit=64)


def _logits(model, x):
    with torch.no_grad():
        return model(x)


def test_exact_pe_reproduces_the_int8_model_bit_for_bit(vit):
    arch = api.load_arch("os_sa_16x16")
    model = copy.deepcopy(vit.qmodel)
    model.set_gemm(hardware_gemm(get_pe_model(arch.pe, arch.array)))
    np.testing.assert_array_equal(_logits(model, vit.x).numpy(),
                                  _logits(vit.qmodel, vit.x).numpy())
    report = evaluate_transformer(arch, vit)
    assert report["hardware"] == report["int8"]


def test_an_approximate_pe_is_in_the_loop(vit):
    arch = api.load_arch("sysmt_4t_16x16")
    model = copy.deepcopy(vit.qmodel)
    calls = []
    gemm = hardware_gemm(get_pe_model(arch.pe, arch.array))

    def counted(layer, a, b):
        calls.append(layer.op)
        return gemm(layer, a, b)

    model.set_gemm(counted)
    hw = _logits(model, vit.x)
    assert calls.count("matmul") == 6 and calls.count("linear") == 20
    assert not torch.equal(hw, _logits(vit.qmodel, vit.x))


def test_shipped_transformers_meet_their_accuracy_bounds():
    """ViT: INT8 top-1 within 1 point of float; GPT: INT8 loss within 5 % of float."""
    vit = prepare_transformer("digits_vit")
    assert abs(vit.float_score["top1"] - vit.int8_score["top1"]) <= 0.01
    assert vit.float_score["top1"] > 0.9
    gpt = prepare_transformer("char_gpt")
    assert gpt.int8_score["loss"] <= 1.05 * gpt.float_score["loss"]
    assert gpt.float_score["perplexity"] < 12  # far below the 76 of a uniform guess
    assert gpt.int8_score["perplexity"] == pytest.approx(math.exp(gpt.int8_score["loss"]))


@pytest.mark.parametrize("name, matmuls, heads, kv_heads", [("digits_vit_int8", 6, 4, 4),
                                                            ("char_gpt_int8", 6, 4, 2)])
def test_shipped_traces_are_v2_and_exact(name, matmuls, heads, kv_heads):
    path = WORKLOAD_DIR / f"{name}.npz"
    assert read_manifest(path)["schema_version"] == 2
    workload = load_trace(path)
    found = [layer for layer in workload.layers if layer.op == "matmul"]
    assert len(found) == matmuls
    for layer in found:
        assert (layer.heads, layer.kv_heads) == (heads, kv_heads)
        tensors = workload.tensors(layer.name)
        np.testing.assert_array_equal(exact_matmul(tensors.input, tensors.weight, layer),
                                      tensors.output)
    context = [layer for layer in found if layer.name.endswith("context")]
    assert all(not layer.activation_signed for layer in context)


def test_sqnr_is_infinite_for_the_exact_pe_and_finite_for_an_approximate_one():
    rows = layer_sqnr(api.load_arch("os_sa_16x16"), "digits_vit_int8")
    assert rows and all(r["sqnr_db"] == math.inf for r in rows)
    rows = layer_sqnr(api.load_arch("sparq_2opt_16x16"), "digits_vit_int8")
    assert all(10 < r["sqnr_db"] < math.inf for r in rows if r["op"] == "linear")


def test_cli_accuracy_on_a_transformer(cli):
    result = cli("accuracy", "--arch", "os_sa_16x16", "--model", "digits_vit", "--limit", "32",
                 "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["samples"] == 32 and report["hardware"] == report["int8"]
    result = cli("accuracy", "--arch", "os_sa_16x16", "--model", "char_gpt", "--limit", "4")
    assert result.status == 0, result.err
    assert "perplexity" in result.out and "INT8 (exporter, exact)" in result.out


def test_cli_refuses_options_that_do_not_apply(cli):
    result = cli("accuracy", "--arch", "os_sa_16x16", "--model", "digits_vit",
                 "--bn-recalibrate", "64")
    assert result.status == 2
    assert result.err.count("\n") == 1 and "--bn-recalibrate does not apply" in result.err


def test_shipped_decode_trace_is_the_last_token_of_the_prefill_trace():
    prefill = load_trace(WORKLOAD_DIR / "char_gpt_int8.npz")
    decode = load_trace(WORKLOAD_DIR / "char_gpt_decode_int8.npz")
    assert (prefill.phase, prefill.sequences, prefill.seq_len) == ("prefill", 1, 64)
    assert (decode.phase, decode.sequences, decode.context_len) == ("decode", 1, 63)
    assert [layer.name for layer in decode.layers] == [layer.name for layer in prefill.layers]
    for full, step in zip(prefill.layers, decode.layers):
        whole, last = prefill.tensors(full.name), decode.tensors(step.name)
        if full.op == "matmul":
            assert step.kv_cache and not full.kv_cache and step.tokens == 1
            np.testing.assert_array_equal(last.input, whole.input[:, :, -1:])
            np.testing.assert_array_equal(last.weight, whole.weight)  # all of K or V
            np.testing.assert_array_equal(last.output, whole.output[:, :, -1:])
        elif full.op == "linear":
            assert step.batch == 1 and full.batch == 64
            np.testing.assert_array_equal(last.input, whole.input[-1:])
            np.testing.assert_array_equal(last.output, whole.output[-1:])
        else:
            axis = 2 if whole.input.ndim == 4 else 1
            np.testing.assert_array_equal(last.input, np.take(whole.input, [-1], axis=axis))
            assert step.tokens == 1
