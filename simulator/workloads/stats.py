"""Per-layer statistics of a workload's data (``sasim inspect``).

The statistics are those the data-dependent PE models are sensitive to: how many activations and
weights are zero (skippable work), how many activations fit in 4 bits (|a| < 16: exact in a
4b x 8b multiplier, docs/hardware-spec.md §3-4), how many bits are set (bit-serial, SWIS), and, for
traces, whether the recorded output is the exact GEMM result.

Activation statistics are taken over the layer's input tensor (not the im2col matrix, which
repeats each value up to R*S times and adds the padding zeros). Weight statistics are taken
over the weight tensor; the 2:4 fraction is measured in the K order of docs/hardware-spec.md §1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from simulator.errors import WorkloadError
from simulator.records import record
from simulator.workloads.layers import GemmShape, Layer, LayerTensors, Workload, float_codes
from simulator.workloads.lowering import exact_output, weights_to_gemm

__all__ = ["LayerStats", "layer_stats", "workload_stats", "summarize"]

SMALL = 16  # |value| < 16 fits a 4-bit magnitude


@record
class LayerStats:
    """Statistics of one layer's shape and data (fractions in [0, 1]).

    Attributes
    ----------
    m, k, n, groups, macs : int
        The GEMM (docs/hardware-spec.md §1) and its multiply-accumulates; a vector op: its
        rows, row length twice, 1 and 0 MACs (its weight fields are NaN, its data none).
    activation_zero_fraction, weight_zero_fraction : float
        Fraction of exact zeros in the input / weight tensor.
    activation_small_fraction, weight_small_fraction : float
        Fraction with magnitude < 16 (zeros included).
    activation_mean_bits, weight_mean_bits : float
        Mean number of set bits of the magnitude, over all elements (zeros count 0).
    activation_mean_nonzero_bits, weight_mean_nonzero_bits : float
        The same over the non-zero elements only.
    activation_median_nonzero : float
        Median magnitude of the non-zero activations.
    activation_log_sigma : float
        Standard deviation of ln|a| over the non-zero activations (the spread of the
        magnitudes; used to calibrate the synthetic generator).
    activation_max, weight_max_abs : int
        Largest activation magnitude / weight magnitude.
    weight_2to4_fraction : float
        Fraction of groups of 4 consecutive K elements (per filter) with at most 2 non-zero
        weights (1.0 for 2:4 structured weights).
    output_exact : bool or None
        Whether the data's ``output`` equals the exact GEMM (``None`` when there is no output).
    """

    name: str
    op: str
    m: int
    k: int
    n: int
    groups: int
    macs: int
    activation_signed: bool
    activation_zero_fraction: float
    activation_small_fraction: float
    activation_mean_bits: float
    activation_mean_nonzero_bits: float
    activation_median_nonzero: float
    activation_log_sigma: float
    activation_max: int
    weight_zero_fraction: float
    weight_small_fraction: float
    weight_mean_bits: float
    weight_mean_nonzero_bits: float
    weight_max_abs: int
    weight_2to4_fraction: float
    output_exact: bool | None


def _magnitude(x: np.ndarray) -> np.ndarray:
    """|x| in the narrowest integer type that holds it: 8-bit data as 16-bit (a layer's
    weights may be hundreds of MB; int64 copies of them took 8x that)."""
    narrow = np.int16 if x.dtype.kind in "iu" and x.dtype.itemsize == 1 else np.int64
    return np.abs(x.astype(narrow))


def _bits(magnitude: np.ndarray) -> np.ndarray:
    return np.bitwise_count(magnitude)


def _two_of_four_fraction(weight: np.ndarray, layer: Layer) -> float:
    nonzero = np.asarray(weight) != 0  # lowered as booleans: no int64 copy of the weights
    if layer.op == "matmul":  # the right operand is (batch, kv_heads, K, N): (g, Kd, Fg)
        b = nonzero.reshape(layer.gemm.groups, layer.gemm.k, layer.gemm.n)
    else:
        b = weights_to_gemm(nonzero, layer, dtype=None)  # (g, Kd, Fg)
    g, kd, fg = b.shape
    pad = (-kd) % 4
    nonzero = np.concatenate([b, np.zeros((g, pad, fg), dtype=bool)], axis=1)
    per_group = nonzero.reshape(g, (kd + pad) // 4, 4, fg).sum(axis=2, dtype=np.int8)
    return float(np.mean(per_group <= 2)) if per_group.size else 1.0


def layer_stats(layer: Layer, tensors: LayerTensors, check_output: bool = True) -> LayerStats:
    """Compute :class:`LayerStats` for one layer and its integer data (a float input of a
    vector layer as its 8-bit codes, :func:`~simulator.workloads.layers.float_codes`)."""
    x = np.asarray(tensors.input)
    a = _magnitude(float_codes(x)[0] if x.dtype.kind == "f" else x)
    a_bits = _bits(a)
    a_nonzero = a[a != 0]
    logs = np.log(a_nonzero, dtype=np.float64) if a_nonzero.size else np.zeros(0)
    output_exact = None
    if check_output and tensors.output is not None and layer.is_gemm:
        output_exact = bool(np.array_equal(exact_output(tensors, layer), tensors.output))
    # a vector op has no GEMM (its rows x row length) and no weights (NaN: not applicable)
    gemm = layer.gemm if layer.is_gemm else GemmShape(layer.rows, layer.in_channels,
                                                      layer.out_channels)
    return LayerStats(
        name=layer.name, op=layer.op, m=gemm.m, k=gemm.k, n=gemm.n, groups=gemm.groups,
        macs=layer.macs, activation_signed=layer.activation_signed,
        activation_zero_fraction=float(np.mean(a == 0)),
        activation_small_fraction=float(np.mean(a < SMALL)),
        activation_mean_bits=float(a_bits.mean()),
        activation_mean_nonzero_bits=float(a_bits[a != 0].mean()) if a_nonzero.size else 0.0,
        activation_median_nonzero=float(np.median(a_nonzero)) if a_nonzero.size else 0.0,
        activation_log_sigma=float(logs.std()) if logs.size else 0.0,
        activation_max=int(a.max()) if a.size else 0,
        **_weight_stats(tensors.weight, layer),
        output_exact=output_exact)


def _weight_stats(weight: np.ndarray | None, layer: Layer) -> dict[str, Any]:
    """The ``weight_*`` fields of :class:`LayerStats` (NaN and 0 when there is no weight)."""
    if weight is None:
        return dict(weight_zero_fraction=math.nan, weight_small_fraction=math.nan,
                    weight_mean_bits=math.nan, weight_mean_nonzero_bits=math.nan,
                    weight_max_abs=0, weight_2to4_fraction=math.nan)
    w = _magnitude(np.asarray(weight))
    w_bits = _bits(w)
    return dict(weight_zero_fraction=float(np.mean(w == 0)),
                weight_small_fraction=float(np.mean(w < SMALL)),
                weight_mean_bits=float(w_bits.mean()),
                weight_mean_nonzero_bits=float(w_bits[w != 0].mean()) if np.any(w) else 0.0,
                weight_max_abs=int(w.max()) if w.size else 0,
                weight_2to4_fraction=_two_of_four_fraction(weight, layer))


def workload_stats(workload: Workload, check_output: bool = True) -> Iterator[LayerStats]:
    """Yield the statistics of every layer, loading one layer's data at a time.

    Raises
    ------
    WorkloadError
        If the workload carries no data (synthesize it first,
        :func:`simulator.workloads.synthetic.synthesize`).
    """
    if workload.tensors is None:
        raise WorkloadError(f"{workload.source}: the workload has no data (shape-only); "
                            f"synthesize data for it first")
    for layer in workload.layers:
        yield layer_stats(layer, workload.tensors(layer.name), check_output)


def summarize(stats: list[LayerStats]) -> dict[str, Any]:
    """Whole-network figures: MAC-weighted means of the per-layer fractions."""
    macs = sum(s.macs for s in stats)
    out: dict[str, Any] = {"layers": len(stats), "macs": macs}
    weighted = [s for s in stats if s.macs]  # vector ops (no MACs, no weights) weigh nothing
    for key in ("activation_zero_fraction", "activation_small_fraction", "activation_mean_bits",
                "weight_zero_fraction", "weight_small_fraction", "weight_mean_bits"):
        out[key] = (sum(getattr(s, key) * s.macs for s in weighted) / macs) if macs else math.nan
    checked = [s.output_exact for s in stats if s.output_exact is not None]
    out["outputs_exact"] = None if not checked else all(checked)
    return out
