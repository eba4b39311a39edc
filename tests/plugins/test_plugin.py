"""A third-party PE type, installed as a package, runs through every command.

The example plug-in in ``tests/plugins/sasim_example_pe`` (docs/extending.md) is installed
with pip into a temporary directory that joins PYTHONPATH, so that importlib.metadata finds
its ``sasim.pe_types`` entry point exactly as it would for a package installed from an
index. Its fast model is checked against the register-level reference array through the
plain-Python reference rule the plug-in supplies.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.errors import PluginError
from simulator.hw.pe import registry
from simulator.hw.reference_array import reference_rules, run_reference_array
from simulator.hw.timing import fold_timing
from simulator.workloads.layers import Layer

REPO = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parent / "sasim_example_pe"

ARCH = """\
schema_version: 1
name: lanes_16x16
description: the example plug-in PE, 2 lanes, 16x16
array: {rows: 16, cols: 16, dataflow: os, clock_mhz: 1000}
pe: {type: lanes, lanes: 2, truncate_bits: 1}
"""
SWEEP = """\
schema_version: 1
name: lanes_sweep
description: the example plug-in's lanes
base: {arch}
workloads: [digits_int8]
grid:
  pe.lanes: [1, 2, 4]
baseline: {{pe.lanes: 1}}
timing_only: true
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example plug-in installed (without dependencies) into a directory of its own.

    Built offline with the environment's setuptools (a dev dependency), so the test needs
    no network.
    """
    root = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PACKAGE, root / "src")  # the build leaves nothing in the repo
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target),
                    str(source)], check=True, capture_output=True, timeout=300)
    assert (target / "sasim_example_pe-0.1.0.dist-info" / "entry_points.txt").exists()
    return target


def sasim(*args: str, path: Path | str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m simulator ARGS`` in a fresh process that sees ``path``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(path)]),
           "MPLBACKEND": "Agg"}
    env.setdefault("NUMBA_CACHE_DIR", str(REPO / ".numba_cache"))
    return subprocess.run([sys.executable, "-m", "simulator", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


def test_installed_plugin_lists_runs_compares_sweeps_and_plots(site, tmp_path):
    listed = sasim("list", path=site, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["lanes", "os"] for line in listed.stdout.splitlines())

    arch = tmp_path / "lanes_16x16.yaml"
    arch.write_text(ARCH)
    run = sasim("run", "--arch", str(arch), "--workload", "digits_int8", "--out",
                str(tmp_path / "run"), path=site, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    pe = summary["arch_config"]["pe"]
    # A plug-in's options inherit the accumulator every PE type has (docs/accumulators.md).
    assert pe.pop("accumulator")["type"] == "exact" and pe.pop("accumulator_layers") == {}
    assert pe == {"type": "lanes", "lanes": 2, "truncate_bits": 1}
    assert set(summary["counters"]) == {"idle", "busy"} and summary["counters"]["busy"] > 0
    # truncating a bit of every activation is not exact, and it is priced
    assert summary["sqnr_db"] is not None and summary["energy_pj"] > 0

    compared = sasim("compare", "--arch", "os_sa_16x16", "--arch", str(arch), "--workload",
                     "digits_int8", "--timing-only", "--out", str(tmp_path / "cmp"),
                     path=site, cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    records = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert [r["pe"] for r in records] == ["lanes" if i else "dense" for i in range(2)]
    # two K elements per step: fewer cycles than the dense baseline
    assert records[1]["speedup"] > 1.2
    row = next(line for line in compared.stdout.splitlines() if "lanes_16x16" in line)
    assert "-" not in row.split()[7]  # "vs baseline" found the exact family's design

    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP.format(arch=arch))
    swept = sasim("sweep", str(spec), "--out", str(tmp_path / "sweep"), "--workers", "1",
                  path=site, cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    with open(tmp_path / "sweep" / "results.csv", newline="") as handle:
        points = list(csv.DictReader(handle))
    assert [p["pe.lanes"] for p in points] == ["1", "2", "4"]
    cycles = [int(p["total_cycles"]) for p in points]
    assert cycles[0] > cycles[1] > cycles[2]  # more lanes, fewer steps
    plotted = sasim("plot", str(tmp_path / "sweep"), "--kind", "speedup", path=site,
                    cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "sweep" / "speedup.png").stat().st_size > 1000


def test_installed_plugin_ships_rtl_that_verifies_and_emits(site, tmp_path):
    """A plug-in PE type names its own RTL datapath module (``PEModel.rtl``): ``sasim rtl``
    co-simulates it against the plug-in's model, its reference rule and the timing model,
    and emits its Verilog, without a line of sasim naming it (docs/extending.md, "RTL")."""
    arch = tmp_path / "lanes_4x4.yaml"
    arch.write_text(ARCH.replace("rows: 16, cols: 16", "rows: 3, cols: 2"))
    verified = sasim("rtl", "verify", "--arch", str(arch), "--cases", "3", "--json",
                     path=site, cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr + verified.stdout
    report = json.loads(verified.stdout)
    assert report["verdict"] == "match" and len(report["cases"]) == 3
    assert report["design"]["pe_type"] == "lanes" and report["design"]["threads"] == 2
    assert report["design"]["options"] == {"truncate_bits": 1}
    assert all(case["counters"]["busy"] > 0 for case in report["cases"])
    emitted = sasim("rtl", "emit", "--arch", str(arch), "--out", str(tmp_path / "rtl"),
                    path=site, cwd=tmp_path)
    assert emitted.returncode == 0, emitted.stderr
    assert "lanes x2 (truncate 1 bits) array" in emitted.stdout
    assert "module" in (tmp_path / "rtl" / "sasim_pe.v").read_text()
    # operand isolation is a datapath's own option: the plug-in's does not offer it
    refused = sasim("rtl", "emit", "--arch", str(arch), "--operand-isolation", "--out",
                    str(tmp_path / "iso"), path=site, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "--operand-isolation: built for dense, sysmt only, not lanes" in refused.stderr
    assert not (tmp_path / "iso").exists()


def _fake_distribution(site: Path, name: str, target: str) -> None:
    """A distribution whose only content is one ``sasim.pe_types`` entry point."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[sasim.pe_types]\n{name} = {target}\n")


@pytest.mark.parametrize("target, says", [
    ("no_such_module_for_sasim:Model", "cannot be loaded: ModuleNotFoundError"),
    ("json:dumps", "must name a subclass of simulator.hw.pe.PEModel, not function dumps"),
    ("simulator.hw.pe.registry:PEModel", "does not define composition, reduction_steps"),
    ("sasim_example_pe.lanes:LanesPE", "type_name 'lanes' must equal the entry point's name"),
])
def test_broken_plugin_fails_only_the_runs_that_ask_for_it(site, tmp_path, target, says):
    """A broken plug-in beside a working one: sasim list shows both (the broken one with
    its reason), the working one and the built-ins run, and only a run asking for the broken
    type fails, in one line with exit status 2."""
    _fake_distribution(tmp_path / "broken_site", "broken", target)
    site = os.pathsep.join([str(site), str(tmp_path / "broken_site")])
    arch = tmp_path / "lanes_16x16.yaml"
    arch.write_text(ARCH)
    listed = sasim("list", path=site, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("broken "))
    assert "BROKEN plug-in, not loaded" in row and "entry point 'broken'" in row
    assert says in row
    assert any(line.startswith("lanes ") for line in listed.stdout.splitlines())
    for name in ("os_sa_16x16", str(arch)):
        run = sasim("run", "--arch", name, "--workload", "resnet18", "--timing-only",
                    path=site, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    asked = sasim("run", "--arch", "os_sa_16x16", "--set", "pe.type=broken", "--workload",
                  "resnet18", "--timing-only", path=site, cwd=tmp_path)
    assert asked.returncode == 2 and asked.stderr.count("\n") == 1, asked.stderr
    assert "Traceback" not in asked.stderr and says in asked.stderr
    assert "os_sa_16x16" in asked.stderr and "pe.type: PE plug-in" in asked.stderr
    broken_arch = tmp_path / "broken_16x16.yaml"
    broken_arch.write_text(ARCH.replace("type: lanes", "type: broken"))
    named = sasim("run", "--arch", str(broken_arch), "--workload", "resnet18",
                  "--timing-only", path=site, cwd=tmp_path)
    assert named.returncode == 2 and named.stderr.count("\n") == 1, named.stderr
    assert f"{broken_arch}: arch.pe.type: PE plug-in entry point 'broken'" in named.stderr
    typo = sasim("run", "--arch", "os_sa_16x16", "--set", "pe.type=nosuch", "--workload",
                 "resnet18", "--timing-only", path=site, cwd=tmp_path)
    assert typo.returncode == 2 and "unknown PE type 'nosuch'" in typo.stderr
    assert "plug-ins that failed to load: broken" in typo.stderr


def test_plugin_type_name_must_match_its_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _fake_distribution(site, "other_name", "simulator.hw.pe.dense:DensePE")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(registry._STATE, "entry_points", False)
    monkeypatch.setattr(registry, "_BROKEN", {})
    assert "other_name" not in registry.pe_types()
    assert "type_name 'dense'" in registry.broken_plugins()["other_name"]
    with pytest.raises(PluginError, match="entry point 'other_name'.*type_name 'dense'"):
        registry.pe_model_class("other_name")


@pytest.fixture
def lanes_pe(monkeypatch):
    """The example's model class, registered for this test only."""
    monkeypatch.syspath_prepend(str(PACKAGE / "src"))
    from sasim_example_pe.lanes import LanesOptions, LanesPE

    monkeypatch.setitem(registry._REGISTRY, "lanes", LanesPE)
    return LanesPE, LanesOptions


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 5), kd=st.integers(1, 9), n=st.integers(1, 5),
       lanes=st.sampled_from([1, 2, 3, 4]), bits=st.integers(0, 4), signed=st.booleans(),
       rows=st.integers(1, 3), cols=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_example_fast_model_equals_reference_array(lanes_pe, m, kd, n, lanes, bits, signed,
                                                   rows, cols, seed):
    model, options = lanes_pe
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if signed else (0, 256)
    a = (rng.integers(lo, hi, (m, kd)) * (rng.random((m, kd)) < 0.6)).astype(np.int64)
    b = (rng.integers(-128, 128, (kd, n)) * (rng.random((kd, n)) < 0.6)).astype(np.int64)
    pe = model(options(lanes=lanes, truncate_bits=bits))
    layer = Layer(name="g", op="gemm", in_channels=kd, out_channels=n, batch=m)
    fast = pe.simulate_gemm(layer, a, b)
    assert "lanes" in reference_rules()
    ref = run_reference_array(a, b, rows, cols, pe.schedule(kd), "lanes",
                              {"truncate_bits": str(bits)})
    np.testing.assert_array_equal(fast.outputs, ref.outputs)
    assert fast.counters == ref.counters
    timing = fold_timing(layer.gemm, rows, cols, "os", "native", pe.reduction_steps(layer))
    assert timing.compute_cycles == ref.cycles


def test_builtin_type_lives_in_its_own_module():
    """A run imports only the PE modules it uses: built-in type ``t`` is registered by
    ``simulator.hw.pe.t``, and a fresh process that runs a dense arch imports no other."""
    for name in registry.BUILTIN_TYPES:
        cls = registry.pe_model_class(name)
        assert cls.type_name == name
        assert cls.__module__ == f"simulator.hw.pe.{name}"
    assert list(registry.builtin_pe_types()) == list(registry.BUILTIN_TYPES)
    code = ("import json, sys; from simulator import api; "
            "api.load_arch('os_sa_16x16'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('simulator.hw.pe.'))))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    loaded = json.loads(out)
    assert "simulator.hw.pe.dense" in loaded
    assert not {f"simulator.hw.pe.{t}" for t in registry.BUILTIN_TYPES[1:]} & set(loaded)


def test_a_python_reference_rule_locates_rtl_mismatches(lanes_pe):
    """``sasim rtl verify`` locates a mismatch step by step with the PE's reference rule; a
    plug-in's plain-Python rule is called as the reference array calls it."""
    from sasim_example_pe.lanes import reference_step

    from simulator.rtl.verify import _StepRule

    model, options = lanes_pe
    pe = model(options(lanes=3, truncate_bits=2))
    rule = _StepRule(pe, np.zeros((1, 3), np.int64))
    rng = np.random.default_rng(7)
    for _ in range(50):
        acts, wgts = rng.integers(-128, 128, 3), rng.integers(-128, 128, 3)
        assert rule(acts, wgts) == reference_step(acts, wgts, {"truncate_bits": "2"})



def test_no_builtin_type_name_outside_the_pe_models():
    """The core asks PE models through their interface (docs/extending.md): no string
    literal of the package outside ``simulator/hw/pe/`` is a built-in PE type's name."""
    import ast
    import io
    import tokenize

    found = []
    for path in sorted((REPO / "simulator").rglob("*.py")):
        if (REPO / "simulator" / "hw" / "pe") in path.parents:
            continue
        with open(path, "rb") as handle:
            for token in tokenize.tokenize(io.BytesIO(handle.read()).readline):
                if token.type != tokenize.STRING:
                    continue
                try:
                    value = ast.literal_eval(token.string)
                except ValueError:  # an f-string
                    continue
                if value in registry.BUILTIN_TYPES:
                    found.append(f"{path.relative_to(REPO)}:{token.start[0]}: {value!r}")
    assert not found, found


def _lanes_arch(tmp_path: Path) -> Path:
    arch = tmp_path / "lanes_16x16.yaml"
    arch.write_text(ARCH)
    return arch


def test_a_plugin_failing_mid_run_is_one_line_naming_type_and_layer(lanes_pe, monkeypatch,
                                                                     tmp_path, cli):
    """An exception inside a plug-in's model (here in a forked kernel worker or not) ends
    the run in one line naming the PE type, its module and the layer; nothing is written."""
    model, _ = lanes_pe

    class Failing(model):
        def simulate_gemm(self, layer, a, b):
            if layer.name == "fc":
                raise ZeroDivisionError("division by zero in my model")
            return super().simulate_gemm(layer, a, b)

    Failing.__module__ = "my_plugin.failing"
    monkeypatch.setitem(registry._REGISTRY, "lanes", Failing)
    out = tmp_path / "out"
    result = cli("run", "--arch", _lanes_arch(tmp_path), "--workload", "digits_int8",
                 "--out", out)
    assert result.status == 2 and result.err.count("\n") == 1, result.err
    assert ("layer 'fc': PE type 'lanes' (plug-in my_plugin.failing) failed: "
            "ZeroDivisionError: division by zero in my model") in result.err
    assert not out.exists()


def test_a_plugin_must_return_every_counter(lanes_pe, monkeypatch, tmp_path, cli):
    model, _ = lanes_pe

    class Forgetful(model):
        def simulate_gemm(self, layer, a, b):
            run = super().simulate_gemm(layer, a, b)
            counters = dict(run.counters)
            counters.pop(self.counter_names[-1])
            return type(run)(run.outputs, counters, run.stats)

    monkeypatch.setitem(registry._REGISTRY, "lanes", Forgetful)
    result = cli("run", "--arch", _lanes_arch(tmp_path), "--workload", "digits_int8")
    assert result.status == 2 and result.err.count("\n") == 1, result.err
    assert (f"simulate_gemm returned counters without {model.counter_names[-1]} "
            f"(counter_names: {', '.join(model.counter_names)})") in result.err


def test_rtl_verify_refuses_weight_dependent_timing_without_streams(lanes_pe, monkeypatch,
                                                                   tmp_path, cli):
    model, _ = lanes_pe

    class Skipping(model):
        weight_dependent_timing = True

    monkeypatch.setitem(registry._REGISTRY, "lanes", Skipping)
    result = cli("rtl", "verify", "--arch", _lanes_arch(tmp_path), "--set", "array.rows=2",
                 "--set", "array.cols=2", "--cases", "1")
    assert result.status == 2 and result.err.count("\n") == 1, result.err
    assert "PE type 'lanes' has weight-dependent timing" in result.err
