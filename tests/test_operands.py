"""Named operands: the tuples stay tuples, and results expose them by name."""

from __future__ import annotations

from simulator import api
from simulator.operands import BUFFERS, DramReads, DramWrites, PerBuffer


def test_named_tuples_are_tuples():
    peak = PerBuffer(20, 40, 8)
    assert peak == (20, 40, 8) and peak.filter == 40
    assert BUFFERS == ("ifmap", "filter", "ofmap")
    assert DramReads(1, 2, 3).psum == 3 and DramWrites(4, 5).ofmap == 4


def test_layer_results_name_their_operands():
    arch = api.load_arch("os_sa_16x16", ["memory.ifmap_kib=8", "memory.filter_kib=8",
                                         "memory.ofmap_kib=4"])
    layer = api.simulate(arch, api.load_workload("alexnet"), functional=False).layers[1]
    assert layer.dram_reads == (layer.dram_ifmap_read_bytes, layer.dram_filter_read_bytes,
                                layer.dram_psum_read_bytes)
    assert layer.dram_writes.ofmap == layer.dram_ofmap_write_bytes > 0
    assert layer.buffer_reads.filter == layer.buffer_filter_read_bytes > 0
    assert layer.buffer_writes.ofmap == layer.buffer_ofmap_write_bytes > 0
    assert layer.peak_bytes == (layer.peak_ifmap_bytes, layer.peak_filter_bytes,
                                layer.peak_ofmap_bytes)
    assert 0 < layer.peak_bytes.ifmap <= 8 * 1024
