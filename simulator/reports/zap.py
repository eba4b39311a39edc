"""ZAP's lines in the run report (docs/zap.md, "Reports")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["zap_lines", "zap_table"]


def _pct(part: float, whole: float) -> float:
    return 100 * part / whole if whole else 0.0


def zap_cost_pj(z: Mapping[str, Any]) -> float:
    """ZAP's own energy in one layer (or the totals), pJ: the predictor's MACs, the gating
    and compaction logic, a side unit's registers and leakage (docs/energy-model.md)."""
    return sum(z.get(k, 0.0) for k in ("energy_predictor_pj", "energy_logic_pj",
                                        "energy_side_unit_register_pj",
                                        "energy_side_unit_leakage_pj"))


def zap_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Headers and one row per ZAP layer: MACs saved (the paper's accounting), predictor
    MACs, mispredictions, mass lost, the array's cycles under both schedules and, in a
    functional run, ZAP's own energy and the dynamic energy of the steps it skipped."""
    headers = ["ZAP layer", "mask", "thr", "MACs saved %", "pred MACs %", "mispred nz",
               "mass lost %", "cycles", "none", "compact", "pred cycles"]
    priced = all("energy_skipped_pj" in (lay.get("zap") or {"energy_skipped_pj": 0})
                 for lay in summary["layers"])
    if priced:
        headers += ["ZAP uJ", "skipped uJ"]
    rows = []
    for lay in summary["layers"]:
        z = lay.get("zap")
        if not z:
            continue
        row = [lay["name"] + (" SYNTHETIC" if z["synthetic"] else ""), z["mask_type"],
               f"{z['threshold']:.2f}", _pct(z["macs_saved"], lay["macs"]),
               _pct(z["predictor_macs"], lay["macs"]), z["mispredicted_nonzero"],
               _pct(z["mass_lost"], z["mass"]), z["dense_cycles"], z["cycles_none"],
               z["cycles_compact"], z["predictor_cycles"]]
        if priced:
            row += [f"{zap_cost_pj(z) / 1e6:.3f}", f"{z['energy_skipped_pj'] / 1e6:.3f}"]
        rows.append(row)
    return headers, rows


def zap_lines(summary: Mapping[str, Any]) -> list[str]:
    """The report's ZAP lines: the per-layer table and the totals; none without ZAP."""
    from simulator.reports.table import format_table

    z = summary.get("zap")
    if not z:
        return []
    cfg = summary["arch_config"]["zap"]
    label = "SYNTHETIC predictor" if z["synthetic"] else "trained predictors"
    if z["synthetic"] and cfg.get("predictor_source") == "trained":
        label += (" standing in for trained predictors, which this workload does not have "
                  "(zap.untrained: synthetic)")
    headers, rows = zap_table(summary)
    macs = summary["macs"]
    return ["", format_table(headers, rows), "",
            f"ZAP ({label}, predictor on the {cfg['predictor'].replace('_', ' ')}, schedule "
            f"{cfg['schedule']}): {z['layers']} layers; MACs saved "
            f"{z['macs_saved']:,} = {_pct(z['macs_saved'], z['eligible_macs']):.1f} % of their "
            f"MACs, {_pct(z['macs_saved'], macs):.1f} % of the run's (paper's accounting); "
            f"predictor MACs {z['predictor_macs']:,} "
            f"({_pct(z['predictor_macs'], macs):.1f} % of the run's)",
            f"ZAP outputs: {_pct(z['predicted_zero'], z['outputs']):.1f} % gated off, "
            f"{z['mispredicted_nonzero']:,} non-zero outputs mispredicted zero "
            f"({_pct(z['mass_lost'], z['mass']):.2f} % of the activation mass lost); "
            f"compute cycles of these layers: dense {z['dense_cycles']:,}, none "
            f"{z['cycles_none']:,} "
            f"({_pct(z['dense_cycles'] - z['cycles_none'], z['dense_cycles']):+.1f} % saved), "
            f"compact {z['cycles_compact']:,} "
            f"({_pct(z['dense_cycles'] - z['cycles_compact'], z['dense_cycles']):+.1f} % saved), "
            f"predictor {z['predictor_cycles']:,} included", *_energy_line(z)]


def _energy_line(z: Mapping[str, Any]) -> list[str]:
    """ZAP's energy line (functional runs): its own cost against the skipped steps'."""
    if "energy_skipped_pj" not in z:
        return []
    side = (z.get("energy_side_unit_register_pj", 0.0)
            + z.get("energy_side_unit_leakage_pj", 0.0))
    return [f"ZAP energy: predictor MACs {z['energy_predictor_pj'] / 1e6:.3f} uJ, gating and "
            f"compaction logic {z['energy_logic_pj'] / 1e6:.3f} uJ, side unit registers and "
            f"leakage {side / 1e6:.3f} uJ; the skipped PE-steps' dynamic energy "
            f"{z['energy_skipped_pj'] / 1e6:.3f} uJ not spent "
            f"({z['skipped_active_steps']:,} of {z['active_steps']:,} active steps)"]


def accuracy_zap_lines(report: Mapping[str, Any]) -> list[str]:
    """``sasim accuracy``'s ZAP lines: per layer and in total, over the evaluation set."""
    from simulator.reports.table import format_table

    zap = report["zap"]
    rows = []
    for name, z in zap["layers"].items():
        rows.append([name + (" SYNTHETIC" if z["synthetic"] else ""), z["mask_type"],
                     f"{z['threshold']:.2f}", _pct(z["macs_saved"], z["layer_macs"]),
                     _pct(z["predicted_zero"], z["outputs"]), z["mispredicted_nonzero"],
                     _pct(z["mass_lost"], z["mass"])])
    label = "SYNTHETIC predictor" if zap["synthetic"] else "trained predictors"
    return ["", f"ZAP in the loop ({label}), over the evaluation set:",
            format_table(["layer", "mask", "thr", "MACs saved %", "gated off %",
                          "mispred nz", "mass lost %"], rows, "lrrrrrr"),
            f"MACs saved (paper's accounting): {100 * zap['macs_saved_fraction']:.2f} % of the "
            f"network's conv/linear MACs, {100 * zap['macs_saved_fraction_eligible']:.2f} % of "
            f"the ZAP layers'; activation mass lost {100 * zap['mass_lost_fraction']:.2f} %"]


def compare_zap_line(record: Mapping[str, Any]) -> str:
    """``sasim compare``'s line for a design with ZAP (its MACs saved and the cost)."""
    z = record["zap"]
    label = "SYNTHETIC predictor" if z["synthetic"] else "trained predictors"
    return (f"ZAP {record['arch']} on {record['workload']} ({label}): MACs saved "
            f"{_pct(z['macs_saved'], record['macs']):.1f} % (paper's accounting), predictor "
            f"MACs {_pct(z['predictor_macs'], record['macs']):.1f} %, "
            f"{z['mispredicted_nonzero']:,} non-zeros mispredicted "
            f"({_pct(z['mass_lost'], z['mass']):.2f} % of the activation mass lost)")
