"""numba kernels: arrays and integers in, arrays out.

Kernels import nothing from the rest of the package and are compiled through
:mod:`simulator.kernels.jit`. Each kernel has a public wrapper elsewhere (``hw/``,
``workloads/``) that checks shapes and dtypes, and a slow twin in ``tests/naive.py``.
"""

__all__: list[str] = []
