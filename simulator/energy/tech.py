"""Technology tables: energy per action and area of each hardware component, with sources.

A table is a versioned YAML file (``arch_configs/tech/*.yaml``). Every quantity carries its
unit in the text (``0.2 pJ``, ``282 um2``), so a unit mistake is refused instead of silently
scaled; every entry names its source, node, voltage and clock. Units are checked on loading;
a value is converted to the base units the energy model works in (pJ, um², and pJ per um² per
ns for leakage) each time it is read. See docs/energy-model.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from simulator.config.files import read_yaml_mapping
from simulator.config.schema import build, dump, in_range, option, positive
from simulator.errors import ConfigError
from simulator.records import record

__all__ = [
    "SCHEMA_VERSION",
    "REQUIRED_COMPONENTS",
    "COMPONENT_CLASSES",
    "VECTOR_CLASS",
    "Component",
    "SramModel",
    "DramModel",
    "LeakageModel",
    "TechTable",
    "load_tech",
    "parse_quantity",
    "scale_table",
    "SCALING_FROM_45NM",
]

SCHEMA_VERSION = 1

#: Breakdown classes a PE component may belong to (buffers, DRAM and leakage are separate):
#: the one list of them; the energy model and the reports take it from here.
COMPONENT_CLASSES = ("multipliers", "adders", "registers", "pe_logic")
#: The breakdown class of the vector unit's components (docs/transformers.md): outside the
#: PE array's classes, so the array's own energy and area stay the PEs'.
VECTOR_CLASS = "vector"

#: Components every table must define (the built-in PE compositions of hw/pe/ are built from
#: these; a plug-in PE whose composition names another component needs a table that defines
#: it, see docs/extending.md).
REQUIRED_COMPONENTS = (
    "mult_8x8", "mult_4x8", "mult_4x4",
    "adder_8", "adder_16", "adder_32",
    "register_bit", "shifter_bit", "logic_bit", "comparator_bit",
)

#: Unit -> factor to the base unit, per kind of quantity.
_UNITS: dict[str, dict[str, float]] = {
    "energy": {"fJ": 1e-3, "pJ": 1.0, "nJ": 1e3, "uJ": 1e6, "µJ": 1e6},
    "area": {"um2": 1.0, "µm2": 1.0, "µm²": 1.0, "um^2": 1.0, "mm2": 1e6, "mm²": 1e6,
             "mm^2": 1e6},
    # leakage power per area, to pJ per ns per um² (= mW per um²)
    "power_density": {"nW/um2": 1e-6, "uW/um2": 1e-3, "µW/µm2": 1e-3, "µW/um2": 1e-3,
                      "mW/mm2": 1e-6, "W/mm2": 1e-3, "W/cm2": 1e-5},
}
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S+)\s*$")


def parse_quantity(text: Any, kind: str) -> float:
    """Parse ``"0.2 pJ"`` into base units (pJ, um², pJ/ns/um²) or raise ValueError.

    Parameters
    ----------
    text : a number followed by a unit, as written in a table.
    kind : ``energy``, ``area`` or ``power_density``.
    """
    units = _UNITS[kind]
    label = kind.replace("_", " ")
    match = _QUANTITY.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{label} with its unit, such as '1.5 {next(iter(units))}'")
    value, unit = float(match.group(1)), match.group(2)
    if unit not in units:
        raise ValueError(f"{'an' if label[0] in 'aeiou' else 'a'} {label} unit ({', '.join(units)}); unknown unit '{unit}'")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a non-negative {label}")
    base = value * units[unit]
    if base > _MAX_QUANTITY[kind]:  # a run's totals must stay finite
        raise ValueError(f"{'an' if label[0] in 'aeiou' else 'a'} {label} of at most "
                         f"{_MAX_QUANTITY[kind]:g} {_BASE_UNIT[kind]}")
    return base


#: The largest figure a table may give, in base units: 1 mJ per action, 1 m² of area,
#: 1 W per um² of leakage (far beyond any real part; the totals of a run stay finite).
_MAX_QUANTITY = {"energy": 1e9, "area": 1e12, "power_density": 1e3}
_BASE_UNIT = {"energy": "pJ", "area": "um2", "power_density": "mW/um2"}


def _quantity_check(kind: str):
    def check(value: Any) -> str | None:
        try:
            parse_quantity(value, kind)
        except ValueError as exc:
            return str(exc)
        return None
    return check


@record
class Provenance:
    """Where a figure comes from: every entry of a table carries these."""

    source: str = option(doc="Publication or tool the figure is taken from (and how it was "
                              "derived, if it was).")
    node_nm: float = option(doc="Technology node of the figure, nm.", check=positive)
    voltage_v: float = option(doc="Supply voltage of the figure, V.", check=positive)
    clock_mhz: float = option(doc="Clock the figure was characterised at, MHz.", check=positive)


@record
class Component(Provenance):
    """One PE component: energy per action and area."""

    breakdown: Literal[COMPONENT_CLASSES + (VECTOR_CLASS,)] = option(
        doc="Breakdown class the component's energy is reported under.")
    energy: str | float = option(doc="Energy per action, with unit (fJ, pJ, nJ).",
                         check=_quantity_check("energy"))
    area: str | float = option(doc="Area, with unit (um2, mm2).", check=_quantity_check("area"))

    @property
    def energy_pj(self) -> float:
        return parse_quantity(self.energy, "energy")

    @property
    def area_um2(self) -> float:
        return parse_quantity(self.area, "area")


@record
class SramModel(Provenance):
    """On-chip buffer energy and area as a function of capacity (CACTI-like)."""

    read_energy: str | float = option(doc="Energy of one read of `word_bits` at `reference_kib`.",
                              check=_quantity_check("energy"))
    area_per_kib: str | float = option(doc="Area per KiB of capacity, with unit.",
                               check=_quantity_check("area"))
    word_bits: int = option(64, doc="Width of the access `read_energy` is given for, bits.",
                            check=in_range(1, 4096))
    reference_kib: float = option(8.0, doc="Capacity `read_energy` is given at, KiB.",
                                  check=in_range(1 / 1024, 1 << 32))
    capacity_exponent: float = option(
        0.78, doc="Access energy grows as (capacity / reference_kib) ** capacity_exponent "
                  "(from 0 to 2).", check=in_range(0, 2))
    write_to_read: float = option(1.0, doc="Write energy as a multiple of read energy.",
                                  check=in_range(1e-6, 1e6))

    def access_energy_pj_per_byte(self, capacity_kib: float, write: bool = False) -> float:
        """Energy of reading (or writing) one byte from a buffer of ``capacity_kib``, pJ."""
        scale = (capacity_kib / self.reference_kib) ** self.capacity_exponent
        per_word = parse_quantity(self.read_energy, "energy") * scale
        if write:
            per_word *= self.write_to_read
        return per_word / (self.word_bits / 8)

    def area_um2(self, capacity_kib: float) -> float:
        return capacity_kib * parse_quantity(self.area_per_kib, "area")


@record
class DramModel(Provenance):
    """Off-chip DRAM: energy per bit moved (read or written)."""

    energy_per_bit: str | float = option(doc="Energy per bit transferred, with unit.",
                                 check=_quantity_check("energy"))

    @property
    def energy_pj_per_byte(self) -> float:
        return 8 * parse_quantity(self.energy_per_bit, "energy")


@record
class LeakageModel(Provenance):
    """Static power per unit area of logic and SRAM."""

    power_density: str | float = option(doc="Leakage power per area (nW/um2, uW/um2, mW/mm2, ...).",
                                check=_quantity_check("power_density"))

    @property
    def pj_per_ns_per_um2(self) -> float:
        return parse_quantity(self.power_density, "power_density")


@record
class ArrayOverhead(Provenance):
    """Array area that is not in any PE: control, clock tree and wiring."""

    control_wiring_area_fraction: float = option(
        doc="Extra array area for control and wiring, as a fraction of the PEs' area.",
        check=lambda v: None if 0 <= v < 10 else "a fraction in [0, 10)")


@record
class TechTable:
    """A technology table (``arch_configs/tech/*.yaml``)."""

    schema_version: int = option(doc="Version of this file format.",
                                 check=lambda v: None if v == SCHEMA_VERSION
                                 else f"schema_version {SCHEMA_VERSION}")
    name: str = option(doc="Name used in reports.")
    node_nm: float = option(doc="Technology node the table describes, nm.", check=positive)
    voltage_v: float = option(doc="Supply voltage the table describes, V.", check=positive)
    components: Mapping[str, Component] = option(doc="PE components by name.")
    sram: SramModel = option(doc="On-chip buffers.")
    dram: DramModel = option(doc="Off-chip memory.")
    leakage: LeakageModel = option(doc="Static power.")
    array_overhead: ArrayOverhead = option(doc="Control and wiring of the array.")
    description: str = option("", doc="Free text.")

    def energy_pj(self, component: str) -> float:
        return self.components[component].energy_pj

    def area_um2(self, component: str) -> float:
        return self.components[component].area_um2


def _check_components(table: TechTable, where: str) -> None:
    missing = [name for name in REQUIRED_COMPONENTS if name not in table.components]
    if missing:
        raise ConfigError(f"{where}.components: missing component(s) {', '.join(missing)} "
                          f"(every table defines {', '.join(REQUIRED_COMPONENTS)})")


def tech_from_mapping(data: Mapping[str, Any], where: str) -> TechTable:
    """Validate a raw table mapping (every key, unit and required component)."""
    if "schema_version" not in data:
        raise ConfigError(f"{where}.schema_version: required key is missing "
                          f"(this version of sasim reads schema_version {SCHEMA_VERSION})")
    table = build(TechTable, data, where)
    _check_components(table, where)
    return table


def load_tech(path: str | Path) -> TechTable:
    """Load and validate a technology table from a YAML file."""
    path = Path(path)
    return tech_from_mapping(read_yaml_mapping(path), f"{path}: tech")


#: Stillmaker & Baas (Integration 2017) factors from 45 nm: node -> (energy, area).
SCALING_FROM_45NM: dict[float, tuple[float, float]] = {
    45.0: (1.0, 1.0), 32.0: (0.659, 0.460), 16.0: (0.174, 0.190), 7.0: (0.094, 0.059),
}


def _scaling_factors(node_nm: float) -> tuple[float, float]:
    """Energy and area factors from 45 nm, interpolated in log(node) between listed nodes."""
    nodes = sorted(SCALING_FROM_45NM)
    if not nodes[0] <= node_nm <= nodes[-1]:
        raise ConfigError(f"node {node_nm} nm: scaling is defined between {nodes[0]:g} and "
                          f"{nodes[-1]:g} nm only")
    for lo, hi in zip(nodes, nodes[1:]):
        if lo <= node_nm <= hi:
            t = (math.log(node_nm) - math.log(lo)) / (math.log(hi) - math.log(lo))
            (e_lo, a_lo), (e_hi, a_hi) = SCALING_FROM_45NM[lo], SCALING_FROM_45NM[hi]
            return (math.exp((1 - t) * math.log(e_lo) + t * math.log(e_hi)),
                    math.exp((1 - t) * math.log(a_lo) + t * math.log(a_hi)))
    raise AssertionError("unreachable")  # the range check above covers every node


def _fmt(value: float, unit: str) -> str:
    return f"{value:.6g} {unit}"


def scale_table(table: TechTable, node_nm: float, voltage_v: float, name: str) -> dict[str, Any]:
    """Derive a table at another node from a 45 nm table (as plain data, ready to dump).

    Logic and SRAM energies scale by the energy factor, areas by the area factor, leakage
    density by energy/area (leakage per gate follows dynamic energy per gate); DRAM energy
    per bit is off-chip and unchanged.
    """
    if table.node_nm != 45:
        raise ConfigError(f"tech {table.name}: scaling starts from a 45 nm table, "
                          f"not {table.node_nm:g} nm")
    energy_f, area_f = _scaling_factors(node_nm)
    note = (f"scaled from {table.name} (45 nm) to {node_nm:g} nm by Stillmaker & Baas 2017: "
            f"energy x{energy_f:.4g}, area x{area_f:.4g}")

    def provenance(entry: Provenance) -> dict[str, Any]:
        return {"source": f"{entry.source}; {note}", "node_nm": node_nm, "voltage_v": voltage_v,
                "clock_mhz": entry.clock_mhz}

    out = dump(table)
    out.update(name=name, node_nm=node_nm, voltage_v=voltage_v,
               description=f"{table.description.strip()} Derived: {note}.".strip())
    for key, comp in table.components.items():
        out["components"][key].update(provenance(comp),
                                      energy=_fmt(comp.energy_pj * energy_f, "pJ"),
                                      area=_fmt(comp.area_um2 * area_f, "um2"))
    sram = table.sram
    out["sram"].update(provenance(sram),
                       read_energy=_fmt(parse_quantity(sram.read_energy, "energy") * energy_f,
                                        "pJ"),
                       area_per_kib=_fmt(parse_quantity(sram.area_per_kib, "area") * area_f,
                                         "um2"))
    out["leakage"].update(provenance(table.leakage), power_density=_fmt(
        table.leakage.pj_per_ns_per_um2 * energy_f / area_f * 1e6, "nW/um2"))
    out["array_overhead"].update(provenance(table.array_overhead))
    out["dram"]["source"] = f"{table.dram.source}; off-chip, not scaled with the logic node"
    return out
