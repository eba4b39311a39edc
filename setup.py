"""The package list for setuptools; everything else is declared in pyproject.toml.

pyproject.toml maps the repository's top-level data folders into ``simulator._shipped`` (its
``package-dir`` and ``package-data`` tables), so a wheel carries them. A mapped package must
also be listed as a package, and pyproject.toml can either discover packages or list them,
not both: this file discovers the ``simulator`` packages and adds the mapped ones.
"""

from setuptools import find_namespace_packages, setup

#: The data folders a wheel carries, as packages under ``simulator._shipped``.
SHIPPED = ["arch_configs", "arch_configs.tech", "arch_configs.comparisons", "workloads",
           "sweeps"]

setup(packages=[*find_namespace_packages(include=["simulator", "simulator.*"],
                                         exclude=["*.__pycache__"]),
                *(f"simulator._shipped.{name}" for name in SHIPPED)])
