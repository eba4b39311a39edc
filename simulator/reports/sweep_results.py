"""Reading a sweep's saved results (results.csv, sweep.json, points/*.json) for reports.

Only files are read here: plots are redrawn from saved results without the simulator. The
format is the one simulator/sweep writes (docs/sweeps.md).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simulator.config.files import load_json_text, parse_override, read_text
from simulator.errors import ResultsError, shorten
from simulator.reports.files import SUMMARY_FORMAT
from simulator.records import record

__all__ = ["SweepResults", "Design", "load_results", "load_run_summary", "is_run_summary",
           "parse_cell", "parse_baseline"]

#: Bytes read at most from a results file (results.csv, sweep.json, a run's summary.json).
MAX_RESULTS_BYTES = 1 << 30
_RESULTS_CSV = "results.csv"
_MANIFEST = "sweep.json"
_POINTS_DIR = "points"
#: What ``sasim run --out DIR`` writes: the run as plain data (docs/getting-started.md).
_RUN_SUMMARY = "summary.json"
#: The version of sweep.json and points/*.json this reader understands (simulator/sweep
#: writes it as ``format``).
_FORMAT = 1
#: Columns that hold amounts (times, cycles, energies, areas, bytes, fractions): a value
#: there is a finite number >= 0, or empty.
_AMOUNT_SUFFIXES = ("_us", "_s", "_cycles", "_pj", "_um2", "_bytes", "_kib", "_mib", "macs",
                    "utilization", "top1", "mse", "max_abs_error")
#: Measured columns that may be negative but are always finite numbers (or empty: exact).
_FINITE_COLUMNS = ("sqnr_db",)
#: Amounts no run can give as 0 (every layer takes a cycle): speedups divide by them.
_POSITIVE_COLUMNS = ("time_us", "total_cycles")



def parse_cell(text: str) -> Any:
    """A CSV cell as a value: '' -> None, integers, floats (inf/nan too), True/False."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_baseline(text: str) -> dict[str, Any] | str:
    """``--baseline``: ``KEY=VALUE[,KEY=VALUE...]`` (axis values, YAML-parsed) or a label."""
    if "=" not in text:
        return text
    out: dict[str, Any] = {}
    for item in text.split(","):
        key, value = parse_override(item, "--baseline", dotted=False)
        out[key[0]] = value
    return out


@record
class Design:
    """One design of a sweep (its axis values) and its rows, by workload."""

    key: tuple[Any, ...]
    parts: tuple[str, ...]
    rows: Mapping[str, Mapping[str, Any]]
    baseline: bool

    @property
    def label(self) -> str:
        """The design's name in figures: the values of the axes that vary, e.g.
        ``sysmt_2t_16x16 rows=32``."""
        return " ".join(self.parts)


@record
class SweepResults:
    """A sweep's rows (typed values) and where its point files are."""

    path: Path
    rows: tuple[dict[str, Any], ...]
    axes: tuple[str, ...]
    name: str
    points_dir: Path | None
    _records: dict[str, dict[str, Any]] = dataclasses.field(
        default_factory=dict, repr=False, compare=False)

    @property
    def columns(self) -> list[str]:
        """Every column present in any row."""
        out: dict[str, None] = {}
        for row in self.rows:
            out.update(dict.fromkeys(row))
        return list(out)

    def workloads(self) -> list[str]:
        """The workloads, in file order."""
        return list(dict.fromkeys(row["workload"] for row in self.rows))

    def designs(self) -> list[Design]:
        """The designs, in file order, labelled by the axes that vary between them."""
        keys: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
        for row in self.rows:
            keys.setdefault(tuple(row.get(a) for a in self.axes), {})[row["workload"]] = row
        labels = _labels(list(keys), self.axes, keys)
        return [Design(key, parts, rows, any(r.get("baseline") is True for r in rows.values()))
                for (key, rows), parts in zip(keys.items(), labels)]

    def baseline_design(self, baseline: Mapping[str, Any] | str | None = None) -> Design:
        """The design ratios are taken against.

        ``baseline``: axis values that pick exactly one design, or a design label; by default
        the sweep's own baseline (the ``baseline`` column), else the first design.
        """
        designs = self.designs()
        if isinstance(baseline, str):
            found = [d for d in designs if d.label == baseline]
            if not found:
                raise ResultsError(f"{self.path}: --baseline {baseline!r}: no design has that "
                                   f"label (labels: {', '.join(d.label for d in designs)})")
            return found[0]
        if baseline:
            unknown = [k for k in baseline if k not in self.axes]
            if unknown:
                raise ResultsError(f"{self.path}: --baseline: {unknown[0]!r} is not an axis "
                                   f"(axes: {', '.join(self.axes)})")
            index = {a: i for i, a in enumerate(self.axes)}
            found = [d for d in designs if all(_same(d.key[index[k]], v)
                                               for k, v in baseline.items())]
            if len(found) != 1:
                raise ResultsError(f"{self.path}: --baseline {dict(baseline)} matches "
                                   f"{len(found)} designs, expected exactly one")
            return found[0]
        marked = [d for d in designs if d.baseline]
        return marked[0] if marked else designs[0]

    def record(self, point_id: str) -> dict[str, Any] | None:
        """A point's JSON record, or None when its file is not there."""
        if self.points_dir is None or not point_id:
            return None
        if point_id not in self._records:
            path = self.points_dir / f"{point_id}.json"
            try:
                self._records[point_id] = load_json_text(path.read_text(encoding="utf-8"),
                                                         str(path), ResultsError)
            except FileNotFoundError:
                return None
            except (OSError, ValueError) as exc:
                raise ResultsError(f"{path}: cannot read: {exc}") from None
            record = self._records[point_id]
            if not isinstance(record, dict) or record.get("format") != _FORMAT:
                raise ResultsError(f"{path}: not a point record of format {_FORMAT}")
        return self._records[point_id]

    def summary(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        """The full summary of a row's point (None for failed points or missing files)."""
        record = self.record(str(row.get("point_id") or ""))
        return None if record is None else record.get("summary")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b)
    return a == b or str(a) == str(b)


def _short(axis: str, axes: Sequence[str]) -> str:
    """An axis name for labels: its last part when that is unambiguous."""
    last = axis.rsplit(".", 1)[-1]
    return last if sum(a.rsplit(".", 1)[-1] == last for a in axes) == 1 else axis


def _labels(keys: list[tuple[Any, ...]], axes: Sequence[str],
            rows: Mapping[tuple[Any, ...], Mapping[str, Mapping[str, Any]]],
            ) -> list[tuple[str, ...]]:
    varying = [i for i, _ in enumerate(axes) if len({repr(k[i]) for k in keys}) > 1]
    out = []
    for key in keys:
        parts = []
        for i in varying:
            if key[i] is None:
                continue
            if axes[i] == "base":
                parts.append(Path(str(key[i])).stem)
            else:
                parts.append(f"{_short(axes[i], axes)}={_format_value(key[i])}")
        if not parts:
            first = next(iter(rows[key].values()))
            parts.append(str(first.get("arch") or first.get("base") or "design"))
        out.append(tuple(parts))
    return out


def _format_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_amount(column: str) -> bool:
    return column.rsplit(".", 1)[-1].endswith(_AMOUNT_SUFFIXES)


def _wanted(value: Any, column: str, amount: bool) -> str | None:
    """What a measured ``value`` of ``column`` should have been (None: it is fine): a
    finite number, at least 0 for an amount, above 0 for a time or cycle count."""
    positive = column in _POSITIVE_COLUMNS
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or (amount and value < 0) or (positive and value == 0)):
        return "number > 0" if positive else "number >= 0" if amount else "finite number"
    return None


def _check_amounts(csv_path: Path, header: Sequence[str],
                   rows: Sequence[Mapping[str, Any]]) -> None:
    """Refuse negative, infinite or non-numeric times, cycles, energies, areas, fractions,
    and an infinite or non-numeric SQNR."""
    columns = [c for c in header if _is_amount(c)]
    finite = [c for c in header if c.rsplit(".", 1)[-1] in _FINITE_COLUMNS]
    for number, row in enumerate(rows, start=2):
        for column in (*columns, *finite):
            value = row.get(column)
            if value is None:
                continue
            wanted = _wanted(value, column, column in columns)
            if wanted is not None:
                raise ResultsError(f"{csv_path}: line {number}: {column} is {shorten(value)}, "
                                   f"expected a {wanted} (or empty)")


def _read_manifest(csv_path: Path, manifest: Path, header: Sequence[str]) -> dict[str, Any]:
    """sweep.json, checked against the results it describes."""
    if not os.path.lexists(manifest):
        raise ResultsError(f"{csv_path}: no {_MANIFEST} beside it, so its designs cannot be "
                           f"told apart (plot a sweep's directory, as `sasim sweep` wrote "
                           f"it)")
    text = read_text(manifest, f"a sweep's {_MANIFEST}", ResultsError, MAX_RESULTS_BYTES)
    data = load_json_text(text, str(manifest), ResultsError)
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ResultsError(f"{manifest}: not a sweep.json of format {_FORMAT}")
    axes = data.get("axes")
    if not isinstance(axes, list) or not all(isinstance(a, str) for a in axes):
        raise ResultsError(f"{manifest}: 'axes' must be a list of column names")
    missing = [a for a in axes if a not in header]
    if missing:
        raise ResultsError(f"{csv_path}: no column {missing[0]!r}, an axis of {manifest} "
                           f"(the two files are not from the same sweep)")
    if not isinstance(data.get("name", ""), str):
        raise ResultsError(f"{manifest}: 'name' must be a string")
    return data


def _check_distinct(csv_path: Path, rows: Sequence[Mapping[str, Any]],
                    axes: Sequence[str]) -> None:
    """Every (design, workload) once: otherwise two designs would be drawn as one."""
    seen: dict[tuple[Any, ...], int] = {}
    for number, row in enumerate(rows, start=2):
        key = (repr(row.get("workload")), *(repr(row.get(a)) for a in axes))
        if key in seen:
            raise ResultsError(
                f"{csv_path}: lines {seen[key]} and {number} have the same workload and axis "
                f"values ({', '.join(axes)}), so their designs cannot be told apart")
        seen[key] = number


def load_results(path: str | Path) -> SweepResults:
    """Read a sweep's results: ``path`` is its output directory or its results.csv.

    A final line without its newline (an append cut short by a crash; the next run of the
    sweep rebuilds the file) is ignored. Refused (:class:`ResultsError`): a results.csv
    without its sweep.json, or whose designs cannot be told apart, or with a negative or
    non-numeric time, energy, area or count.
    """
    path = Path(path)
    if path.name == _MANIFEST:  # the sweep's sweep.json: its directory's results
        path = path.parent
    try:
        csv_path = path / _RESULTS_CSV if path.is_dir() else path
    except OSError as exc:  # a name too long, a loop of links, ...
        raise ResultsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not os.path.lexists(csv_path):
        comparison = (csv_path.parent / "comparison.json").exists()
        hint = (": it holds a comparison (`sasim compare --out` draws its plots, "
                "comparison.png and, with transformer workloads, ops.png), not a sweep"
                if comparison else "")
        raise ResultsError(f"{csv_path}: file not found{hint}")
    text = read_text(csv_path, "a sweep's results.csv", ResultsError, MAX_RESULTS_BYTES)
    text = text.removeprefix("\ufeff")  # saved by a spreadsheet with a byte-order mark
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader, None)
        if not header or "workload" not in header:
            raise ResultsError(f"{csv_path}: not a sweep's results.csv (no 'workload' column)")
        if len(set(header)) != len(header):
            raise ResultsError(f"{csv_path}: a column name appears twice in the header")
        rows = []
        for number, cells in enumerate(reader, start=2):
            if len(cells) != len(header):
                raise ResultsError(f"{csv_path}: line {number}: {len(cells)} cells, the header "
                                   f"has {len(header)}")
            rows.append({k: parse_cell(v) for k, v in zip(header, cells)})
    except csv.Error as exc:
        raise ResultsError(f"{csv_path}: not valid CSV: {exc}") from None
    if not rows:
        raise ResultsError(f"{csv_path}: no results yet")
    _check_amounts(csv_path, header, rows)
    folder = csv_path.parent
    data = _read_manifest(csv_path, folder / _MANIFEST, header)
    axes = tuple(data["axes"])
    _check_distinct(csv_path, rows, axes)
    points = folder / _POINTS_DIR
    return SweepResults(path=csv_path, rows=tuple(rows), axes=axes,
                        name=data.get("name") or folder.name,
                        points_dir=points if points.is_dir() else None)


def _summary_path(path: Path) -> Path:
    return path / _RUN_SUMMARY if path.is_dir() else path


def is_run_summary(path: str | Path) -> bool:
    """Whether ``path`` is a run's summary.json or a ``sasim run --out`` directory (not a
    sweep's results)."""
    path = Path(path)
    try:
        target = _summary_path(path)
        return (target.suffix == ".json" and target.name != _MANIFEST  # a sweep's own
                and target.is_file())
    except OSError:
        return False


def load_run_summary(path: str | Path) -> dict[str, Any]:
    """One run's summary: ``path`` is a ``sasim run --out`` directory or its summary.json.
    Refused (:class:`ResultsError`): a file that is not JSON or not a run summary (a mapping
    with ``arch``, ``workload``, ``clock_mhz`` and ``layers``)."""
    target = _summary_path(Path(path))
    text = read_text(target, "a run's summary.json", ResultsError, MAX_RESULTS_BYTES)
    data = load_json_text(text, str(target), ResultsError)
    if not isinstance(data, dict) or not all(k in data for k in ("arch", "workload",
                                                                  "clock_mhz", "layers")):
        raise ResultsError(f"{target}: not a run's summary.json (sasim run --out DIR writes "
                           f"one)")
    if data.get("format", SUMMARY_FORMAT) != SUMMARY_FORMAT:
        raise ResultsError(f"{target}: format {shorten(data['format'])}: this sasim reads run "
                           f"summaries of format {SUMMARY_FORMAT}")
    for key in _POSITIVE_COLUMNS:
        wanted = None if data.get(key) is None else _wanted(data[key], key, True)
        if wanted is not None:
            raise ResultsError(f"{target}: {key} is {shorten(data[key])}, expected a {wanted}")
    return data
