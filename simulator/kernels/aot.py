"""Build the kernels compiled ahead of time: ``python -m simulator.kernels.aot [--out DIR]``.

Compiles every variant listed in the ``AOT`` table of each loop module of
:data:`simulator.kernels.compiled.MODULES` with ``numba.pycc`` into one extension module,
``simulator/kernels/_aot<suffix>`` (or into ``DIR``), for this processor, with the options
:func:`simulator.kernels.jit.njit` gives each kernel: GIL released (the kernels run on a
thread pool), the kernel's own error model, no fast-math. Each module also exports the
digest of the sources it was built from (:func:`simulator.kernels.compiled.source_digest`),
so an edited source or another processor makes the build stale and the run falls back to
numba (docs/performance.md, "Kernels compiled ahead of time").

Run by ``make`` (for a checkout) and by the wheel's build (setup.py). It takes 20-50 s on
two cores; numba and a C compiler are needed to build, not to use the result.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from simulator.kernels import compiled

__all__ = ["build", "main"]


def _type_code(numba_type: Any) -> str:
    """The :func:`simulator.kernels.compiled.value_code` of the values of a numba type."""
    import numpy as np
    from numba import types

    if isinstance(numba_type, types.Array):
        if numba_type.layout != "C":
            raise ValueError(f"only C-contiguous arrays are compiled ahead, not {numba_type}")
        return (f"{np.dtype(str(numba_type.dtype)).str[1:]}x{numba_type.ndim}"
                f"{'' if numba_type.mutable else 'r'}")
    if isinstance(numba_type, types.Boolean):
        return "b"
    if isinstance(numba_type, types.Integer):
        if numba_type != types.int64:  # a Python int arrives as int64
            raise ValueError(f"integer arguments are compiled as int64, not {numba_type}")
        return "i"
    if isinstance(numba_type, types.Float):
        if numba_type != types.float64:
            raise ValueError(f"float arguments are compiled as float64, not {numba_type}")
        return "f"
    raise ValueError(f"no compiled variant takes {numba_type}")


@contextlib.contextmanager
def _kernel_options(options: dict[Any, dict[str, Any]]):
    """pycc compiles every export with one set of flags; give each kernel the options its
    :func:`~simulator.kernels.jit.njit` decorator gave it (``options``: by Python function)."""
    import numba.pycc.compiler as pycc_compiler

    compile_extra = pycc_compiler.compile_extra

    def with_options(typingctx, targetctx, func, args, return_type, flags, locals, library):
        flags = flags.copy()
        own = options[func]
        flags.release_gil = True
        flags.error_model = own.get("error_model", "python")
        flags.fastmath = own.get("fastmath", False)
        return compile_extra(typingctx, targetctx, func, args, return_type, flags,
                             locals=locals, library=library)

    pycc_compiler.compile_extra = with_options
    try:
        yield
    finally:
        pycc_compiler.compile_extra = compile_extra


def build(out_dir: Path | None = None) -> Path:
    """Compile every loop module's variants into the extension module; returns its path."""
    from simulator.kernels.jit import _import_numba

    _import_numba()
    with warnings.catch_warnings():  # pycc announces its pending deprecation
        warnings.simplefilter("ignore")
        from numba.pycc import CC
    package = Path(__file__).resolve().parent
    out_dir = Path(out_dir) if out_dir is not None else package
    name = compiled.EXTENSION.rsplit(".", 1)[1]
    cc = CC(name)
    # this processor where its features are known (the digest records them:
    # compiled.processor), else the machine type's generic processor
    cc.target_cpu = "host" if compiled.host_features() else ""
    cc.verbose = False
    options: dict[Any, dict[str, Any]] = {}
    for module_name in compiled.MODULES:
        module = importlib.import_module(module_name)
        digest = compiled.source_digest(module_name)
        namespace: dict[str, Any] = {}
        exec(f"def digest():\n    return {digest}\n", namespace)  # a constant function
        options[namespace["digest"]] = {}
        cc.export(compiled.digest_name(module_name), "int64()")(namespace["digest"])
        for kernel, variants in module.AOT.items():
            dispatcher = getattr(module, kernel)
            options[dispatcher.py_func] = dispatcher.targetoptions
            for args in variants:
                args = tuple(args)
                dispatcher.compile(args)  # typing gives the return type
                signature = dispatcher.overloads[args].signature
                codes = tuple(_type_code(a) for a in args)
                cc.export(compiled.export_name(module_name, kernel, codes),
                          signature)(dispatcher.py_func)
    with tempfile.TemporaryDirectory(prefix="sasim-aot-") as scratch:
        cc.output_dir = scratch
        with _kernel_options(options), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
        (built,) = Path(scratch).glob(f"{name}.*")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / built.name
        staged = out_dir / f".{built.name}.tmp"
        staged.write_bytes(built.read_bytes())
        staged.chmod(0o755)
        staged.replace(target)  # a running process keeps the file it loaded
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.kernels.aot",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="directory for the extension module (default: the package)")
    parser.add_argument("--check", action="store_true",
                        help="print each module's state (compiled, stale, not built, off)")
    args = parser.parse_args(argv)
    if args.check:
        for module, state in compiled.status().items():
            print(f"{module}: {state}")
        return 0
    start = time.perf_counter()
    try:
        target = build(args.out)
    except Exception as exc:  # a build problem (no compiler...): one line; numba still runs
        reason = (str(exc).splitlines() or [""])[0][:300]
        print(f"sasim: kernels not compiled ahead of time ({type(exc).__name__}: {reason}); "
              f"numba compiles them on first use instead", file=sys.stderr)
        return 1
    print(f"compiled {len(compiled.MODULES)} kernel modules ahead of time into {target} "
          f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
