"""ZAP in the accuracy loop (docs/zap.md): the same gated outputs as ``sasim run``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simulator import api  # noqa: E402
from simulator.accuracy import evaluate_accuracy  # noqa: E402
from simulator.accuracy.evaluation import arch_pe, zap_plan  # noqa: E402
from simulator.accuracy.hardware import hardware_layers, with_hardware  # noqa: E402
from simulator.export.digits import TRACE_SAMPLES, digits_split  # noqa: E402

SETTINGS = ["zap.enabled=true", "zap.threshold=0.3", "zap.mask_type=6"]


@pytest.fixture(scope="module")
def digits_96(digits_baseline):
    """The prepared digits model, evaluated on its first 96 held-out images only."""
    setup, int8 = digits_baseline.setup, digits_baseline.int8_scores
    return dataclasses.replace(
        digits_baseline, setup=dataclasses.replace(setup, evaluation=setup.evaluation.head(96)),
        int8_scores=dataclasses.replace(int8, predictions=int8.predictions[:96]))


def test_the_loop_gates_the_stem_as_the_run_does(digits_96):
    digits_baseline = digits_96
    arch = api.load_arch("os_sa_16x16", SETTINGS)
    model = with_hardware(digits_baseline.qmodel, arch_pe(arch),
                          zap=zap_plan(arch, digits_baseline))
    stem = hardware_layers(model)["stem"]
    seen = []
    original = stem.accumulator
    stem.accumulator = lambda xq: seen.append(original(xq)) or seen[-1]
    with torch.no_grad():
        model(digits_split("test")[0][:TRACE_SAMPLES])
    saved = {}
    api.simulate(arch, api.load_workload("digits_int8"),
                 output_sink=lambda name, out: saved.setdefault(name, out))
    assert np.array_equal(seen[0].numpy().astype(np.int64), saved["stem"])
    assert stem.zap_counts["predicted_zero"] > 0


def test_report_counts_and_direction(digits_96):
    digits_baseline = digits_96
    low, high = (evaluate_accuracy(api.load_arch("os_sa_16x16", [
        "zap.enabled=true", f"zap.threshold={t}"]), digits_baseline) for t in (0.0, 0.5))
    for report in (low, high):
        z = report["zap"]
        assert set(z["layers"]) == {"stem", "layer1.conv1", "layer2.conv1", "dw", "pw"}
        assert not z["synthetic"]
        assert 0 < z["macs_saved_fraction"] < z["macs_saved_fraction_eligible"] < 0.5
    # a higher threshold gates more outputs and loses more activation mass (docs/zap.md)
    assert high["zap"]["macs_saved_fraction"] > low["zap"]["macs_saved_fraction"]
    assert high["zap"]["mass_lost_fraction"] > low["zap"]["mass_lost_fraction"]
    assert high["hardware"]["loss"] > low["hardware"]["loss"]
    everything = evaluate_accuracy(api.load_arch("os_sa_16x16", [
        "zap.enabled=true", "zap.threshold=1000000"]), digits_baseline)["zap"]
    for z in everything["layers"].values():  # nothing predicted is computed: half of each
        assert z["predicted_zero"] == z["predicted"] and 2 * z["predicted"] == z["outputs"]
