"""Elaborating a design: the Amaranth array of :class:`simulator.rtl.design.RtlDesign`."""

from __future__ import annotations

from simulator.rtl.array import OSArray
from simulator.rtl.design import RtlDesign
from simulator.rtl.pe import pe_module

__all__ = ["build_array", "build_pe", "pe_counters"]


def build_pe(design: RtlDesign):
    """One datapath of the design's PE type (an Amaranth ``Elaboratable``)."""
    return pe_module(design.pe_type).build(design)


def build_array(design: RtlDesign) -> OSArray:
    """The design's R x C output-stationary array."""
    return OSArray(design.rows, design.cols, lambda: build_pe(design), design.acc_bits)


def pe_counters(design: RtlDesign) -> tuple[str, ...]:
    """The counter names of the design's PE type, by event index."""
    return pe_module(design.pe_type).COUNTERS
