"""A trace's float vector-layer inputs (the shipped transformer traces record them in float)
are read as signed 8-bit codes per tensor (docs/transformers.md, "Integer-only variants")."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulator import api
from simulator.workloads.layers import LayerTensors, float_codes
from simulator.workloads.stats import layer_stats


def test_float_codes_span_the_signed_byte():
    x = np.array([[-2.0, 0.0, 0.5], [1.0, 2.0, -0.01]])
    q, scale = float_codes(x)
    assert scale == 2.0 / 127
    assert q.dtype == np.int64 and q.min() == -127 and q.max() == 127
    assert q[0, 1] == 0 and q[1, 2] == -1  # -0.01 / (2/127) = -0.635 rounds to -1
    assert float_codes(np.zeros(3))[1] == 1.0


def test_integer_variants_measure_their_error_on_a_float_traced_input():
    workload = api.load_workload("digits_vit_int8")
    arch = api.load_arch("os_sa_16x16", ["vector.integer=true"])
    names = {layer.op: layer.name for layer in workload.layers}
    keep = [layer for layer in workload.layers if layer.name in
            (names["softmax"], names["gelu"], names["layernorm"])]
    run = api.simulate(arch, dataclasses.replace(workload, layers=tuple(keep)))
    sqnr = [layer.vector_sqnr_db for layer in run.layers]
    assert all(s is not None and math.isfinite(s) and s > 10 for s in sqnr), sqnr


def test_statistics_of_a_float_input_count_its_codes():
    workload = api.load_workload("digits_vit_int8")
    layer = next(layer for layer in workload.layers if layer.op == "layernorm")
    tensors = workload.tensors(layer.name)
    assert np.asarray(tensors.input).dtype.kind == "f"
    stats = layer_stats(layer, tensors)
    codes = np.abs(float_codes(np.asarray(tensors.input))[0])
    assert stats.activation_zero_fraction == float(np.mean(codes == 0))
    assert stats.activation_max == 127
    # as integers by truncation most of a normalised input would have been zero
    assert stats.activation_zero_fraction < float(np.mean(np.abs(tensors.input) < 1))
