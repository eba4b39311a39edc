"""Multi-core runs (docs/memory-model.md, "Multi-core"): the split partitions conserve MACs
and outputs and give the single core's bits; the pipeline's stages are the best contiguous
cut; one core is today's run exactly; per-core reports and timeline lanes; bad input is one
line and exit status 2."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from simulator import api, multicore
from simulator.workloads.layers import Layer, LayerTensors
from simulator.workloads.lowering import exact_output
from simulator.workloads.partition import (pipeline_stages, place_outputs, share_tensors,
                                           split_layer, split_problem)

SMALL = """schema_version: 1
name: mc_small
batch: 4
layers:
  - {name: c1, op: conv2d, in_channels: 3, out_channels: 8, input_size: [9, 9],
     kernel_size: 3, stride: 1, padding: 1, activation_signed: true}
  - {name: c2, op: conv2d, in_channels: 8, out_channels: 16, input_size: [9, 9],
     kernel_size: 3, stride: 2, padding: 1, groups: 2}
  - {name: c3, op: conv2d, in_channels: 16, out_channels: 16, input_size: [5, 5], kernel_size: 1}
  - {name: fc, op: linear, in_features: 400, out_features: 12}
"""
IDEAL = ("memory=ideal",)  # unbounded buffers and bandwidth: the arrays bound a run
BOUNDED = ("memory.ifmap_kib=1", "memory.filter_kib=1", "memory.ofmap_kib=0.5",
           "memory.dram=ddr4_3200")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("mc") / "mc_small.yaml"
    path.write_text(SMALL)
    return path


def _run(arch_name, workload_path, *overrides, functional=True, timeline=False,
         memory=BOUNDED):
    arch = api.load_arch(arch_name, memory + overrides)
    workload = api.load_workload(workload_path)
    outputs = {}
    result = multicore.simulate(arch, workload, functional=functional, timeline=timeline,
                                output_sink=lambda name, out: outputs.__setitem__(name, out))
    return result, outputs


@st.composite
def layers(draw):
    if draw(st.booleans()):
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        groups = draw(st.sampled_from([1, 2]))
        layer = Layer(
            name="L", op="conv2d", in_channels=groups * draw(st.integers(1, 3)),
            out_channels=groups * draw(st.integers(1, 6)), batch=draw(st.integers(1, 4)),
            input_size=(draw(st.integers(kh, 11)), draw(st.integers(kw, 7))),
            kernel_size=(kh, kw), stride=(draw(st.integers(1, 3)), draw(st.integers(1, 2))),
            padding=(draw(st.integers(0, 2)), draw(st.integers(0, 1))),
            dilation=(draw(st.integers(1, 2)), 1), groups=groups,
            output_rule=draw(st.sampled_from(["pytorch", "scalesim"])))
    else:
        layer = Layer(name="L", op=draw(st.sampled_from(["linear", "gemm"])),
                      in_channels=draw(st.integers(1, 9)), out_channels=draw(st.integers(1, 8)),
                      batch=draw(st.integers(1, 9)))
    assume(not list(layer.problems()))
    return layer


def _tensors(layer: Layer, seed: int) -> LayerTensors:
    rng = np.random.default_rng(seed)
    if layer.op == "conv2d":
        x = rng.integers(-8, 8, (layer.batch, layer.in_channels, *layer.input_size))
        w = rng.integers(-8, 8, (layer.out_channels, layer.in_channels // layer.groups,
                                 *layer.kernel_size))
    else:
        x = rng.integers(-8, 8, (layer.batch, layer.in_channels))
        w = rng.integers(-8, 8, (layer.out_channels, layer.in_channels))
    bias = rng.integers(-50, 50, layer.out_channels)
    return LayerTensors(input=x, weight=w, bias=bias)


@settings(max_examples=150, deadline=None)
@given(layers(), st.sampled_from(["batch", "output_channels", "spatial"]),
       st.integers(2, 4), st.integers(0, 1000))
def test_split_shares_conserve_macs_and_put_back_the_exact_outputs(layer, partition, cores,
                                                                   seed):
    problem = split_problem(layer, partition, cores)
    assume(problem is None)
    shares = split_layer(layer, partition, cores)
    assert len(shares) == cores
    assert sum(s.layer.gemm.macs for s in shares) == layer.gemm.macs
    outputs_of = [s.layer.gemm.m * s.layer.gemm.n * s.layer.gemm.groups for s in shares]
    assert sum(outputs_of) == layer.gemm.m * layer.gemm.n * layer.gemm.groups
    tensors = _tensors(layer, seed)
    whole = exact_output(tensors, layer)
    parts = []
    for share in shares:
        assert not list(share.layer.problems())
        part = exact_output(share_tensors(layer, share, tensors), share.layer)
        parts.append(part)
    np.testing.assert_array_equal(place_outputs(layer, shares, parts), whole)


def test_split_problems_name_what_does_not_divide():
    conv = Layer(name="L", op="conv2d", in_channels=4, out_channels=6, batch=3,
                 input_size=(3, 3), kernel_size=(3, 3))
    assert "batch 3 is not divisible by 2 cores" in split_problem(conv, "batch", 2)
    assert "6 output channels per group" in split_problem(conv, "output_channels", 4)
    assert "1 output rows cannot be shared by 2 cores" in split_problem(conv, "spatial", 2)
    matmul = Layer(name="M", op="matmul", in_channels=4, out_channels=4, tokens=4)
    assert "not matmul" in split_problem(matmul, "spatial", 2)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=8), st.integers(1, 8))
def test_pipeline_stages_are_the_best_contiguous_cut(macs, cores):
    assume(cores <= len(macs))
    stages = pipeline_stages(macs, cores)
    assert len(stages) == cores and stages[0][0] == 0 and stages[-1][1] == len(macs)
    assert all(lo < hi for lo, hi in stages)
    assert all(a[1] == b[0] for a, b in zip(stages, stages[1:]))
    best = min(max(sum(macs[lo:hi]) for lo, hi in zip((0, *cuts), (*cuts, len(macs))))
               for cuts in itertools.combinations(range(1, len(macs)), cores - 1))
    assert max(sum(macs[lo:hi]) for lo, hi in stages) == best


@pytest.mark.parametrize("partition", ["batch", "output_channels", "spatial", "pipeline"])
def test_every_partition_computes_the_single_cores_bits(small, partition):
    """SySMT's outputs depend on each output's own operands only, so cores computing
    disjoint outputs give the single core's bits; the MACs and PE counters add up."""
    one, one_out = _run("sysmt_2t_16x16", small)
    many, many_out = _run("sysmt_2t_16x16", small, "multicore.cores=2",
                          f"multicore.partition={partition}")
    assert one_out.keys() == many_out.keys()
    for name in one_out:
        np.testing.assert_array_equal(many_out[name], one_out[name], err_msg=name)
    assert many.macs == one.macs
    for a, b in zip(one.layers, many.layers):
        assert a.counters == b.counters
        assert a.max_abs_error == b.max_abs_error
        assert b.sqnr_db == pytest.approx(a.sqnr_db)
    summary = many.summary()
    cores = summary["multicore"]["per_core"]
    assert [c["core"] for c in cores] == [0, 1]
    assert sum(c["macs"] for c in cores) == one.macs
    for core in cores:
        assert core["busy_cycles"] == core["compute_cycles"] + core["stall_cycles"]
        assert core["busy_cycles"] + core["idle_cycles"] == summary["total_cycles"]
        assert 0 < core["utilization"] <= 1
    assert summary["multicore"]["energy_per_inference_uj"] == pytest.approx(
        summary["energy_pj"] / 4 * 1e-6)


def test_one_core_is_todays_run_exactly(small):
    arch = api.load_arch("sysmt_2t_16x16", BOUNDED)
    workload = api.load_workload(small)
    today = api.simulate(arch, workload, timeline=True)
    through = multicore.simulate(arch, workload, timeline=True)
    assert through.summary() == today.summary()
    assert "multicore" not in today.summary()


def test_a_split_layer_ends_with_its_last_core(small):
    result, _ = _run("os_sa_16x16", small, "multicore.cores=3", "multicore.partition=spatial",
                     "memory.prefetch=none", functional=False, timeline=True)
    by_layer = {}
    for line in result.timeline:
        by_layer.setdefault(line.layer, []).append(line)
    for layer in result.layers:
        lines = by_layer[layer.name]
        assert sorted(line.core for line in lines) == [0, 1, 2]
        assert len({line.origin for line in lines}) == 1
        assert layer.total_cycles == max(line.elapsed for line in lines)
    assert result.total_cycles == sum(layer.total_cycles for layer in result.layers)


def test_more_cores_finish_a_compute_bound_batch_sooner_and_the_area_scales(small):
    one, _ = _run("os_sa_16x16", small, functional=False, memory=IDEAL)
    two, _ = _run("os_sa_16x16", small, "multicore.cores=2", functional=False, memory=IDEAL)
    assert two.total_cycles < one.total_cycles  # unbounded memory: the arrays bound it
    one, _ = _run("os_sa_16x16", small, functional=False)  # buffers of configured sizes
    two, _ = _run("os_sa_16x16", small, "multicore.cores=2", functional=False)
    assert two.area.total_um2 == pytest.approx(2 * one.area.total_um2)


def test_the_interconnect_never_speeds_a_run_up(small):
    free, _ = _run("os_sa_16x16", small, "multicore.cores=2", functional=False)
    slow, _ = _run("os_sa_16x16", small, "multicore.cores=2",
                   "multicore.interconnect_bytes_per_cycle=0.5", functional=False)
    assert slow.total_cycles > free.total_cycles


def test_per_layer_partitions_override_the_arch(small):
    result, _ = _run("os_sa_16x16", small, "multicore.cores=2",
                     "multicore.layers={c1: spatial, fc: output_channels}", functional=False)
    assert result.summary()["multicore"]["layer_partitions"] == {
        "c1": "spatial", "fc": "output_channels"}


def test_the_report_and_the_timeline_show_each_core(small, cli, tmp_path):
    trace = tmp_path / "t.json"
    result = cli("run", "--arch", "os_sa_16x16", "--workload", small, "--timing-only",
                 *(f"--set={o}" for o in BOUNDED), "--set", "multicore.cores=2",
                 "--set", "multicore.partition=pipeline", "--timeline", trace)
    assert result.status == 0, result.err
    assert "cores: 2, partition pipeline" in result.out
    assert "  core 1: " in result.out
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert names[2] == "core 0" and names[3] == "core 1"
    assert {e["pid"] for e in events if e["ph"] == "X"} == {2, 3}


@pytest.mark.parametrize("overrides, message", [
    (["multicore.cores=0"], "multicore.cores: expected a number from 1 to 1,024"),
    (["multicore.cores=3"], "layer 'c1': batch 4 is not divisible by 3 cores"),
    (["multicore.cores=3", "multicore.partition=output_channels"],
     "layer 'c1': 8 output channels per group"),
    (["multicore.cores=6", "multicore.partition=spatial"],
     "layer 'c2': 5 output rows cannot be shared by 6 cores"),
    (["multicore.cores=5", "multicore.partition=pipeline"],
     "pipeline needs at least one layer per core; the workload has 4"),
    (["multicore.cores=2", "multicore.layers={nope: batch}"],
     "multicore.layers: no layer named 'nope'"),
    (["multicore.cores=2", "multicore.partition=bogus"], "multicore.partition"),
    (["multicore.cores=2", "memory.compression.activations=rle",
      "memory.compression.run_bits=30"], "memory.compression"),
    (["multicore.cores=2", "memory.activation_codec.bits=6",
      "memory.activation_codec.tensor=pre_activation"],
     "memory.activation_codec.tensor: pre_activation is modelled by sasim accuracy only"),
])
def test_bad_input_is_one_line_and_exit_2(small, cli, overrides, message):
    result = cli("run", "--arch", "os_sa_16x16", "--workload", small, "--timing-only",
                 *itertools.chain.from_iterable(("--set", o) for o in overrides))
    assert result.status == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_a_trace_split_over_cores_matches_its_recorded_outputs():
    """The digits trace's recorded outputs, on two cores sharing each layer's output
    channels (its depthwise layer, one channel per group, shares output rows instead)."""
    arch = api.load_arch("os_sa_16x16", ["multicore.cores=2",
                                         "multicore.partition=output_channels",
                                         "multicore.layers={dw: spatial}"])
    result = multicore.simulate(arch, api.load_workload("digits_int8"))
    assert all(layer.output_matches_trace for layer in result.layers)
    assert result.summary()["outputs_match_trace"] is True


def test_a_sweep_over_the_core_count(small, cli, tmp_path):
    """Sweep points with more than one core run through the multi-core model."""
    spec = tmp_path / "cores.yaml"
    spec.write_text(f"schema_version: 1\nname: cores\nbase: os_sa_16x16\n"
                    f"workloads: [{small}]\ngrid:\n  memory: [ideal]\n"
                    f"  multicore.cores: [1, 2, 4]\n"
                    f"timing_only: true\n")
    result = cli("sweep", spec, "--out", tmp_path / "out", "--workers", "1")
    assert result.status == 0, result.err
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    cycles = {int(row.split(",")[header.index("multicore.cores")]):
              int(row.split(",")[header.index("total_cycles")]) for row in rows[1:]}
    assert cycles[4] < cycles[2] < cycles[1]  # unbounded memory: the arrays bound it


@pytest.mark.parametrize("partition", ["batch", "pipeline"])
def test_a_transformer_with_vector_layers_on_two_cores(partition):
    """The digits ViT trace: its vector layers are shared by rows (each core has a vector
    unit); the array layers' outputs are the single core's bits, the vector layers' error
    and operations the same, and the area has two vector units."""
    workload = api.load_workload("digits_vit_int8")
    one_out, many_out = {}, {}
    arch = api.load_arch("sysmt_2t_16x16")
    one = api.simulate(arch, workload, output_sink=one_out.__setitem__)
    arch = api.load_arch("sysmt_2t_16x16", ["multicore.cores=2",
                                            f"multicore.partition={partition}"])
    many = multicore.simulate(arch, workload, output_sink=many_out.__setitem__)
    assert one_out.keys() == many_out.keys()
    for name in one_out:
        np.testing.assert_array_equal(many_out[name], one_out[name], err_msg=name)
    for a, b in zip(one.layers, many.layers):
        assert (a.name, a.macs, a.counters) == (b.name, b.macs, b.counters)
        assert a.vector_operations == b.vector_operations
        assert a.vector_sqnr_db == b.vector_sqnr_db
    assert many.area.total_um2 == pytest.approx(2 * one.area.total_um2, rel=0.05)


# -- every memory feature on several cores (docs/memory-model.md, "Multi-core") ----------

#: The features a single-core run models, each on a small arch: (arch, overrides).
FEATURES = {
    "compression": ("swis_g8_n3_16x16", ("memory.compression.activations=bitmask",)),
    "rle": ("os_sa_16x16", ("memory.compression.activations=rle",)),
    "codec": ("os_sa_16x16_codec_b6", ()),
    "zap": ("zap_synthetic_16x16", ()),
    "prefetch_weights": ("sysmt_2t_16x16", ("memory.prefetch=weights",)),
    "prefetch_all": ("sysmt_2t_16x16", ("memory.prefetch=all",)),
    "no_prefetch": ("os_sa_16x16", ("memory.prefetch=none",)),
}


def _differences(a, b, path=""):
    """Where two summaries differ (paths), for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in _differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [(path, a, b)]


def _one_core_both_ways(arch_name, workload, overrides, functional):
    arch = api.load_arch(arch_name, BOUNDED + tuple(overrides))
    workload = api.load_workload(workload)
    today_out, model_out = {}, {}
    today = api.simulate(arch, workload, functional=functional, timeline=True,
                         output_sink=today_out.__setitem__)
    model = multicore.simulate_cores(arch, workload, functional=functional, timeline=True,
                                     output_sink=model_out.__setitem__)
    return today, model, today_out, model_out


@pytest.mark.parametrize("feature", sorted(FEATURES))
@pytest.mark.parametrize("partition", ["batch", "output_channels", "spatial", "pipeline"])
def test_one_core_of_the_multicore_model_is_the_single_core_run(small, tmp_path, feature,
                                                                partition):
    """The multi-core model itself with one core (any partition) gives the single-core
    run's figures exactly, every layer's, with each feature on: its shares' stored sizes,
    codec, ZAP decisions, prefetch chains are the single array's; the outputs' bits too.
    (A pipeline streams the batch image by image, so on one core it is the single array's
    run of a batch of one; its DRAM preset is one device for the whole run, its figures
    shared among the layers by bytes, so it runs on the fixed-bandwidth channel here.)"""
    arch_name, overrides = FEATURES[feature]
    workload = small
    if partition == "pipeline":
        workload = tmp_path / "mc_small_1.yaml"
        workload.write_text(SMALL.replace("batch: 4", "batch: 1"))
        overrides = (*overrides, "memory.dram=ideal", "memory.dram_bandwidth_bytes_per_cycle=4",
                     "memory.dram_latency_cycles=3")
    today, model, today_out, model_out = _one_core_both_ways(
        arch_name, workload, (*overrides, f"multicore.partition={partition}"),
        functional=feature in ("zap", "codec", "compression"))
    summary = model.summary()
    assert summary.pop("multicore")["cores"] == 1
    assert _differences(today.summary(), summary) == []
    assert today_out.keys() == model_out.keys()
    for name in today_out:
        np.testing.assert_array_equal(model_out[name], today_out[name], err_msg=name)
    mine = [(line.name, line.origin, line.elapsed, line.start.tolist(), line.load_end.tolist())
            for line in model.timeline]
    theirs = [(line.name.removesuffix(" image 0"), line.origin, line.elapsed,
               line.start.tolist(), line.load_end.tolist()) for line in today.timeline]
    assert [(m[0].removesuffix(" image 0"), *m[1:]) for m in mine] == theirs


def test_one_core_overlapping_vector_layers_is_the_single_core_run():
    """``vector.overlap`` on the ViT trace: a vector layer beside the next array layer,
    its transfers on a channel of its own, as on one array."""
    today, model, _, _ = _one_core_both_ways("os_sa_16x16", "digits_vit_int8",
                                             ("vector.overlap=true",), functional=False)
    summary = model.summary()
    summary.pop("multicore")
    assert _differences(today.summary(), summary) == []
    assert sum(layer.overlap_cycles for layer in model.layers) > 0


@pytest.mark.parametrize("feature", ["compression", "codec", "zap", "prefetch_weights"])
@pytest.mark.parametrize("partition", ["batch", "output_channels", "spatial", "pipeline"])
def test_every_feature_on_two_cores_gives_the_single_cores_bits(small, feature, partition):
    """Each core's share runs on its slice (its stored sizes, its codec stream, its part of
    ZAP's decisions); put together the outputs are the single array's, bit for bit, and
    the counts that add up do: ZAP's gated outputs and MACs saved, the MACs."""
    arch_name, overrides = FEATURES[feature]
    one, one_out = _run(arch_name, small, *overrides)
    many, many_out = _run(arch_name, small, *overrides, "multicore.cores=2",
                          f"multicore.partition={partition}")
    assert one_out.keys() == many_out.keys() and one_out
    for name in one_out:
        np.testing.assert_array_equal(many_out[name], one_out[name], err_msg=name)
    assert many.macs == one.macs
    for a, b in zip(one.layers, many.layers):
        if feature == "zap" and a.zap is not None:
            for key in ("outputs", "predicted_zero", "macs_saved", "mispredicted_nonzero",
                        "predictor_macs"):
                assert b.zap[key] == a.zap[key], (a.name, key)
        shares = 4 if partition == "pipeline" else 2  # a pipeline's shares are its images
        if feature == "codec" and a.codec.get("values"):  # each share its own stream
            loads_all = partition == "output_channels"  # every core loads the whole input
            if partition == "spatial":  # each band with its halo and edge padding rows
                assert b.codec["values"] >= a.codec["values"]
            else:
                assert b.codec["values"] == a.codec["values"] * (2 if loads_all else 1)
            assert b.codec["table_bytes"] == a.codec["table_bytes"] * shares
        if feature == "compression":  # the shares' weights: each its own stored size
            mine, theirs = b.compression["filter"], a.compression["filter"]
            assert (mine is None) == (theirs is None)
            if theirs is not None:
                assert mine["values"] == theirs["values"] * (
                    1 if partition == "output_channels" else shares)
    summary = many.summary()
    for core in summary["multicore"]["per_core"]:
        assert core["busy_cycles"] + core["idle_cycles"] == summary["total_cycles"]


_CHILD_VS_THREAD = """
import json, os, signal, sys
from simulator import api, multicore
from simulator.errors import SimulationError
from tests.test_multicore import BOUNDED, FEATURES, _differences

forked = []
in_process = multicore.in_process
multicore.in_process = lambda *a, **k: forked.append(1) or in_process(*a, **k)
out = {}
shares = multicore._Run._layer_shares
def dies(self, layer):  # the child killed (out of memory, say) at layer c2
    if layer.name == "c2":
        os.kill(os.getpid(), signal.SIGKILL)
    return shares(self, layer)
multicore._Run._layer_shares = dies
arch = api.load_arch("sysmt_2t_16x16", BOUNDED + ("multicore.cores=2",))
try:
    multicore.simulate(arch, api.load_workload(sys.argv[1]), functional=True)
except SimulationError as exc:
    out["died"] = str(exc)
multicore._Run._layer_shares = shares
forked.clear()
for case in sys.argv[2:]:
    feature, partition = case.split(":")
    arch_name, overrides = FEATURES[feature]
    arch = api.load_arch(arch_name, BOUNDED + overrides + (
        "multicore.cores=2", f"multicore.partition={partition}"))
    workload = api.load_workload(sys.argv[1])
    multicore.PREPARE_IN = "process"
    child = multicore.simulate(arch, workload, functional=True).summary()
    multicore.PREPARE_IN = "thread"
    thread = multicore.simulate(arch, workload, functional=True).summary()
    # with an output sink the functional models run before each layer's program
    sunk = multicore.simulate(arch, workload, functional=True,
                              output_sink=lambda name, out: None).summary()
    # (an exact PE measures the outputs' signal power only when it computes them)
    out[case] = [len(forked), _differences(child, thread),
                 [d for d in _differences(child, sunk) if not d[0].endswith("signal_power")]]
    forked.clear()
print(json.dumps(out))
"""


def test_layers_prepared_in_a_child_process_give_the_threads_result(small):
    """A functional run without an output sink prepares its layers in a forked process
    (docs/performance.md, "Multi-core runs"), every program first when they need no data:
    the report is the one a thread gives, and the one a run that saves its outputs (each
    layer's functional model before its program, in a thread) gives; a child that dies is
    one line naming the layer it was preparing. (In a
    fresh interpreter: a test process may have started numba's threads, and then does not
    fork.)"""
    import os
    import subprocess
    import sys
    from pathlib import Path

    # SWIS (compression) last: its kernels start numba's threads, and then nothing forks
    cases = [f"{feature}:{partition}" for feature in ("codec", "zap", "prefetch_weights",
                                                      "no_prefetch")
             for partition in ("batch", "spatial", "pipeline")] + ["compression:pipeline"]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", _CHILD_VS_THREAD, str(small), *cases],
                          capture_output=True, text=True, timeout=600, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out.pop("died").endswith("layer 'c2': the process preparing the layers ended "
                                     "(exit status -9) before it finished")
    assert out == {case: [1, [], []] for case in cases}


def test_compressed_sizes_come_from_each_cores_slice(small, tmp_path):
    """A layer whose first images are all zero: with the batch split, core 0's bitmask
    input is smaller than core 1's (its size is its own slice's, not the layer's)."""
    arch = api.load_arch("os_sa_16x16", BOUNDED + ("memory.compression.activations=bitmask",
                                                   "multicore.cores=2"))
    workload = api.with_synthetic_data(api.load_workload(small))
    tensors = workload.tensors

    def zeroed(name):
        data = tensors(name)
        x = np.array(data.input)
        x[: x.shape[0] // 2] = 0
        return LayerTensors(input=x, weight=data.weight, bias=data.bias)

    workload = dataclasses.replace(workload, tensors=zeroed)
    result = multicore.simulate(arch, workload, functional=False, timeline=True)
    ifmap = {(line.layer, line.core): int(line.load_bytes[:, 0].sum())
             for line in result.timeline}
    for layer in ("c1", "c2", "c3"):
        assert ifmap[layer, 0] < ifmap[layer, 1], layer


def test_chained_cores_tile_the_run_and_stay_within_their_buffers(small):
    """Cross-layer prefetch within each core: a core starts its next layer without waiting
    for the others (origins differ), the layers' spans still tile the run, and every core's
    buffers stay within their capacity."""
    result, _ = _run("os_sa_16x16", small, "multicore.cores=2", "multicore.partition=spatial",
                     "memory.prefetch=all", functional=False, timeline=True)
    alone, _ = _run("os_sa_16x16", small, "multicore.cores=2", "multicore.partition=spatial",
                    "memory.prefetch=none", functional=False)
    assert result.total_cycles == sum(layer.total_cycles for layer in result.layers)
    assert result.total_cycles < alone.total_cycles
    origins = {}
    for line in result.timeline:
        origins.setdefault(line.layer, set()).add(line.origin)
    assert any(len(o) > 1 for o in origins.values())
    for layer in result.layers:
        assert layer.peak_ifmap_bytes <= 1024 and layer.peak_filter_bytes <= 1024
        assert layer.peak_ofmap_bytes <= 512


@pytest.mark.parametrize("arch_name, overrides", [
    ("swis_g8_n3_16x16", ["memory.compression.activations=rle"]),
    ("os_sa_16x16_codec_b6", []),
    ("zap_synthetic_16x16", []),
    ("os_sa_16x16", ["memory.prefetch=weights", "multicore.partition=pipeline"]),
])
def test_formerly_refused_combinations_run_from_the_cli(small, cli, arch_name, overrides):
    result = cli("run", "--arch", arch_name, "--workload", small,
                 *itertools.chain.from_iterable(("--set", o) for o in (
                     *BOUNDED, "multicore.cores=2", *overrides)))
    assert result.status == 0, result.err
    assert "cores: 2, partition" in result.out


@pytest.mark.parametrize("partition", ["batch", "pipeline"])
def test_vector_overlap_on_two_cores_from_the_cli(cli, partition):
    """Each core's vector unit beside its array share: cycles are hidden, and a core's
    busy cycles count them once (busy + idle is the run)."""
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_vit_int8",
                 "--timing-only", "--set", "vector.overlap=true", "--set", "multicore.cores=2",
                 "--set", f"multicore.partition={partition}", "--set", "memory.ifmap_kib=4",
                 "--set", "memory.filter_kib=4", "--set", "memory.ofmap_kib=2", "--json")
    assert result.status == 0, result.err
    summary = json.loads(result.out)
    assert summary["multicore"]["cores"] == 2 and summary["overlap_cycles"] > 0
    for core in summary["multicore"]["per_core"]:
        assert core["idle_cycles"] >= 0
        assert core["busy_cycles"] + core["idle_cycles"] == summary["total_cycles"]


def test_a_transformer_trace_without_its_inference_object_is_not_pipelined(tmp_path, cli):
    """Without ``inference`` the sequences of a transformer trace are unknown (its rows are
    tokens): a pipeline over them is refused in one line that says so, not with a split
    problem of some layer; other partitions still run."""
    import json

    from simulator import shipped

    source = shipped.folder("workloads") / "digits_vit_int8.npz"
    with np.load(source) as data:
        arrays = {name: data[name] for name in data.files}
    manifest = json.loads(str(arrays.pop("manifest")))
    manifest.pop("inference")
    path = tmp_path / "vit.npz"
    np.savez(path, manifest=np.array(json.dumps(manifest)), **arrays)
    result = cli("run", "--arch", "sysmt_2t_16x16", "--workload", path, "--timing-only",
                 "--set", "multicore.cores=2", "--set", "multicore.partition=pipeline")
    assert result.status == 2 and result.err.count("\n") == 1, result.err
    assert "no 'inference' object" in result.err and str(path) in result.err
    result = cli("run", "--arch", "sysmt_2t_16x16", "--workload", path, "--timing-only",
                 "--set", "multicore.cores=2", "--set", "multicore.partition=batch")
    assert result.status == 0, result.err
