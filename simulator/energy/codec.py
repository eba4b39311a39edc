"""The transform codec's logic priced: Huffman encoder and decoder lanes, their tables and
the inverse transform's side unit (docs/energy-model.md, "Transform codec";
docs/hardware-spec.md §10).

Each lane is built from the technology table's primitives (the way the PE types are), after
the canonical Huffman coder of docs/hardware-spec.md §10: the encoder looks a symbol's code
up and shifts it into its word, the decoder compares the next bits of its window with the
canonical code's limit of every length at once (one symbol per cycle), turns the matching
length into a symbol index and looks the symbol up. Plain numbers in and out, like
:mod:`simulator.energy.model`.
"""

from __future__ import annotations

from collections.abc import Mapping

from simulator.energy.model import AreaReport
from simulator.energy.tech import TechTable
from simulator.records import record

__all__ = ["CODEC_CLASS", "LENGTH_BITS", "SIDE_UNIT_REGISTER_BITS", "CoderLane",
           "max_code_bits", "coder_lane", "codec_area_um2", "with_codec_area",
           "codec_energy"]

#: The energy and area breakdown class of the codec (outside the PE array's classes).
CODEC_CLASS = "codec"
#: Bits of a code length in the encoder's table and the lanes' bit counters.
LENGTH_BITS = 6
#: Register bits of one MAC lane of the inverse transform's side unit (8 + 8 operand bits,
#: a 32-bit accumulator).
SIDE_UNIT_REGISTER_BITS = 8 + 8 + 32


def max_code_bits(bits: int) -> int:
    """The longest code a lane must handle: 2^b − 1 bits for 2^b symbols, at most 32
    (docs/hardware-spec.md §10 caps code lengths at 32)."""
    return max(1, min(32, (1 << bits) - 1))


@record
class CoderLane:
    """One lane's encoder and decoder: component actions per symbol, table bytes read per
    symbol and the table sizes (KiB), register bits clocked every cycle, and the register
    bits of the per-length constants (loaded once per layer: area, no clocking)."""

    encode: Mapping[str, float]
    decode: Mapping[str, float]
    encode_table_bytes: float
    decode_table_bytes: float
    encode_table_kib: float
    decode_table_kib: float
    register_bits: int
    constant_bits: int


def coder_lane(bits: int, word_bits: int) -> CoderLane:
    """The lane of a ``bits``-bit quantiser packing codes into ``word_bits``-bit words.

    With L = :func:`max_code_bits`, per symbol:

    - encoder: the code and its length read from a 2^b-entry table of L + 6 bits; the code
      shifted into a 2·word_bits window (2·word_bits shifter bits) and merged (2·word_bits
      logic bits); the bit count advanced (one 8-bit adder);
    - decoder: the next L window bits compared with the limit of every length 1..L
      (L(L+1)/2 comparator bits), the first match picked (L logic bits), the symbol index
      formed (two 16-bit adders: minus the length's first code, plus its first symbol), the
      symbol read from a 2^b-entry table of b bits, the window shifted on by the length
      (2·word_bits shifter bits) and its bit count advanced (one 8-bit adder).

    Registers: each side a 2·word_bits window and a 6-bit count, clocked every cycle; the
    decoder also holds the limit, first code and first symbol of every length
    (L·(L + L + b) bits), loaded once per layer and then clock-gated (**assumption**: area,
    no clock energy).
    """
    length = max_code_bits(bits)
    window = 2 * word_bits
    entries = 1 << bits
    return CoderLane(
        encode={"shifter_bit": window, "logic_bit": window, "adder_8": 1},
        decode={"comparator_bit": length * (length + 1) / 2, "logic_bit": length,
                "adder_16": 2, "shifter_bit": window, "adder_8": 1},
        encode_table_bytes=(length + LENGTH_BITS) / 8,
        decode_table_bytes=bits / 8,
        encode_table_kib=entries * (length + LENGTH_BITS) / 8 / 1024,
        decode_table_kib=entries * bits / 8 / 1024,
        register_bits=2 * (window + LENGTH_BITS), constant_bits=length * (2 * length + bits))


def _actions_area(tech: TechTable, actions: Mapping[str, float]) -> float:
    """Area of one instance of each component an action list uses (per-symbol counts of
    bit-wide components are their widths)."""
    return float(sum(n * tech.components[c].area_um2 for c, n in actions.items()))


def _actions_pj(tech: TechTable, actions: Mapping[str, float]) -> float:
    return float(sum(n * tech.components[c].energy_pj for c, n in actions.items()))


def codec_area_um2(tech: TechTable, *, bits: int, lanes: int, word_bits: int,
                   side_unit_macs: int | None) -> dict[str, float]:
    """Area of the codec, µm²: ``lanes`` coder lanes (their logic, tables and registers) and,
    with the inverse on a side unit, its ``side_unit_macs`` MAC lanes."""
    lane = coder_lane(bits, word_bits)
    logic = _actions_area(tech, lane.encode) + _actions_area(tech, lane.decode)
    tables = tech.sram.area_um2(lane.encode_table_kib) + tech.sram.area_um2(lane.decode_table_kib)
    registers = ((lane.register_bits + lane.constant_bits)
                 * tech.components["register_bit"].area_um2)
    out = {"lanes": lanes * (logic + tables + registers)}
    if side_unit_macs:
        mac = (tech.components["mult_8x8"].area_um2 + tech.components["adder_32"].area_um2
               + SIDE_UNIT_REGISTER_BITS * tech.components["register_bit"].area_um2)
        out["side_unit"] = side_unit_macs * mac
    return out


def with_codec_area(area: AreaReport, codec_um2: Mapping[str, float]) -> AreaReport:
    """``area`` with the codec's as its own class (it leaks with the rest)."""
    return AreaReport({**area.breakdown_um2, CODEC_CLASS: float(sum(codec_um2.values()))},
                      area.pe_um2)


def codec_energy(tech: TechTable, report: Mapping[str, float], *, bits: int, lanes: int,
                 word_bits: int, side_unit_macs: int | None, cycles: int) -> dict[str, float]:
    """One layer's codec energy, pJ (docs/energy-model.md, "Transform codec").

    Parameters
    ----------
    report : the layer's codec report (``encoded_symbols``, ``decoded_symbols``,
        ``inverse_cycles`` and ``inverse_unit``).
    bits, lanes, word_bits, side_unit_macs : the codec's configuration (``side_unit_macs``
        None when the inverse runs on the array).
    cycles : the layer's cycles (the lanes' registers clock throughout).

    Returns
    -------
    dict
        ``encoder_pj``, ``decoder_pj`` (logic and table reads), ``codec_register_pj`` (the
        lanes' registers every cycle, and the side unit's during the inverse's cycles).
    """
    lane = coder_lane(bits, word_bits)
    sram = tech.sram.access_energy_pj_per_byte
    per_encode = (_actions_pj(tech, lane.encode)
                  + lane.encode_table_bytes * sram(lane.encode_table_kib))
    per_decode = (_actions_pj(tech, lane.decode)
                  + lane.decode_table_bytes * sram(lane.decode_table_kib))
    register = tech.energy_pj("register_bit")
    registers = lanes * lane.register_bits * cycles * register
    if side_unit_macs and report.get("inverse_unit") == "side_unit":
        registers += side_unit_macs * SIDE_UNIT_REGISTER_BITS * report["inverse_cycles"] * register
    return {"encoder_pj": report["encoded_symbols"] * per_encode,
            "decoder_pj": report["decoded_symbols"] * per_decode,
            "codec_register_pj": registers}
