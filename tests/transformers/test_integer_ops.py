"""Integer-only vector ops (I-BERT) against the naive twins, bit for bit, and their error
against float64 on data (docs/transformers.md, "Integer-only variants")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from naive_integer import (naive_i_exp, naive_i_gelu, naive_i_silu, naive_i_softmax,
                           naive_isqrt, naive_norm)
from simulator import api
from simulator.hw import integer_ops as iops
from simulator.workloads.layers import Layer, Workload
from simulator.workloads.synthetic import synthesize


@pytest.mark.parametrize("seed", range(4))
def test_integer_ops_equal_the_naive_twins(seed):
    rng = np.random.default_rng(seed)
    scale = float(rng.uniform(0.01, 0.2))
    q = rng.integers(-128, 128, (3, 17))
    assert iops.i_exp(-np.abs(q), scale)[0].tolist() == [
        [naive_i_exp(-abs(int(v)), scale) for v in row] for row in q]
    assert iops.i_softmax(q, scale)[0].tolist() == [naive_i_softmax(row.tolist(), scale)
                                                    for row in q]
    assert iops.i_gelu(q, scale)[0].tolist() == [[naive_i_gelu(int(v), scale) for v in row]
                                                 for row in q]
    assert iops.i_silu(q, scale)[0].tolist() == [[naive_i_silu(int(v), scale) for v in row]
                                                 for row in q]
    assert iops.i_layernorm(q, scale)[0].tolist() == [naive_norm(row.tolist(), True)
                                                      for row in q]
    assert iops.i_rmsnorm(q, scale)[0].tolist() == [naive_norm(row.tolist(), False)
                                                    for row in q]


def test_integer_square_root():
    n = np.array([0, 1, 2, 3, 4, 15, 16, 17, 99, 10**12, 2**62 - 1], dtype=np.int64)
    assert iops.isqrt(n).tolist() == [naive_isqrt(int(v)) for v in n]


@pytest.mark.parametrize("op, floor_db", [("softmax", 45), ("gelu", 40), ("silu", 40),
                                          ("layernorm", 30), ("rmsnorm", 30)])
def test_integer_variants_are_close_to_float(op, floor_db):
    rng = np.random.default_rng(1)
    q = rng.integers(-127, 128, (16, 64))
    sqnr = iops.integer_error(op, q, iops.input_scale(op, 8, True))
    assert sqnr is not None and floor_db < sqnr < 200


def test_float_reference_is_the_textbook_op():
    x = np.array([[-1.0, 0.0, 2.0]])
    assert iops.float_reference("gelu", x)[0, 2] == pytest.approx(1.954499736)
    assert iops.float_reference("softmax", x).sum() == pytest.approx(1.0)
    assert iops.float_reference("silu", x)[0, 0] == pytest.approx(-1 / (1 + math.e))


def test_a_functional_run_reports_the_integer_error_per_layer():
    layers = (Layer("soft", "softmax", 64, 64, heads=2, tokens=4),
              Layer("act", "gelu", 64, 64, tokens=4, activation_signed=True),
              Layer("res", "add", 64, 64, tokens=4))
    workload = synthesize(Workload("w", "w.yaml", layers, "yaml"))
    result = api.simulate(api.load_arch("os_sa_16x16", ["vector.integer_ops=[gelu]"]),
                          workload)
    soft, act, res = result.layers
    assert soft.vector_sqnr_db is None and res.vector_sqnr_db is None
    q = np.asarray(workload.tensors("act").input, dtype=np.int64).reshape(-1, 64)
    assert act.vector_sqnr_db == iops.integer_error("gelu", q, iops.input_scale("gelu", 8, True))
    timing = api.simulate(api.load_arch("os_sa_16x16", ["vector.integer=true"]), workload,
                          functional=False)
    assert all(layer.vector_sqnr_db is None for layer in timing.layers)
