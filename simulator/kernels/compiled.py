"""Kernels compiled ahead of time: the hot loops a run needs without importing numba.

A process that runs a numba kernel first imports numba (about 0.15 s) and loads each kernel
from numba's cache (about 0.15 s more for SySMT's), and the first run on a machine compiles
them (about 10 s for SySMT's). The loop modules listed in :data:`MODULES` are also compiled ahead of
time, with ``numba.pycc``, into one extension module, :data:`EXTENSION`
(``python -m simulator.kernels.aot`` builds it; ``make`` and the wheel's build run it).
:func:`kernels` gives a loop module's kernels: the compiled ones when that module is
*fresh* (built from the very source files now installed, for this processor), else the
numba module itself. Nothing here imports numba (docs/performance.md, "Kernels compiled
ahead of time").

Each compiled kernel is exported once per argument-type variant (8-bit operands of either
sign, for example); a call whose arguments match none of them (an ``int64`` operand, a
non-contiguous array) goes to the numba kernel, which compiles it as before. Both are the
same source compiled by the same compiler with the same options, so their results are
identical (tests/hw/test_compiled_kernels.py checks them bit for bit).

``SASIM_AOT=0`` turns the compiled kernels off (every call goes to numba);
``SASIM_AOT=<path>`` loads the extension module from that file instead of the package.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MODULES", "EXTENSION", "kernels", "is_compiled", "status", "source_digest",
           "processor", "host_features", "same_constants", "load_problem", "export_name",
           "value_code"]

#: The loop modules compiled ahead of time (each holds an ``AOT`` table: kernel name to the
#: argument types of its variants; simulator/kernels/aot.py reads it).
MODULES = ("simulator.kernels.sysmt_loops", "simulator.kernels.metrics_loops",
           "simulator.kernels.dram_controller_loops", "simulator.kernels.chain_loops")
#: The extension module that holds them.
EXTENSION = "simulator.kernels._aot"

_SEP = "__"


def short_name(module: str) -> str:
    """``simulator.kernels.sysmt_loops`` -> ``sysmt_loops`` (the export names' prefix)."""
    return module.rsplit(".", 1)[1]


def export_name(module: str, kernel: str, codes: tuple[str, ...]) -> str:
    """The name a variant is exported under: module, kernel and argument codes."""
    return _SEP.join((short_name(module), kernel, "_".join(codes)))


def digest_name(module: str) -> str:
    """The exported function that returns the digest a module was compiled from."""
    return _SEP.join((short_name(module), "digest", ""))


def value_code(value: Any) -> str:
    """An argument's type code: ``u1x2`` a C-contiguous 2-D uint8 array (``u1x2r`` a
    read-only one), ``b`` a bool, ``i`` an integer, ``f`` a float; ``?`` anything else (no
    compiled variant takes it)."""
    if isinstance(value, np.ndarray):
        flags = value.flags
        if not flags.c_contiguous or not flags.aligned or not value.dtype.isnative:
            return "?"
        return f"{value.dtype.str[1:]}x{value.ndim}{'' if flags.writeable else 'r'}"
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.int64)):  # what an int64 argument is compiled for
        return "i"
    if isinstance(value, (float, np.float64)):
        return "f"
    return "?"  # other numpy scalars: numba would compile them as their own type


def host_features() -> str | None:
    """The processor's feature flags (Linux's ``/proc/cpuinfo``, first processor), or
    ``None`` where they cannot be read: the builder then compiles for the machine's generic
    processor, whose code runs on any processor of the machine type."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features", "isa")):
                    return " ".join(line.split())
                if not line.strip():  # the end of the first processor's block
                    return None
    except OSError:
        pass
    return None


def processor() -> str:
    """What the compiled code was built for: the machine type, the interpreter, and the
    processor's feature flags when they are known (a build for this processor may use
    instructions another lacks; without them the build is generic)."""
    return "\n".join([platform.machine(), sys.implementation.cache_tag or "",
                      host_features() or "generic"])


def source_digest(module: str) -> int:
    """A 62-bit digest of what a build of loop module ``X_loops`` must match: its source, its
    driver ``X``'s, the compile options (simulator/kernels/jit.py), the builder's, this
    module's (the export names and argument codes), and :func:`processor`."""
    digest = hashlib.sha256(processor().encode())
    for name in (module, module.removesuffix("_loops"), "simulator.kernels.jit",
                 "simulator.kernels.aot", "simulator.kernels.compiled"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"no source for {name}")
        with open(spec.origin, "rb") as source:
            digest.update(source.read())
    return int.from_bytes(digest.digest()[:8], "little") >> 2


def same_constants(driver: str, values: dict[str, Any]) -> None:
    """Check that a loop module's constants equal its driver's.

    A loop module compiles its constants into its machine code, and numba's cache sees
    edits to the loop module's own file only: so the constants are written in the loop
    module itself, and this check (on its import) turns a driver edited alone into an
    error instead of a cached kernel with the old values."""
    module = importlib.import_module(driver)
    differ = sorted(name for name, value in values.items() if getattr(module, name) != value)
    if differ:
        raise ImportError(f"{driver} and its loops disagree on {', '.join(differ)}: "
                          f"change both")


def _load_extension(where: str | None = None) -> Any:
    """The extension module (from file ``where``, default ``SASIM_AOT`` or the package), or
    ``None`` (not built, turned off, or not loadable here: :data:`_WHY` says why)."""
    where = os.environ.get("SASIM_AOT", "") if where is None else where
    _WHY.clear()
    if where == "0":
        return None
    try:
        if where:
            loader = importlib.machinery.ExtensionFileLoader(EXTENSION, where)
            spec = importlib.util.spec_from_file_location(EXTENSION, where, loader=loader)
            if spec is None:
                raise ImportError("not an extension module")
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module
        return importlib.import_module(EXTENSION)
    except (ImportError, OSError) as exc:
        if where or not isinstance(exc, ModuleNotFoundError):  # there, and not loadable
            _WHY.append(f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}")
        return None


#: Why the extension module named (``SASIM_AOT``) or built did not load (empty: loaded,
#: not built, or turned off).
_WHY: list[str] = []


@functools.cache
def _extension() -> Any:
    return _load_extension()


def load_problem() -> str | None:
    """Why this process's kernels run on numba although a build was named (``SASIM_AOT``)
    or is installed: it does not load (``None``: no such problem, or none asked for yet).
    ``sasim`` prints it as a warning after a command."""
    if _extension.cache_info().currsize == 0 or not _WHY:
        return None
    where = os.environ.get("SASIM_AOT", "") or "the installed build"
    return (f"kernels compiled ahead of time: {where} does not load ({_WHY[0]}); numba's "
            f"kernels ran instead")


class _Variants:
    """A kernel's compiled variants, chosen by the argument types; numba's kernel for the
    rest."""

    def __init__(self, module: str, name: str, table: dict[tuple[str, ...], Callable]) -> None:
        self._module, self.__name__, self._table = module, name, table

    def __call__(self, *args: Any) -> Any:
        return self.resolve(*args)(*args)

    def resolve(self, *args: Any) -> Callable:
        """The function a call with ``args`` goes to (for a loop that calls it again with
        arguments of the same types: the choice is made once)."""
        fn = self._table.get(tuple(value_code(a) for a in args))
        if fn is None:
            fn = getattr(importlib.import_module(self._module), self.__name__)
        return fn


class _Compiled:
    """A loop module's kernels from the extension module (attribute access, as the module)."""

    def __init__(self, module: str, variants: dict[str, _Variants]) -> None:
        self._module, self._variants = module, variants

    def __getattr__(self, name: str) -> Any:
        try:
            return self._variants[name]
        except KeyError:  # not compiled ahead: the numba module's
            return getattr(importlib.import_module(self._module), name)


def _fresh(module: str, extension: Any) -> dict[str, _Variants] | None:
    """The module's compiled kernels, if the extension holds a build of its current source."""
    digest = getattr(extension, digest_name(module), None)
    try:
        if digest is None or digest() != source_digest(module):
            return None
    except ImportError:
        return None
    prefix = short_name(module) + _SEP
    tables: dict[str, dict[tuple[str, ...], Callable]] = {}
    for name in dir(extension):
        if name.startswith(prefix) and name != digest_name(module):
            kernel, codes = name[len(prefix):].rsplit(_SEP, 1)
            tables.setdefault(kernel, {})[tuple(codes.split("_"))] = getattr(extension, name)
    return {kernel: _Variants(module, kernel, table) for kernel, table in tables.items()}


@functools.cache
def kernels(module: str) -> Any:
    """The kernels of loop module ``module`` (one of :data:`MODULES`): its compiled variants
    when the extension module holds a fresh build of it, else the numba module."""
    variants = _variants(module)
    if variants is None:
        return importlib.import_module(module)
    return _Compiled(module, variants)


def _variants(module: str) -> dict[str, _Variants] | None:
    extension = _extension()
    return _fresh(module, extension) if extension is not None else None


def is_compiled(module: str) -> bool:
    """Whether :func:`kernels` gives ``module``'s compiled variants (asked without importing
    numba)."""
    return _variants(module) is not None


def status() -> dict[str, str]:
    """Each compiled module's state: ``compiled``, ``stale`` (built from other sources or for
    another processor), ``not built``, ``not loadable (why)`` or ``off`` (``SASIM_AOT=0``)."""
    if os.environ.get("SASIM_AOT", "") == "0":
        return dict.fromkeys(MODULES, "off")
    extension = _load_extension()
    if extension is None and _WHY:
        return dict.fromkeys(MODULES, f"not loadable ({_WHY[0]})")
    states = {}
    for module in MODULES:
        if extension is None or not hasattr(extension, digest_name(module)):
            states[module] = "not built"
        else:
            states[module] = "compiled" if _fresh(module, extension) is not None else "stale"
    return states
