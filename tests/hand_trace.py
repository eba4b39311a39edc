"""A two-layer trace written with numpy alone (docs/trace-format.md), as a user checking sasim
independently would write it: an unsigned 3x3 conv2d (1x6x5x5 input, 4 filters) and a
signed linear layer; with the conv's GEMM operands formed by hand."""

from __future__ import annotations

import json

import numpy as np


def save_conv_fc(path, x: np.ndarray, w: np.ndarray, fc_x: np.ndarray, fc_w: np.ndarray) -> None:
    """Write the trace: layers ``conv`` (input ``x``, weights ``w``) and ``fc``."""
    manifest = {
        "format": "sasim-trace", "schema_version": 1, "model": "hand", "provenance": {},
        "layers": [
            {"name": "conv", "op": "conv2d", "stride": 1, "padding": 0, "dilation": 1,
             "groups": 1, "activation_signed": False, "activation_bits": 8, "weight_bits": 8,
             "arrays": ["input", "weight"]},
            {"name": "fc", "op": "linear", "activation_signed": True, "activation_bits": 8,
             "weight_bits": 8, "arrays": ["input", "weight"]},
        ],
    }
    np.savez(path, manifest=np.array(json.dumps(manifest)),
             **{"conv.input": x, "conv.weight": w, "fc.input": fc_x, "fc.weight": fc_w})


def conv_gemm(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The conv's GEMM operands by hand: K order tap-major, channel-minor
    (docs/hardware-spec.md §1)."""
    cols = np.array([[x[0, c, p + r, q + s] for r in range(3) for s in range(3)
                      for c in range(6)] for p in range(3) for q in range(3)], dtype=np.int64)
    wmat = np.array([[w[f, c, r, s] for f in range(4)] for r in range(3) for s in range(3)
                     for c in range(6)], dtype=np.int64)
    return cols, wmat
