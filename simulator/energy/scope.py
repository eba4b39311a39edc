"""Energy at two scopes, and the SRAM a run's buffers imply (docs/energy-model.md, "Two
scopes"; docs/memory-model.md, "Ideal memory").

* **array** scope: the PE array alone, what the papers synthesise and report: the PEs'
  component classes (multipliers, adders, registers, PE logic) and the array's share of the
  leakage (its area over the chip's).
* **chip** scope: everything the run priced: the array, the on-chip buffers, DRAM, the
  vector unit and codec when there are some, and all the leakage.

A buffer the config leaves unbounded (``memory.*_kib: null``, the ``ideal`` memory) is priced
as an SRAM of the largest occupancy the run reached. That is what the user asked for, but
on a large network it implies more SRAM than a chip of that array would carry:
:func:`sram_warning` says so when it exceeds :data:`SRAM_WARNING_KIB_PER_PE` per PE.

This module knows plain data only (breakdowns, sizes, summaries), like the rest of
:mod:`simulator.energy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulator.energy.tech import COMPONENT_CLASSES

__all__ = [
    "SCOPES",
    "SRAM_WARNING_KIB_PER_PE",
    "array_share",
    "array_energy_pj",
    "priced_buffer_kib",
    "buffer_sizing",
    "layer_scopes",
    "sram_warning",
]

#: The two scopes, in report order.
SCOPES = ("array", "chip")

#: Implied SRAM per PE above which an unbounded-buffer run warns (docs/memory-model.md,
#: "Ideal memory"): about six times Eyeriss's global buffer per PE (108 KB for 168 PEs,
#: 0.64 KiB) and ten times the TPU v1's (28 MiB for 65,536 PEs, 0.44 KiB); 1 MiB for a
#: 16x16 array, 4 MiB for a 32x32 one.
SRAM_WARNING_KIB_PER_PE = 4.0


def array_share(area_um2: float | None, array_area_um2: float | None) -> float:
    """The array's share of the chip's area (the share of leakage the array scope carries);
    1.0 without an area."""
    if not area_um2 or array_area_um2 is None:
        return 1.0
    return array_area_um2 / area_um2


def array_energy_pj(breakdown: Mapping[str, float], share: float) -> float:
    """Array-scope energy of a breakdown (pJ by class): the PE component classes and
    ``share`` of the leakage."""
    return (sum(breakdown.get(k, 0.0) for k in COMPONENT_CLASSES)
            + breakdown.get("leakage", 0.0) * share)


def priced_buffer_kib(configured: Mapping[str, float | None],
                      peaks: Mapping[str, int]) -> dict[str, float]:
    """Each buffer's capacity for its access energy and area: its configured size, or, when
    unbounded (None), the largest occupancy in bytes any layer reached, in KiB; buffers of
    zero size are left out."""
    out = {}
    for name, size in configured.items():
        kib = peaks.get(name, 0) / 1024 if size is None else size
        if kib > 0:
            out[name] = kib
    return out


def buffer_sizing(configured: Mapping[str, float | None], peaks: Mapping[str, int],
                  pes: int) -> dict[str, Any]:
    """How a run's buffers were sized and priced (summary.json ``buffer_sizing``).

    Returns
    -------
    dict
        ``unbounded`` (names of the buffers the config leaves unbounded), ``priced_kib``
        (each buffer's priced capacity), ``sram_kib`` (their sum), ``sram_kib_per_pe``.
    """
    priced = priced_buffer_kib(configured, peaks)
    total = sum(priced.values())
    return {"unbounded": [name for name, size in configured.items() if size is None],
            "priced_kib": priced, "sram_kib": total,
            "sram_kib_per_pe": total / pes if pes else None}


def layer_scopes(layers: Sequence[dict[str, Any]], share: float) -> list[dict[str, Any]]:
    """The summary's layer records with ``array_energy_pj`` and ``chip_energy_pj`` (None
    where a layer is not priced)."""
    out = []
    for layer in layers:
        breakdown = layer.get("energy_breakdown_pj")
        priced = breakdown is not None and layer.get("energy_pj") is not None
        out.append({**layer,
                    "array_energy_pj": array_energy_pj(breakdown, share) if priced else None,
                    "chip_energy_pj": layer["energy_pj"] if priced else None})
    return out


def sram_warning(summary: Mapping[str, Any]) -> str | None:
    """One line when the run's unbounded buffers imply more SRAM per PE than
    :data:`SRAM_WARNING_KIB_PER_PE`, else None."""
    sizing = summary.get("buffer_sizing")
    if not sizing or not sizing["unbounded"] or sizing["sram_kib_per_pe"] is None:
        return None
    if sizing["sram_kib_per_pe"] <= SRAM_WARNING_KIB_PER_PE:
        return None
    names = "/".join(sizing["unbounded"])
    return (f"warning: arch {summary['arch']} on {summary['workload']}: unbounded {names} "
            f"buffer(s) are priced as SRAMs of the run's peak occupancy, "
            f"{sizing['sram_kib']:,.0f} KiB in all ({sizing['sram_kib_per_pe']:.1f} KiB per "
            f"PE, above the {SRAM_WARNING_KIB_PER_PE:g} KiB per PE of a plausible chip): "
            f"chip-scope energy and area include that SRAM (docs/memory-model.md, "
            f"\"Ideal memory\")")
