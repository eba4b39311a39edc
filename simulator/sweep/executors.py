"""Where a sweep's chunks run: a local process pool, or Dask distributed.

An executor takes chunks of points and yields each chunk's outcomes as it finishes, in any
order. Both run :func:`simulator.sweep.worker.run_chunk` in worker processes with one thread
each, so the results do not depend on the executor.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from simulator.errors import SasimError
from simulator.sweep.spec import SweepPoint
from simulator.sweep.worker import PointOutcome, run_chunk

__all__ = ["Executor", "LocalExecutor", "DaskExecutor", "default_workers", "die_with_parent",
           "PARENT_ENV"]


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
#: The sweep process's pid, for the fork server to check it started under it.
PARENT_ENV = "SASIM_SWEEP_PID"


def die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to kill this process when its parent dies, so that a sweep killed even with
    SIGKILL leaves no fork server or worker running (docs/sweeps.md); when the parent is
    already gone (it is not ``parent``), exit now. Also unblocks SIGTERM and SIGINT, in case
    the process inherited them blocked."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the pool's own shutdown still applies
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def _worker_init() -> None:
    """Set up a local worker: it leaves interrupts to the sweep process (which stops the
    pool), and dies with its parent, the fork server (which dies with the sweep)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM and SIGINT while the pool submits work and starts its workers: an
    interrupt in the middle of starting a worker would leave a half-started child, unknown
    to the pool, that fails noisily after this process is gone. A signal that arrives
    meanwhile is recorded and raised again, to the handler in place before, right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: held.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held:
            signal.raise_signal(held[0])


def _kill_workers(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Kill a pool's workers now, in a way the pool's shutdown survives.

    Python 3.14 has ``ProcessPoolExecutor.kill_workers``. Before it, a worker killed while it
    writes a result leaves part of a message in the result pipe, and the pool's manager
    thread waits for the rest for ever (shutdown, and the interpreter's exit, join that
    thread). So once the workers are dead, the pool's own end of that pipe is closed too:
    the manager then reads end-of-file and winds the pool down as a broken one.
    """
    kill = getattr(pool, "kill_workers", None)
    if kill is not None:
        kill()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.kill()
    for process in processes:
        process.join()
    result_queue = getattr(pool, "_result_queue", None)
    if result_queue is not None:
        result_queue._writer.close()


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
            # the fork server starts under this process and dies with it
            os.environ[PARENT_ENV] = str(os.getpid())
            context.set_forkserver_preload(["simulator.sweep.forkserver",
                                            "simulator.sweep.worker"])
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
            _kill_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)

    def run(self, chunks: Sequence[Sequence[SweepPoint]],
            axes: Sequence[str]) -> Iterator[list[PointOutcome]]:
        """Submit every chunk; yield each one's outcomes as it completes."""
        if self._pool is None:
            raise RuntimeError("use LocalExecutor as a context manager")
        axes = tuple(axes)
        with _signals_held():
            futures = [self._pool.submit(run_chunk, list(chunk), axes) for chunk in chunks]
        # Futures still pending when the caller stops early are cancelled by the shutdown in
        # __exit__ (cancelling them here would race the pool's own clean-up of a killed pool).
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


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
        # CRITICAL: a point's failure is reported by its outcome, not by Dask's logs, and a
        # worker whose heartbeat races the scheduler's shutdown (a sweep stopped by a
        # signal) logs an ERROR with a traceback that is no error of the user's
        # a signal while the cluster starts waits for it to be up, then stops the sweep
        # through __exit__ (else Dask's exit hook meets a half-started cluster and prints
        # a traceback)
        held = _signals_held()
        held.__enter__()
        try:
            # the workers ignore SIGINT (worker.dask_setup): a Ctrl-C to the terminal's
            # process group stops the sweep through this process, which closes the cluster,
            # instead of raising KeyboardInterrupt in every worker, each with a traceback
            self._cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True,
                local_directory=str(self.scratch) if self.scratch else None,
                dashboard_address=None, silence_logs=logging.CRITICAL,
                preload=["simulator.sweep.worker"])
            self._client = Client(self._cluster)
        except BaseException:
            held.__exit__(None, None, None)
            self.__exit__(None, None, None)
            raise
        try:
            held.__exit__(None, None, None)  # raises a held signal's exception here
        except BaseException:
            self.__exit__(None, None, None)
            raise
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
