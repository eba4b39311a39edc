"""Run a planned sweep into an output directory, resuming where an earlier run stopped."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from simulator.records import record
from simulator.sweep.executors import Executor
from simulator.sweep.results import (POINTS_DIR, RESULTS_CSV, ResultsTable, SweepDirectory,
                                     read_points, result_row, with_ratios, write_point)
from simulator.sweep.spec import SweepPlan, SweepPoint

__all__ = ["SweepOutcome", "Progress", "run_sweep", "chunk_points"]

#: Called after every finished chunk with (points done in this run, points this run has to
#: do, points of this run that failed).
Progress = Callable[[int, int, int], None]

#: The largest chunk: big enough that per-task overhead is small against ~50 ms points,
#: small enough that progress moves and the last chunks balance across workers.
MAX_CHUNK = 8


@record
class SweepOutcome:
    """What a run did: ``skipped`` points were already done, ``ran`` ran now, ``failed`` of
    all ``total`` points have a recorded error."""

    total: int
    skipped: int
    ran: int
    failed: int
    elapsed_s: float
    results_csv: Path
    points_dir: Path

    @property
    def points_per_minute(self) -> float:
        """The rate of this run (points run now per wall-clock minute)."""
        return 60 * self.ran / self.elapsed_s if self.elapsed_s > 0 else 0.0


def chunk_points(points: Sequence[SweepPoint], workers: int,
                 chunk_size: int | None = None) -> list[list[SweepPoint]]:
    """Cut ``points`` into chunks for ``workers`` workers.

    Baseline points go first, one per chunk, so that the ratio columns can be filled in as
    rows arrive. The others are grouped by workload (a worker keeps the data of the last
    workloads it ran) and cut into chunks of ``chunk_size`` (default: about eight chunks per
    worker, at most :data:`MAX_CHUNK` points).
    """
    baseline = [[p] for p in points if p.baseline]
    order = {}
    for p in points:
        order.setdefault(p.workload, len(order))
    rest = sorted((p for p in points if not p.baseline),
                  key=lambda p: (order[p.workload], p.index))
    size = chunk_size or max(1, min(MAX_CHUNK, math.ceil(len(rest) / (8 * max(1, workers)))))
    return baseline + [rest[i:i + size] for i in range(0, len(rest), size)]


class _Rows:
    """Every finished point's row, with the ratio columns when the plan has a baseline."""

    def __init__(self, plan: SweepPlan) -> None:
        self.plan = plan
        self.rows: dict[str, dict[str, Any]] = {}
        self._baseline_id = {p.workload: p.id for p in plan.points if p.baseline}
        self._is_baseline = {p.id for p in plan.points if p.baseline}

    def add(self, point_id: str, row: Mapping[str, Any]) -> None:
        self.rows[point_id] = dict(row)

    def complete(self, point_id: str) -> dict[str, Any]:
        row = self.rows[point_id]
        if not self.plan.has_baseline:
            return row
        base = self.rows.get(self._baseline_id.get(row["workload"], ""))
        return with_ratios(row, base, point_id in self._is_baseline)

    def ordered(self) -> list[dict[str, Any]]:
        return [self.complete(p.id) for p in self.plan.points if p.id in self.rows]


def run_sweep(plan: SweepPlan, out_dir: str | Path | SweepDirectory, executor: Executor, *,
              progress: Progress | None = None, retry_errors: bool = False,
              chunk_size: int | None = None) -> SweepOutcome:
    """Run every point of ``plan`` not yet done in ``out_dir``.

    Writes ``out_dir/points/<id>.json`` for each finished point, ``out_dir/results.csv``
    (one row per point, rebuilt at the start from the point files and appended to as points
    finish) and ``out_dir/sweep.json``. Points whose file exists are skipped; with
    ``retry_errors`` the points that failed run again. ``out_dir`` is claimed for ``plan``
    (:class:`~simulator.sweep.results.SweepDirectory`: locked, and refused when it holds
    another sweep's results) unless it is given as an already claimed SweepDirectory.

    Parameters
    ----------
    executor : an entered :class:`~simulator.sweep.executors.Executor`.
    progress : called after each finished chunk (see :data:`Progress`).
    chunk_size : points per task (default: see :func:`chunk_points`).
    """
    if not isinstance(out_dir, SweepDirectory):
        with SweepDirectory(out_dir, plan) as claimed:
            return run_sweep(plan, claimed, executor, progress=progress,
                             retry_errors=retry_errors, chunk_size=chunk_size)
    if out_dir.plan is not plan:
        raise ValueError("run_sweep: the directory was claimed for another plan")
    start = time.perf_counter()
    out_dir = out_dir.path
    points_dir = out_dir / POINTS_DIR
    done = read_points(points_dir, (p.id for p in plan.points))
    if retry_errors:
        done = {k: record for k, record in done.items() if record.get("error") is None}
    rows = _Rows(plan)
    for point_id, record in done.items():
        rows.add(point_id, result_row(record, plan.axes))
    table = ResultsTable(out_dir / RESULTS_CSV)
    table.rebuild(rows.ordered())
    todo = [p for p in plan.points if p.id not in done]
    ran = failed = 0
    try:
        if progress is not None:
            progress(0, len(todo), 0)
        for outcomes in executor.run(chunk_points(todo, executor.workers, chunk_size),
                                     plan.axes):
            for outcome in outcomes:
                write_point(points_dir, outcome.id, outcome.text)
                rows.add(outcome.id, outcome.row)
                failed += outcome.failed
            ran += len(outcomes)
            finished = [rows.complete(o.id) for o in outcomes]
            if not table.append(finished):
                table.rebuild(rows.ordered())
            if progress is not None:
                progress(ran, len(todo), failed)
        # the final file: every row in spec order, every ratio filled in
        table.rebuild(rows.ordered())
    finally:
        table.close()
    total_failed = sum(1 for row in rows.rows.values() if row.get("error"))
    return SweepOutcome(total=len(plan.points), skipped=len(done), ran=ran,
                        failed=total_failed, elapsed_s=time.perf_counter() - start,
                        results_csv=table.path, points_dir=points_dir)
