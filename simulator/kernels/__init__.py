"""numba kernels: arrays and integers in, arrays out.

Kernels import nothing from the rest of the package but :mod:`simulator.kernels.jit`, which
compiles them. Their callers are the PE models (``hw/pe/``) and ``hw/reference_array.py``
(and ``api``, for :mod:`simulator.kernels.metrics`' error sums); their slow twins are in
``tests/naive.py``, ``tests/naive_sparq.py`` and ``tests/naive_swis.py`` (the error sums'
naive loop is in ``tests/hw/test_error_sums.py``).
"""

__all__: list[str] = []
