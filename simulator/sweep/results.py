"""A sweep's output directory: one JSON file per point, ``results.csv``, ``sweep.json``.

Crash safety (docs/sweeps.md): ``points/<id>.json`` is the record of a finished point. It is
written under a temporary name and renamed, so it exists whole or not at all, and a point
counts as done exactly when its file is there. ``results.csv`` is derived from those files:
it is only ever replaced whole (a temporary file, fsync, rename) or appended one complete
batch of lines with a single ``write`` on an ``O_APPEND`` descriptor followed by fsync; and
every run starts by rebuilding it from ``points/``, so a kill at any moment loses at most the
points in flight, and a resumed sweep lists every point exactly once.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import simulator
from simulator.config.schema import dump
from simulator.outputs import (TEMP_PREFIX, OutputError, atomic_write, file_mode,
                               flatten_scalars, json_text, remove_stale)
from simulator.sweep.spec import SweepPlan, SweepPoint

__all__ = [
    "POINT_FORMAT",
    "RESULTS_CSV",
    "POINTS_DIR",
    "MANIFEST",
    "RATIO_COLUMNS",
    "TRAILING_COLUMNS",
    "point_record",
    "metric_columns",
    "read_points",
    "write_point",
    "write_manifest",
    "manifest",
    "plan_digest",
    "LOCK",
    "DASK_SCRATCH",
    "SweepDirectory",
    "result_row",
    "with_ratios",
    "ResultsTable",
]

#: Version of the per-point JSON record.
POINT_FORMAT = 1
RESULTS_CSV = "results.csv"
POINTS_DIR = "points"
MANIFEST = "sweep.json"
#: The lock file of a sweep directory (held while a sweep writes into it).
LOCK = "sweep.lock"
#: The Dask LocalCluster's scratch space inside a sweep directory (removed at the end).
DASK_SCRATCH = ".dask-scratch"
#: Ratios against the baseline design on the same workload (empty without a baseline):
#: speedup = baseline time / time; energy and area ratios = value / baseline value.
RATIO_COLUMNS = ("speedup", "energy_ratio", "area_ratio", "baseline")
TRAILING_COLUMNS = ("error", "point_id", "elapsed_s")

#: Summary keys that are not CSV columns: the workload column already names the workload
#: (as written in the spec), and the config and per-layer data stay in the JSON files.
_SKIPPED = ("workload", "arch_config", "layers")


def point_record(point: SweepPoint, summary: Mapping[str, Any] | None, error: str | None,
                 elapsed_s: float) -> dict[str, Any]:
    """The JSON record of one finished point (``summary`` is None when it failed)."""
    return {"format": POINT_FORMAT, "id": point.id, "workload": point.workload,
            "base": point.base, "axes": dict(point.axes), "overrides": list(point.overrides),
            "timing_only": point.timing_only, "baseline": point.baseline,
            "sasim_version": simulator.__version__, "elapsed_s": elapsed_s, "error": error,
            "summary": summary}


def metric_columns(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """The summary's scalar metrics as CSV columns, in summary order: scalars under their
    summary.json names, mappings of scalars flattened to ``name.key`` (``counters.idle``,
    ``energy_breakdown_pj.dram``)."""
    return flatten_scalars(summary or {}, skip=_SKIPPED)


def result_row(record: Mapping[str, Any], axes: Sequence[str]) -> dict[str, Any]:
    """One ``results.csv`` row (without ratios) from a point record."""
    row: dict[str, Any] = {"workload": record["workload"]}
    row.update({axis: record["axes"].get(axis) for axis in axes})
    row.update(metric_columns(record["summary"]))
    row.update(error=record["error"], point_id=record["id"], elapsed_s=record["elapsed_s"])
    return row


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float):
        return None
    if denominator == 0 or not math.isfinite(numerator) or not math.isfinite(denominator):
        return None
    return numerator / denominator


def with_ratios(row: Mapping[str, Any], baseline: Mapping[str, Any] | None,
                is_baseline: bool) -> dict[str, Any]:
    """``row`` with the ratio columns against the ``baseline`` row of its workload."""
    base = baseline or {}
    ratios = {"speedup": _ratio(base.get("time_us"), row.get("time_us")),
              "energy_ratio": _ratio(row.get("energy_pj"), base.get("energy_pj")),
              "area_ratio": _ratio(row.get("area_um2"), base.get("area_um2")),
              "baseline": is_baseline}
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == TRAILING_COLUMNS[0]:
            out.update(ratios)
        out[key] = value
    return out


def write_point(points_dir: Path, point_id: str, text: str) -> None:
    """Write one point's JSON text as ``points_dir/<id>.json``, whole or not at all."""
    atomic_write(points_dir / f"{point_id}.json", text, sync=False)


def read_points(points_dir: Path, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The records of ``ids`` that have a readable point file (others are not done)."""
    out = {}
    for point_id in ids:
        path = points_dir / f"{point_id}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            # Not a finished point: e.g. a file renamed into place but never synced before a
            # power loss. The point runs again and its file is replaced.
            continue
        # a record of another format (another sasim version) is not done: it runs again
        if isinstance(record, dict) and record.get("id") == point_id \
                and record.get("format") == POINT_FORMAT:
            out[point_id] = record
    return out


def plan_digest(plan: SweepPlan) -> str:
    """What makes a sweep directory one sweep's: a hash of its spec (name, bases, workloads
    as written, axes and their values, baseline, timing_only, accuracy; not the spec's path
    or description). Editing a base config or a workload file keeps the sweep (its points
    re-run, docs/sweeps.md); editing the spec makes another sweep."""
    spec = dump(plan.spec)
    spec.pop("description", None)
    text = json.dumps([plan.name, list(plan.axes), spec], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def manifest(plan: SweepPlan) -> dict[str, Any]:
    """The content of ``sweep.json``: what the columns of results.csv mean, for plots and
    readers, and which sweep the directory belongs to (``plan_digest``)."""
    return {"format": POINT_FORMAT, "name": plan.name, "spec": str(plan.source),
            "plan_digest": plan_digest(plan), "axes": list(plan.axes),
            "workloads": list(plan.spec.workloads),
            "baseline": plan.spec.baseline if not isinstance(plan.spec.baseline, Mapping)
            else dict(plan.spec.baseline),
            "timing_only": plan.spec.timing_only, "points": len(plan.points),
            "designs": plan.designs}


def write_manifest(out_dir: Path, plan: SweepPlan) -> None:
    """Write ``sweep.json`` (see :func:`manifest`)."""
    atomic_write(out_dir / MANIFEST, json_text(manifest(plan)))


def _check_owner(out_dir: Path, plan: SweepPlan) -> None:
    """Refuse a directory that holds another sweep's results, or other files."""
    path = out_dir / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        foreign = sorted(name for name in os.listdir(out_dir)
                         if name not in (LOCK, DASK_SCRATCH) and not name.startswith(TEMP_PREFIX))
        if foreign:
            raise OutputError(f"--out {out_dir}: holds {foreign[0]!r} but no {MANIFEST}: not a "
                              f"sweep directory; choose a new or empty directory") from None
        return
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputError(f"{path}: cannot read: {exc}") from None
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict) or found.get("format") != POINT_FORMAT:
        raise OutputError(f"{path}: not a sweep.json of format {POINT_FORMAT} (written by "
                          f"another sasim version?); choose a new directory for --out")
    if "plan_digest" not in found:  # written by a sasim before the digest: compare by hand
        mine = manifest(plan)
        same = all(found.get(k) == mine[k] for k in ("name", "axes", "workloads", "points"))
    else:
        same = found["plan_digest"] == plan_digest(plan)
    if not same:
        raise OutputError(
            f"--out {out_dir}: holds the results of another sweep ({found.get('name')!r} from "
            f"{found.get('spec')}); {plan.source} is another spec: choose a new --out (a "
            f"directory belongs to one spec, docs/sweeps.md)")


class SweepDirectory:
    """A sweep's output directory, claimed for ``plan`` by this process.

    Entering creates the directory, takes an exclusive lock on its ``.lock`` file (so two
    sweeps cannot write into it at the same time), checks that it is empty or holds this
    plan's results (its ``sweep.json``) and writes ``sweep.json``; leaving releases the lock.
    Raises :class:`~simulator.outputs.OutputError` otherwise.
    """

    def __init__(self, path: str | Path, plan: SweepPlan) -> None:
        self.path = Path(path)
        self.plan = plan
        self._fd: int | None = None

    def __enter__(self) -> SweepDirectory:
        out = self.path
        try:
            if out.exists() and not out.is_dir():
                raise OutputError(f"--out {out}: exists and is not a directory")
            if out.is_dir():
                _check_owner(out, self.plan)  # before the lock file goes into a foreign folder
            out.mkdir(parents=True, exist_ok=True)
            fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, file_mode())
        except OSError as exc:
            raise OutputError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputError(f"--out {out}: another sweep is writing into it (its "
                              f"{LOCK} is locked); wait for it or choose another --out") from None
        self._fd = fd
        try:
            _check_owner(out, self.plan)  # again, now that no other sweep can write
            remove_stale(out)
            remove_stale(out / POINTS_DIR)
            (out / POINTS_DIR).mkdir(exist_ok=True)
            write_manifest(out, self.plan)
        except OSError as exc:
            self.__exit__()
            raise OutputError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


class ResultsTable:
    """``results.csv``: rebuilt whole, or appended with whole lines.

    The header is fixed when the file is rebuilt; a row that brings a column the header
    lacks (a design with another PE type's counters, say) triggers a rebuild instead of an
    append, so the file always has one header that covers every row.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] = []
        self._fd: int | None = None

    def rebuild(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the file with ``rows`` (columns in first-seen order)."""
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        self.columns = [c for c in columns if c not in TRAILING_COLUMNS] + [
            c for c in TRAILING_COLUMNS if c in columns or not rows]
        text = self._lines([list(self.columns)] + [self._values(row) for row in rows])
        self.close()
        atomic_write(self.path, text)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Append ``rows`` with one write and an fsync; False (nothing written) when a row
        has a column the header lacks."""
        if not rows:
            return True
        known = set(self.columns)
        if any(key not in known for row in rows for key in row):
            return False
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        data = self._lines([self._values(row) for row in rows]).encode()
        written = os.write(self._fd, data)
        if written != len(data):  # a full disk: the tail is rewritten by the next rebuild
            raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")
        os.fsync(self._fd)
        return True

    def close(self) -> None:
        """Close the append descriptor (a rebuild replaces the file it points to)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _values(self, row: Mapping[str, Any]) -> list[Any]:
        return [_cell(row.get(column)) for column in self.columns]

    @staticmethod
    def _lines(rows: Sequence[Sequence[Any]]) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue()
