"""ZAP's energy: the predictor, the gating and compaction logic, the steps it skips
(docs/energy-model.md, "ZAP"; docs/hardware-spec.md §9).

Plain numbers in, plain numbers out, like :mod:`simulator.energy.model`: the caller passes
a ZAP layer's report (:func:`simulator.hw.zap.zap_cycles` and the counts of
:func:`simulator.kernels.zap.zap_counts`) and the PE's counters.
"""

from __future__ import annotations

from collections.abc import Mapping

from simulator.energy.tech import TechTable

__all__ = ["PREDICTOR_MAC", "SCORE_BITS", "SIDE_UNIT_REGISTER_BITS", "ADDRESS_BITS",
           "predictor_actions", "logic_actions", "skipped_counters", "actions_pj",
           "side_unit_area_um2", "zap_energy"]

#: One predictor MAC: an 8-bit multiply and a 32-bit accumulate (the dense PE's datapath).
PREDICTOR_MAC = {"mult_8x8": 1, "adder_32": 1}
#: Bits of a predictor score compared against the threshold.
SCORE_BITS = 16
#: Register bits of one side-unit lane: 8-bit activation and weight, 32-bit accumulator.
SIDE_UNIT_REGISTER_BITS = 8 + 8 + 32
#: Bits of one output position's address in a compaction queue.
ADDRESS_BITS = 16


def predictor_actions(macs: int) -> dict[str, float]:
    """Component actions of the predictor's ``macs`` MACs (on the array or the side unit)."""
    return {name: count * macs for name, count in PREDICTOR_MAC.items()}


def logic_actions(report: Mapping[str, float]) -> dict[str, float]:
    """The mask, threshold and compaction logic of one layer: each predicted position's score
    compared with the threshold (``SCORE_BITS`` comparator bits) and its gate (one logic
    bit); under ``compact``, each predicted position that is computed writes and reads its
    address in its column's queue (2 x ``ADDRESS_BITS`` register-bit writes)."""
    predicted = report["predicted"]
    actions = {"comparator_bit": SCORE_BITS * predicted, "logic_bit": float(predicted)}
    if report["schedule"] == "compact":
        computed = predicted - report["predicted_zero"]
        actions["register_bit"] = 2 * ADDRESS_BITS * computed
    return actions


def skipped_counters(counters: Mapping[str, int], steps: int, skipped_outputs: int,
                     skipped_active: int, all_active: int) -> dict[str, int]:
    """The PE-steps the gated-off outputs do not run, by counter.

    A gated-off output skips its ``steps`` PE-steps. Of these, ``skipped_active`` (the steps
    whose activation and weight are both non-zero) are taken from the non-idle counters in
    proportion to them, the rest from ``idle``: exact for the dense PE (one counter of each
    kind), the same share of each active kind for the others."""
    total = steps * skipped_outputs
    active = {k: v for k, v in counters.items() if k != "idle"}
    share = skipped_active / all_active if all_active else 0.0
    out = {k: min(v, int(round(v * share))) for k, v in active.items()}
    if "idle" in counters:
        out["idle"] = min(counters["idle"], max(0, total - sum(out.values())))
    return out


def actions_pj(tech: TechTable, actions: Mapping[str, float]) -> float:
    """Energy of component actions, pJ."""
    return float(sum(n * tech.components[c].energy_pj for c, n in actions.items()))


def side_unit_area_um2(tech: TechTable, lanes: int) -> float:
    """Area of a predictor side unit of ``lanes`` MAC lanes (their registers included)."""
    lane = (sum(n * tech.components[c].area_um2 for c, n in PREDICTOR_MAC.items())
            + SIDE_UNIT_REGISTER_BITS * tech.components["register_bit"].area_um2)
    return lane * lanes


def zap_energy(tech: TechTable, report: Mapping[str, float], events: Mapping[str,
               Mapping[str, float]], skipped: Mapping[str, int], side_unit_lanes: int,
               cycles: int, clock_mhz: float) -> dict[str, float]:
    """One ZAP layer's energy figures, pJ (docs/energy-model.md, "ZAP").

    Parameters
    ----------
    report : the layer's ZAP report (``predicted``, ``predicted_zero``, ``predictor_macs``,
        ``predictor``, ``schedule``, ``predictor_cycles``).
    events : the PE's per-counter actions (its composition).
    skipped : :func:`skipped_counters`.
    side_unit_lanes : the side unit's lanes (when the predictor runs there).
    cycles, clock_mhz : the layer's cycles and clock (the side unit's clocking and leakage).

    Returns
    -------
    dict
        ``predictor_pj`` (its MACs), ``logic_pj``, ``skipped_pj`` (the dynamic energy of the
        skipped PE-steps: saved), and with a side unit ``side_unit_register_pj`` (its
        registers clocked during the predictor's cycles), ``side_unit_leakage_pj`` (over the
        layer) and ``side_unit_area_um2``.
    """
    out = {"predictor_pj": actions_pj(tech, predictor_actions(report["predictor_macs"])),
           "logic_pj": actions_pj(tech, logic_actions(report)),
           "skipped_pj": float(sum(count * actions_pj(tech, events.get(name, {}))
                                   for name, count in skipped.items()))}
    if report["predictor"] == "side_unit":
        area = side_unit_area_um2(tech, side_unit_lanes)
        out["side_unit_register_pj"] = (side_unit_lanes * SIDE_UNIT_REGISTER_BITS
                                        * report["predictor_cycles"]
                                        * tech.energy_pj("register_bit"))
        out["side_unit_leakage_pj"] = (tech.leakage.pj_per_ns_per_um2 * area
                                       * cycles * 1e3 / clock_mhz)
        out["side_unit_area_um2"] = area
    return out
