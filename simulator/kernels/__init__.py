"""numba kernels: arrays and integers in, arrays out.

Kernels import nothing from the rest of the package but :mod:`simulator.kernels.jit`, which
compiles them, and :mod:`simulator.kernels.compiled`, which gives the loops compiled ahead of
time (the ``*_loops`` modules; built by :mod:`simulator.kernels.aot`). Their callers are the PE models (``hw/pe/``) and ``hw/reference_array.py``
(and ``api``, for :mod:`simulator.kernels.metrics`' error sums); their slow twins are in
``tests/naive.py``, ``tests/naive_sparq.py`` and ``tests/naive_swis.py`` (the error sums'
naive loop is in ``tests/hw/test_error_sums.py``). The DRAM controller
(:mod:`simulator.kernels.dram_controller`) is called by ``memory/dram_stream.py``; its slow
twin is ``simulate_requests`` of ``memory/dram_requests.py`` (tests/memory/test_dram_fast.py).
"""

__all__: list[str] = []
