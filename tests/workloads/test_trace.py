"""The trace format: writing, lazy loading, the documented hand-written example, bad traces."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from simulator.errors import TraceError
from simulator.workloads.layers import Layer, LayerTensors
from simulator.workloads.lowering import exact_output
from simulator.workloads.trace import (TraceEntry, TraceWriter, load_trace, read_manifest,
                                       write_trace)

REPO = Path(__file__).resolve().parents[2]


def _doc_example() -> str:
    text = (REPO / "docs" / "trace-format.md").read_text(encoding="utf-8")
    section = text.split("## Writing a trace by hand with numpy", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_hand_written_trace_from_the_doc_loads_and_its_outputs_are_exact(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_doc_example(), "docs/trace-format.md", "exec"), {})
    workload = load_trace(tmp_path / "by_hand.npz")
    assert workload.format == "trace" and workload.data_kind == "trace"
    assert workload.name == "by_hand"
    conv, fc = workload.layers
    assert (conv.op, conv.batch, conv.in_channels, conv.out_channels) == ("conv2d", 2, 3, 4)
    assert conv.output_size == (8, 8) and conv.padding == (1, 1)
    assert (fc.op, fc.batch, fc.in_channels, fc.out_channels, fc.activation_signed) == \
        ("linear", 2, 16, 10, True)
    tensors = workload.tensors("conv")
    assert tensors.input.dtype == np.int64
    np.testing.assert_array_equal(exact_output(tensors, conv), tensors.output)
    assert workload.tensors("fc").output is None


def _valid_arrays(rng=None) -> tuple[dict, dict]:
    rng = rng or np.random.default_rng(0)
    layer = Layer(name="c1", op="conv2d", in_channels=4, out_channels=6, batch=2,
                  input_size=(5, 5), kernel_size=(3, 3), stride=(2, 2), padding=(1, 1),
                  groups=2)
    x = rng.integers(0, 256, (2, 4, 5, 5)).astype(np.uint8)
    w = rng.integers(-127, 128, (6, 2, 3, 3)).astype(np.int8)
    b = rng.integers(-50, 50, 6).astype(np.int32)
    y = exact_output(LayerTensors(x, w, b), layer)
    manifest = {"format": "sasim-trace", "schema_version": 1, "model": "m",
                "layers": [{"name": "c1", "op": "conv2d", "stride": [2, 2], "padding": 1,
                            "dilation": 1, "groups": 2, "activation_signed": False,
                            "activation_bits": 8, "weight_bits": 8,
                            "arrays": ["input", "weight", "bias", "output"]},
                           {"name": "fc", "op": "linear", "activation_signed": True,
                            "activation_bits": 8, "weight_bits": 8,
                            "arrays": ["input", "weight"]}]}
    arrays = {"c1.input": x, "c1.weight": w, "c1.bias": b, "c1.output": y,
              "fc.input": rng.integers(-128, 128, (3, 7)).astype(np.int8),
              "fc.weight": rng.integers(-127, 128, (2, 7)).astype(np.int8)}
    return manifest, arrays


def _save(path: Path, manifest, arrays) -> Path:
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    np.savez(path, manifest=np.array(text), **arrays)
    return path


def test_valid_trace_round_trips(tmp_path):
    manifest, arrays = _valid_arrays()
    workload = load_trace(_save(tmp_path / "t.npz", manifest, arrays))
    assert [layer.name for layer in workload.layers] == ["c1", "fc"]
    c1 = workload.layers[0]
    assert c1.gemm.groups == 2 and c1.output_size == (3, 3)
    np.testing.assert_array_equal(workload.tensors("c1").output, arrays["c1.output"])
    with pytest.raises(TraceError, match="layer 'nope': no such layer"):
        workload.tensors("nope")


def _mutate_manifest(key, value, layer=0):
    def change(manifest, arrays):
        if value is None:
            del manifest["layers"][layer][key]
        else:
            manifest["layers"][layer][key] = value
    return change


BAD_CASES = {
    "missing array": (lambda m, a: a.pop("c1.weight"), "c1", "'c1.weight' is missing"),
    "unlisted array": (lambda m, a: a.update({"fc.bias": np.zeros(2, np.int32)}), "fc",
                       "not in the manifest"),
    "float input": (lambda m, a: a.update({"c1.input": a["c1.input"].astype(np.float32)}),
                    "c1", "dtype float32"),
    "bool weight": (lambda m, a: a.update({"fc.weight": a["fc.weight"] > 0}), "fc", "dtype bool"),
    "weight channels vs groups": (lambda m, a: a.update({"c1.weight": np.zeros((6, 4, 3, 3), np.int8)}),
                                  "c1", "groups=2"),
    "output shape": (lambda m, a: a.update({"c1.output": a["c1.output"][:, :, :2]}), "c1",
                     "'c1.output' must have shape [2, 6, 3, 3]"),
    "bias shape": (lambda m, a: a.update({"c1.bias": np.zeros(5, np.int32)}), "c1",
                   "'c1.bias' must have shape [6]"),
    "linear features": (lambda m, a: a.update({"fc.input": np.zeros((3, 8), np.int8)}), "fc",
                        "input features 8"),
    "input 3-d": (lambda m, a: a.update({"c1.input": a["c1.input"][0]}), "c1", "must be 4-d"),
    "unsigned input out of range": (
        lambda m, a: a.update({"c1.input": a["c1.input"].astype(np.int16) - 1}), "c1",
        "outside the declared unsigned 8-bit range"),
    "weight too wide": (lambda m, a: a.update({"fc.weight": np.full((2, 7), 300, np.int16)}),
                        "fc", "outside the declared signed 8-bit range"),
    "missing manifest key": (_mutate_manifest("groups", None), "c1", "'groups' is missing"),
    "unknown manifest key": (_mutate_manifest("strides", 1), "c1", "did you mean 'stride'"),
    "bad op": (_mutate_manifest("op", "conv3d"), "c1", "expected 'conv2d' or 'linear'"),
    "bad signedness": (_mutate_manifest("activation_signed", "yes", 1), "fc", "true or false"),
    "weight_scales length": (_mutate_manifest("weight_scales", [1.0, 2.0]), "c1",
                             "'weight_scales' has 2 entries"),
    "arrays without weight": (_mutate_manifest("arrays", ["input"]), "c1", "must include 'weight'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_trace_is_refused_naming_the_layer(tmp_path, case):
    change, layer, message = BAD_CASES[case]
    manifest, arrays = _valid_arrays()
    change(manifest, arrays)
    path = _save(tmp_path / "bad.npz", manifest, arrays)
    with pytest.raises(TraceError) as info:
        load_trace(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: layer '{layer}': "), text
    assert message in text


@pytest.mark.parametrize("manifest, message", [
    ("{not json", "not valid JSON"),
    (json.dumps([1, 2]), "expected a JSON object"),
    (json.dumps({"format": "sasim-trace", "schema_version": 3, "model": "m", "layers": []}),
     "schema_version: expected 1 or 2, got 3"),
    (json.dumps({"format": "other", "schema_version": 1}), "'format' must be 'sasim-trace'"),
    (json.dumps({"format": "sasim-trace", "schema_version": 1, "model": "m", "layers": [],
                 "extra": 1}), "unknown key 'extra'"),
])
def test_bad_manifest_is_refused(tmp_path, manifest, message):
    _, arrays = _valid_arrays()
    path = _save(tmp_path / "bad.npz", manifest, arrays)
    with pytest.raises(TraceError, match=re.escape(message)):
        load_trace(path)


def test_missing_manifest_and_not_a_zip(tmp_path):
    _, arrays = _valid_arrays()
    np.savez(tmp_path / "nomanifest.npz", **arrays)
    with pytest.raises(TraceError, match="no 'manifest' member"):
        load_trace(tmp_path / "nomanifest.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(TraceError, match="text.npz: not"):
        load_trace(tmp_path / "text.npz")
    with pytest.raises(TraceError, match="file not found"):
        load_trace(tmp_path / "absent.npz")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused_in_one_line(tmp_path, fraction):
    manifest, arrays = _valid_arrays()
    data = _save(tmp_path / "t.npz", manifest, arrays).read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_corrupt_member_data_is_refused_naming_the_layer(tmp_path):
    manifest, arrays = _valid_arrays()
    arrays["c1.output"] = np.arange(2 * 6 * 3 * 3, dtype=np.int64).reshape(2, 6, 3, 3)
    path = _save(tmp_path / "t.npz", manifest, arrays)
    data = bytearray(path.read_bytes())
    # flip bytes inside the stored (uncompressed) output data: the zip CRC check fails
    at = data.index(np.arange(8, 12, dtype=np.int64).tobytes())
    data[at:at + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(TraceError, match="layer 'c1': array 'c1.output' is unreadable"):
        load_trace(path)
    # without value verification the damage is found by the header read (small members are
    # read whole) or, at the latest, when the layer's tensors are read
    with pytest.raises(TraceError, match="layer 'c1'"):
        load_trace(path, verify_values=False).tensors("c1")


def test_writer_is_atomic_and_validates(tmp_path):
    layer = Layer(name="fc", op="linear", in_channels=3, out_channels=2, batch=1)
    good = TraceEntry(layer, LayerTensors(np.ones((1, 3), np.uint8), np.ones((2, 3), np.int8)))
    bad = TraceEntry(layer, LayerTensors(np.ones((1, 4), np.uint8), np.ones((2, 3), np.int8)))
    path = tmp_path / "w.npz"
    with pytest.raises(TraceError, match="layer 'fc'"):
        write_trace(path, "m", [good, bad], {"tool": "test"})
    assert not path.exists() and list(tmp_path.iterdir()) == []
    write_trace(path, "m", [good], {"tool": "test"})
    assert read_manifest(path)["provenance"] == {"tool": "test"}
    with pytest.raises(TraceError, match="at least one layer"):
        TraceWriter(tmp_path / "empty.npz", "m", {}).close()
    assert not (tmp_path / "empty.npz").exists()


def test_shipped_digits_trace_outputs_are_exact():
    """Every layer's recorded output equals the exact GEMM of its input and weights."""
    workload = load_trace(REPO / "workloads" / "digits_int8.npz")
    assert len(workload.layers) == 9
    ops = {layer.op for layer in workload.layers}
    assert ops == {"conv2d", "linear"}
    assert any(layer.groups == layer.in_channels > 1 for layer in workload.layers)
    for layer in workload.layers:
        tensors = workload.tensors(layer.name)
        np.testing.assert_array_equal(exact_output(tensors, layer), tensors.output)
    provenance = read_manifest(REPO / "workloads" / "digits_int8.npz")["provenance"]
    assert abs(provenance["float_top1"] - provenance["int8_top1"]) <= 0.01


@pytest.mark.parametrize("case", ["missing array", "float input", "output shape",
                                  "missing manifest key"])
def test_cli_refuses_a_bad_trace_in_one_line(cli, tmp_path, case):
    change, layer, message = BAD_CASES[case]
    manifest, arrays = _valid_arrays()
    change(manifest, arrays)
    path = _save(tmp_path / "bad.npz", manifest, arrays)
    for argv in (("run", "--arch", "os_sa_16x16", "--workload", path), ("inspect", path)):
        result = cli(*argv)
        assert result.status == 2
        assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
        assert f"layer '{layer}'" in result.err and message in result.err


def test_cli_runs_the_hand_written_trace(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_doc_example(), "docs/trace-format.md", "exec"), {})
    result = cli("run", "--arch", "os_sa_16x16", "--workload", tmp_path / "by_hand.npz")
    assert result.status == 0, result.err
    assert "conv" in result.out and "fc" in result.out
