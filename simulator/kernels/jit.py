"""The one place that decides how sasim's numba kernels are compiled and threaded.

Every kernel module decorates its kernels with :func:`njit` from here instead of calling
:func:`numba.njit` directly, so the compilation choices are made once:

- ``cache=True``: compiled machine code is kept in numba's cache (``NUMBA_CACHE_DIR``), so a
  test run or a sweep pays the compilation only the first time;
- ``fastmath=False``: the simulator's results must be bit-exact, so no reassociation;
- ``nogil=True``: a kernel may run in a thread pool while other threads run Python;
- ``checked=True`` (the default): ``error_model="python"``, an integer division by zero
  raises instead of returning garbage. Hot inner kernels that divide by nothing (or guard
  their divisors) pass ``checked=False`` (``error_model="numpy"``), which lets LLVM vectorise
  their loops: the SySMT kernels and SPARQ's 2:4 product;
- ``parallel=False`` (the default). Two ways to use several cores, chosen per kernel:

  * ``parallel=True`` (numba's ``prange`` on its threading layer) for one-shot kernels whose
    parallel loop is the whole call: SPARQ's 2:4 product and SWIS's position-set search;
  * :func:`parallel_map` (a plain thread pool of GIL-free serial kernels) when one GEMM
    runs several phases back to back: numba's OpenMP layer spins between regions, and on
    a shared machine the spinning starves the other threads, BLAS's included (SySMT).

numba itself is imported on the first use of :func:`njit`, that is when a kernel module is
first imported: PE modules import their kernels inside the functions that run them, so a
run that runs no kernel never imports numba (docs/performance.md). :func:`_import_numba`
also keeps numba from importing scipy.linalg when it first loads a cached kernel.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["njit", "kernel_threads", "parallel_map", "in_background"]

_T = TypeVar("_T")
_I = TypeVar("_I")


#: numba's module that looks for BLAS (through scipy.linalg) when it is imported.
_BLAS_PROBE = "numba.np.arraymath"
_SCIPY_BLAS = "scipy.linalg.cython_blas"


def _import_numba() -> Any:
    """Import numba, and its numpy registries without importing scipy.linalg.

    The first kernel call of a process, even one loaded from the cache, imports numba's
    numpy implementations; one of them asks whether BLAS is available by importing
    ``scipy.linalg.cython_blas``, which imports all of scipy.linalg (about 0.25 s, more than
    numba's own import; docs/performance.md). Its answer only picks how jitted ``np.cov``-like
    inner products are computed, which no sasim kernel uses, so that one import is answered
    "not available"; numba's ``np.dot`` and ``np.linalg`` still import scipy when a kernel
    using them is compiled.
    """
    import numba

    if _BLAS_PROBE not in sys.modules and _SCIPY_BLAS not in sys.modules:
        sys.modules[_SCIPY_BLAS] = None  # type: ignore[assignment]  # import raises
        try:
            importlib.import_module(_BLAS_PROBE)
        finally:
            if sys.modules.get(_SCIPY_BLAS, 0) is None:
                del sys.modules[_SCIPY_BLAS]
    return numba


def njit(function: Callable | None = None, *, checked: bool = True, parallel: bool = False,
         inline: str = "never"):
    """``numba.njit`` with sasim's compilation options; use as ``@njit`` or ``@njit(...)``.

    Parameters
    ----------
    checked : bool
        ``True``: ``error_model="python"`` (division by zero raises); ``False``:
        ``error_model="numpy"`` for hot loops that cannot divide by zero.
    parallel : bool
        Compile ``prange`` loops for numba's threading layer (see the module docstring).
    inline : str
        numba's ``inline`` option (``"always"`` for tiny helpers of a hot loop).
    """
    numba = _import_numba()

    decorator = numba.njit(cache=True, fastmath=False, nogil=True, parallel=parallel,
                           inline=inline, error_model="python" if checked else "numpy")
    return decorator if function is None else decorator(function)


def kernel_threads() -> int:
    """Threads a parallel kernel may use: ``NUMBA_NUM_THREADS`` (default: the cores)."""
    import numba

    return max(1, numba.config.NUMBA_NUM_THREADS)


class _Pool:
    """The process's one thread pool for :func:`parallel_map`, created on first use and
    re-created (never shared) after a fork; its size is the most threads ever asked for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._size = 0

    def executor(self, workers: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid() or self._size < workers:
                if self._executor is not None and self._pid == os.getpid():
                    self._executor.shutdown(wait=False)
                self._executor = ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix="sasim-kernel")
                self._pid, self._size = os.getpid(), workers
            return self._executor


_POOL = _Pool()


def parallel_map(workers: int, tasks: int, fn: Callable[[int], _T]) -> list[_T]:
    """``[fn(task) for task in range(tasks)]`` on ``workers`` threads (inline for one).

    Threads take the next task as they finish one, so with more tasks than threads a thread
    slowed by other jobs on the machine does not hold the others up. ``fn`` should call
    GIL-free (``nogil``) kernels.
    """
    if workers <= 1 or tasks <= 1:
        return [fn(task) for task in range(tasks)]
    executor: Any = _POOL.executor(workers)
    return list(executor.map(fn, range(tasks)))



@contextlib.contextmanager
def in_background(fn: Callable[[_I], _T], items: Sequence[_I], enabled: bool = True
                  ) -> Iterator[list[Future[_T]]]:
    """Futures of ``fn(item)`` for each item, computed one after another, in order, in one
    background thread while the block runs.

    For a run's layers: their functional models (GIL-free kernels) run while the engine
    (Python) schedules the layers already prepared, so the two use both cores
    (docs/performance.md). ``fn`` runs on one item at a time, in order, so what it writes
    (an output sink) is written in order. Leaving the block cancels the items not started
    and waits for the one running (nothing runs on after it). ``enabled=False``: every
    ``fn`` runs now, in this thread, before the block.
    """
    if not enabled:
        done = []
        for item in items:
            future: Future[_T] = Future()
            future.set_result(fn(item))
            done.append(future)
        yield done
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sasim-prepare")
    try:
        yield [pool.submit(fn, item) for item in items]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
