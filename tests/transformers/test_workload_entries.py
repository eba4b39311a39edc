"""The workload YAML entries of matmul and the vector ops, and the inference phase."""

from __future__ import annotations

import pytest

from simulator import api
from simulator.errors import WorkloadError

GOOD = """schema_version: 1
name: block
batch: 2
phase: decode
context_len: 128
layers:
  - {name: q, op: linear, in_features: 64, out_features: 64, activation_signed: true, role: attention}
  - {name: scores, op: matmul, in_features: 16, out_features: 128, heads: 4, kv_heads: 2, activation_signed: true, kv_cache: true, role: attention}
  - {name: soft, op: softmax, features: 128, heads: 4, role: attention}
  - {name: ctx, op: matmul, left: [1, 128], right: [128, 16], heads: 4, kv_heads: 2, kv_cache: true, role: attention}
  - {name: res, op: add, features: 64, activation_signed: true}
  - {name: norm, op: rmsnorm, features: 64, activation_signed: true}
  - {name: rope, op: rotary, features: 16, heads: 4, activation_signed: true}
  - {name: pool, op: avgpool, channels: 8, input_size: 6, kernel_size: 3}
  - {name: gpool, op: global_avgpool, channels: 8, input_size: 6}
"""


def _load(tmp_path, text):
    path = tmp_path / "w.yaml"
    path.write_text(text)
    return api.load_workload(path)


def test_entries_build_their_layers(tmp_path):
    workload = _load(tmp_path, GOOD)
    assert (workload.phase, workload.sequences, workload.context_len) == ("decode", 2, 128)
    layers = {layer.name: layer for layer in workload.layers}
    scores = layers["scores"]
    assert (scores.gemm.m, scores.gemm.k, scores.gemm.n, scores.gemm.groups) == (2, 16, 128, 4)
    assert scores.kv_cache and scores.role == "attention" and scores.weight_signed
    ctx = layers["ctx"]
    assert (ctx.tokens, ctx.in_channels, ctx.out_channels) == (1, 128, 16)
    soft = layers["soft"]
    assert not soft.is_gemm and soft.rows == 2 * 4 and soft.elements == 2 * 4 * 128
    assert layers["pool"].stride == (3, 3) and layers["pool"].output_size == (2, 2)
    assert layers["gpool"].kernel_size == (6, 6) and layers["gpool"].output_elements == 16


@pytest.mark.parametrize("change, message", [
    (("left: [1, 128], right: [128, 16]", "left: [1, 128], right: [64, 16]"),
     "layers[3] (ctx): the matmul's inner dimensions differ: left [1, 128] has K=128, right "
     "[64, 16] has K=64"),
    (("kv_heads: 2, activation_signed: true, kv_cache", "kv_heads: 3, activation_signed: true, kv_cache"),
     "layers[1] (scores).kv_heads: 3 does not divide heads=4"),
    (("op: softmax", "op: sofmax"), "got 'sofmax' (did you mean 'softmax'?)"),
    (("op: rmsnorm, features: 64", "op: rmsnorm, in_features: 64"),
     "layers[5] (norm): unknown key 'in_features'"),
    (("phase: decode", "phase: decoding"), "phase: expected prefill or decode, got 'decoding' "
     "(did you mean 'decode'?)"),
    (("role: attention}\n  - {name: soft", "role: attn}\n  - {name: soft"),
     "layers[1] (scores).role: expected one of"),
    (("left: [1, 128], right", "left: [1, 128], in_features: 128, right"),
     "layers[3] (ctx): give left or in_features, not both"),
    (("kernel_size: 3}", "kernel_size: 7}"), "does not fit the input"),
])
def test_bad_entries_are_one_clear_line(tmp_path, change, message):
    with pytest.raises(WorkloadError) as info:
        _load(tmp_path, GOOD.replace(*change))
    text = str(info.value)
    assert message in text and "\n" not in text and str(tmp_path) in text


def test_cli_refuses_a_bad_matmul_with_status_2(tmp_path, capsys):
    from simulator.cli import main

    path = tmp_path / "w.yaml"
    path.write_text(GOOD.replace("right: [128, 16]", "right: [64, 16]"))
    assert main(["run", "--arch", "os_sa_16x16", "--workload", str(path)]) == 2
    err = capsys.readouterr().err
    assert "inner dimensions differ" in err and "Traceback" not in err


def test_run_and_compare_print_the_transformer_figures(tmp_path, capsys):
    from simulator.cli import main

    path = tmp_path / "w.yaml"
    path.write_text(GOOD)
    assert main(["run", "--arch", "os_sa_16x16", "--workload", str(path),
                 "--set", "vector.integer=true"]) == 0
    out = capsys.readouterr().out
    assert "time per output token" in out and "KV cache:" in out
    assert "integer-only variant vs float64" in out
    assert main(["compare", "--workload", str(path), "--arch", "os_sa_16x16",
                 "--arch", "sysmt_2t_16x16", "--timing-only", "--out",
                 str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "transformer figures" in out and "tokens/s" in out
    header = (tmp_path / "cmp" / "comparison.csv").read_text().splitlines()[0]
    assert "tokens_per_s" in header and "kv_cache_read_bytes" in header
