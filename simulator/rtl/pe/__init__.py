"""PE datapaths in RTL, one module per PE type (mirroring ``simulator/hw/pe/``).

Each module defines ``build(design)`` returning a combinational Amaranth datapath with the
attributes ``a`` (list of T activation signals), ``w`` (list of T weight signals),
``product`` (the step's partial sum, signed) and ``event`` (the step's counter index,
docs/reference-array.md "Counters"), and ``COUNTERS``, the counter names by index. The array
(:mod:`simulator.rtl.array`) wraps a datapath with the operand registers and the
accumulator. Nothing here imports numba (docs/rtl.md).
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["RTL_PE_TYPES", "pe_module"]

#: PE types that have RTL, and the module that builds each one's datapath.
RTL_PE_TYPES = {"dense": "simulator.rtl.pe.dense", "sysmt": "simulator.rtl.pe.sysmt",
                "sparq": "simulator.rtl.pe.sparq", "a4w8": "simulator.rtl.pe.a4w8",
                "bitserial": "simulator.rtl.pe.bitserial", "swis": "simulator.rtl.pe.swis"}


def pe_module(type_name: str) -> ModuleType:
    """The RTL module of PE type ``type_name`` (imports Amaranth).

    Raises
    ------
    KeyError
        If the PE type has no RTL yet.
    """
    return importlib.import_module(RTL_PE_TYPES[type_name])
