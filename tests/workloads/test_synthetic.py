"""Synthetic data: determinism, requested statistics, pruning, the data: section, inspect."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulator.errors import ConfigError, WorkloadError
from simulator.workloads.layers import Layer, Workload
from simulator.workloads.lowering import weights_to_gemm
from simulator.workloads.stats import layer_stats, workload_stats
from simulator.workloads.synthetic import (SyntheticOptions, layer_tensors, synthesize,
                                           synthetic_options_from_file,
                                           synthetic_options_from_mapping)

CONV = Layer(name="c", op="conv2d", in_channels=32, out_channels=64, batch=2,
             input_size=(12, 12), kernel_size=(3, 3), padding=(1, 1))
FIRST = Layer(name="first", op="conv2d", in_channels=3, out_channels=8, batch=1,
              input_size=(16, 16), kernel_size=(3, 3), activation_signed=True)
FC = Layer(name="fc", op="linear", in_channels=200, out_channels=10, batch=4)


def _workload() -> Workload:
    return Workload(name="w", source="test", layers=(FIRST, CONV, FC), format="yaml")


def test_deterministic_per_layer_and_seed():
    a, b = synthesize(_workload()), synthesize(_workload())
    assert a.data_kind == "synthetic"
    # order of access does not matter
    fc_first = b.tensors("fc").input
    np.testing.assert_array_equal(a.tensors("c").input, b.tensors("c").input)
    np.testing.assert_array_equal(a.tensors("fc").input, fc_first)
    other = synthesize(_workload(), SyntheticOptions(seed=1))
    assert not np.array_equal(other.tensors("c").input, a.tensors("c").input)
    with pytest.raises(WorkloadError, match="layer 'x'"):
        a.tensors("x")


def test_values_fit_and_statistics_follow_the_options():
    options = SyntheticOptions(activation_zero_fraction=0.7, activation_median=20.0)
    t = layer_tensors(CONV, 1, options)
    assert t.input.shape == (2, 32, 12, 12) and t.weight.shape == (64, 32, 3, 3)
    assert t.input.dtype == np.uint8 and t.weight.dtype == np.int8
    assert int(np.abs(t.weight).max()) == 127 and int(t.weight.min()) >= -127
    s = layer_stats(CONV, t)
    assert abs(s.activation_zero_fraction - 0.7) < 0.02
    assert 15 <= s.activation_median_nonzero <= 25
    signed = layer_tensors(FIRST, 0, SyntheticOptions())
    assert signed.input.dtype == np.int8 and signed.input.min() < 0 < signed.input.max()
    assert np.mean(signed.input == 0) < 0.01


@pytest.mark.parametrize("fraction", [0.4, 0.75])
def test_magnitude_pruning_zeroes_the_fraction(fraction):
    t = layer_tensors(CONV, 1, SyntheticOptions(weight_prune_fraction=fraction))
    assert abs(np.mean(t.weight == 0) - fraction) < 0.01


@pytest.mark.parametrize("layer", [CONV, FC, FIRST], ids=lambda l: l.name)
def test_two_of_four_in_gemm_k_order(layer):
    t = layer_tensors(layer, 0, SyntheticOptions(weight_structure="2:4"))
    b = weights_to_gemm(t.weight, layer)
    g, kd, fg = b.shape
    padded = np.concatenate([b, np.zeros((g, (-kd) % 4, fg), dtype=b.dtype)], axis=1)
    per_group = (padded.reshape(g, -1, 4, fg) != 0).sum(axis=2)
    assert per_group.max() <= 2
    assert layer_stats(layer, t).weight_2to4_fraction == 1.0


def test_options_mapping_errors_name_the_key():
    assert synthetic_options_from_mapping({"weight_prune_fraction": 0.4}, "f: data") == \
        SyntheticOptions(weight_prune_fraction=0.4)
    with pytest.raises(ConfigError, match=r"f: data.weight_prune_fraction: expected a fraction"):
        synthetic_options_from_mapping({"weight_prune_fraction": 1.5}, "f: data")
    with pytest.raises(ConfigError, match=r"unknown key 'activation_zero'.*did you mean"):
        synthetic_options_from_mapping({"activation_zero": 0.5}, "f: data")
    with pytest.raises(ConfigError, match=r"weight_structure: expected one of"):
        synthetic_options_from_mapping({"weight_structure": "4:8"}, "f: data")


def test_shipped_pruned_resnet18_data_section(repo):
    options = synthetic_options_from_file(repo / "workloads" / "resnet18_pruned40.yaml")
    assert options == SyntheticOptions(weight_prune_fraction=0.4)
    assert synthetic_options_from_file(repo / "workloads" / "resnet18.yaml") == SyntheticOptions()


@pytest.mark.parametrize("name", ["resnet18_pruned40", "resnet18", "gpt2_decode"])
def test_a_workload_carries_its_data_section_read_once(repo, name, monkeypatch):
    """The ``data:`` section is read with the file (Workload.data_options), and a run on
    synthetic data uses it without reading the file again."""
    from simulator import api
    from simulator.config import files

    workload = api.load_workload(name)
    assert workload.data_options == synthetic_options_from_file(
        repo / "workloads" / f"{name}.yaml")
    reads = []
    monkeypatch.setattr(files, "read_text", lambda *a, **k: reads.append(a) or "")
    data = api.with_synthetic_data(workload)
    assert reads == [] and data.data_kind == "synthetic"
    first = workload.layers[0].name
    expected = synthesize(workload, workload.data_options).tensors(first)
    assert np.array_equal(data.tensors(first).weight, expected.weight)


def test_defaults_are_close_to_the_digits_trace(repo):
    """The calibration claim of docs/synthetic-data.md, on the unsigned conv layers."""
    from simulator.workloads.trace import load_trace

    trace = load_trace(repo / "workloads" / "digits_int8.npz")
    real = [s for s in workload_stats(trace) if s.op == "conv2d" and not s.activation_signed]
    fake = list(workload_stats(synthesize(trace), check_output=False))
    fake = [s for s in fake if s.op == "conv2d" and not s.activation_signed]
    mean = lambda rows, key: float(np.mean([getattr(r, key) for r in rows]))  # noqa: E731
    for key, tolerance in (("activation_zero_fraction", 0.05),
                           ("activation_small_fraction", 0.05),
                           ("activation_mean_bits", 0.15)):
        assert abs(mean(real, key) - mean(fake, key)) < tolerance, key


def test_workload_stats_needs_data():
    with pytest.raises(WorkloadError, match="no data"):
        list(workload_stats(_workload()))


def test_inspect_cli_trace_and_synthetic(cli):
    result = cli("inspect", "digits_int8")
    assert result.status == 0, result.err
    assert "trace data" in result.out and "every recorded output is exact" in result.out
    assert "SYNTHETIC" not in result.out
    result = cli("inspect", "resnet18_pruned40", "--json")
    assert result.status == 0, result.err
    report = json.loads(result.out)
    assert report["data"] == "synthetic"
    assert report["synthetic_options"]["weight_prune_fraction"] == 0.4
    assert len(report["layers"]) == 21
    assert all(abs(l["weight_zero_fraction"] - 0.4) < 0.01 for l in report["layers"])
    result = cli("inspect", "digits_int8", "--synthetic", "--data", "activation_zero_fraction=0.9")
    assert result.status == 0, result.err
    assert "SYNTHETIC data" in result.out and "activation_zero_fraction=0.9" in result.out


def test_inspect_cli_bad_input(cli, tmp_path):
    result = cli("inspect", "alexnet", "--data", "weight_prune_fraction=2")
    assert result.status == 2 and "weight_prune_fraction" in result.err
    assert len(result.err.strip().splitlines()) == 1
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    result = cli("inspect", bad)
    assert result.status == 2 and "Traceback" not in result.err
    assert result.err.startswith("sasim: error: ") and len(result.err.strip().splitlines()) == 1


def test_normal_quantile_is_accurate():
    from statistics import NormalDist

    from simulator.workloads.synthetic import _normal_quantile

    p = np.array([1e-12, 1e-6, 0.01, 0.02425, 0.3, 0.5, 0.8, 0.97575, 0.999, 1 - 1e-9])
    expected = [NormalDist().inv_cdf(float(x)) for x in p]
    np.testing.assert_allclose(_normal_quantile(p), expected, rtol=2e-9, atol=1e-9)


def test_activation_tables_follow_the_documented_law():
    from simulator.workloads.synthetic import _activation_table

    table = _activation_table(8, False, 0.52, 28.0, 1.0)
    assert table.dtype == np.uint8 and table.size == 2**16
    assert np.all(np.diff(table.astype(np.int64)) >= 0)  # a quantile function
    assert abs(np.mean(table == 0) - 0.52) <= 2**-16
    nonzero = table[table > 0].astype(np.int64)
    assert nonzero.min() == 1 and nonzero.max() == 255
    assert abs(np.median(nonzero) - 28) <= 1
    # P(value clipped to 255) = P(z > (ln 254.5 - ln 28)) of the non-zero ones
    from statistics import NormalDist
    clipped = 1 - NormalDist().cdf(np.log(254.5) - np.log(28.0))
    assert abs(np.mean(nonzero == 255) - clipped) < 1e-3
    signed = _activation_table(8, True, 0.1, 28.0, 1.0)
    assert signed.dtype == np.int8 and signed.size == 2**16
    half = signed.size // 2
    np.testing.assert_array_equal(np.clip(-signed[:half].astype(np.int64), 0, 127),
                                  signed[half:])
    assert signed.min() == -128 and signed.max() == 127
    assert abs(np.mean(signed == 0) - 0.1) <= 2**-15
    wide = _activation_table(12, False, 0.0, 28.0, 2.0)
    assert wide.dtype == np.int64 and wide.max() == 4095 and wide.min() == 1


def test_every_filter_is_scaled_to_its_own_maximum():
    t = layer_tensors(CONV, 1, SyntheticOptions())
    per_filter = np.abs(t.weight.astype(np.int64)).reshape(CONV.out_channels, -1).max(axis=1)
    assert np.all(per_filter == 127)
    gaussian = layer_tensors(FC, 2, SyntheticOptions(weight_shape=2.0))
    assert np.all(np.abs(gaussian.weight.astype(np.int64)).max(axis=1) == 127)
    # lighter tails: more weights far from zero than the Laplace law gives
    laplace = layer_tensors(FC, 2, SyntheticOptions())
    assert np.mean(np.abs(gaussian.weight) >= 16) > np.mean(np.abs(laplace.weight) >= 16)


def test_pruning_breaks_ties_by_position():
    from simulator.workloads.synthetic import _prune

    w = np.array([3.0, -1.0, 1.0, 0.5, -0.5, 2.0, 1.0], dtype=np.float32)
    _prune(w, 3)
    np.testing.assert_array_equal(w, [3.0, 0.0, 1.0, 0.0, 0.0, 2.0, 1.0])
    _prune(w, 0)
    assert np.count_nonzero(w) == 4


@pytest.mark.parametrize("bits", [12, 23, 24, 25, 31, 32])
@pytest.mark.parametrize("prune", [0.0, 0.5])
def test_wide_synthetic_weights_stay_in_their_signed_range(bits, prune):
    """float32 holds the largest magnitude exactly only below 2**24: the quantised weights of
    wider layers must still stop at 2**(bits-1) - 1 (one above it was reached before)."""
    import dataclasses

    from simulator import api
    from simulator.workloads.synthetic import SyntheticOptions, layer_tensors

    layer = dataclasses.replace(api.load_workload("resnet18").layers[1], weight_bits=bits)
    weights = layer_tensors(layer, 1, SyntheticOptions(weight_prune_fraction=prune)).weight
    qmax = (1 << (bits - 1)) - 1
    assert weights.max() == qmax and weights.min() >= -qmax


@pytest.mark.parametrize("name", ["conv\x00", "a\tb", "x\x7f", "y\x85"])
def test_a_layer_name_with_a_control_character_is_refused(tmp_path, name):
    """Layer names go into reports, file members and plot labels: a control character (a NUL
    from a CSV, a tab) is refused with the layer named, like an empty name."""
    from simulator import api

    path = tmp_path / "w.yaml"
    path.write_text("schema_version: 1\nlayers:\n  - {name: " + json.dumps(name)
                    + ", op: linear, in_features: 8, out_features: 4}\n")
    with pytest.raises(WorkloadError, match="holds a control character"):
        api.load_workload(path)
    fine = tmp_path / "ok.yaml"
    fine.write_text("schema_version: 1\nlayers:\n  - {name: \"é層 x/1\", op: linear, "
                    "in_features: 8, out_features: 4}\n")
    assert api.load_workload(fine).layers[0].name == "é層 x/1"


@pytest.mark.parametrize("name", ["../x", "a/../../b", "/etc/x", "..", "a\\..\\b"])
def test_a_layer_name_that_leads_out_of_a_folder_is_refused(tmp_path, name):
    """outputs.npz keeps each layer's outputs as a zip member named by the layer: a name with
    a ``..`` component or a leading slash would lead an unzip out of its folder."""
    from simulator import api

    path = tmp_path / "w.yaml"
    path.write_text("schema_version: 1\nlayers:\n  - {name: " + json.dumps(name)
                    + ", op: linear, in_features: 8, out_features: 4}\n")
    with pytest.raises(WorkloadError, match="leads out of a folder"):
        api.load_workload(path)
    for fine in ("a..b", "x/..y", "layer1.0.conv1", "a/b"):
        path.write_text("schema_version: 1\nlayers:\n  - {name: " + json.dumps(fine)
                        + ", op: linear, in_features: 8, out_features: 4}\n")
        assert api.load_workload(path).layers[0].name == fine
