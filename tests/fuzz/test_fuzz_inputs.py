"""Hypothesis fuzzing of every input sasim reads, through the CLI in-process.

Each test starts from a valid file (a shipped one, or a small one made here), mutates it as a
user's mistake would (a key dropped or renamed, a value of the wrong type, a huge or
non-finite number, garbage bytes, a truncated file) and runs the command that reads it. The
promise (docs/config-reference.md, "Input limits"): exit status 0 or 2, never a traceback,
and on failure exactly one bounded line on stderr that names the file.

``SASIM_FUZZ_EXAMPLES`` scales the number of examples per test (default 1: the examples
below, about 30 s in all); the examples are derandomised so that a failure reproduces, unless
``SASIM_FUZZ_RANDOM=1`` (a longer campaign: ``SASIM_FUZZ_EXAMPLES=20 SASIM_FUZZ_RANDOM=1``).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.workloads.layers import Layer, LayerTensors
from simulator.workloads.trace import TraceEntry, write_trace
from fuzz.harness import assert_promise, run_cli

REPO = Path(__file__).resolve().parents[2]
SCALE = max(1, int(os.environ.get("SASIM_FUZZ_EXAMPLES", "1")))
RANDOM = bool(os.environ.get("SASIM_FUZZ_RANDOM"))


def fuzz(examples: int):
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=not RANDOM,
                    database=None, suppress_health_check=list(HealthCheck))


# A value of the wrong type, size or kind, as a user might write it.
NASTY: list[Any] = [
    None, True, False, 0, -1, 1, 2, 3, 7, 65, 2 ** 31, 2 ** 63 - 1, 2 ** 63, 2 ** 64,
    -(2 ** 70), 10 ** 30, 1e20, 1.0e+20, 0.5, -0.0, 1e-300, float("inf"), float("-inf"),
    float("nan"), "", " ", "x", "dense", "sparq", "os", "ws", "conv2d", "1e9", "0x10",
    "%(x)s", "a" * 3000, "\u00e9\u4e2d", [], [1], [1, 2], [[[]]], ["sparq"], {}, {"a": 1},
    {"type": "dense"},
]
# a copy of each value: a later mutation may change a drawn list or mapping in place, and the
# shared constant must stay as it was (hypothesis replays draws and checks they agree)
nasty = (st.sampled_from(NASTY).map(copy.deepcopy) | st.integers() | st.floats()
         | st.text(max_size=30))


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield prefix + (i,)
            yield from _paths(value, prefix + (i,))


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated(draw, data: dict) -> dict:
    """``data`` with one to three structural mutations."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(data, path[:-1]), path[-1]
        op = draw(st.sampled_from(["replace", "replace", "delete", "rename", "add", "wrap"]))
        if op == "replace":
            parent[key] = draw(nasty)
        elif op == "delete":
            del parent[key]
        elif op == "wrap":
            parent[key] = [parent[key]] if draw(st.booleans()) else {"x": parent[key]}
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(nasty)
    return data


@st.composite
def mangled_text(draw, text: str) -> str:
    """``text`` truncated, with garbage inserted, a line duplicated or a line replaced."""
    op = draw(st.sampled_from(["truncate", "garbage", "duplicate", "replace_line", "nest"]))
    lines = text.splitlines(keepends=True)
    if op == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if op == "garbage":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.text(max_size=40) | st.sampled_from(
            ["\x00", "\ufffd", "&a [*a, *a]", "!!python/object:os.system", "{{{{", "- - -",
             "'", '"', ":\n  :", "%", "\t"]))
        return text[:at] + junk + text[at:]
    if op == "duplicate" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[: i + 1] + [lines[i]] + lines[i + 1:])
    if op == "replace_line" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = draw(st.text(max_size=60)) + "\n"
        return "".join(lines)
    depth = draw(st.sampled_from([10, 100, 10000]))
    return text + "\nzz: " + "[" * depth + "]" * depth + "\n"


class Workdir:
    """A fresh directory per example (pytest's tmp_path is per test, not per example)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="sasim-fuzz-"))
        return self.path

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 20)


TINY = {"schema_version": 1, "name": "tiny", "batch": 1, "layers": [
    {"name": "conv1", "op": "conv2d", "in_channels": 3, "out_channels": 8,
     "input_size": [8, 8], "kernel_size": 3, "padding": 1, "activation_signed": True},
    {"name": "conv2", "op": "conv2d", "in_channels": 8, "out_channels": 8,
     "input_size": [8, 8], "kernel_size": 3, "stride": 2, "padding": 1, "groups": 2},
    {"name": "fc", "op": "linear", "in_features": 128, "out_features": 10}],
    "data": {"seed": 3, "weight_prune_fraction": 0.5}}

ARCHS = sorted(p.stem for p in (REPO / "arch_configs").glob("*.yaml"))


def _tiny(folder: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(_dump(TINY))
    return path


# ----------------------------------------------------------------------------- arch YAML

@fuzz(40)
@given(st.sampled_from(ARCHS), st.data())
def test_arch_yaml(name, data):
    base = yaml.safe_load((REPO / "arch_configs" / f"{name}.yaml").read_text())
    with Workdir() as folder:
        path = folder / "arch.yaml"
        if data.draw(st.booleans()):
            path.write_text(_dump(data.draw(mutated(base))))
        else:
            path.write_text(data.draw(mangled_text(_dump(base))))
        result = run_cli("run", "--arch", path, "--workload", _tiny(folder), "--timing-only")
        assert_promise(result, "arch.yaml")


KEYS = ["array.rows", "array.cols", "array.dataflow", "array.clock_mhz", "timing.convention",
        "memory.ifmap_kib", "memory.dram_bandwidth_bytes_per_cycle",
        "memory.dram_latency_cycles", "memory.loop_order", "memory.output_bits",
        "memory.partial_sum_bits", "memory.activation_codec.bits",
        "memory.activation_codec.transform", "memory.activation_codec.lanes",
        "memory.activation_codec.energy_fraction", "memory.activation_codec.basis_bits",
        "memory.activation_codec.word_bits", "memory.activation_codec", "pe.type", "pe.threads", "pe.window_bits", "pe.options",
        "pe.shifts", "pe.max_shifts", "pe.group_size", "pe.error_threshold", "pe.bits",
        "pe.dynamic_operand", "vector.lanes", "vector.clock_ratio", "vector.cycles.exp",
        "vector.recipes", "vector.integer_ops", "vector.overlap", "vector",
        "energy.tech", "name", "schema_version", "pe", "array", "nope.x", "array.rows.x",
        "multicore.cores", "multicore.partition", "multicore.layers",
        "multicore.interconnect_bytes_per_cycle", "multicore"]


@fuzz(40)
@given(st.sampled_from(ARCHS), st.lists(st.tuples(
    st.sampled_from(KEYS) | st.text(max_size=20),
    st.sampled_from(NASTY).map(lambda v: yaml.safe_dump(v, default_flow_style=True,
                                                        width=1 << 20).strip())
    | st.text(max_size=40)), min_size=1, max_size=3))
def test_set_overrides(name, overrides):
    with Workdir() as folder:
        argv = ["run", "--arch", name, "--workload", _tiny(folder), "--timing-only"]
        for key, value in overrides:
            argv += ["--set", f"{key}={value}"]
        result = run_cli(*argv)
        assert_promise(result)
        if result.status == 2:
            line = result.err
            assert f"{name}" in line or "--set" in line or "tiny.yaml" in line, line


# ----------------------------------------------------------------------------- workload YAML

@fuzz(40)
@given(st.sampled_from(["os_sa_16x16", "sysmt_4t_16x16", "swis_g8_n3_16x16"]), st.data())
def test_workload_yaml(arch, data):
    with Workdir() as folder:
        path = folder / "w.yaml"
        if data.draw(st.booleans()):
            path.write_text(_dump(data.draw(mutated(TINY))))
        else:
            path.write_text(data.draw(mangled_text(_dump(TINY))))
        result = run_cli("run", "--arch", arch, "--workload", path)
        assert_promise(result, "w.yaml")


TINY_TRANSFORMER = {"schema_version": 1, "name": "block", "batch": 2, "phase": "decode",
                    "context_len": 16, "layers": [
    {"name": "q", "op": "linear", "in_features": 16, "out_features": 16,
     "activation_signed": True, "role": "attention"},
    {"name": "scores", "op": "matmul", "in_features": 8, "out_features": 16, "heads": 2,
     "kv_heads": 1, "activation_signed": True, "kv_cache": True, "role": "attention"},
    {"name": "soft", "op": "softmax", "features": 16, "heads": 2, "role": "attention"},
    {"name": "ctx", "op": "matmul", "left": [1, 16], "right": [16, 8], "heads": 2,
     "kv_heads": 1, "kv_cache": True, "role": "attention"},
    {"name": "norm", "op": "layernorm", "features": 16, "activation_signed": True},
    {"name": "pool", "op": "avgpool", "channels": 2, "input_size": 4, "kernel_size": 2}]}


@fuzz(40)
@given(st.sampled_from(["os_sa_16x16", "sparq_5opt_16x16", "swis_g8_n3_16x16",
                        "bitserial_8b_16x16"]), st.data())
def test_transformer_workload_yaml(arch, data):
    with Workdir() as folder:
        path = folder / "w.yaml"
        if data.draw(st.booleans()):
            path.write_text(_dump(data.draw(mutated(TINY_TRANSFORMER))))
        else:
            path.write_text(data.draw(mangled_text(_dump(TINY_TRANSFORMER))))
        result = run_cli("run", "--arch", arch, "--workload", path, "--set",
                         "vector.overlap=true", "--set", "vector.integer=true")
        assert_promise(result, "w.yaml")


# ----------------------------------------------------------------------------- SCALE-Sim

CFG = (REPO / "tests/data/scalesim/conv_is_16x16_smallsram/scalesim.cfg").read_text()
TOPOLOGY = (REPO / "tests/data/scalesim/conv_is_16x16_smallsram/topology.csv").read_text()
CFG_VALUES = st.sampled_from(["nan", "inf", "-1", "0", "1.5", "1e300", "1.0e+20", "1" * 5000,
                              "%", "%(x)s", "", "x", "16, 16", "OS", "ws", "USER", "CALC"])


@st.composite
def cfg_text(draw) -> str:
    lines = CFG.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        key = lines[i].split(":")[0].split("=")[0]
        lines[i] = f"{key}: {draw(CFG_VALUES | st.text(max_size=20))}"
    text = "\n".join(lines) + "\n"
    return draw(st.just(text) | mangled_text(text))


@fuzz(30)
@given(cfg_text())
def test_scalesim_cfg(text):
    with Workdir() as folder:
        path = folder / "x.cfg"
        path.write_text(text)
        result = run_cli("run", "--arch", path, "--workload", _tiny(folder), "--timing-only")
        assert_promise(result, "x.cfg")


CSV_CELLS = st.sampled_from(["0", "-3", "1", "3", "300000", "x", "", "1e3", "1" * 5000,
                             "99999999999999999999", "DP", "DP_conv", '"', "a" * 200_000])


@st.composite
def csv_text(draw) -> str:
    rows = [line.split(",") for line in TOPOLOGY.splitlines()]
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["cell", "cell", "drop_row", "drop_header", "short_row"]))
        if op == "cell":
            i = draw(st.integers(0, len(rows) - 1))
            j = draw(st.integers(0, max(0, len(rows[i]) - 1)))
            if rows[i]:
                rows[i][j] = draw(CSV_CELLS | st.text(max_size=10))
        elif op == "drop_row" and len(rows) > 1:
            del rows[draw(st.integers(1, len(rows) - 1))]
        elif op == "drop_header":
            rows = rows[1:]
        elif rows:
            i = draw(st.integers(0, len(rows) - 1))
            rows[i] = rows[i][: draw(st.integers(0, len(rows[i])))]
    text = "\n".join(",".join(r) for r in rows) + "\n"
    return draw(st.just(text) | mangled_text(text))


@fuzz(30)
@given(csv_text())
def test_topology_csv(text):
    with Workdir() as folder:
        path = folder / "t.csv"
        path.write_text(text)
        result = run_cli("run", "--arch", "os_sa_16x16", "--workload", path, "--timing-only")
        assert_promise(result, "t.csv")


# ----------------------------------------------------------------------------- traces

def _tiny_trace(path: Path) -> Path:
    rng = np.random.default_rng(0)
    conv = Layer(name="c", op="conv2d", in_channels=2, out_channels=4, batch=2,
                 input_size=(5, 5), kernel_size=(3, 3), padding=(1, 1))
    fc = Layer(name="f", op="linear", in_channels=8, out_channels=3, batch=2)
    entries = []
    for layer, x_shape, w_shape in ((conv, (2, 2, 5, 5), (4, 2, 3, 3)),
                                    (fc, (2, 8), (3, 8))):
        x = rng.integers(0, 256, x_shape).astype(np.uint8)
        w = rng.integers(-128, 128, w_shape).astype(np.int8)
        entries.append(TraceEntry(layer, LayerTensors(x, w)))
    return write_trace(path, "tiny", entries, {"tool": "fuzz"}, compress=False)


@st.composite
def trace_members(draw, members: dict) -> dict:
    members = dict(members)
    op = draw(st.sampled_from(["manifest", "manifest", "header", "drop", "extra"]))
    if op == "manifest":
        manifest = json.loads(members["manifest"].item())
        members["manifest"] = np.array(json.dumps(draw(mutated(manifest))))
    elif op == "header":
        key = draw(st.sampled_from(sorted(k for k in members if k != "manifest")))
        shape = draw(st.lists(st.integers(0, 10 ** 12), max_size=5))
        members[key] = ("shape", tuple(shape))
    elif op == "drop":
        del members[draw(st.sampled_from(sorted(members)))]
    else:
        members[draw(st.text(min_size=1, max_size=8))] = np.zeros(3, dtype=np.int64)
    return members


def _write_members(path: Path, members: dict) -> None:
    import io
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for key, value in members.items():
            buf = io.BytesIO()
            if isinstance(value, tuple):  # a header that declares ``shape``, no data
                np.lib.format.write_array_header_1_0(
                    buf, {"descr": "|i1", "fortran_order": False, "shape": value[1]})
            else:
                np.lib.format.write_array(buf, value, allow_pickle=False)
            archive.writestr(f"{key}.npy", buf.getvalue())


@fuzz(40)
@given(st.data())
def test_trace(data):
    with Workdir() as folder:
        path = _tiny_trace(folder / "t.npz")
        if data.draw(st.booleans()):
            with np.load(path) as npz:
                members = {k: npz[k] for k in npz.files}
            _write_members(path, data.draw(trace_members(members)))
        else:
            raw = path.read_bytes()
            at = data.draw(st.integers(0, len(raw)))
            junk = data.draw(st.binary(max_size=64))
            path.write_bytes(raw[:at] + junk + (raw[at:] if data.draw(st.booleans()) else b""))
        command = data.draw(st.sampled_from([["run", "--arch", "sysmt_4t_16x16", "--workload"],
                                             ["inspect"]]))
        result = run_cli(*command, path)
        assert_promise(result, "t.npz")


# ----------------------------------------------------------------------------- sweep specs

SPEC = {"schema_version": 1, "name": "s", "base": ["os_sa_16x16", "sysmt_2t_16x16"],
        "workloads": ["tiny.yaml"], "grid": {"array.rows": [8, 16], "pe.type": ["dense"]},
        "zip": {"array.cols": [8, 16], "memory.dram_latency_cycles": [0, 10]},
        "baseline": {"base": "os_sa_16x16", "array.rows": 8, "array.cols": 8},
        "timing_only": True}


@fuzz(40)
@given(st.data())
def test_sweep_spec(data):
    with Workdir() as folder:
        _tiny(folder)
        path = folder / "spec.yaml"
        if data.draw(st.booleans()):
            path.write_text(_dump(data.draw(mutated(SPEC))))
        else:
            path.write_text(data.draw(mangled_text(_dump(SPEC))))
        result = run_cli("sweep", path, "--out", folder / "out", "--dry-run")
        assert_promise(result, "spec.yaml")


# ----------------------------------------------------------------------------- tech tables

TECH = yaml.safe_load((REPO / "arch_configs/tech/generic_45nm.yaml").read_text())
TECH_VALUES = st.sampled_from(["0.2 pJ", "1e400 pJ", "-1 pJ", "nan pJ", "0.2", "0.2 J",
                               "1 um2", "1e308 um2", 1000, -1000, 0, 1e308, float("nan")])


@fuzz(30)
@given(st.data())
def test_tech_table(data):
    with Workdir() as folder:
        path = folder / "tech.yaml"
        choice = data.draw(st.sampled_from(["mutate", "value", "text"]))
        if choice == "mutate":
            path.write_text(_dump(data.draw(mutated(TECH))))
        elif choice == "value":
            table = copy.deepcopy(TECH)
            leaf = data.draw(st.sampled_from([p for p in _paths(table)
                                              if not isinstance(_get(table, p), dict)]))
            _get(table, leaf[:-1])[leaf[-1]] = data.draw(TECH_VALUES | nasty)
            path.write_text(_dump(table))
        else:
            path.write_text(data.draw(mangled_text(_dump(TECH))))
        result = run_cli("run", "--arch", "os_sa_16x16", "--set", f"energy.tech={path}",
                         "--workload", _tiny(folder), "--timing-only")
        assert_promise(result, "tech.yaml")


# ----------------------------------------------------------------------------- plot inputs

@pytest.fixture(scope="module")
def sweep_results(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    _tiny(folder)
    spec = folder / "spec.yaml"
    spec.write_text(_dump({**SPEC, "base": "os_sa_16x16", "grid": {"array.rows": [8, 16]},
                           "zip": {}, "baseline": {"array.rows": 8}}))
    result = run_cli("sweep", spec, "--out", folder / "out", "--workers", "1")
    assert result.status == 0, result.err
    return folder / "out"


@fuzz(30)
@given(st.data())
def test_plot_results(sweep_results, data):
    with Workdir() as folder:
        out = folder / "res"
        shutil.copytree(sweep_results, out)
        files = sorted(p for p in out.rglob("*") if p.is_file())
        target = data.draw(st.sampled_from(files))
        text = target.read_text()
        if target.suffix == ".json" and data.draw(st.booleans()):
            target.write_text(json.dumps(data.draw(mutated(json.loads(text)))))
        else:
            target.write_text(data.draw(mangled_text(text)))
        kind = data.draw(st.sampled_from(["speedup", "energy", "pareto", "utilization"]))
        result = run_cli("plot", out, "--kind", kind, "--out", folder / "f.png")
        assert_promise(result)
        if result.status == 2:
            assert "res" in result.err, result.err
