"""simulator.kernels.metrics.error_sums against a naive loop, and a functional run that
uses it against the numpy metrics of its outputs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from simulator import api
from simulator.kernels import metrics
from simulator.results import error_metrics
from simulator.workloads.synthetic import synthesize


def _naive(approx: np.ndarray, exact: np.ndarray) -> tuple[int, int, int]:
    """Python integers, element by element: exact sums."""
    noise = largest = signal = 0
    for x, e in zip(approx.ravel().tolist(), exact.ravel().tolist()):
        noise += (x - e) ** 2
        largest = max(largest, abs(x - e))
        signal += e * e
    return noise, largest, signal


@pytest.mark.parametrize("shape", [(0, 3), (1, 1), (3, 5), (7, 300), (41, 1031)])
@pytest.mark.parametrize("seed", [0, 1])
def test_error_sums_match_a_naive_loop(shape, seed):
    rng = np.random.default_rng(seed)
    exact = rng.integers(-2**20, 2**20, shape)
    approx = exact + rng.integers(-300, 300, shape) * (rng.random(shape) < 0.3)
    noise, largest, signal = metrics.error_sums(approx, exact)
    n, m, s = _naive(approx, exact)
    assert noise == n and largest == m  # integer sums below 2**53: exact
    assert signal == pytest.approx(s, rel=1e-14)
    assert isinstance(largest, int)


def test_error_sums_take_narrow_integers_and_refuse_other_shapes():
    a = np.array([[1, -2], [3, 4]], np.int8)
    e = np.array([[1, 2], [3, 5]], np.int32)
    assert metrics.error_sums(a, e) == (17.0, 4, 39.0)
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.error_sums(a, e[:1])


def test_error_sums_do_not_depend_on_the_threads(monkeypatch):
    rng = np.random.default_rng(3)
    exact = rng.integers(-2**30, 2**30, (1500, 1000))
    approx = exact + rng.integers(-9, 9, exact.shape)
    many = metrics.error_sums(approx, exact)
    monkeypatch.setattr(metrics, "kernel_threads", lambda: 1)
    assert metrics.error_sums(approx, exact) == many
    assert many[2] == pytest.approx(float(np.sum(exact.astype(np.float64) ** 2)), rel=1e-13)


def test_sysmt_run_metrics_are_those_of_its_outputs(tmp_path):
    # a functional SySMT run (error sums in one pass, outputs not gathered) against
    # results.error_metrics of the saved outputs and the exact products
    from simulator.workloads.lowering import exact_output

    arch = api.load_arch("sysmt_2t_16x16")
    workload = synthesize(api.load_workload("resnet18"))
    layers = workload.layers[:3]
    workload = dataclasses.replace(workload, layers=layers)
    saved: dict[str, np.ndarray] = {}
    plain = api.simulate(arch, workload)
    with_outputs = api.simulate(arch, workload, output_sink=saved.__setitem__)
    assert all(layer.mse > 0 for layer in plain.layers)  # SySMT-2T loses bits here
    for layer, a, b in zip(layers, plain.layers, with_outputs.layers):
        assert a == b
        expected = error_metrics(saved[layer.name], exact_output(workload.tensors(layer.name),
                                                                  layer))
        assert a.mse == pytest.approx(expected.mse, rel=1e-12)
        assert a.max_abs_error == expected.max_abs_error
        assert a.signal_power == pytest.approx(expected.signal_power, rel=1e-12)
        assert a.sqnr_db is None or math.isclose(a.sqnr_db, expected.sqnr_db, rel_tol=1e-9)
