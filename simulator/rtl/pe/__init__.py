"""PE datapaths in RTL, one module per PE type (mirroring ``simulator/hw/pe/``).

A PE type's model names its datapath module (``PEModel.rtl``, a
:class:`simulator.hw.pe.registry.Rtl`), so a plug-in PE type may ship its own. Each module
defines ``build(design)`` returning a combinational Amaranth datapath with the attributes
``a`` (list of T activation signals), ``w`` (list of T weight signals), ``product`` (the
step's partial sum, signed) and ``event`` (the step's counter index, docs/reference-array.md
"Counters"), and ``COUNTERS``, the counter names by index. The array
(:mod:`simulator.rtl.array`) wraps a datapath with the operand registers and the
accumulator. Nothing here imports numba (docs/rtl.md).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from simulator.hw.pe import pe_model_class, pe_types

__all__ = ["rtl_types", "pe_module"]


def rtl_types() -> dict[str, str]:
    """The PE types that have RTL (built-in and plug-in), and each one's datapath module."""
    return {name: cls.rtl.module for name, cls in pe_types().items() if cls.rtl is not None}


def pe_module(type_name: str) -> ModuleType:
    """The RTL module of PE type ``type_name`` (imports Amaranth).

    Raises
    ------
    KeyError
        If the PE type has no RTL yet.
    """
    rtl = pe_model_class(type_name).rtl
    if rtl is None:
        raise KeyError(type_name)
    return importlib.import_module(rtl.module)
