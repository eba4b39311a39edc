"""The hardware-in-the-loop model computes what ``sasim run`` computes, and exact INT8 through
the simulator is the exporter's quantised model, image for image."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simulator import api  # noqa: E402
from simulator.accuracy import (HardwareLayer, hardware_layers, prepare,  # noqa: E402
                                with_hardware)
from simulator.config.arch import ArchConfig  # noqa: E402
from simulator.errors import SimulationError  # noqa: E402
from simulator.hw.pe import get_pe_model, option_types  # noqa: E402
from simulator.workloads.layers import LayerTensors, Workload  # noqa: E402

TRACE_IMAGES = 4  # the first images of the shipped trace used by the cross-check


def _pe(spec: str, *overrides: str):
    arch = api.load_arch(spec, overrides)
    return get_pe_model(arch.pe, arch.array)


def _head(workload: Workload, count: int) -> Workload:
    """The first ``count`` images of a trace workload."""
    def tensors(name: str) -> LayerTensors:
        t = workload.tensors(name)
        return LayerTensors(t.input[:count], t.weight, t.bias,
                            None if t.output is None else t.output[:count])
    layers = tuple(dataclasses.replace(layer, batch=count) for layer in workload.layers)
    return dataclasses.replace(workload, layers=layers, tensors=tensors)


def test_digits_setup_reproduces_the_shipped_trace(digits_baseline):
    # load_setup('digits') quantises as `benchmarks/digits_model.py trace` did: same
    # integer weights and biases, same integer inputs of the first traced images
    trace = api.load_workload("digits_int8")
    integer = digits_baseline.qmodel.integer_layers()
    assert sorted(integer) == sorted(layer.name for layer in trace.layers)
    for layer in trace.layers:
        tensors = trace.tensors(layer.name)
        module = integer[layer.name]
        np.testing.assert_array_equal(module.weight_int.numpy(), tensors.weight)
        np.testing.assert_array_equal(module.bias_int.numpy(), tensors.bias)
    inputs = {}

    def record(module, args):
        inputs[module.layer_name] = module.quantize_input(args[0])

    hooks = [m.register_forward_pre_hook(record) for m in integer.values()]
    with torch.no_grad():
        digits_baseline.qmodel(digits_baseline.setup.evaluation.x[:TRACE_IMAGES])
    for hook in hooks:
        hook.remove()
    for layer in trace.layers:
        expected = trace.tensors(layer.name).input[:TRACE_IMAGES]
        np.testing.assert_array_equal(inputs[layer.name].numpy().reshape(expected.shape),
                                      expected)


@pytest.mark.parametrize("pe_type", sorted(option_types()))
def test_hardware_layer_equals_sasim_run_on_the_trace(digits_baseline, pe_type):
    # every registered PE type with its default options: HardwareLayer fed the trace's
    # integer inputs returns the outputs `sasim run --save-outputs` writes
    arch = ArchConfig(name=f"default_{pe_type}", pe=option_types()[pe_type]())
    workload = _head(api.load_workload("digits_int8"), TRACE_IMAGES)
    saved = {}
    api.simulate(arch, workload, output_sink=lambda name, out: saved.setdefault(name, out))
    pe = get_pe_model(arch.pe, arch.array)
    for name, integer in digits_baseline.qmodel.integer_layers().items():
        x = torch.from_numpy(workload.tensors(name).input.astype(np.float64))
        ours = HardwareLayer(integer, pe).accumulator(x).numpy().astype(np.int64)
        np.testing.assert_array_equal(ours, saved[name], err_msg=f"{pe_type} {name}")


def test_exact_int8_through_the_simulator_is_the_exporter_model(digits_baseline):
    # the dense PE on all 540 held-out images: the same logits bit for bit, so the same
    # prediction for every image
    hardware = with_hardware(digits_baseline.qmodel, _pe("os_sa_16x16"))
    x = digits_baseline.setup.evaluation.x
    with torch.no_grad():
        ours, exporter = hardware(x), digits_baseline.qmodel(x)
    assert torch.equal(ours, exporter)
    scores = digits_baseline.evaluate(hardware)
    np.testing.assert_array_equal(scores.predictions, digits_baseline.int8_scores.predictions)
    assert scores.agreement == 1.0 and scores.correct == digits_baseline.int8_scores.correct
    assert set(hardware_layers(hardware)) == set(digits_baseline.qmodel.integer_layers())


@pytest.mark.parametrize("arch, overrides", [
    ("bitserial_8b_16x16", ()), ("sysmt_2t_16x16", ("pe.threads=1",)),
    ("swis_g8_n3_16x16", ("pe.shifts=8",)),
])
def test_exact_settings_of_other_pe_types_match_int8(digits_baseline, arch, overrides):
    x = digits_baseline.setup.evaluation.x[:64]
    hardware = with_hardware(digits_baseline.qmodel, _pe(arch, *overrides))
    with torch.no_grad():
        assert torch.equal(hardware(x), digits_baseline.qmodel(x))


def test_an_approximate_pe_changes_the_logits(digits_baseline):
    x = digits_baseline.setup.evaluation.x[:16]
    hardware = with_hardware(digits_baseline.qmodel, _pe("sysmt_4t_16x16"))
    with torch.no_grad():
        assert not torch.equal(hardware(x), digits_baseline.qmodel(x))
    counters = Counter()
    for layer in hardware_layers(hardware).values():
        counters.update(layer.counters)
    assert counters["shared_reduced"] > 0 and counters["single"] > 0


def test_results_do_not_depend_on_the_batch(tiny_setup):
    # rows of a GEMM are independent: batches of 5 and of 48 images give the same logits
    baseline = prepare(tiny_setup)
    hardware = with_hardware(baseline.qmodel, _pe("sysmt_4t_16x16"))
    x = tiny_setup.evaluation.x
    with torch.no_grad():
        whole = hardware(x)
        pieces = torch.cat([hardware(x[i:i + 5]) for i in range(0, x.shape[0], 5)])
    assert torch.equal(whole, pieces)


def test_only_the_chosen_layers_run_on_the_pe(tiny_setup):
    baseline = prepare(tiny_setup)
    model = with_hardware(baseline.qmodel, _pe("sysmt_4t_16x16"), ["res", "head"])
    assert set(hardware_layers(model)) == {"res", "head"}
    assert not hardware_layers(baseline.qmodel)  # the original is unchanged
    with pytest.raises(SimulationError, match="unknown layer.*nope"):
        with_hardware(baseline.qmodel, _pe("sysmt_4t_16x16"), ["nope"])
    with pytest.raises(SimulationError, match="layer_threads names layers.*missing"):
        with_hardware(baseline.qmodel, _pe("sysmt_4t_16x16", "pe.layer_threads={missing: 2}"))
