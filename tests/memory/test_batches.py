"""Batches (docs/memory-model.md, "Batches"): a batch's images share one GEMM per layer, so
weights whose tiles the filter buffer keeps are loaded once per batch; the report gives
throughput beside latency."""

from __future__ import annotations

import pytest

from simulator import api

_NET = """schema_version: 1
name: small
batch: {batch}
layers:
  - {{name: a, op: conv2d, in_channels: 8, out_channels: 32, input_size: [16, 16],
     kernel_size: 3, padding: 1}}
  - {{name: b, op: conv2d, in_channels: 32, out_channels: 64, input_size: [16, 16],
     kernel_size: 3, stride: 2, padding: 1}}
  - {{name: c, op: conv2d, in_channels: 64, out_channels: 64, input_size: [8, 8],
     kernel_size: 3, padding: 1}}
  - {{name: fc, op: linear, in_features: 4096, out_features: 10}}
"""
_BOUNDED = ["memory.ifmap_kib=8", "memory.filter_kib=24", "memory.ofmap_kib=4",
            "memory.dram_bandwidth_bytes_per_cycle=8"]


def _run(tmp_path, batch, overrides=()):
    path = tmp_path / f"small_b{batch}.yaml"
    path.write_text(_NET.format(batch=batch))
    return api.simulate(api.load_arch("os_sa_16x16", ["memory=ideal", *overrides]),
                        api.load_workload(path),
                        functional=False)


@pytest.mark.parametrize("order", ["column_folds_outer", "row_folds_outer"])
def test_weights_load_once_per_batch_where_the_buffers_allow(tmp_path, order):
    overrides = [*_BOUNDED, f"memory.loop_order={order}"]
    one, four = _run(tmp_path, 1, overrides), _run(tmp_path, 4, overrides)
    kept = 0
    for a, b in zip(one.layers, four.layers):
        assert b.macs == 4 * a.macs
        if a.filter_reuse in ("group", "outer") and b.filter_reuse == a.filter_reuse:
            assert b.dram_filter_read_bytes == a.dram_filter_read_bytes  # once per batch
            kept += 1
        else:  # re-read per tile of the streamed operand: more images, more re-reads
            assert b.dram_filter_read_bytes >= a.dram_filter_read_bytes
    assert kept >= 2


def test_throughput_beside_latency(tmp_path):
    for batch in (1, 4):
        summary = _run(tmp_path, batch, _BOUNDED).summary()
        assert summary["inferences"] == batch
        assert summary["inferences_per_s"] == pytest.approx(batch / (summary["time_us"] * 1e-6))


def test_a_trace_batch_is_its_images():
    workload = api.load_workload("digits_int8")
    run = api.simulate(api.load_arch("os_sa_16x16", ["memory=ideal"]), workload, functional=False)
    images = workload.tensors(workload.layers[0].name).input.shape[0]
    assert images > 1  # the exporter traces a batch
    summary = run.summary()
    assert summary["inferences"] == images
    assert summary["inferences_per_s"] == pytest.approx(images / (summary["time_us"] * 1e-6))
