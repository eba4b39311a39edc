"""A worker's point equals `sasim run` on the same design: the shared, cached preparation
(workloads, synthetic data) must not change any result."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator import api
from simulator.sweep import worker
from simulator.sweep.spec import load_sweep, plan_sweep

DESIGNS = ["os_sa_16x16", "sysmt_2t_16x16", "sysmt_4t_16x16", "bitserial_4b_16x16",
           "swis_g8_n3_16x16", "swis_variable_16x16"]


@pytest.mark.parametrize("timing_only", [False, True])
def test_points_equal_plain_simulate_for_every_pe_type(write_spec, timing_only):
    path = write_spec({"base": DESIGNS, "workloads": ["tiny.yaml", "small.yaml"],
                       "grid": {"array.rows": [4, 8]}, "timing_only": timing_only})
    plan = plan_sweep(load_sweep(path), path)
    # twice through the same worker caches, in an order that revisits each workload
    for point in [*plan.points, *reversed(plan.points)]:
        outcome = worker.run_point(point, plan.axes)
        record = json.loads(outcome.text)
        assert record["error"] is None and not outcome.failed
        arch = api.load_arch(point.base_path, point.overrides)
        fresh = api.load_workload(point.workload_path)  # no cache: what `sasim run` does
        expected = api.simulate(arch, fresh, functional=not timing_only).summary()
        assert record["summary"] == json.loads(json.dumps(expected))
        assert record["summary"]["functional"] is (not timing_only)


def test_shared_layer_data_is_read_only(workloads):
    path = str(workloads / "tiny.yaml")
    arch = api.load_arch("swis_g8_n3_16x16")
    shared = worker.prepared_workload(arch, path, functional=True)
    tensors = shared.tensors("conv1")
    assert shared.tensors("conv1") is tensors  # generated once
    with pytest.raises(ValueError):
        tensors.weight[0] = 1
    fresh = api.with_synthetic_data(api.load_workload(path)).tensors("conv1")
    assert np.array_equal(fresh.weight, tensors.weight)
    # a timing-only dense run gets the plain workload, as api.simulate would use it
    plain = worker.prepared_workload(api.load_arch("os_sa_16x16"), path, functional=False)
    assert plain.tensors is None


def test_a_failing_point_is_recorded_with_its_error(write_spec):
    # SySMT is defined for the OS dataflow only: the design loads but cannot be simulated
    path = write_spec({"base": "sysmt_2t_16x16", "workloads": ["tiny.yaml"],
                       "grid": {"array.dataflow": ["ws"]}})
    plan = plan_sweep(load_sweep(path), path)
    outcome = worker.run_point(plan.points[0], plan.axes)
    record = json.loads(outcome.text)
    assert outcome.failed and record["summary"] is None
    assert record["error"].startswith("SimulationError: arch sysmt_2t_16x16: PE type 'sysmt' "
                                      "is defined for the os dataflow")
    assert outcome.row["error"] == record["error"] and outcome.row["array.dataflow"] == "ws"


def test_accuracy_columns_when_the_sweep_asks(write_spec):
    from simulator.accuracy import accuracy_for

    path = write_spec({"base": ["os_sa_16x16", "bitserial_3b_16x16"], "workloads": ["tiny.yaml"],
                       "timing_only": True, "accuracy": {"model": "digits", "limit": 48}})
    plan = plan_sweep(load_sweep(path), path)
    rows = {}
    for point in plan.points:
        record = json.loads(worker.run_point(point, plan.axes).text)
        assert record["error"] is None
        rows[point.base] = record["summary"]
    exact, truncated = rows["os_sa_16x16"], rows["bitserial_3b_16x16"]
    # the exact design reproduces INT8 image for image; 3-bit weights lose accuracy
    assert exact["top1"] == exact["int8_top1"] and exact["top1_drop_points"] == 0
    expected = accuracy_for(api.load_arch("bitserial_3b_16x16"), "digits", limit=48)
    assert truncated["top1"] == expected["top1"]
    assert truncated["top1_drop_points"] == pytest.approx(expected["top1_drop_points"])
    # asking for accuracy changes the points' ids, so results are not mixed up
    plain = plan_sweep(load_sweep(write_spec({"base": ["os_sa_16x16"],
                                              "workloads": ["tiny.yaml"],
                                              "timing_only": True})), path)
    assert plain.points[0].id != plan.points[0].id
