"""Llama-2-7B decode at batch 1 on the 16x16 OS array (docs/transformers.md, "Decode is
memory-bound"): below 16 B/cycle its time per token is the bytes it must read over the
bandwidth; with ample bandwidth the array (one row of PEs at batch 1) is the limit."""

from __future__ import annotations

import pytest

from simulator import api


def _step(bandwidth: float):
    arch = api.load_arch("os_sa_16x16", ["memory=ideal",
                                         f"memory.dram_bandwidth_bytes_per_cycle={bandwidth}"])
    return api.simulate(arch, api.load_workload("llama2_7b_decode_b1"), functional=False)


def test_decode_at_batch_one_is_memory_bound_on_a_realistic_dram():
    run = _step(8)  # 8 GB/s at 1 GHz: an LPDDR4-class channel
    summary = run.summary()
    bytes_needed = summary["dram_filter_read_bytes"]  # weights and K/V of 2048 tokens
    # 32 layers x (4 x 4096^2 + 3 x 4096 x 11008) + the LM head 4096 x 32000, one byte each,
    # and K and V of 2048 cached tokens + the new one in 32 layers (4096 bytes per token each)
    weights = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) + 4096 * 32000
    assert bytes_needed == weights + 32 * 2 * 2049 * 4096
    assert summary["kv_cache_read_bytes"] == 32 * 2 * 2049 * 4096
    assert summary["time_per_output_token_us"] == pytest.approx(
        bytes_needed / 8 / 1000, rel=0.10)
    array = [layer for layer in run.layers if layer.unit != "vector"]
    assert sum(layer.bound == "memory" for layer in array) > 0.9 * len(array)


def test_with_ample_bandwidth_the_single_row_of_pes_is_the_limit():
    summary = _step(64).summary()
    assert summary["memory_bound_layers"] == 0
    # one row of 16 PEs: at least MACs / 16 cycles
    assert summary["total_cycles"] >= summary["macs"] / 16
