"""The PTQ exporter on a tiny model with BatchNorm, a residual add, a depthwise conv and a
linear head (random weights and BN statistics: no training needed)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from simulator.errors import SasimError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from simulator.export import (CalibrationOptions, evaluate, export_trace,  # noqa: E402
                              fold_batchnorm, quantize)
from simulator.workloads.lowering import exact_output  # noqa: E402
from simulator.workloads.trace import load_trace, read_manifest  # noqa: E402


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8)
        self.res = nn.Conv2d(8, 8, 3, padding=1)
        self.res_bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.dw_bn = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 12, 1)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = F.relu(self.res_bn(self.res(x)) + x)          # residual add
        x = F.relu(self.dw_bn(self.dw(x)))                # depthwise
        x = F.relu(self.pw(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _tiny(seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    model = Tiny()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def _data(n: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 10, 10, generator=generator)


def test_batchnorm_folding_preserves_the_function():
    model = _tiny()
    x = _data(4)
    folded, names = fold_batchnorm(model, x[:2])
    assert sorted(names) == ["dw_bn", "res_bn", "stem_bn"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original untouched
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)


def test_quantised_model_tracks_the_float_model():
    model = _tiny()
    x = _data(64)
    for method in ("max", "percentile", "mse"):
        qmodel = quantize(model, x[:48], CalibrationOptions(method=method))
        layers = qmodel.integer_layers()
        assert set(layers) == {"stem", "res", "dw", "pw", "head"}
        assert layers["stem"].signed and not layers["pw"].signed and not layers["res"].signed
        with torch.no_grad():
            ref, out = model(x[48:]), qmodel(x[48:])
        # 8-bit PTQ of a 5-layer net: a few percent of the logits' range
        assert float((out - ref).abs().max()) < 0.1 * float(ref.abs().max())


def test_export_round_trips_exactly(tmp_path):
    model = _tiny()
    x = _data(40)
    labels = torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(3))
    path = tmp_path / "tiny.npz"
    result = export_trace(model, x[:32], x[32:36], path, "tiny",
                          CalibrationOptions(method="percentile", percentile=99.9),
                          evaluation=(x, labels), provenance={"data": "random"})
    assert result.layers == ("stem", "res", "dw", "pw", "head")
    assert result.float_top1 == evaluate(model, x, labels)
    assert result.int8_top1 is not None and 0 <= result.int8_top1 <= 1
    manifest = read_manifest(path)
    assert manifest["provenance"]["data"] == "random"
    assert manifest["provenance"]["float_top1"] == result.float_top1

    # the trace's outputs are the quantised model's integer outputs, bit for bit
    qmodel = quantize(model, x[:32], CalibrationOptions(method="percentile", percentile=99.9))
    recorded = {}
    for module in qmodel.integer_layers().values():
        module.recorder = lambda m, xq, acc: recorded.__setitem__(m.layer_name, (xq, acc))
    with torch.no_grad():
        qmodel(x[32:36])
    workload = load_trace(path)
    assert workload.data_kind == "trace"
    for layer in workload.layers:
        tensors = workload.tensors(layer.name)
        xq, acc = recorded[layer.name]
        np.testing.assert_array_equal(tensors.input, xq.numpy().astype(np.int64))
        np.testing.assert_array_equal(tensors.output, acc.numpy().astype(np.int64))
        np.testing.assert_array_equal(exact_output(tensors, layer), tensors.output)
        assert int(np.abs(tensors.weight).max()) == 127  # symmetric per-channel max scaling
    dw = next(layer for layer in workload.layers if layer.name == "dw")
    assert dw.groups == 8 and dw.stride == (2, 2)
    assert workload.tensors("res").bias is not None  # BN folded into a bias


def test_export_refuses_shared_layers(tmp_path):
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(F.relu(self.fc(x)))

    x = torch.randn(8, 4)
    with pytest.raises(SasimError, match="layer 'fc' runs more than once"):
        export_trace(Shared(), x, x[:2], tmp_path / "s.npz", "shared")
    assert not (tmp_path / "s.npz").exists()


def test_bad_calibration_options():
    with pytest.raises(SasimError, match="calibration method"):
        CalibrationOptions(method="kl")
    with pytest.raises(SasimError, match="percentile"):
        CalibrationOptions(percentile=0)


def test_missing_torch_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    for name in [n for n in sys.modules if n == "simulator.export" or n.startswith("simulator.export.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(SasimError, match=r"pip install 'sasim\[torch\]'"):
        importlib.import_module("simulator.export")
