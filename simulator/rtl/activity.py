"""Switching activity of the RTL per PE-step class, beside the energy model's per-event energies.

Co-simulation (:mod:`simulator.rtl.cosim`, ``probe_activity``) records, in every cycle, the
signals of each PE's :data:`~simulator.rtl.cosim.ACTIVITY_GROUPS`: the multipliers' inputs,
the step's partial sum (the accumulate adder's input), the accumulator register and the
operand registers. A toggle is a bit that differs from the cycle before. Each PE's toggles
in a cycle are charged to the class of the step it holds in that cycle (``idle``,
``single``, ...; ``no step`` in the fill and drain cycles); the accumulator's toggles are
charged to the step whose addition caused them (the register changes at the end of its
cycle). Dynamic energy in CMOS is proportional to the switched capacitance, so the toggles
per PE-step of each class, relative to a ``single`` step, are what the energy model's
per-event energies claim (docs/rtl.md, "Switching activity"; docs/energy-model.md).
"""

from __future__ import annotations

import dataclasses
from simulator.rtl.cosim import ACTIVITY_GROUPS, CosimResult

__all__ = ["NO_STEP", "ActivityTable", "fold_toggles", "measure", "model_energies"]

#: The class of the cycles in which a PE holds no step (the fold's fill and drain).
NO_STEP = "no step"


@dataclasses.dataclass
class ActivityTable:
    """Toggles per class of PE-step.

    Attributes
    ----------
    steps : class -> PE-steps (PE-cycles for :data:`NO_STEP`) counted.
    toggles : class -> group -> toggles summed over those PE-steps.
    """

    steps: dict[str, int]
    toggles: dict[str, dict[str, int]]

    def per_step(self, event: str, group: str) -> float:
        """Mean toggles of ``group`` per PE-step of class ``event`` (nan if none)."""
        n = self.steps.get(event, 0)
        return self.toggles[event][group] / n if n else float("nan")

    def relative(self, event: str, group: str, to: str = "single") -> float:
        """Toggles per step of ``event`` relative to those of ``to`` (nan when undefined)."""
        base = self.per_step(to, group)
        return self.per_step(event, group) / base if base else float("nan")

    def record(self) -> dict:
        """Plain data: per class its steps and toggles per step of each group."""
        return {event: {"steps": self.steps[event],
                        **{g: self.per_step(event, g) for g in ACTIVITY_GROUPS}}
                for event in self.steps}


def fold_toggles(counters: tuple[str, ...], results: list[CosimResult]) -> ActivityTable:
    """Count the toggles of every fold of ``results`` (co-simulated in this order, in one
    simulation, with ``probe_activity``), by class of PE-step.

    The state before the first fold is the reset state (every register 0).
    """
    masks = results[0].activity_masks if results else []
    if masks is None:
        raise ValueError("fold_toggles needs a co-simulation with probe_activity")
    classes = [*counters, NO_STEP]
    steps = {c: 0 for c in classes}
    toggles = {c: {g: 0 for g in ACTIVITY_GROUPS} for c in classes}
    before = 0
    for result in results:
        for fold in result.folds:
            values = [before, *fold.activity]  # values[c + 1]: the state in cycle c
            events = fold.events.reshape(len(masks), fold.cycles)
            for c in range(fold.cycles):
                changed = values[c + 1] ^ values[c]
                settled = values[c + 2] ^ values[c + 1]  # what cycle c's addition changed
                for p, mask in enumerate(masks):
                    event = int(events[p, c])
                    name = classes[event] if event >= 0 else NO_STEP
                    steps[name] += 1
                    counts = toggles[name]
                    for group, bits in mask.items():
                        source = settled if group == "accumulator" else changed
                        counts[group] += (source & bits).bit_count()
            before = fold.activity[-1]
    return ActivityTable(steps, toggles)


def model_energies(composition, tech) -> dict[str, dict[str, float]]:
    """The energy model's dynamic energy per PE-step of each class, pJ by breakdown class
    (multipliers, adders, pe_logic, ...; registers are clocked every cycle and are not
    per-event: docs/energy-model.md)."""
    out: dict[str, dict[str, float]] = {}
    for event, parts in composition.events.items():
        by_class: dict[str, float] = {}
        for component, count in parts.items():
            breakdown = tech.components[component].breakdown
            by_class[breakdown] = by_class.get(breakdown, 0.0) + count * tech.energy_pj(component)
        out[event] = by_class
    return out


def measure(arch, source: str, workload, *, layer: str | None = None, max_folds: int = 8,
            operand_isolation: bool = False) -> tuple[ActivityTable, object]:
    """Co-simulate ``arch`` (with ``operand_isolation`` or not) on ``workload``'s layers
    (cropped to ``max_folds`` folds each) with the activity probes, checking every GEMM
    against sasim as ``sasim rtl verify`` does; returns the table and the verification
    result.

    Raises
    ------
    SimulationError
        If the RTL disagrees with sasim (the activity of a wrong design means nothing).
    """
    from simulator.errors import SimulationError
    from simulator.rtl.build import pe_counters
    from simulator.rtl.verify import verify_arch

    result = verify_arch(arch, source, workload=workload, layer=layer, max_folds=max_folds,
                         probe_activity=True, operand_isolation=operand_isolation)
    if result.mismatch is not None:
        raise SimulationError(f"{source}: the RTL disagrees with sasim: {result.mismatch.line()}")
    table = fold_toggles(pe_counters(result.design), result.runs)
    return table, result
