"""A run does only the functional work that can change its report (docs/performance.md).

- a timing-only run, and a dense PE on shape-only data, never import numba;
- an exact PE reports "exact" without a reference product and, when no outputs are asked
  for, counts from non-zero counts: the same counters as simulating the GEMM;
- a large layer of a PE with independent columns runs in column blocks: same report.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulator import api
from simulator.hw import gemm
from simulator.hw.pe import get_pe_model
from simulator.hw.pe.dense import active_steps
from simulator.workloads.layers import Layer, Workload
from simulator.workloads.lowering import im2col, weights_to_gemm
from simulator.workloads.synthetic import synthesize

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
CFG = DATA / "scalesim" / "conv_os_4x8" / "scalesim.cfg"
CSV = DATA / "scalesim" / "conv_os_4x8" / "topology.csv"


def _layers() -> tuple[Layer, ...]:
    return (Layer(name="first", op="conv2d", in_channels=3, out_channels=16, batch=1,
                  input_size=(12, 12), kernel_size=(3, 3), padding=(1, 1),
                  activation_signed=True),
            Layer(name="conv", op="conv2d", in_channels=16, out_channels=40, batch=2,
                  input_size=(7, 7), kernel_size=(3, 3), stride=(2, 2)),
            Layer(name="dw", op="conv2d", in_channels=40, out_channels=40, batch=1,
                  input_size=(5, 5), kernel_size=(3, 3), padding=(1, 1), groups=40),
            Layer(name="fc", op="linear", in_channels=90, out_channels=50, batch=3))


def _workload() -> Workload:
    return Workload(name="small", source="test", layers=_layers(), format="yaml")


@pytest.mark.parametrize("argv", [
    ["--arch", str(CFG), "--workload", str(CSV), "--timing-only"],
    ["--arch", str(CFG), "--workload", str(CSV)],
    ["--arch", "sysmt_4t_16x16", "--workload", "resnet18", "--timing-only"],
    ["--arch", "os_sa_16x16", "--workload", "resnet18"],
], ids=["cfg-timing-only", "cfg-dense", "sysmt-timing-only", "dense-synthetic"])
def test_dense_and_timing_only_runs_do_not_import_numba(argv):
    code = ("import io, contextlib, sys\n"
            "from simulator import cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    status = cli.main(['run', *{argv!r}])\n"
            "assert status == 0, status\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numba', 'matplotlib', 'torch', 'dask', 'scipy')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_exact_pe_counts_without_outputs_match_the_simulated_gemm():
    arch = api.load_arch("os_sa_16x16")
    workload = synthesize(_workload())
    quick = api.simulate(arch, workload)
    saved: dict[str, np.ndarray] = {}
    full = api.simulate(arch, workload, output_sink=saved.__setitem__)
    assert set(saved) == {layer.name for layer in workload.layers}
    for layer, fast, slow in zip(workload.layers, quick.layers, full.layers):
        t = workload.tensors(layer.name)
        a, b = im2col(t.input, layer), weights_to_gemm(t.weight, layer)
        active = sum(active_steps(a[g], b[g]) for g in range(a.shape[0]))
        assert fast.counters == slow.counters == {"idle": layer.gemm.macs - active,
                                                  "single": active}
        # exact by construction: no error, and no signal power unless outputs were formed
        assert fast.mse == slow.mse == 0.0 and fast.max_abs_error == slow.max_abs_error == 0
        assert fast.sqnr_db is None and slow.sqnr_db is None
        assert fast.signal_power is None
        outputs = saved[layer.name].astype(np.float64)
        assert slow.signal_power == pytest.approx(float(np.mean(outputs ** 2)))
        assert fast.energy_pj == slow.energy_pj
    summary = quick.summary()
    assert summary["sqnr_db"] is None and summary["mse"] == 0.0


def test_column_blocks_give_the_same_report(monkeypatch):
    arch = api.load_arch("sysmt_4t_16x16")
    workload = synthesize(_workload())
    whole = api.simulate(arch, workload)
    # every layer with more than one column fold now runs fold by fold
    monkeypatch.setattr(gemm, "COLUMN_BLOCK_BYTES", 1)
    assert gemm.column_blocks(get_pe_model(arch.pe, arch.array), _layers()[3]) == [
        (0, 16), (16, 32), (32, 48), (48, 50)]
    saved: dict[str, np.ndarray] = {}
    blocks = api.simulate(arch, workload, output_sink=saved.__setitem__)
    for a, b in zip(whole.layers, blocks.layers):
        assert dataclasses.replace(a, signal_power=None) == \
            dataclasses.replace(b, signal_power=None)
        assert a.signal_power == pytest.approx(b.signal_power, rel=1e-12)
    assert whole.summary()["sqnr_db"] == pytest.approx(blocks.summary()["sqnr_db"], rel=1e-12)


def test_trace_run_still_checks_outputs():
    result = api.simulate(api.load_arch("os_sa_16x16"), api.load_workload("digits_int8"))
    assert all(layer.output_matches_trace for layer in result.layers)
    assert all(layer.signal_power > 0 for layer in result.layers)


_CHILD_VS_INLINE = """
import json, sys
from simulator import api
from simulator.kernels import jit

forked = []
in_process, can_fork = jit.in_process, jit.can_fork
jit.in_process = lambda *a, **k: forked.append(1) or in_process(*a, **k)
out = {}
for case in sys.argv[1:]:
    arch_name, workload, *overrides = case.split(",")
    arch = api.load_arch(arch_name, tuple(overrides))
    workload = api.load_workload(workload)
    jit.can_fork = can_fork
    child = api.simulate(arch, workload, functional=True)
    jit.can_fork = lambda: False
    inline = api.simulate(arch, workload, functional=True)
    out[case] = [len(forked), child.summary() == inline.summary(),
                 all(layer.counters for layer in child.layers)]
    forked.clear()
print(json.dumps(out))
"""


def test_functional_models_computed_in_a_child_process_give_the_inline_report():
    """One core's functional run that saves no outputs, on a PE whose timing does not
    depend on the data, computes its layers' functional models in a forked process while
    its layers run as timing only (docs/performance.md, "Functional models beside the
    engine"): the report is the one
    computing them inline gives, with and without prefetch chains and DRAM timing, and for
    an exact PE on a trace (which compares its outputs with the recorded ones). (In a fresh
    interpreter: a test process may have started numba's threads, and then does not
    fork.)"""
    bounded = "memory.ifmap_kib=2,memory.filter_kib=2,memory.ofmap_kib=1,memory.dram=ddr4_3200"
    cases = [f"sysmt_2t_16x16,{CSV}", f"sysmt_4t_16x16,{CSV},{bounded}",
             f"os_sa_16x16,digits_int8,{bounded}", "a4w8_16x16,digits_int8"]
    done = subprocess.run([sys.executable, "-c", _CHILD_VS_INLINE, *cases],
                          capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {case: [1, True, True] for case in cases}
