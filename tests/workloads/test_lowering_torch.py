"""GEMM lowering against torch's conv2d/linear (float64 is exact at these magnitudes).

torch is a dev dependency (``pip install -e '.[dev,torch]'``); the lowering's own tests,
which need only numpy, are in test_lowering.py.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings

from simulator.workloads.layers import Layer, LayerTensors
from simulator.workloads.lowering import exact_output, output_shape

from test_lowering import _conv_layer, conv_case_data, conv_cases

F = torch.nn.functional


@settings(max_examples=60, deadline=None)
@given(conv_cases)
def test_conv_matches_torch(case):
    layer = _conv_layer(case)
    if layer is None:
        return
    x, w, b = conv_case_data(case, layer)
    out = exact_output(LayerTensors(x, w, b), layer)
    ref = F.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                   None if b is None else torch.tensor(b, dtype=torch.float64),
                   stride=case["stride"], padding=case["pad"], dilation=case["dil"],
                   groups=case["g"]).numpy()
    assert out.dtype == np.int64
    assert out.shape == output_shape(layer) == ref.shape
    np.testing.assert_array_equal(out, ref.astype(np.int64))


def test_linear_matches_torch():
    rng = np.random.default_rng(1)
    layer = Layer(name="fc", op="linear", in_channels=33, out_channels=7, batch=5,
                  activation_signed=True)
    x = rng.integers(-128, 128, (5, 33))
    w = rng.integers(-127, 128, (7, 33))
    b = rng.integers(-10, 10, 7)
    ref = F.linear(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                   torch.tensor(b, dtype=torch.float64)).numpy().astype(np.int64)
    np.testing.assert_array_equal(exact_output(LayerTensors(x, w, b), layer), ref)
