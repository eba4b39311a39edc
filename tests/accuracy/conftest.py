"""Shared fixtures of the accuracy tests: a tiny BatchNorm CNN (as a factory file too), its
data, and the shipped digits model prepared once per session."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simulator.accuracy import load_setup, prepare  # noqa: E402

TINY_MODEL = '''
import torch
from torch import nn
import torch.nn.functional as F


class Tiny(nn.Module):
    """conv-BN-ReLU, a residual conv-BN, depthwise conv-BN, a plain conv and a linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 8, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8)
        self.res = nn.Conv2d(8, 8, 3, padding=1)
        self.res_bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.dw_bn = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 12, 1)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = F.relu(self.res_bn(self.res(x)) + x)
        x = F.relu(self.dw_bn(self.dw(x)))
        x = F.relu(self.pw(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def factory():
    torch.manual_seed(0)
    model = Tiny()
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3, generator=generator)
            module.running_var.uniform_(0.3, 0.8, generator=generator)
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.uniform_(-0.2, 0.2, generator=generator)
    return model.eval()
'''


@pytest.fixture
def tiny_files(tmp_path):
    """``net.py`` (factory ``factory``) and ``data.npz`` (x: 48 x 2 x 6 x 6, y: 5 classes)."""
    (tmp_path / "net.py").write_text(TINY_MODEL)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(48, 2, 6, 6)).astype(np.float32),
             y=rng.integers(0, 5, 48))
    return tmp_path


@pytest.fixture
def tiny_setup(tiny_files):
    data = str(tiny_files / "data.npz")
    return load_setup(f"{tiny_files / 'net.py'}:factory", data, data, calibration_samples=32)


@pytest.fixture(scope="session")
def digits_baseline():
    """The shipped digits model, quantised as the shipped trace, scored in float and INT8."""
    return prepare(load_setup("digits"))
