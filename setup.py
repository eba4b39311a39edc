"""The package list for setuptools, and the kernels compiled ahead of time; everything else
is declared in pyproject.toml.

pyproject.toml maps the repository's top-level data folders into ``simulator._shipped`` (its
``package-dir`` and ``package-data`` tables), so a wheel carries them. A mapped package must
also be listed as a package, and pyproject.toml can either discover packages or list them,
not both: this file discovers the ``simulator`` packages and adds the mapped ones.

A wheel (not an editable install) also carries the SySMT kernels compiled ahead of time for
the building machine's processor (``python -m simulator.kernels.aot``; docs/performance.md,
"Kernels compiled ahead of time"), which makes it a platform wheel. ``SASIM_AOT=0`` at build
time leaves them out; a build that fails leaves them out too (numba compiles the kernels on
first use instead, with the same results).
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Distribution, find_namespace_packages, setup
from setuptools.command.build_py import build_py

#: The data folders a wheel carries, as packages under ``simulator._shipped``.
SHIPPED = ["arch_configs", "arch_configs.tech", "arch_configs.comparisons", "workloads",
           "sweeps"]

#: Compile the kernels ahead of time: numba is there to do it (pyproject's build requires).
AOT = os.environ.get("SASIM_AOT") != "0" and importlib.util.find_spec("numba") is not None


class _BuildPy(build_py):
    """The packages, then the kernels compiled ahead of time from the copies just built."""

    def run(self):
        super().run()
        build_lib = Path(self.build_lib).resolve()
        for old in (build_lib / "simulator" / "kernels").glob("_aot.*"):  # an earlier build's
            old.unlink()
        if not AOT or getattr(self, "editable_mode", False):
            return
        # the build's own path first; pip's isolated build environment stays on it
        path = os.pathsep.join(filter(None, [str(build_lib), os.environ.get("PYTHONPATH")]))
        with tempfile.TemporaryDirectory(prefix="sasim-aot-cache-") as cache:
            env = {**os.environ, "PYTHONPATH": path, "NUMBA_CACHE_DIR": cache,
                   "PYTHONDONTWRITEBYTECODE": "1"}
            done = subprocess.run([sys.executable, "-m", "simulator.kernels.aot", "--out",
                                   str(build_lib / "simulator" / "kernels")],
                                  cwd=build_lib, env=env, check=False)
        if done.returncode != 0:
            print("sasim: the wheel carries no kernels compiled ahead of time",
                  file=sys.stderr)


class _PlatformDistribution(Distribution):
    """A distribution with a compiled module: the wheel is tagged for this platform."""

    def has_ext_modules(self):
        return AOT


setup(packages=[*find_namespace_packages(include=["simulator", "simulator.*"],
                                         exclude=["*.__pycache__"]),
                *(f"simulator._shipped.{name}" for name in SHIPPED)],
      cmdclass={"build_py": _BuildPy}, distclass=_PlatformDistribution)
