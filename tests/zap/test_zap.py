"""ZAP (docs/zap.md): the fast kernels against the naive twin, the run's report, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import naive_zap
from simulator import api
from simulator.hw import zap as hw_zap
from simulator.kernels import zap as kz

SHARES = [11, 22, 25, 33, 40, 50, 60, 67, 75, 78, 89]


@pytest.mark.parametrize("kind", range(11))
def test_mask_patterns_match_the_naive_twin_and_the_shares(kind):
    h, w = 30, 30  # a multiple of every tile (2, 3, 5)
    fast = kz.mask_pattern(kind, h, w)
    naive = np.array([[naive_zap.computed(kind, y, x) for x in range(w)] for y in range(h)])
    assert np.array_equal(fast, naive)
    assert round(100 * fast.mean()) == SHARES[kind]
    small = kz.mask_pattern(kind, 7, 4)  # anchored at (0, 0): a crop of the large one
    assert np.array_equal(small, fast[:7, :4])


def test_mask_type_out_of_range_is_refused():
    with pytest.raises(ValueError):
        kz.mask_pattern(11, 4, 4)


def _random_layer(rng, n, c, h, w):
    outputs = rng.integers(-60, 60, size=(n, c, h, w))
    scale = rng.uniform(0.01, 0.1, size=c)
    weights = [rng.normal(0, 1, size=(c, 3, 3)), rng.normal(0, 0.3, size=c),
               rng.normal(0, 1, size=(c, 3, 3)), rng.normal(0, 0.3, size=c)]
    return outputs, scale, weights


@pytest.mark.parametrize("seed", range(6))
def test_gating_and_accounting_equal_the_naive_twin(seed):
    rng = np.random.default_rng(seed)
    n, c, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(2, 8)), \
        int(rng.integers(2, 8))
    outputs, scale, (w1, b1, w2, b2) = _random_layer(rng, n, c, h, w)
    kind = int(rng.integers(0, 11))
    threshold = float(rng.choice([0.0, 0.1, 0.3, 0.5]))
    predictor = hw_zap.Predictor(w1, b1, w2, b2, scale)
    plan = hw_zap.LayerZap("conv", kind, threshold, predictor, synthetic=False)
    outcome = hw_zap.apply_zap(plan, outputs, api.load_arch("os_sa_16x16").zap)
    kept, gated, act = naive_zap.gate(outputs.tolist(), scale.tolist(), kind, w1.tolist(),
                                      b1.tolist(), w2.tolist(), b2.tolist(), threshold)
    assert np.array_equal(outcome.kept, np.array(kept, dtype=bool))
    assert np.array_equal(outcome.outputs, np.array(gated))
    expected = naive_zap.counts(outputs.tolist(), act, kind, kept)
    for key, value in expected.items():
        assert outcome.counts[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("schedule", ["none", "compact"])
def test_fold_counts_equal_the_naive_twin(seed, schedule):
    rng = np.random.default_rng(100 + seed)
    groups = int(rng.choice([1, 2, 3]))
    c = groups * int(rng.integers(1, 7))
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 7)), int(rng.integers(1, 7))
    rows, cols = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    kind = int(rng.integers(0, 11))
    density = rng.uniform(0, 1)
    kept = rng.random((n, c, h, w)) < density
    mask = kz.mask_pattern(kind, h, w)
    kept |= mask[None, None]
    fast = kz.phase_folds(kept, mask, groups, rows, cols, schedule)
    assert fast == naive_zap.folds(kept.tolist(), kind, groups, rows, cols, schedule)


def test_compact_never_takes_more_folds_than_none_and_all_kept_is_dense():
    rng = np.random.default_rng(7)
    for _ in range(20):
        kept = rng.random((2, 8, 6, 6)) < rng.uniform(0, 1)
        mask = kz.mask_pattern(5, 6, 6)
        kept |= mask[None, None]
        one, none = kz.phase_folds(kept, mask, 1, 4, 4, "none")
        _, compact = kz.phase_folds(kept, mask, 1, 4, 4, "compact")
        assert compact <= none
    everything = np.ones((2, 8, 6, 6), dtype=bool)
    mask = kz.mask_pattern(5, 6, 6)
    one, two = kz.phase_folds(everything, mask, 1, 4, 4, "none")
    # 72 pixels, 36 + 36 per phase: 9 + 9 row folds of 4, 2 column tiles: the dense 36 folds
    assert (one, two) == (18, 18)


def test_synthetic_predictor_has_the_given_recall_and_precision():
    rng = np.random.default_rng(3)
    outputs = rng.integers(-50, 50, size=(2, 4, 10, 10))
    mask = kz.mask_pattern(5, 10, 10)
    kept = hw_zap.synthetic_kept(outputs, mask, 0.8, 0.75, seed=1)
    outside = ~np.broadcast_to(mask[None, None], outputs.shape)
    nonzero = outside & (outputs > 0)
    hits = int((kept & nonzero).sum())
    assert hits == round(0.8 * nonzero.sum())
    assert int((kept & outside & (outputs <= 0)).sum()) == round(hits * 0.25 / 0.75)
    assert kept[~outside].all()
    again = hw_zap.synthetic_kept(outputs, mask, 0.8, 0.75, seed=1)
    assert np.array_equal(kept, again)  # seeded


def test_run_on_the_digits_trace_equals_the_naive_twin(repo):
    """The run's gated outputs, counts and cycles of a layer, against the naive twin on
    the trace's own outputs and the shipped predictors."""
    arch = api.load_arch("os_sa_16x16", ["zap.enabled=true", "zap.threshold=0.1",
                                         "zap.mask_type=6", "zap.schedule=none"])
    workload = api.load_workload("digits_int8")
    saved = {}
    result = api.simulate(arch, workload, output_sink=lambda name, out: saved.setdefault(
        name, out))
    layers = {l.name: l for l in result.layers}
    trained = hw_zap.load_predictors(repo / "workloads" / "digits_int8_zap.npz")
    assert {n for n, l in layers.items() if l.zap} == set(trained.layers)
    name = "pw"  # 64 channels of 4x4 over 32 images
    p = trained.predictors[6][name]
    tensors = workload.tensors(name)
    kept, gated, act = naive_zap.gate(tensors.output.tolist(), p.scale.tolist(), 6,
                                      p.w1.tolist(), p.b1.tolist(), p.w2.tolist(),
                                      p.b2.tolist(), 0.1)
    assert np.array_equal(saved[name], np.array(gated))
    report = layers[name].zap
    expected = naive_zap.counts(tensors.output.tolist(), act, 6, kept)
    for key, value in expected.items():
        assert report[key] == pytest.approx(value, rel=1e-12), key
    layer = next(l for l in workload.layers if l.name == name)
    assert report["macs_saved"] == expected["predicted_zero"] * layer.gemm.k
    assert report["predictor_macs"] == 18 * 32 * 64 * 16
    for schedule in ("none", "compact"):
        one, two = naive_zap.folds(kept, 6, 1, 16, 16, schedule)
        fold = 32 + 2 * 16 + 16 - 2  # native OS fold of K = 32
        predictor = -(-report["predictor_macs"] // 64)  # the side unit's 64 lanes
        assert report[f"cycles_{schedule}"] == (one + two) * fold + predictor
    assert layers[name].compute_cycles == report["cycles_none"]
    dense = next(l for l in api.simulate(api.load_arch("os_sa_16x16"), workload).layers
                 if l.name == name)
    assert report["dense_cycles"] == dense.compute_cycles
    assert result.summary()["zap"]["layers"] == len(trained.layers)


def test_a_run_without_zap_is_unchanged():
    workload = api.load_workload("digits_int8")
    plain = api.simulate(api.load_arch("os_sa_16x16"), workload).summary()
    off = api.simulate(api.load_arch("os_sa_16x16", ["zap.threshold=0.3"]), workload).summary()
    assert "zap" not in plain and all(l["zap"] is None for l in plain["layers"])
    plain.pop("arch_config"), off.pop("arch_config")
    assert plain == off


def test_synthetic_zap_on_a_shape_only_workload_is_labelled(cli):
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--set",
                 "zap.enabled=true", "--set", "zap.predictor_source=synthetic", "--set",
                 "zap.recall=0.95", "--set", "zap.exclude=['*downsample*', 'layer*.conv2']")
    assert result.status == 0, result.err
    assert "ZAP (SYNTHETIC predictor" in result.out
    assert "layer1.0.conv1 SYNTHETIC" in result.out
    assert "layer1.0.conv2" not in result.out.split("ZAP layer")[1]


@pytest.mark.parametrize("setting, message", [
    ("zap.mask_type=11", "arch.zap.mask_type: expected a number from 0 to 10, got 11"),
    ("zap.threshold=-0.1", "arch.zap.threshold: expected a number from 0 to 1,000,000 or "
                           "'per_layer', got -0.1"),
    ("zap.schedule=packed", "arch.zap.schedule: expected one of 'none', 'compact', got "
                            "'packed'"),
])
def test_bad_zap_settings_give_one_line_and_status_2(cli, setting, message):
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--set",
                 "zap.enabled=true", "--set", setting)
    assert result.status == 2
    assert message in result.err and len(result.err.strip().splitlines()) == 1
    assert result.out == ""


def test_trained_predictors_on_a_shape_only_workload_refused_when_asked(cli):
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--set",
                 "zap.enabled=true", "--set", "zap.untrained=refuse")
    assert result.status == 2
    assert "zap.predictor_source: trained needs a trace" in result.err
    assert "resnet18 is shape-only" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("workload", ["alexnet", "digits_vit_int8"])
def test_trained_predictors_missing_run_the_synthetic_stand_in(cli, workload):
    """zap.untrained: synthetic (the default): a shape-only workload, or a trace with no
    predictors beside it, runs the SYNTHETIC predictor, gives the same figures as asking for
    it, and says so; the threshold (here per_layer, which needs trained curves) is unused."""
    base = ["run", "--arch", "zap_os_sa_16x16", "--workload", workload, "--timing-only",
            "--json"]
    stand_in = cli(*base, "--set", "zap.threshold=per_layer")
    assert stand_in.status == 0, stand_in.err
    asked = cli(*base, "--set", "zap.predictor_source=synthetic")
    assert asked.status == 0, asked.err
    got, want = json.loads(stand_in.out), json.loads(asked.out)
    assert got["total_cycles"] == want["total_cycles"]
    if workload == "alexnet":
        assert got["zap"]["synthetic"] and got["zap"]["layers"] == 5
        table = cli(*base[:-1], "--set", "zap.threshold=per_layer")
        assert "SYNTHETIC predictor standing in for trained predictors" in table.out


@pytest.mark.parametrize("seed", range(8))
def test_float32_conv_is_exact(seed):
    """kernels.zap.conv_exact_float32 against the int64 conv a trace defines (lowering's
    exact_output): strides, dilations, padding, groups, dense worst-case windows, inputs
    float32 cannot hold, and sums float64 cannot hold (None)."""
    from simulator.workloads.layers import Layer, LayerTensors
    from simulator.workloads.lowering import exact_output, tap_geometry

    rng = np.random.default_rng(seed)
    for big in (127, 255, 1 << 12, 1 << 20, 1 << 25):
        g = int(rng.choice([1, 2, 3]))
        cg, fg = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        n, h, w = int(rng.integers(1, 3)), int(rng.integers(4, 11)), int(rng.integers(4, 11))
        layer = Layer(name="conv", op="conv2d", in_channels=g * cg, out_channels=g * fg,
                      batch=n, input_size=(h, w), kernel_size=(r, s),
                      stride=tuple(int(v) for v in rng.integers(1, 3, 2)),
                      padding=tuple(int(v) for v in rng.integers(0, 3, 2)),
                      dilation=tuple(int(v) for v in rng.integers(1, 3, 2)), groups=g)
        x = rng.integers(-big, big + 1, size=(n, g * cg, h, w))
        x[:, :, ::2] *= rng.random((n, g * cg, (h + 1) // 2, w)) < 0.3  # sparse rows
        x[0, :, -3:, -3:] = -big  # a dense window of extreme values
        weight = rng.integers(-127, 128, size=(g * fg, cg, r, s))
        weight[0] = -127
        if big < 1 << 15:
            x = x.astype(np.int16)
        got = kz.conv_exact_float32(x, weight, layer.stride, layer.dilation, layer.padding,
                                    tap_geometry(layer, h, w), layer.output_size, g)
        want = exact_output(LayerTensors(input=x, weight=weight, bias=None), layer)
        assert got.dtype == np.int64 and np.array_equal(got, want), big
    huge = np.full((1, 1, 2, 2), 1 << 40)
    assert kz.conv_exact_float32(huge, np.full((1, 1, 2, 2), 1 << 20), (1, 1), (1, 1),
                                 (0, 0), (2, 2), (1, 1), 1) is None  # the caller's int64


def test_a_run_without_zap_imports_none_of_it(repo):
    import subprocess
    import sys

    code = ("import sys\nfrom simulator import api\n"
            "api.simulate(api.load_arch('os_sa_16x16'), api.load_workload('digits_int8'))\n"
            "print(sorted(m for m in sys.modules if m.endswith('.zap')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "['simulator.config.zap']"  # the schema only
