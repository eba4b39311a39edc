"""Writing run outputs atomically: summary.json, layers.csv and SCALE-Sim's COMPUTE_REPORT.csv.

Everything is first written into a temporary directory beside the target and then moved into
place, so a failure never leaves half a file or half an output directory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LAYER_COLUMNS", "summary_json", "write_outputs", "layers_csv", "records_csv", "NpzStream", "compute_report_csv", "atomic_write_text"]

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
    layers = [_flatten(layer) for layer in summary["layers"]]
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


def _flatten(layer: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in layer.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()
                        if not isinstance(v, Mapping | list)})
        elif not isinstance(value, list):
            out[key] = value
    return out


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(out_dir: Path, files: Mapping[str, Callable[[Path], None] | str]) -> None:
    """Write a set of files into ``out_dir`` all-or-nothing.

    ``files`` maps file names to their text, or to a function that writes the file at the
    path it is given. Files are produced in a temporary sibling directory and moved into
    ``out_dir`` only when all of them succeeded.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, content in files.items():
            target = staging / name
            if isinstance(content, str):
                target.write_text(content, encoding="utf-8")
            else:
                content(target)
        if not out_dir.exists():
            os.replace(staging, out_dir)
            return
        for name in files:
            os.replace(staging / name, out_dir / name)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def summary_json(summary: Mapping[str, Any]) -> str:
    """``summary.json`` text."""
    return json.dumps(summary, indent=2, sort_keys=False) + "\n"


class NpzStream:
    """Write arrays one at a time into an ``.npz`` file (readable by ``np.load``).

    The file is built at a temporary path inside ``folder`` and is removed by
    :meth:`discard`; :meth:`move_to` puts the finished file in place. Only one array is in
    memory at a time.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".outputs.", suffix=".npz", dir=folder)
        os.close(fd)
        self.path = Path(name)
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED)

    def add(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` under ``key`` (``np.load(...)[key]`` reads it back)."""
        with self._zip.open(f"{key}.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)

    def move_to(self, target: Path) -> None:
        """Finish the file and move it to ``target``."""
        self._zip.close()
        os.replace(self.path, target)

    def discard(self) -> None:
        """Close and delete the temporary file (after a failure)."""
        self._zip.close()
        self.path.unlink(missing_ok=True)
