"""Where a sweep's chunks run: a local process pool, or Dask distributed.

An executor takes chunks of points and yields each chunk's outcomes as it finishes, in any
order. Both run :func:`simulator.sweep.worker.run_chunk` in worker processes with one thread
each, so the results do not depend on the executor.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from simulator.errors import SasimError
from simulator.sweep.spec import SweepPoint
from simulator.sweep.worker import PointOutcome, run_chunk

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "default_workers"]


def default_workers() -> int:
    """The worker count by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Executor(Protocol):
    """Runs chunks of points; a context manager that owns its workers."""

    workers: int

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def run(self, chunks: Sequence[Sequence[SweepPoint]],
            axes: Sequence[str]) -> Iterator[list[PointOutcome]]:
        """Yield the outcomes of each chunk as it finishes (in any order)."""
        ...


_PR_SET_PDEATHSIG = 1


def _worker_init() -> None:
    """Set up a local worker: it leaves interrupts to the sweep process (which stops the
    pool), and on Linux it is sent SIGTERM when its parent (the fork server, which exits
    with the sweep process) dies, so a killed sweep leaves no worker running."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the pool's own shutdown still applies
            pass


class LocalExecutor:
    """A pool of ``workers`` processes on this machine.

    Workers start from a fork server that has imported the simulator once, so starting them
    costs milliseconds and does not copy this process's state (threads, open files).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["simulator.sweep.worker"])
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_worker_init)
        return self

    def __exit__(self, exc_type: object = None, *exc: object) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if exc_type is not None:
            # An error or a signal (SIGINT, or SIGTERM turned into an exception by the CLI):
            # stop the workers now instead of waiting for the chunks they are running.
            processes = getattr(pool, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def run(self, chunks: Sequence[Sequence[SweepPoint]],
            axes: Sequence[str]) -> Iterator[list[PointOutcome]]:
        """Submit every chunk; yield each one's outcomes as it completes."""
        if self._pool is None:
            raise RuntimeError("use LocalExecutor as a context manager")
        axes = tuple(axes)
        futures = [self._pool.submit(run_chunk, list(chunk), axes) for chunk in chunks]
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


class DaskExecutor:
    """Dask distributed: a LocalCluster of ``workers`` processes (one thread each), or the
    cluster whose scheduler is at ``scheduler`` (its workers need sasim installed).

    The LocalCluster's scratch space is ``scratch`` (inside the sweep's output directory),
    removed when the executor closes.
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None,
                 scratch: Path | None = None) -> None:
        try:
            import distributed  # noqa: F401  (an optional extra)
        except ImportError:
            raise SasimError("--executor dask needs Dask distributed: pip install "
                             "'sasim[distributed]'") from None
        self.workers = workers or default_workers()
        self.scheduler = scheduler
        self.scratch = scratch
        self._client = None
        self._cluster = None
        self._config = None

    def __enter__(self) -> DaskExecutor:
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self._client = Client(self.scheduler, timeout="30s")
            except OSError as exc:
                raise SasimError(f"--scheduler {self.scheduler}: cannot connect: {exc}") from None
            self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))
            return self
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True)
            # Dask's other scratch space (the scheduler's, spill files) goes there too
            self._config = dask.config.set({"temporary-directory": str(self.scratch)})
        self._cluster = LocalCluster(
            n_workers=self.workers, threads_per_worker=1, processes=True,
            local_directory=str(self.scratch) if self.scratch else None,
            dashboard_address=None, silence_logs=logging.ERROR)
        self._client = Client(self._cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        if self._config is not None:
            self._config.__exit__(None, None, None)
            self._config = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def run(self, chunks: Sequence[Sequence[SweepPoint]],
            axes: Sequence[str]) -> Iterator[list[PointOutcome]]:
        """Submit every chunk to the cluster; yield each one's outcomes as it completes."""
        from distributed import as_completed

        if self._client is None:
            raise RuntimeError("use DaskExecutor as a context manager")
        axes = tuple(axes)
        # pure=False: a chunk must run even when an identical one ran before on this cluster
        futures = [self._client.submit(run_chunk, list(chunk), axes, pure=False)
                   for chunk in chunks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            self._client.cancel(futures)
