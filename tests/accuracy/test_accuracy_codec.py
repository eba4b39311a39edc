"""The transform codec in the loop of an accuracy run (docs/transform-coding.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simulator import api  # noqa: E402
from simulator.accuracy import evaluate_accuracy  # noqa: E402
from simulator.accuracy.codec import (CodecStage, calibrate_codecs, coded_names,  # noqa: E402
                                      with_codec)
from simulator.memory.codec import pixels  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "memory"))
from naive_codec import code_pixels  # noqa: E402


def test_digits_at_8_bits_keeps_accuracy_and_saves_bytes(digits_baseline):
    arch = api.load_arch("os_sa_16x16", ["memory.activation_codec.bits=8"])
    report = evaluate_accuracy(arch, digits_baseline)
    int8 = report["int8"]["correct"]
    drop = 100 * (int8 - report["hardware"]["correct"]) / report["images"]
    assert drop <= 0.5
    codec = report["codec"]
    assert codec["stored_bytes"] < codec["raw_bytes"]
    assert [r["layer"] for r in codec["layers"]] == coded_names(digits_baseline.qmodel)
    for row in codec["layers"]:
        assert row["entropy_bits_per_value"] <= row["code_bits_per_value"] + 1e-12
        assert row["values"] == 0 or row["stored_bytes"] > 0


def test_stage_feeds_the_layer_the_twins_decoded_input(digits_baseline):
    arch = api.load_arch("os_sa_16x16", ["memory.activation_codec.bits=3"])
    options = arch.memory.activation_codec
    qmodel = digits_baseline.qmodel
    codecs = calibrate_codecs(qmodel, digits_baseline.setup.calibration.x[:64], options)
    import copy

    model = with_codec(copy.deepcopy(qmodel), qmodel, codecs, options)
    stage = next(m for m in model.modules() if isinstance(m, CodecStage))
    seen = {}
    layer = qmodel.integer_layers()[stage.layer_name]

    def grab(module, inputs, output):
        seen["in"], seen["out"] = inputs[0], output
    handle = stage.register_forward_hook(grab)
    with torch.no_grad():
        model(digits_baseline.setup.evaluation.x[:2])
    handle.remove()
    xq = layer.quantize_input(seen["in"]).numpy().astype(np.int64)
    codec = stage.codec
    twin = code_pixels(pixels(xq).tolist(), codec.mean.tolist(), codec.basis.tolist(),
                       codec.shift, codec.lo, codec.hi, codec.bits, codec.low, codec.high)
    decoded = layer.quantize_input(seen["out"]).numpy().astype(np.int64)
    assert np.array_equal(pixels(decoded), np.array(twin))
    assert not np.array_equal(decoded, xq)  # 3 bits are lossy: the layer sees the codec


def test_pre_activation_stage_codes_the_layer_output_as_the_twin(digits_baseline):
    """``tensor: pre_activation``: a stage after each integer layer but the last codes its
    output (folded BatchNorm, before ReLU) on a signed 8-bit grid; what it hands on is the
    naive twin's decoding of that grid, times the grid step."""
    import copy

    from simulator.accuracy.codec import PreActivationStage

    arch = api.load_arch("os_sa_16x16", ["memory.activation_codec.bits=3",
                                         "memory.activation_codec.tensor=pre_activation"])
    options = arch.memory.activation_codec
    qmodel = digits_baseline.qmodel
    codecs = calibrate_codecs(qmodel, digits_baseline.setup.calibration.x[:64], options)
    assert list(codecs) == coded_names(qmodel, "pre_activation")
    assert list(codecs) == list(qmodel.integer_layers())[:-1]
    model = with_codec(copy.deepcopy(qmodel), qmodel, codecs, options)
    assert not any(isinstance(m, CodecStage) for m in model.modules())
    stage = next(m for m in model.modules() if isinstance(m, PreActivationStage))
    seen = {}

    def grab(module, inputs, output):
        seen["in"], seen["out"] = inputs[0], output
    handle = stage.register_forward_hook(grab)
    with torch.no_grad():
        model(digits_baseline.setup.evaluation.x[:2])
    handle.remove()
    y = seen["in"].double().numpy()
    assert (y < 0).any()  # a pre-activation: before ReLU
    yq = np.clip(np.round(y / stage.scale), -128, 127).astype(np.int64)
    codec = stage.codec
    twin = code_pixels(pixels(yq).tolist(), codec.mean.tolist(), codec.basis.tolist(),
                       codec.shift, codec.lo, codec.hi, codec.bits, codec.low, codec.high)
    decoded = np.round(seen["out"].double().numpy() / stage.scale).astype(np.int64)
    assert np.array_equal(pixels(decoded), np.array(twin))


def test_pre_activation_in_a_run_is_one_clear_line(cli):
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--set",
                 "memory.activation_codec.bits=6", "--set",
                 "memory.activation_codec.tensor=pre_activation")
    assert result.status == 2
    assert "memory.activation_codec.tensor: pre_activation is modelled by sasim accuracy" \
        in result.err and len(result.err.strip().splitlines()) == 1
    assert result.out == ""
