"""simulator.kernels.jit: compile options in one place, and the kernels' one thread pool."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from simulator.kernels import jit


def test_parallel_map_keeps_order_and_runs_on_pool_threads():
    names: set[str] = set()

    def task(i: int) -> int:
        names.add(threading.current_thread().name)
        return i * i

    assert jit.parallel_map(2, 9, task) == [i * i for i in range(9)]
    assert all(name.startswith("sasim-kernel") for name in names)
    names.clear()
    assert jit.parallel_map(1, 3, task) == [0, 1, 4]  # one worker: inline
    assert names == {threading.current_thread().name}


def test_one_pool_per_process_grows_and_is_not_inherited(monkeypatch):
    pool = jit._Pool()
    first = pool.executor(2)
    assert pool.executor(1) is first and pool.executor(2) is first
    bigger = pool.executor(3)
    assert bigger is not first and first._shutdown
    # after a fork the child must not use the parent's threads
    monkeypatch.setattr(jit.os, "getpid", lambda: -1)
    assert pool.executor(2) is not bigger
    assert not bigger._shutdown  # the parent's pool is the parent's to shut down
    bigger.shutdown()


def test_njit_options():
    @jit.njit(checked=False)
    def divide(a, b):  # pragma: no cover - compiled
        return a // b

    @jit.njit
    def checked_divide(a, b):  # pragma: no cover - compiled
        return a // b

    assert divide(7, 2) == checked_divide(7, 2) == 3
    assert divide.targetoptions["error_model"] == "numpy"
    assert checked_divide.targetoptions["error_model"] == "python"
    assert checked_divide.targetoptions["nogil"] and not checked_divide.targetoptions["fastmath"]
    with pytest.raises(ZeroDivisionError):
        checked_divide(1, 0)
    assert jit.kernel_threads() >= 1
    assert np.array_equal(jit.parallel_map(2, 0, lambda i: i), [])


def test_a_cached_kernel_call_does_not_import_scipy_linalg(tmp_path):
    # numba's BLAS probe would import all of scipy.linalg on the first kernel call
    # (docs/performance.md); scipy.linalg and numba's own np.dot must still work afterwards.
    code = ("import sys\n"
            "import numpy as np\n"
            "from simulator.kernels.sysmt import sysmt_gemm\n"
            "a = np.arange(12).reshape(3, 4); b = np.arange(8).reshape(4, 2)\n"
            "sysmt_gemm(a, b, np.array([[0, 1], [2, 3]]), True, True)\n"
            "print('scipy.linalg' in sys.modules)\n"
            "import numba, scipy.linalg\n"
            "dot = numba.njit(lambda x, y: np.dot(x, y))\n"
            "x = np.arange(6.0).reshape(2, 3)\n"
            "print(np.array_equal(dot(x, x.T), x @ x.T))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "SASIM_AOT": "0",  # numba's
                                              "NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


def test_in_background_runs_in_order_on_one_thread_beside_the_caller():
    items = list(range(6))
    release = threading.Event()
    names: set[str] = set()
    order: list[int] = []

    def square(item: int) -> int:
        names.add(threading.current_thread().name)
        if item == 0:
            assert release.wait(timeout=30)  # the caller goes on meanwhile
        order.append(item)
        return item * item

    with jit.in_background(square, items) as futures:
        assert not futures[0].done()
        release.set()
        assert [f.result(timeout=30) for f in futures] == [i * i for i in items]
    assert order == items and len(names) == 1
    assert threading.current_thread().name not in names
    asked: list[int] = []

    def negate(item: int) -> int:
        asked.append(item)
        return -item

    with jit.in_background(negate, [3, 4], enabled=False) as futures:
        assert asked == [] and not futures[0].done()  # each computed when asked for
        assert futures[0].result() == -3 and asked == [3]
        assert [f.result() for f in futures] == [-3, -4] and asked == [3, 4]
    with jit.in_background(fail_on_odd, [2, 3], enabled=False) as futures:
        assert futures[0].result() == 2
        for _ in range(2):  # raised where asked, every time, computed once
            with pytest.raises(ValueError, match="item 3"):
                futures[1].result()


def fail_on_odd(item: int) -> int:
    if item % 2:
        raise ValueError(f"item {item}")
    return item


def test_in_background_raises_where_asked_and_stops_when_left():
    import time

    def fail_on_two(item: int) -> int:
        if item == 2:
            raise ValueError("item 2")
        return item

    with jit.in_background(fail_on_two, [0, 1, 2, 3]) as futures:
        assert [f.result(timeout=30) for f in futures[:2]] == [0, 1]
        with pytest.raises(ValueError, match="item 2"):
            futures[2].result(timeout=30)

    finished: list[int] = []

    def slow(item: int) -> int:
        time.sleep(0.02)
        finished.append(item)
        return item

    with jit.in_background(slow, list(range(50))) as futures:
        futures[0].result(timeout=30)
    done = list(finished)  # leaving the block: the item running ends, the rest never start
    time.sleep(0.1)
    assert finished == done and len(done) < 50
    assert all(f.done() for f in futures)


class _Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel")
        self.call = lambda: None  # a lambda does not pickle


def test_in_process_runs_in_order_in_one_child_and_raises_where_asked():
    import signal

    parent = os.getpid()
    base = 10  # a closure: the child gets it by the fork, nothing needs to pickle

    def work(item: int) -> tuple[int, int]:
        if item == 2:
            raise ValueError("item 2")
        if item == 3:
            raise _Unpicklable()
        return os.getpid(), base + item * item

    with jit.in_process(work, [0, 1, 2, 3, 4]) as futures:
        done = [futures[i].result(timeout=60) for i in (0, 1, 4)]
        with pytest.raises(ValueError, match="item 2"):
            futures[2].result(timeout=60)
        with pytest.raises(RuntimeError, match="_Unpicklable: cannot travel"):
            futures[3].result(timeout=60)
    assert [value for _, value in done] == [10, 11, 26]
    assert len({pid for pid, _ in done}) == 1 and done[0][0] != parent

    def dies(item: int) -> int:  # the child killed (out of memory, say) at item 1
        if item == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return item

    with jit.in_process(dies, [0, 1, 2]) as futures:
        assert futures[0].result(timeout=60) == 0
        for future in futures[1:]:
            with pytest.raises(ChildProcessError, match="ended .exit status -9"):
                future.result(timeout=60)


def test_a_sharing_parent_computes_the_last_items_while_it_waits():
    """``share=True``: asked for a result that is not there, the parent claims the last
    unclaimed items and computes them itself (one kernel thread each) until it is."""
    import time

    parent = os.getpid()

    def work(item: int) -> tuple[int, int, int]:
        if os.getpid() != parent and item == 0:
            time.sleep(1.0)  # the child is busy with the first item meanwhile
        if item == 4:
            raise ValueError("item 4")
        return os.getpid(), jit.kernel_threads(), item * item

    with jit.in_process(work, list(range(6)), share=True) as futures:
        claims = futures[0]._child._claims
        deadline = time.monotonic() + 60
        while claims[0] < 1 and time.monotonic() < deadline:  # the child has taken item 0
            time.sleep(0.005)
        first = futures[0].result(timeout=60)
        with pytest.raises(ValueError, match="item 4"):
            futures[4].result(timeout=60)
        rest = [futures[i].result(timeout=60) for i in (1, 2, 3, 5)]
    assert [value for *_, value in [first, *rest]] == [0, 1, 4, 9, 25]
    assert first[0] != parent
    assert all(pid == parent and threads == 1 for pid, threads, _ in rest)
    assert jit.kernel_threads() >= 1 and not getattr(jit._PARENT_SHARES, "sharing", False)


def test_an_interrupt_while_the_parent_computes_goes_on_up_at_once():
    """A stop (KeyboardInterrupt, the CLI's signal exception) raised in an item the parent
    computes is not kept for later: it leaves ``result`` at once, and the item fails."""
    import time

    parent = os.getpid()

    def work(item: int) -> int:
        if os.getpid() != parent:
            time.sleep(5.0)  # the child holds item 0
        elif item == 3:
            raise KeyboardInterrupt
        return item

    with jit.in_process(work, [0, 1, 2, 3], share=True) as futures:
        claims = futures[0]._child._claims
        deadline = time.monotonic() + 60
        while claims[0] < 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        with pytest.raises(KeyboardInterrupt):
            futures[0].result(timeout=60)
        assert isinstance(futures[3].exception(timeout=0), KeyboardInterrupt)
        assert not futures[2].done()  # nothing more was computed after the stop
    assert jit.kernel_threads() >= 1


def test_a_sharing_parent_does_not_take_what_a_dead_child_left():
    """The child dies: what it had claimed, and what nobody had, fails where asked (the
    parent stops claiming); what the parent computed stands."""
    import signal
    import time

    parent = os.getpid()

    def dies(item: int) -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return item

    with jit.in_process(dies, [0, 1, 2, 3], share=True) as futures:
        claims = futures[0]._child._claims
        deadline = time.monotonic() + 60
        while claims[0] < 1 and time.monotonic() < deadline:  # the child has taken item 0
            time.sleep(0.005)
        with pytest.raises(ChildProcessError, match="ended .exit status -9"):
            futures[0].result(timeout=60)
        for item, future in enumerate(futures[1:], 1):
            try:
                assert future.result(timeout=60) == item  # computed here before the news
            except ChildProcessError:
                pass


def test_leaving_in_process_early_stops_its_child():
    import time

    def slow(item: int) -> int:
        if item:
            time.sleep(60)
        return os.getpid()

    start = time.monotonic()
    with jit.in_process(slow, [0, 1, 2]) as futures:
        child = futures[0].result(timeout=60)
    assert time.monotonic() - start < 30  # killed, not waited for
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_can_fork_only_from_a_lone_main_thread_before_numbas_threads(monkeypatch):
    from types import SimpleNamespace

    layer = SimpleNamespace(_is_initialized=False)  # numba's threading layer, not started
    monkeypatch.setitem(sys.modules, "numba.np.ufunc.parallel", layer)
    assert jit.can_fork()  # pytest's process: the main thread alone
    answers: list[bool] = []
    stop = threading.Event()
    other = threading.Thread(target=lambda: answers.append(jit.can_fork()) or stop.wait(30))
    other.start()
    try:
        while not answers:
            stop.wait(0.01)
        assert answers == [False]  # not from another thread
        assert not jit.can_fork()  # nor beside one
    finally:
        stop.set()
        other.join()
    assert jit.can_fork()
    layer._is_initialized = True  # its threads would not survive the fork
    assert not jit.can_fork()


def test_a_child_uses_every_core_while_its_parent_waits():
    import time

    cores = max(1, os.cpu_count() or 1)

    def observe(item: int) -> tuple[int, int]:
        first = jit.kernel_threads()  # the parent sleeps: the threads it was given
        deadline = time.monotonic() + (30 if cores > 1 else 0)
        while jit.kernel_threads() == first and time.monotonic() < deadline:
            time.sleep(0.005)
        return first, jit.kernel_threads()

    with jit.in_process(observe, [0], threads=1) as futures:
        time.sleep(0.3)
        assert futures[0].result(timeout=60) == (1, cores)  # then it waits: every core
