"""numba kernels: arrays and integers in, arrays out.

Kernels import nothing from the rest of the package but :mod:`simulator.kernels.jit`, which
compiles them. Their callers are the PE models (``hw/pe/``) and ``hw/reference_array.py``; their
slow twins are in ``tests/naive.py``, ``tests/naive_sparq.py`` and ``tests/naive_swis.py``.
"""

__all__: list[str] = []
