"""The contents of a run's output files: summary.json, layers.csv, SCALE-Sim's
COMPUTE_REPORT.csv and outputs.npz.

Where they are written, whole or not at all, is :mod:`simulator.outputs`' business.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulator.errors import ResultsError
from simulator.outputs import flatten_scalars, json_text

__all__ = ["LAYER_COLUMNS", "SUMMARY_FORMAT", "summary_json", "layers_csv", "records_csv",
           "NpzStream", "compute_report_csv", "figure_format"]

#: The figure formats a plot may be written in, chosen by the file's suffix.
FIGURE_FORMATS = ("png", "svg", "pdf")


def figure_format(path: str | Path, name: str | Path | None = None) -> str:
    """The figure format of ``path`` (its suffix); ``name`` (default: the path) is what a
    refusal names, e.g. the user's path for a temporary one."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise ResultsError(f"{name or path}: the figure format is chosen by the suffix: "
                           f"{', '.join('.' + f for f in FIGURE_FORMATS[:-1])} or "
                           f".{FIGURE_FORMATS[-1]}")
    return fmt


#: Version of summary.json's layout (its ``format`` key, docs/getting-started.md).
SUMMARY_FORMAT = 1

LAYER_COLUMNS = ("name", "op", "m", "k", "n", "groups", "folds", "steps_per_fold",
                 "cycles_per_fold", "compute_cycles", "stall_cycles", "total_cycles", "macs",
                 "utilization", "mapping_efficiency", "compute_utilization",
                 "prefetch_cycles", "drain_cycles", "roofline_cycles", "bound", "hcm_cycles",
                 "hcm_bit_ops", "hcm_bits_moved",
                 "dram_ifmap_read_bytes", "dram_filter_read_bytes", "dram_psum_read_bytes",
                 "dram_ofmap_write_bytes", "dram_psum_write_bytes",
                 "buffer_ifmap_read_bytes", "buffer_ifmap_write_bytes",
                 "buffer_filter_read_bytes", "buffer_filter_write_bytes",
                 "buffer_ofmap_read_bytes", "buffer_ofmap_write_bytes",
                 "peak_ifmap_bytes", "peak_filter_bytes", "peak_ofmap_bytes",
                 "ifmap_reuse", "filter_reuse", "ofmap_reuse", "loop_order", "units")


def layers_csv(summary: Mapping[str, Any]) -> str:
    """The per-layer table as CSV text: core columns first, then every other scalar field,
    with mappings of scalars (counters, energy breakdown) flattened to ``field.key``."""
    layers = [flatten_scalars(layer) for layer in summary["layers"]]
    extra: list[str] = []
    for layer in layers:
        extra += [k for k in layer if k not in LAYER_COLUMNS and k not in extra]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = [*LAYER_COLUMNS, *extra]
    writer.writerow(columns)
    for layer in layers:
        writer.writerow([layer.get(c, "") for c in columns])
    return out.getvalue()


def records_csv(records: Sequence[Mapping[str, Any]]) -> str:
    """Flat records (dicts with the same keys) as CSV text."""
    out = io.StringIO()
    if records:
        writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return out.getvalue()


def compute_report_csv(summary: Mapping[str, Any]) -> str:
    """SCALE-Sim v3's COMPUTE_REPORT.csv: same header, same number formatting.

    As in SCALE-Sim, *Total Cycles* runs from the first fold's start to the last fold's end
    (stalls included) and *Stall Cycles* are the stalls in between; *Total Cycles (incl.
    prefetch)* adds the loads before the first fold and the write-back after the last one,
    i.e. it is the layer's ``total_cycles``.
    """
    lines = ["LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles, "
             "Overall Util %, Mapping Efficiency %, Compute Util %,"]
    array = summary["arch_config"]["array"]
    pes = array["rows"] * array["cols"]
    for i, layer in enumerate(summary["layers"]):
        with_prefetch = layer["total_cycles"]
        total = with_prefetch - layer["prefetch_cycles"] - layer["drain_cycles"]
        stalls = total - layer["compute_cycles"]
        overall = (layer["macs"] * 100) / (total * pes)
        lines.append(f"{i}, {with_prefetch}, {total}, {stalls}, {overall}, "
                     f"{layer['mapping_efficiency'] * 100}, "
                     f"{layer['compute_utilization'] * 100},")
    return "\n".join(lines) + "\n"


def summary_json(summary: Mapping[str, Any]) -> str:
    """``summary.json`` text: ``format`` (:data:`SUMMARY_FORMAT`) then the summary, strict
    JSON (an infinite or undefined figure such as ``sqnr_db`` of an all-zero signal is
    ``null``)."""
    return json_text({"format": SUMMARY_FORMAT, **summary})


class NpzStream:
    """Write arrays one at a time into the ``.npz`` file ``path`` (readable by ``np.load``).

    Only one array is in memory at a time. ``path`` is meant to be inside a staging
    directory (:class:`simulator.outputs.OutputSet`), which removes it on failure.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)

    def add(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` under ``key`` (``np.load(...)[key]`` reads it back)."""
        with self._zip.open(f"{key}.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)

    def close(self) -> None:
        """Finish the file."""
        self._zip.close()
