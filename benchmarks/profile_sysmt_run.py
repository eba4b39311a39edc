#!/usr/bin/env python3
"""Where the time of one ``sasim run`` goes: a per-phase breakdown of a whole process.

The script is the process: it imports what ``python -m simulator run`` imports, timing each
import, then runs ``cli.main(["run", "--arch", ARCH, "--workload", WORKLOAD, "--set",
"memory=ideal", "--out", TMP])`` (the unbounded memory, docs/memory-model.md "Ideal memory")
with the run's phases wrapped in timers (wall seconds, summed over layers):

- ``import numpy``, ``import sasim`` (``simulator.cli``: the API, SimPy, the memory model),
  ``import kernel`` (the SySMT kernel module);
- ``first kernel call``: the kernels compiled ahead of time load (docs/performance.md,
  "Kernels compiled ahead of time"), or with ``SASIM_AOT=0`` numba's import, registries
  and the cached machine code of the few-rows path (timed on a 2x2 GEMM before the run;
  the other kernels' cached code loads within the first layers' ``kernel``);
- per layer: ``synthetic data`` (the layer's tensors), ``im2col``, ``weights`` (lowering B),
  ``kernel`` (``sysmt_gemm``, split into its threaded phases: ``prepare_weights``,
  ``column_histogram``, ``outputs``, and ``direct`` for GEMMs of few rows; the rest is
  Python around them: checks, tiling, the counters' product),
  ``reference product`` (the exact GEMM of the error metrics, when it is computed),
  ``error sums`` (the error metrics from the kernel's own exact product, one pass),
  ``timing + memory`` (the array timing and the SimPy memory model), ``energy``;
- ``rest``: everything else of ``cli.main`` (arch and workload loading, report, files).

The phases are timed in this process, so the script runs the functional models inline: a
``sasim run`` process computes them in a forked child beside the engine
(docs/performance.md, "Functional models beside the engine"), which this breakdown cannot
see; ``benchmarks/bench_startup.py`` times that whole process.

Usage (from the repo root)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/profile_sysmt_run.py [--workload resnet18]
        [--arch sysmt_4t_16x16] [--layers]

A transformer block (docs/performance.md, "Transformers")::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/profile_sysmt_run.py --arch sysmt_2t_16x16
        --workload benchmarks/llama2_7b_prefill_block.yaml --layers

``--layers`` also prints the kernel and reference seconds of every layer. Add the bare
interpreter's start-up (``python -c pass``, printed by ``benchmarks/bench_startup.py``) for
the whole process. Run it twice: the first run may fill numba's cache.
"""

from __future__ import annotations

import time

_START = time.perf_counter()

import argparse  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

_IMPORTS: dict[str, float] = {}
_t = time.perf_counter()
import numpy as np  # noqa: E402

_IMPORTS["import numpy"] = time.perf_counter() - _t
_t = time.perf_counter()
from simulator import api, cli  # noqa: E402

_IMPORTS["import sasim"] = time.perf_counter() - _t
_t = time.perf_counter()
import simulator.kernels.jit as jit  # noqa: E402
import simulator.kernels.metrics as metrics  # noqa: E402
import simulator.kernels.sysmt as kernel  # noqa: E402

_IMPORTS["import kernel"] = time.perf_counter() - _t
_t = time.perf_counter()
kernel.sysmt_gemm(np.ones((2, 2), np.int8), np.ones((2, 2), np.int8),
                  np.array([[0], [1]]), True, True)
_IMPORTS["first kernel call"] = time.perf_counter() - _t


def _wrap(module, name: str, key: str, totals, per_layer=None, layer=None) -> None:
    """Replace ``module.name`` by a timer adding its wall seconds to ``totals[key]``."""
    function = getattr(module, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            totals[key] += elapsed
            if per_layer is not None:
                per_layer[layer[0]][key] += elapsed

    setattr(module, name, timed)


def _wrap_phases(totals) -> None:
    """Time the kernel's threaded phases: each ``parallel_map`` call, named by the kernel
    function its task calls."""
    parallel_map = kernel.parallel_map

    def timed(workers, tasks, fn):
        names = [n for n in fn.__code__.co_names if n.startswith("_")]
        start = time.perf_counter()
        try:
            return parallel_map(workers, tasks, fn)
        finally:
            totals["  kernel: " + (names[0].strip("_") if names else "?")] += (
                time.perf_counter() - start)

    kernel.parallel_map = timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sysmt_4t_16x16")
    parser.add_argument("--workload", default="resnet18")
    parser.add_argument("--layers", action="store_true", help="per-layer kernel seconds")
    args = parser.parse_args(argv)
    totals: collections.Counter[str] = collections.Counter()
    per_layer: dict[str, collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    layer = [""]
    with_synthetic_data = api.with_synthetic_data

    def synthetic(*args, **kwargs):
        workload = with_synthetic_data(*args, **kwargs)
        generate = workload.tensors

        def tensors(name):
            layer[0] = name
            start = time.perf_counter()
            try:
                return generate(name)
            finally:
                elapsed = time.perf_counter() - start
                totals["synthetic data"] += elapsed
                per_layer[name]["synthetic data"] += elapsed

        return dataclasses.replace(workload, tensors=tensors)

    api.with_synthetic_data = synthetic
    # the functional models inline, in this process (see the module docstring)
    jit.can_fork = lambda: False
    for name, key in (("im2col", "im2col"), ("weight_columns", "weights"),
                      ("gemm_product", "reference product"),
                      ("_simulate_layer", "timing + memory"), ("_priced", "energy")):
        _wrap(api, name, key, totals, per_layer, layer)
    _wrap(kernel, "sysmt_gemm", "kernel", totals, per_layer, layer)
    _wrap(metrics, "error_sums", "error sums", totals, per_layer, layer)
    _wrap_phases(totals)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            # the unbounded memory the figures of docs/performance.md were measured on
            status = cli.main(["run", "--arch", args.arch, "--workload", args.workload,
                               "--set", "memory=ideal", "--out", out])
        run = time.perf_counter() - start
    total = time.perf_counter() - _START
    if status:
        return status
    load = os.getloadavg()
    print(f"{args.workload} on {args.arch}: {total:.3f} s in the process after the "
          f"interpreter's start-up (load average {load[0]:.2f}, {os.cpu_count()} cores)")
    for key, value in _IMPORTS.items():
        print(f"{key:<24} {value:7.3f}")
    timed = sum(v for k, v in totals.items() if not k.startswith(" "))
    for key, value in totals.items():
        print(f"{key:<24} {value:7.3f}")
    print(f"{'rest':<24} {run - timed:7.3f}")
    if args.layers:
        print()
        print(f"{'layer':<24} {'kernel':>7} {'reference':>9} {'errors':>7} {'data':>7}")
        for name, row in per_layer.items():
            print(f"{name:<24} {row['kernel']:7.3f} {row['reference product']:9.3f} "
                  f"{row['error sums']:7.3f} {row['synthetic data']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
