"""ZAP's energy (docs/energy-model.md, "ZAP"): the skipped steps against a naive count, the
priced run against its parts recomputed from the tech table."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import api
from simulator.energy.zap import logic_actions, skipped_counters
from simulator.hw import zap as hw_zap
from simulator.workloads.layers import Layer


def naive_active(x, w, layer: Layer):
    """Per output (n, f, p, q): the window's taps whose activation and weight are both
    non-zero, by plain loops (stride, padding, dilation, groups)."""
    n_img, c, h, wd = x.shape
    f, cg, r, s = w.shape
    p_out, q_out = layer.output_size
    fg = f // layer.groups
    out = np.zeros((n_img, f, p_out, q_out), dtype=np.int64)
    for n in range(n_img):
        for o in range(f):
            g = o // fg
            for p in range(p_out):
                for q in range(q_out):
                    count = 0
                    for ci in range(cg):
                        for i in range(r):
                            for j in range(s):
                                y = p * layer.stride[0] - layer.padding[0] + i * layer.dilation[0]
                                z = q * layer.stride[1] - layer.padding[1] + j * layer.dilation[1]
                                if 0 <= y < h and 0 <= z < wd and x[n, g * cg + ci, y, z] \
                                        and w[o, ci, i, j]:
                                    count += 1
                    out[n, o, p, q] = count
    return out


@pytest.mark.parametrize("seed", range(4))
def test_active_steps_equal_the_naive_count(seed):
    rng = np.random.default_rng(seed)
    g = int(rng.choice([1, 2]))
    layer = Layer(name="c", op="conv2d", in_channels=2 * g, out_channels=3 * g, batch=2,
                  input_size=(6, 7), kernel_size=(3, 3), stride=(1, int(rng.integers(1, 3))),
                  padding=(1, 1), groups=g)
    x = rng.integers(0, 4, (2, 2 * g, 6, 7)) * (rng.random((2, 2 * g, 6, 7)) < 0.5)
    w = rng.integers(-2, 3, (3 * g, 2, 3, 3))
    kept = rng.random((2, 3 * g, *layer.output_size)) < 0.6
    counts = naive_active(x, w, layer)
    assert hw_zap.active_steps(x, w, layer, kept) == (int(counts[~kept].sum()),
                                                      int(counts.sum()))


def test_dense_skipped_counters_are_exact():
    """The dense PE: a gated-off output's K steps are its active steps (single) and the rest
    (idle)."""
    counters = {"idle": 1000, "single": 600}
    assert skipped_counters(counters, 16, 10, 70, 600) == {"single": 70, "idle": 90}


def test_logic_counts_the_comparisons_and_the_queue():
    report = {"predicted": 100, "predicted_zero": 30, "schedule": "compact"}
    assert logic_actions(report) == {"comparator_bit": 1600, "logic_bit": 100.0,
                                     "register_bit": 2 * 16 * 70}
    assert "register_bit" not in logic_actions({**report, "schedule": "none"})


@pytest.mark.parametrize("placement", ["side_unit", "array"])
def test_run_prices_the_predictor_and_the_skipped_steps(placement):
    """On the digits trace (dense PE): a ZAP layer's multiplier energy is e(mult) x (its
    active steps not skipped + the predictor's MACs), and its skipped energy is e(mult +
    add) x the skipped active steps; the side unit's area and registers follow its lanes."""
    arch = api.load_arch("os_sa_16x16", ["zap.enabled=true", "zap.threshold=0.2",
                                         f"zap.predictor={placement}", "zap.lanes=32"])
    result = api.simulate(arch, api.load_workload("digits_int8"))
    tech = api.load_tech_table(arch.energy.tech)
    mult = tech.components["mult_8x8"].energy_pj
    add = tech.components["adder_32"].energy_pj
    zapped = [l for l in result.layers if l.zap]
    assert zapped
    for lay in zapped:
        z = lay.zap
        assert z["skipped_active_steps"] > 0
        run_steps = lay.counters["single"] - z["skipped_active_steps"]
        assert lay.energy_breakdown_pj["multipliers"] == pytest.approx(
            mult * (run_steps + z["predictor_macs"]), rel=1e-12)
        assert z["energy_skipped_pj"] == pytest.approx((mult + add) * z["skipped_active_steps"])
        assert z["energy_predictor_pj"] == pytest.approx((mult + add) * z["predictor_macs"])
        if placement == "side_unit":
            lane = (tech.components["mult_8x8"].area_um2
                    + tech.components["adder_32"].area_um2
                    + 48 * tech.components["register_bit"].area_um2)
            assert z["side_unit_area_um2"] == pytest.approx(32 * lane)
            assert z["energy_side_unit_register_pj"] == pytest.approx(
                32 * 48 * z["predictor_cycles"] * tech.energy_pj("register_bit"))
        else:
            assert "side_unit_area_um2" not in z
    totals = result.summary()["zap"]
    assert totals["energy_skipped_pj"] == pytest.approx(sum(l.zap["energy_skipped_pj"]
                                                            for l in zapped))
