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
run that runs no kernel never imports numba (docs/performance.md), nor does one whose
kernels were all compiled ahead of time (:mod:`simulator.kernels.compiled`, which reads
these options too: simulator/kernels/aot.py). :func:`_import_numba` also keeps numba from
importing scipy.linalg when it first loads a cached kernel.
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

__all__ = ["njit", "kernel_threads", "parallel_map", "in_background", "in_process",
           "can_fork"]

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


#: Set in a child of :func:`in_process`: the threads its kernels may use, and a flag the
#: parent raises while it waits for a result (then the child uses every core).
_CHILD_THREADS: int | None = None
_PARENT_WAITS: Any = None
#: ``sharing`` is set in the thread of a parent of :func:`in_process` while it computes
#: items beside its child.
_PARENT_SHARES = threading.local()


def kernel_threads() -> int:
    """Threads a parallel kernel may use: ``NUMBA_NUM_THREADS`` (default: the cores); in a
    child of :func:`in_process`, the threads it was given, or every core while its parent
    waits for it; one in its parent while the parent computes items beside it."""
    if getattr(_PARENT_SHARES, "sharing", False):
        return 1
    if _CHILD_THREADS is not None:
        return max(_CHILD_THREADS, os.cpu_count() or 1) if _PARENT_WAITS.value \
            else _CHILD_THREADS
    numba = sys.modules.get("numba")
    if numba is not None:
        return max(1, numba.config.NUMBA_NUM_THREADS)
    return _default_threads()


def _default_threads() -> int:
    """numba's ``NUMBA_NUM_THREADS`` without importing numba (a run whose kernels were all
    compiled ahead of time never does): the variable, else the cores this process may use."""
    try:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    except (KeyError, ValueError):
        pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


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



class _Deferred(Future):  # type: ignore[type-arg]
    """A future computed in the thread that first asks for its result."""

    def __init__(self, fn: Callable[[Any], Any], item: Any) -> None:
        super().__init__()
        self._call = (fn, item)

    def result(self, timeout: float | None = None) -> Any:
        if not self.done():
            fn, item = self._call
            try:
                value = fn(item)
            except BaseException as exc:  # re-raised below, where it was asked for
                self.set_exception(exc)
            else:
                self.set_result(value)
        return super().result(timeout)


@contextlib.contextmanager
def in_background(fn: Callable[[_I], _T], items: Sequence[_I], enabled: bool = True
                  ) -> Iterator[list[Future[_T]]]:
    """Futures of ``fn(item)`` for each item, computed one after another, in order, in one
    background thread while the block runs.

    For a run's layers: their functional models (GIL-free kernels) run while the engine
    (Python) schedules the layers already prepared, so the two use both cores
    (docs/performance.md). ``fn`` runs on one item at a time, in order, so what it writes
    (an output sink) is written in order. Leaving the block cancels the items not started
    and waits for the one running (nothing runs on after it). ``enabled=False``: each ``fn``
    runs in the calling thread when its future's result is first asked for (the caller
    asks in order).
    """
    if not enabled:
        yield [_Deferred(fn, item) for item in items]
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sasim-prepare")
    try:
        yield [pool.submit(fn, item) for item in items]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def can_fork() -> bool:
    """Whether :func:`in_process` may fork this process safely: a platform with ``fork``,
    called from the main thread of a process that is not a daemon (multiprocessing's pool
    workers and Dask's are) and runs no other thread than this module's idle kernel pool,
    whose numba threading layer (not fork-safe) has not started."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if multiprocessing.current_process().daemon:
        return False
    if any(not thread.name.startswith("sasim-kernel") for thread in threading.enumerate()
           if thread is not threading.main_thread()):
        return False
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return not getattr(parallel, "_is_initialized", False)


class _Child:
    """The forked process of :func:`in_process`, the thread that receives its results, and
    the claims on the items: the child takes them from the first on, the parent (when it
    shares) from the last back."""

    def __init__(self, fn: Callable[[Any], Any], items: Sequence[Any], threads: int,
                 share: bool) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        waits = context.Value("b", 0, lock=False)  # raised while the parent waits
        # the child's next item and the end of the items it may claim
        self._claims = context.Array("q", [0, len(items)])
        self._fn, self._items = fn, items
        self.futures: list[Future[Any]] = [_Awaited(waits, self if share else None)
                                           for _ in items]
        self.process = context.Process(
            target=_child_main, args=(fn, items, send, threads, waits, os.getpid(),
                                      self._claims),
            daemon=True, name="sasim-prepare")
        self.process.start()
        send.close()
        self._receive = receive
        self._reader = threading.Thread(target=self._read, name="sasim-receive", daemon=True)
        self._reader.start()

    def compute_one(self) -> bool:
        """Claim the last item nobody has claimed and compute it here (one kernel thread:
        the child is working too); ``False`` when none is left."""
        with self._claims.get_lock():
            index = self._claims[1] - 1
            if index < self._claims[0]:
                return False
            self._claims[1] = index
        _PARENT_SHARES.sharing = True
        try:
            value = self._fn(self._items[index])
        except Exception as exc:  # raised where it is asked for, as the child's are
            self.futures[index].set_exception(exc)
        except BaseException as exc:  # a stop (signal, interrupt): the item fails, now
            self.futures[index].set_exception(exc)
            raise
        else:
            self.futures[index].set_result(value)
        finally:
            _PARENT_SHARES.sharing = False
        return True

    def _read(self) -> None:
        import pickle

        try:
            while True:
                index, ok, payload = pickle.loads(self._receive.recv_bytes())
                if ok:
                    self.futures[index].set_result(payload)
                else:
                    self.futures[index].set_exception(payload)
        except (EOFError, OSError):  # the child has ended: finished, killed, or stopped below
            self.process.join()
            self._lost(ChildProcessError(f"the process preparing the layers ended (exit "
                                         f"status {self.process.exitcode}) before it "
                                         f"finished"))
        except BaseException as exc:  # a result that does not unpickle: it and the rest
            self._lost(exc)
        finally:
            self._receive.close()

    def _lost(self, exc: BaseException) -> None:
        """The items the child claimed or could still claim and has not sent: ``exc``."""
        with self._claims.get_lock():
            end = self._claims[1]
            self._claims[1] = self._claims[0]  # the parent claims no more
        for future in self.futures[:end]:
            if not future.done():
                future.set_exception(exc)

    def stop(self) -> None:
        """End the child now if it is still working; wait for it and the reader."""
        if self.process.is_alive() and not all(f.done() for f in self.futures):
            self.process.kill()
        self.process.join()
        self._reader.join()


class _Awaited(Future):  # type: ignore[type-arg]
    """A result of :func:`in_process`: until it is there, the parent computes the last
    unclaimed items itself when it shares (``child``); then, while it waits, a flag tells
    the child to use every core (the parent has nothing else to do)."""

    def __init__(self, waits: Any, child: _Child | None) -> None:
        super().__init__()
        self._waits = waits
        self._child = child

    def result(self, timeout: float | None = None) -> Any:
        while not self.done() and self._child is not None and self._child.compute_one():
            pass
        if self.done():
            return super().result(timeout)
        self._waits.value = 1
        try:
            return super().result(timeout)
        finally:
            self._waits.value = 0


def _child_main(fn: Callable[[Any], Any], items: Sequence[Any], send: Any, threads: int,
                waits: Any, parent: int, claims: Any) -> None:
    """The child of :func:`in_process`: ``fn`` of each item it claims, in order, each result
    (or the exception it raised) sent back with its index as soon as it is known."""
    import pickle
    import signal

    global _CHILD_THREADS, _PARENT_WAITS
    _CHILD_THREADS, _PARENT_WAITS = threads, waits
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it (stop())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler
    if sys.platform == "linux":  # ends with the parent, even one killed outright
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before that
            return
    while True:
        with claims.get_lock():
            index = claims[0]
            if index >= claims[1]:
                return
            claims[0] = index + 1
        try:
            message = pickle.dumps((index, True, fn(items[index])),
                                   protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # sent back: raised where the parent asks for it
            try:
                message = pickle.dumps((index, False, exc), protocol=pickle.HIGHEST_PROTOCOL)
            except (pickle.PicklingError, TypeError, AttributeError):  # does not pickle: its text
                message = pickle.dumps((index, False,
                                        RuntimeError(f"{type(exc).__name__}: {exc}")))
        send.send_bytes(message)


@contextlib.contextmanager
def in_process(fn: Callable[[_I], _T], items: Sequence[_I], threads: int = 1,
               share: bool = False) -> Iterator[list[Future[_T]]]:
    """:func:`in_background` in a forked child process: ``fn(item)`` for each item in order,
    each result pickled back as soon as it is ready.

    A thread shares the interpreter lock with the caller: a background thread whose work is
    many short numpy and kernel calls waits for the lock after each (up to the switch
    interval, 5 ms) while the caller runs Python, which slows it several times
    (docs/performance.md). A child has its own interpreter. ``fn`` and ``items`` reach the
    child by the fork (they need not pickle); results and exceptions must pickle (an
    exception that does not is re-raised as a ``RuntimeError`` with its text). The child's
    kernels (:func:`kernel_threads`) use ``threads`` threads, and every core while the
    caller waits for a result. Leaving the block kills the child if it is still working;
    a child that dies raises ``ChildProcessError`` where its missing results are asked for.
    Call only where :func:`can_fork`.

    ``share``: the items are independent (any order will do), and a caller asking for a
    result that is not there yet computes the last items nobody has claimed itself, one at
    a time (each with one kernel thread), until it is: both processes work until the items
    run out (docs/performance.md, "Functional models beside the engine"); ``timeout``
    does not bound an item the caller computes. An interrupt or a stop raised while it
    computes one goes on up at once (the item fails with it).
    """
    child = _Child(fn, items, threads, share)
    try:
        yield child.futures
    finally:
        child.stop()
