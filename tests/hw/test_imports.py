"""Importing the API and the CLI must not load numba: kernels load when a kernel runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, check=True, timeout=120)
    return set(done.stdout.split())


def test_api_and_cli_import_without_numba():
    modules = _loaded_after("import simulator.api, simulator.cli")
    assert "simulator.api" in modules and "simulator.cli" in modules
    assert "numba" not in modules
    assert not {m for m in modules if m.startswith("simulator.kernels")}


def test_every_builtin_pe_module_imports_without_numba():
    modules = _loaded_after("from simulator.hw.pe import pe_types; pe_types()")
    assert {"simulator.hw.pe.sparq", "simulator.hw.pe.a4w8", "simulator.hw.pe.swis"} <= modules
    assert "numba" not in modules


def test_pair_helpers_index_the_kernels_tables_alike():
    from simulator.hw.pe.pairs import LUT_OFFSET
    from simulator.kernels.sparq import LUT_OFFSET as KERNEL_LUT_OFFSET

    assert LUT_OFFSET == KERNEL_LUT_OFFSET


def test_api_and_cli_import_without_the_engine():
    """SimPy (and the ``importlib.metadata`` it reads its version through, about 25 ms of
    imports) loads when a run first schedules a layer, not with the API."""
    modules = _loaded_after("import simulator.api, simulator.cli")
    assert not {"simpy", "importlib.metadata", "simulator.memory.run",
                "simulator.engine"} & modules
    assert "simpy" in _loaded_after("import simulator.memory\nsimulator.memory.run_layer")


def test_the_functional_child_forks_before_the_engine_loads():
    """A run whose functional models go to a forked child imports SimPy after the fork,
    beside the child's work (docs/performance.md, "Start-up")."""
    code = ("import sys\n"
            "from simulator import api\n"
            "from simulator.kernels import jit\n"
            "seen = []\n"
            "start = jit._Child.__init__\n"
            "def forked(self, *args, **kwargs):\n"
            "    seen.append('simpy' in sys.modules)\n"
            "    start(self, *args, **kwargs)\n"
            "jit._Child.__init__ = forked\n"
            "arch = api.load_arch('sysmt_2t_16x16', ['memory=ideal'])\n"
            "workload = api.load_workload('digits_int8')\n"
            "result = api.simulate(arch, workload)\n"
            "print(seen, 'simpy' in sys.modules, result.total_cycles > 0)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, check=True, timeout=300)
    assert done.stdout.split() == ["[False]", "True", "True"]
