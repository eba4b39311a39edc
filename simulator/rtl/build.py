"""Elaborating a design: the Amaranth array of :class:`simulator.rtl.design.RtlDesign`."""

from __future__ import annotations

from simulator.rtl.array import OSArray
from simulator.rtl.design import RtlDesign
from simulator.rtl.pe import pe_module

__all__ = ["build_array", "build_pe", "build_row_edge", "has_row_edge", "pe_counters",
           "pe_decoder"]


def build_pe(design: RtlDesign):
    """One datapath of the design's PE type (an Amaranth ``Elaboratable``)."""
    return pe_module(design.pe_type).build(design)


def has_row_edge(design: RtlDesign) -> bool:
    """Whether the design's PE type has a row edge unit (docs/rtl.md, "Edge units")."""
    return hasattr(pe_module(design.pe_type), "row_edge")


def build_row_edge(design: RtlDesign):
    """The design's row edge unit (docs/rtl.md, "Edge units"), or None if its PE type has
    none."""
    make = getattr(pe_module(design.pe_type), "row_edge", None)
    return None if make is None else make(design)


def build_array(design: RtlDesign) -> OSArray:
    """The design's R x C output-stationary array."""
    edge = (lambda: build_row_edge(design)) if has_row_edge(design) else None
    return OSArray(design.rows, design.cols, lambda: build_pe(design), design.acc_bits,
                   make_row_edge=edge)


def pe_counters(design: RtlDesign) -> tuple[str, ...]:
    """The counter names of the design's PE type, by event index."""
    return pe_module(design.pe_type).COUNTERS


def pe_decoder(design: RtlDesign):
    """The PE type's decoding of event counts into (counters, stats), or None when its
    events are its counters (docs/rtl.md, "The datapath interface")."""
    make = getattr(pe_module(design.pe_type), "decoder", None)
    return None if make is None else make(design)
