"""Energy and area: activity counts x technology table (docs/energy-model.md).

The model prices what the simulator counted, nothing else:

* **PE datapath**: each activity counter of the PE model (idle, single, shared-reduced, ...)
  names the component actions one such PE-step performs (a collision in a 2-thread SySMT PE
  is two 4b x 8b multiplies, a combining adder, an accumulate, some rounding logic); energy =
  sum over counters of count x sum of (actions x energy per action).
* **Registers**: every register bit of every PE is clocked every cycle of the layer (no clock
  gating is assumed, as in a plainly synthesised array): PEs x register bits x cycles x the
  table's energy per bit.
* **Buffers and DRAM**: bytes read and written per operand buffer, priced by the buffer's
  capacity law, and bytes moved to and from DRAM.
* **Leakage**: power density x (array + buffer area) x time.

Area is what the PEs contain (sum of component areas) plus the table's control-and-wiring
fraction, plus the buffers' capacity law.

This module only knows plain data (component names and counts), so it stays independent of
the PE models that describe themselves with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from simulator.energy.scope import array_energy_pj, array_share
from simulator.energy.tech import COMPONENT_CLASSES, VECTOR_CLASS, TechTable
from simulator.errors import ConfigError
from simulator.records import record

__all__ = [
    "ENERGY_CLASSES",
    "AREA_CLASSES",
    "BufferTraffic",
    "LayerActivity",
    "EnergyReport",
    "AreaReport",
    "pe_area_um2",
    "array_area",
    "layer_energy",
    "vector_components",
    "with_vector_unit",
    "run_energy",
]

#: Breakdown classes of energy, in report order: the PE's component classes, then the rest.
ENERGY_CLASSES = (*COMPONENT_CLASSES, "buffers", "dram", "leakage")
#: Breakdown classes of area, in report order.
AREA_CLASSES = (*COMPONENT_CLASSES, "control_wiring", "buffers")


@record
class BufferTraffic:
    """One on-chip buffer's capacity and the bytes a layer read from and wrote to it."""

    size_kib: float
    read_bytes: int = 0
    write_bytes: int = 0


@record
class LayerActivity:
    """What one layer did, as counted by the simulator.

    Attributes
    ----------
    counters : PE-steps per activity counter (summed over the layer's PEs and steps).
    cycles : the layer's total cycles (compute and stalls: registers clock and leak
        throughout).
    buffers : per operand buffer name, its size and traffic.
    dram_read_bytes, dram_write_bytes : off-chip traffic.
    dram_energy_pj : the DRAM energy a DRAM preset's model computed from its IDD currents
        (docs/memory-model.md, "DRAM energy"); None: the bytes priced per byte.
    """

    counters: Mapping[str, int]
    cycles: int
    buffers: Mapping[str, BufferTraffic] = dataclasses.field(default_factory=dict)
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0
    dram_energy_pj: float | None = None


@record
class EnergyReport:
    """Energy of one layer (or a sum of layers) by breakdown class, in pJ."""

    breakdown_pj: Mapping[str, float]

    @property
    def total_pj(self) -> float:
        return float(sum(self.breakdown_pj.values()))

    def __add__(self, other: EnergyReport) -> EnergyReport:
        # the vector unit's class only where a layer had one (CNN reports stay as they were)
        extra = [k for k in (*self.breakdown_pj, *other.breakdown_pj) if k not in ENERGY_CLASSES]
        return EnergyReport({k: self.breakdown_pj.get(k, 0.0) + other.breakdown_pj.get(k, 0.0)
                             for k in dict.fromkeys([*ENERGY_CLASSES, *extra])})


@record
class AreaReport:
    """Area of the array and its buffers by breakdown class, in um²."""

    breakdown_um2: Mapping[str, float]
    pe_um2: float

    @property
    def total_um2(self) -> float:
        return float(sum(self.breakdown_um2.values()))

    @property
    def array_um2(self) -> float:
        return (self.total_um2 - self.breakdown_um2.get("buffers", 0.0)
                - self.breakdown_um2.get(VECTOR_CLASS, 0.0)
                - self.breakdown_um2.get("codec", 0.0))  # simulator.energy.codec


def _check_known(tech: TechTable, names: Mapping[str, object], what: str) -> None:
    """Raise ConfigError naming the components a PE composition uses that ``tech`` lacks."""
    unknown = sorted(set(names) - set(tech.components))
    if unknown:
        raise ConfigError(f"{what} uses component(s) {', '.join(unknown)} that tech table "
                          f"{tech.name!r} does not define (it defines "
                          f"{', '.join(sorted(tech.components))}; docs/extending.md)")


def pe_area_um2(tech: TechTable, parts: Mapping[str, float]) -> dict[str, float]:
    """Area of one PE by breakdown class, from its component counts."""
    _check_known(tech, parts, "the PE's composition")
    out = {name: 0.0 for name in COMPONENT_CLASSES}
    for component, count in parts.items():
        entry = tech.components[component]
        out[entry.breakdown] += count * entry.area_um2
    return out


def array_area(tech: TechTable, parts: Mapping[str, float], pes: int,
               buffer_kib: Mapping[str, float]) -> AreaReport:
    """Area of ``pes`` PEs with the table's control and wiring, plus the buffers."""
    per_pe = pe_area_um2(tech, parts)
    pe_total = sum(per_pe.values())
    breakdown = {name: value * pes for name, value in per_pe.items()}
    breakdown["control_wiring"] = (pe_total * pes
                                   * tech.array_overhead.control_wiring_area_fraction)
    breakdown["buffers"] = sum(tech.sram.area_um2(kib) for kib in buffer_kib.values())
    return AreaReport(breakdown, pe_total)


def vector_components(primitives: Sequence[str]) -> dict[str, str]:
    """The tech-table component of each vector primitive (``vector_<primitive>``)."""
    return {p: f"vector_{p}" for p in primitives}


def with_vector_unit(tech: TechTable, area: AreaReport, primitives: Sequence[str],
                     lanes: int) -> AreaReport:
    """``area`` with a vector unit of ``lanes`` lanes, each one of every primitive's
    component (docs/transformers.md)."""
    components = vector_components(primitives)
    _check_known(tech, {c: 1 for c in components.values()}, "the vector unit")
    lane = sum(tech.components[c].area_um2 for c in components.values())
    return AreaReport({**area.breakdown_um2, VECTOR_CLASS: lane * lanes}, area.pe_um2)


def layer_energy(tech: TechTable, *, parts: Mapping[str, float],
                 events: Mapping[str, Mapping[str, float]], pes: int,
                 activity: LayerActivity, area: AreaReport, clock_mhz: float,
                 extra_actions: Mapping[str, float] | None = None) -> EnergyReport:
    """Energy of one layer, in pJ by breakdown class.

    Parameters
    ----------
    parts : component -> count in one PE (``register_bit`` = the PE's register bits).
    events : counter name -> {component: actions per PE-step of that kind}.
    pes : PEs in the array.
    activity : the layer's counters, cycles and memory traffic.
    area : the array's area (for leakage).
    clock_mhz : the array clock (cycles to time).
    extra_actions : component -> actions of the layer beyond its PE-steps (a PE's
        :meth:`~simulator.hw.pe.PEModel.extra_actions`, the vector unit's operations).
    """
    extra_actions = extra_actions or {}
    _check_known(tech, parts, "the PE's composition")
    out = {name: 0.0 for name in ENERGY_CLASSES}
    missing = sorted(set(activity.counters) - set(events))
    if missing:
        raise ConfigError(f"the PE's composition defines no energy for counter(s) "
                          f"{', '.join(missing)} (every counter needs an events entry; "
                          f"docs/extending.md)")
    for counter, count in activity.counters.items():
        actions = events[counter]
        _check_known(tech, actions, f"the PE's counter {counter!r}")
        for component, n in actions.items():
            entry = tech.components[component]
            out[entry.breakdown] = out.get(entry.breakdown, 0.0) + count * n * entry.energy_pj
    for component, n in extra_actions.items():
        _check_known(tech, {component: n}, "the layer's extra actions")
        entry = tech.components[component]
        out[entry.breakdown] = out.get(entry.breakdown, 0.0) + n * entry.energy_pj
    out["registers"] += (parts.get("register_bit", 0) * pes * activity.cycles
                         * tech.energy_pj("register_bit"))
    for traffic in activity.buffers.values():
        out["buffers"] += (traffic.read_bytes
                           * tech.sram.access_energy_pj_per_byte(traffic.size_kib)
                           + traffic.write_bytes
                           * tech.sram.access_energy_pj_per_byte(traffic.size_kib, write=True))
    out["dram"] = (activity.dram_energy_pj if activity.dram_energy_pj is not None else
                   (activity.dram_read_bytes + activity.dram_write_bytes)
                   * tech.dram.energy_pj_per_byte)
    time_ns = activity.cycles * 1e3 / clock_mhz
    out["leakage"] = tech.leakage.pj_per_ns_per_um2 * area.total_um2 * time_ns
    return EnergyReport(out)


def run_energy(breakdowns: Sequence[Mapping[str, float]], area: AreaReport | None,
               macs: int) -> dict[str, Any]:
    """Energy totals of a run from its layers' breakdowns (pJ by class).

    Parameters
    ----------
    breakdowns : the energy breakdown of every layer of the run.
    area : the run's area (its array share prices the array's leakage), or None.
    macs : the run's MACs.

    Returns
    -------
    dict
        ``energy_pj``, ``energy_uj``, ``energy_breakdown_pj``, ``array_energy_pj`` (the
        array alone: its PEs' component classes and the array's share of leakage, the scope
        of a synthesised PE array, which is what the papers compare), ``chip_energy_pj``
        (everything: the same as ``energy_pj``), ``array_energy_per_mac_pj`` and
        ``energy_per_mac_pj`` (None without MACs); docs/energy-model.md, "Two scopes".
    """
    total = sum((EnergyReport(b) for b in breakdowns), EnergyReport({}))
    breakdown = total.breakdown_pj
    share = array_share(None if area is None else area.total_um2,
                        None if area is None else area.array_um2)
    array_pj = array_energy_pj(breakdown, share)
    return {"energy_pj": total.total_pj, "energy_uj": total.total_pj / 1e6,
            "energy_breakdown_pj": dict(breakdown), "array_energy_pj": array_pj,
            "chip_energy_pj": total.total_pj,
            "array_energy_per_mac_pj": array_pj / macs if macs else None,
            "energy_per_mac_pj": total.total_pj / macs if macs else None}
