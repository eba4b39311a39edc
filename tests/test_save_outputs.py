"""End to end: a trace written with numpy alone, simulated on SySMT with --save-outputs.

Saved outputs must equal the naive model (docs/hardware-spec.md §3, tests/naive.py) applied to the
GEMM lowering of the trace, bit for bit — what a user checking sasim independently would do.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hand_trace import conv_gemm, save_conv_fc
from naive import naive_schedule, naive_sysmt_gemm


def write_trace(path, rng):
    x = (rng.integers(0, 256, (1, 6, 5, 5)) * (rng.random((1, 6, 5, 5)) < 0.5)).astype(np.uint8)
    w = rng.integers(-127, 128, (4, 6, 3, 3)).astype(np.int8)
    fc_x = rng.integers(-128, 128, (3, 13)).astype(np.int8)
    fc_w = rng.integers(-127, 128, (5, 13)).astype(np.int8)
    save_conv_fc(path, x, w, fc_x, fc_w)
    cols, wmat = conv_gemm(x, w)
    return {"conv": (cols, wmat, (1, 4, 3, 3)),
            "fc": (fc_x.astype(np.int64), fc_w.T.astype(np.int64), (3, 5))}


@pytest.mark.parametrize(("threads", "policy"), [(2, "sparsity_aware"), (4, "msb_trim")])
def test_saved_outputs_equal_independent_model(cli, tmp_path, threads, policy):
    gemms = write_trace(tmp_path / "t.npz", np.random.default_rng(threads))
    out = tmp_path / "run"
    result = cli("run", "--arch", "sysmt_2t_16x16", "--workload", tmp_path / "t.npz",
                 "--set", f"pe.threads={threads}", "--set", f"pe.policy={policy}",
                 "--out", out, "--save-outputs")
    assert result.status == 0, result.err
    saved = np.load(out / "outputs.npz", allow_pickle=False)
    summary = json.loads((out / "summary.json").read_text())
    for layer in summary["layers"]:
        a, b, shape = gemms[layer["name"]]
        sched = naive_schedule(a.shape[1], threads, "contiguous")
        expected, counters = naive_sysmt_gemm(a.tolist(), b.tolist(), sched, policy,
                                              "round_half_even")
        expected = np.array(expected)
        if len(shape) == 4:
            expected = expected.T.reshape(shape)
        np.testing.assert_array_equal(saved[f"{layer['name']}.output"], expected)
        assert layer["counters"] == counters
        assert layer["steps_per_fold"] == -(-a.shape[1] // threads)


def test_save_outputs_needs_out(cli, tmp_path):
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--save-outputs")
    assert result.status == 2 and "--save-outputs needs --out" in result.err
