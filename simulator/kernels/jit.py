"""The one place that decides how sasim's numba kernels are compiled.

Every kernel module imports :data:`njit` from here instead of calling :func:`numba.njit`
directly, so the compilation choices are made once:

- ``cache=True``: compiled machine code is kept next to the source, so a test run or a sweep
  pays the compilation only the first time;
- ``fastmath=False``: the simulator's results must be bit-exact, so no reassociation;
- ``nogil=True``: a kernel may run in a thread pool while other threads run Python;
- ``error_model="python"``: an integer division by zero raises instead of returning garbage.
"""

from __future__ import annotations

import functools

import numba

__all__ = ["njit"]

#: ``numba.njit`` with sasim's compilation options; use as ``@njit`` on a kernel function.
njit = functools.partial(numba.njit, cache=True, fastmath=False, nogil=True,
                         error_model="python")
