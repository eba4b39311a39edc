"""Shape-only workloads: the YAML format, SCALE-Sim topology CSVs, and GEMM lowering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import api
from simulator.errors import WorkloadError
from simulator.workloads.layers import Layer, output_extent

# Published multiply-accumulate counts at batch 1, 224x224 (torchvision's model cards).
SHIPPED_MACS = {
    "resnet18": 1_814_073_344,
    "resnet50": 4_089_184_256,
    "mobilenet_v2": 300_774_272,
    "vgg16": 15_470_264_320,
    "alexnet": 714_188_480,
}


@pytest.mark.parametrize(("name", "macs"), SHIPPED_MACS.items())
def test_shipped_workloads_macs(name, macs):
    workload = api.load_workload(name)
    assert workload.macs == macs
    assert len({layer.name for layer in workload.layers}) == len(workload.layers)


def test_scalesim_resnet18_csv_is_unpadded(data_dir):
    workload = api.load_workload(data_dir / "scalesim" / "reference_resnet18" / "Resnet18.csv")
    # docs/hardware-spec.md §2: SCALE-Sim's own Resnet18.csv has 1.471 G MACs (unpadded shapes).
    assert round(workload.macs / 1e9, 3) == 1.471
    conv1 = workload.layers[0]
    assert conv1.output_size == (110, 110)  # ceil((224 - 7 + 2) / 2)


@settings(max_examples=100, deadline=None)
@given(h=st.integers(1, 40), r=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 3),
       d=st.integers(1, 3))
def test_output_extent_matches_torch(h, r, s, p, d):
    torch = pytest.importorskip("torch")
    if h + 2 * p < d * (r - 1) + 1:
        return
    x = torch.zeros(1, 1, h, h)
    w = torch.zeros(1, 1, r, r)
    out = torch.nn.functional.conv2d(x, w, stride=s, padding=p, dilation=d)
    assert output_extent(h, r, s, p, d) == out.shape[-1]


def test_conv_lowering():
    layer = Layer(name="c", op="conv2d", in_channels=32, out_channels=64, batch=2,
                  input_size=(10, 12), kernel_size=(3, 3), stride=(2, 2), padding=(1, 1),
                  groups=4)
    gemm = layer.gemm
    assert (gemm.m, gemm.k, gemm.n, gemm.groups) == (2 * 5 * 6, 8 * 9, 16, 4)


def write(tmp_path, text, name="w.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = """schema_version: 1
name: tiny
batch: 2
layers:
  - {name: c1, op: conv2d, in_channels: 3, out_channels: 8, input_size: [8, 8], kernel_size: 3, padding: 1}
  - {name: fc, op: linear, in_features: 512, out_features: 10}
  - {name: g, op: gemm, m: 5, k: 6, n: 7}
"""


def test_yaml_workload_loads(tmp_path):
    workload = api.load_workload(write(tmp_path, GOOD))
    assert [l.gemm.m for l in workload.layers] == [2 * 64, 2, 5]
    assert workload.macs == 2 * 64 * 27 * 8 + 2 * 512 * 10 + 5 * 6 * 7


@pytest.mark.parametrize(("change", "message"), [
    (("kernel_size: 3", "kernel_size: [3, 3, 3]"), "layers[0] (c1).kernel_size: expected an integer or a pair"),
    (("in_channels: 3", "in_channels: three"), "layers[0] (c1).in_channels: expected an integer"),
    (("out_channels: 8", "out_channels: -8"), "layers[0] (c1).out_channels: expected a positive number"),
    (("op: gemm", "op: gemn"), "layers[2] (g).op: expected one of conv2d, linear, gemm, matmul, softmax, layernorm, rmsnorm, gelu, silu, relu, add, mul, rotary, maxpool, avgpool, global_avgpool, got 'gemn' (did you mean 'gemm'?)"),
    (("m: 5", "mm: 5"), "layers[2] (g): unknown key 'mm'"),
    (("name: fc", "name: c1"), "duplicate layer name 'c1'"),
    (("kernel_size: 3, padding: 1", "kernel_size: 9"), "does not fit the input"),
    (("in_channels: 3", "in_channels: 3, groups: 2"), "groups=2 must divide in_channels=3"),
    (("batch: 2", "batch: 0"), "batch: expected a positive integer"),
    (("schema_version: 1", "schema_version: 7"), "schema_version: expected 1, got 7"),
    (("layers:", "layerz:"), "unknown key 'layerz' (did you mean 'layers'?)"),
])
def test_yaml_workload_errors(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(WorkloadError) as info:
        api.load_workload(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_topology_csv_errors(tmp_path):
    header = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
    path = write(tmp_path, header + "c1,8,8,3,3,4,8,1,\nc2,8,x,3,3,4,8,1,\n", "t.csv")
    with pytest.raises(WorkloadError, match=r"t.csv: line 3 \(c2\): IFMAP Width: expected a positive integer, got 'x'"):
        api.load_workload(path)
    path = write(tmp_path, header + "c1,8,8,3,3,4,\n", "t.csv")
    with pytest.raises(WorkloadError, match=r"line 2: expected 8 columns, got 6"):
        api.load_workload(path)
    path = write(tmp_path, "foo\n", "t.csv")
    with pytest.raises(WorkloadError, match="expected a SCALE-Sim topology header"):
        api.load_workload(path)


@pytest.mark.parametrize("header", ["Layer, M, N, K,", "layer,m,n,k"])
def test_gemm_topology(tmp_path, header):
    path = write(tmp_path, f"{header}\ng0, 59, 6, 41,\n", "g.csv")
    (layer,) = api.load_workload(path).layers
    assert (layer.gemm.m, layer.gemm.n, layer.gemm.k) == (59, 6, 41)


def test_unknown_workload_suffix(tmp_path):
    path = write(tmp_path, "x", "w.txt")
    with pytest.raises(WorkloadError, match="unknown workload format"):
        api.load_workload(path)


def test_bad_data_section_fails_at_load(tmp_path):
    path = write(tmp_path, GOOD + "data: {weight_prune_fractio: 0.4}\n")
    with pytest.raises(WorkloadError, match=r"data: unknown key 'weight_prune_fractio' \(did you mean 'weight_prune_fraction'\?\)"):
        api.load_workload(path)
