"""``sasim export`` in-process: a model file, .npz data, accuracy printed, a valid trace."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from simulator.workloads.lowering import exact_output  # noqa: E402
from simulator.workloads.trace import load_trace, read_manifest  # noqa: E402

MODEL = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = torch.relu(self.dw(y) + y)
        return self.fc(y.mean(dim=(2, 3)))


def factory():
    torch.manual_seed(0)
    return Net()


def not_a_model():
    return 42


def raises():
    raise RuntimeError("boom in factory")


def exits():
    raise SystemExit(3)


def nan_weights():
    net = factory()
    with torch.no_grad():
        net.conv.weight.fill_(float("nan"))
    return net


class Bad(Net):
    def forward(self, x):
        raise ValueError("forward exploded")


def bad_forward():
    return Bad()
'''


@pytest.fixture
def files(tmp_path):
    (tmp_path / "net.py").write_text(MODEL)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(24, 2, 6, 6)).astype(np.float32),
             y=rng.integers(0, 3, 24))
    return tmp_path


def test_export_command_writes_a_valid_trace(cli, files):
    out = files / "net.npz"
    result = cli("export", f"{files / 'net.py'}:factory", "--calibration", files / "data.npz",
                 "--calibration-samples", "16", "--trace-data", files / "data.npz",
                 "--trace-samples", "4", "--eval", files / "data.npz",
                 "--calibration-method", "percentile", "--out", out)
    assert result.status == 0, result.err
    assert "wrote" in result.out and "top-1" in result.out and "INT8" in result.out
    workload = load_trace(out)
    assert [layer.name for layer in workload.layers] == ["conv", "dw", "fc"]
    assert workload.layers[0].batch == 4
    for layer in workload.layers:
        tensors = workload.tensors(layer.name)
        np.testing.assert_array_equal(exact_output(tensors, layer), tensors.output)
    provenance = read_manifest(out)["provenance"]
    assert provenance["folded_batchnorms"] == ["bn"]
    assert provenance["quantisation"]["scheme"].startswith("post-training")
    assert provenance["quantisation"]["method"] == "percentile"


@pytest.mark.parametrize("args, message", [
    (["{d}/net.py:nope"], "has no callable 'nope'"),
    (["{d}/net.py:not_a_model"], "not a torch.nn.Module"),
    (["{d}/missing.py:factory"], "file not found"),
    (["{d}/net.py"], "expected path/to/file.py:factory"),
    (["{d}/net.py:raises"], "raises() failed: RuntimeError: boom in factory"),
    (["{d}/net.py:exits"], "exits() ended the process (exit(3))"),
    (["{d}/net.py:nan_weights"], "conv.weight holds NaN or infinite values"),
    (["{d}/net.py:bad_forward"], "running the model on the data failed: ValueError: forward "
                                 "exploded"),
])
def test_export_command_bad_model(cli, files, args, message):
    argv = [a.format(d=files) for a in args]
    result = cli("export", *argv, "--calibration", files / "data.npz",
                 "--trace-data", files / "data.npz", "--out", files / "o.npz")
    assert result.status == 2 and message in result.err, result.err
    assert result.err.count("\n") == 1
    assert not (files / "o.npz").exists()


def test_export_command_bad_data(cli, files):
    result = cli("export", f"{files / 'net.py'}:factory", "--calibration", "cifar:train",
                 "--trace-data", files / "data.npz", "--out", files / "o.npz")
    assert result.status == 2 and "expected digits:train" in result.err


@pytest.mark.parametrize("out, flag", [("net.py", "--model"), ("data.npz", "--calibration")])
def test_export_refuses_to_overwrite_an_input(cli, files, out, flag):
    before = (files / out).read_bytes()
    result = cli("export", f"{files / 'net.py'}:factory", "--calibration", files / "data.npz",
                 "--trace-data", files / "data.npz", "--out", files / out)
    assert result.status == 2 and f"is the {flag} input" in result.err, result.err
    assert (files / out).read_bytes() == before


def test_export_refuses_a_directory_and_non_finite_data(cli, files):
    (files / "outdir").mkdir()
    result = cli("export", f"{files / 'net.py'}:factory", "--calibration", files / "data.npz",
                 "--trace-data", files / "data.npz", "--out", files / "outdir")
    assert result.status == 2 and "is a directory" in result.err
    assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []
    x = np.full((4, 2, 6, 6), np.inf, np.float32)
    np.savez(files / "inf.npz", x=x)
    result = cli("export", f"{files / 'net.py'}:factory", "--calibration", files / "inf.npz",
                 "--trace-data", files / "data.npz", "--out", files / "o.npz")
    assert result.status == 2 and "holds NaN or infinite values" in result.err
