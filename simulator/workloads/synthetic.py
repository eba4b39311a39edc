"""Seeded synthetic integer data for shape-only workloads (docs/synthetic-data.md).

Data-dependent hardware (SySMT, SPARQ, SWIS, zero skipping) needs values, but ResNet-50 or
MobileNet-v2 ship here as shapes only. :func:`synthesize` gives such a workload lazily generated,
deterministic data with realistic statistics, calibrated against the real digits trace
(``workloads/digits_int8.npz``):

- activations, zero point 0: unsigned (post-ReLU) layers have a fraction
  ``activation_zero_fraction`` of exact zeros; the non-zero magnitudes are log-normal (heavy
  tailed: many small values, a few large ones) with median ``activation_median`` and log-spread
  ``activation_log_sigma``, rounded and clipped to [1, 2^b - 1]. Signed layers use the same
  magnitudes with a random sign and ``signed_activation_zero_fraction`` zeros. Elements are
  independent (real feature maps are spatially correlated; per-element PE statistics do not
  depend on it);
- weights: Laplacian per output channel (``weight_shape: 1``; a generalised-normal shape
  ``weight_shape`` > 1 gives lighter tails, 2 = Gaussian), optionally magnitude-pruned (the smallest
  ``weight_prune_fraction`` of each layer set to 0) and/or 2:4 structured (in each group of 4
  consecutive K elements of a filter, in the K order of docs/hardware-spec.md §1, the 2 largest
  magnitudes are kept), then quantised symmetrically per output channel to ``weight_bits``
  (scale = max|w| / (2^(b-1) - 1)), as a real post-training-quantised model is.

Layer ``i`` draws from ``numpy.random.default_rng(SeedSequence([seed, i]))``, so any layer can
be generated alone, in any order, and always gives the same data. The draws run at memory
speed (docs/synthetic-data.md, "How the values are drawn"): activations by inverse transform
from a table of 2**16 equally likely cells, Laplacian weights by inversion of 24-bit uniforms,
both from raw 32-bit words of the bit generator, chunk by chunk. There is no bias and no
``output`` (compute it with :func:`simulator.workloads.lowering.exact_output`).

Transformer layers (those with a ``role``) draw from
:mod:`simulator.workloads.transformer_stats` instead (docs/synthetic-data.md, "Transformer
tensors").

Workload YAML files may carry these options as a top-level ``data:`` mapping (keys = the
fields of :class:`SyntheticOptions`); :func:`synthetic_options_from_mapping` validates it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simulator.config.files import read_yaml_mapping
from simulator.config.schema import build, option
from simulator.errors import ConfigError, WorkloadError
from simulator.records import record
from simulator.workloads.data_cache import cached
from simulator.workloads.layers import POOL_OPS, Layer, LayerTensors, Workload

__all__ = ["SyntheticOptions", "synthesize", "synthetic_options_from_mapping",
           "synthetic_options_from_file", "data_section", "layer_tensors",
           "transformer_tensors"]


def _fraction(value: float) -> str | None:
    return None if 0.0 <= value < 1.0 else "a fraction in [0, 1)"


def _between(lo: float, hi: float, words: str):
    """A check: ``lo <= value <= hi`` (``lo < value`` when ``words`` starts with "above")."""
    above = words.startswith("above")

    def check(value: float) -> str | None:
        ok = (value > lo if above else value >= lo) and value <= hi
        return None if ok else f"a number {words} {hi:,g}"
    return check


@record
class SyntheticOptions:
    """The ``data:`` section of a workload: how synthetic data are generated.

    The defaults are calibrated on the unsigned conv layers of the digits INT8 trace
    (docs/synthetic-data.md compares them layer by layer).
    """

    seed: int = option(0, doc="Base seed; layer i uses SeedSequence([seed, i]).",
                       check=lambda v: None if 0 <= v < 1 << 63 else "an integer from 0 to 2**63-1")
    activation_zero_fraction: float = option(
        0.52, doc="Fraction of exact zeros in unsigned (post-ReLU) activations.",
        check=_fraction)
    signed_activation_zero_fraction: float = option(
        0.0, doc="Fraction of exact zeros in signed activations (e.g. the first layer).",
        check=_fraction)
    activation_median: float = option(
        28.0, doc="Median of the non-zero activation magnitudes (integer units), above 0 "
                  "and at most 1,000,000.", check=_between(0, 1e6, "above 0 and at most"))
    activation_log_sigma: float = option(
        1.0, doc="Standard deviation of ln|a| of the non-zero activations (tail weight), "
                 "0 to 10.", check=_between(0, 10, "from 0 to"))
    weight_shape: float = option(
        1.0, doc="Shape beta of the generalised-normal weight distribution: 1 = Laplace, "
                 "2 = Gaussian; 0.1 to 100 (a smaller beta overflows float32).",
        check=_between(0.1, 100, "from 0.1 to"))
    weight_prune_fraction: float = option(
        0.0, doc="Fraction of each layer's weights zeroed by magnitude pruning.",
        check=_fraction)
    weight_structure: Literal["none", "2:4"] = option(
        "none", doc="'2:4': at most 2 non-zero weights in every 4 consecutive K elements.")


def synthetic_options_from_mapping(mapping: Mapping[str, Any] | None,
                                   where: str) -> SyntheticOptions:
    """Validate a ``data:`` mapping; errors are ConfigError naming ``where.key``.

    Parameters
    ----------
    mapping : mapping or None
        The raw YAML ``data`` value (``None`` means all defaults).
    where : str
        Key path used in messages, e.g. ``"workloads/resnet18_pruned40.yaml: data"``.
    """
    return build(SyntheticOptions, mapping, where)


def synthetic_options_from_file(path: str | Path) -> SyntheticOptions:
    """The ``data:`` section of a workload YAML file (defaults when it has none)."""
    path = Path(path)
    return data_section(read_yaml_mapping(path, WorkloadError), path)


def data_section(data: Mapping[str, Any], path: Path) -> SyntheticOptions:
    """The ``data:`` section of a workload file read into ``data``, validated (a bad one is
    a WorkloadError naming the file and key, when the file is read, not mid-run)."""
    try:
        return synthetic_options_from_mapping(data.get("data"), f"{path}: data")
    except ConfigError as exc:
        raise WorkloadError(str(exc)) from None


def _input_shape(layer: Layer) -> tuple[int, ...]:
    """The (left) input's shape: (N, C, H, W) for conv2d and pooling, (batch, heads, tokens,
    features) for matmul and the row-wise vector ops, (N, in) otherwise."""
    if layer.op in ("conv2d",) + POOL_OPS:
        return (layer.batch, layer.in_channels, *layer.input_size)
    if layer.op == "matmul" or not layer.is_gemm:
        return (layer.batch, layer.heads, layer.tokens, layer.in_channels)
    return (layer.batch, layer.in_channels)


def _weight_shape(layer: Layer) -> tuple[int, ...]:
    if layer.op == "conv2d":
        return (layer.out_channels, layer.in_channels // layer.groups, *layer.kernel_size)
    return (layer.out_channels, layer.in_channels)


#: Elements drawn per chunk. The draws of a layer are made chunk by chunk, so the stream (and
#: the data) depend on this constant: changing it changes every synthetic value.
_CHUNK = 1 << 18
#: Activations are drawn by inverse transform from a table of this many equally likely cells
#: (2**16: every value's probability is exact to within 2**-16).
_TABLE_BITS = 16


def _raw_words(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly random uint32 words straight from the bit generator."""
    return rng.bit_generator.random_raw(-(-n // 2)).view(np.uint32)[:n]


def _normal_quantile(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile function at ``p`` in (0, 1), vectorised (P. J. Acklam's
    rational approximation, relative error below 1.2e-9)."""
    a = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
         1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
    b = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
         6.680131188771972e+01, -1.328068155288572e+01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
         -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
         3.754408661907416e+00)
    tail = np.minimum(p, 1.0 - p)
    q = np.sqrt(-2.0 * np.log(np.maximum(tail, 1e-300)))
    z_tail = ((((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
              / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0))
    z_tail = np.where(p < 0.5, z_tail, -z_tail)
    r = (p - 0.5) ** 2
    z_mid = ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * (p - 0.5)
             / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0))
    return np.where(tail < 0.02425, z_tail, z_mid)


@functools.lru_cache(maxsize=16)
def _activation_table(bits: int, signed: bool, zero_fraction: float, median: float,
                      log_sigma: float) -> np.ndarray:
    """Value of each of the 2**_TABLE_BITS equally likely cells of the activation law.

    Unsigned: the first ``zero_fraction`` of the cells are 0, the rest the log-normal
    quantiles ``round(exp(ln median + sigma z))`` clipped to [1, 2^b - 1]. Signed: the
    first half of the cells is the negated second half, whose cells follow the same rule
    with ``2^(b-1)`` as the clip (then clipped to the signed range).
    """
    cells = 1 << (_TABLE_BITS - 1 if signed else _TABLE_BITS)
    p = (np.arange(cells) + 0.5) / cells
    nonzero = p >= zero_fraction
    rescaled = np.where(nonzero, (p - zero_fraction) / (1.0 - zero_fraction), 0.5)
    high = (1 << (bits - 1)) if signed else (1 << bits) - 1
    with np.errstate(over="ignore"):
        magnitude = np.rint(np.exp(np.log(median) + log_sigma * _normal_quantile(rescaled)))
    values = np.where(nonzero, np.clip(magnitude, 1, high), 0).astype(np.int64)
    if signed:
        values = np.clip(np.concatenate([-values, values]), -high, high - 1)
    dtype = (np.int8 if signed else np.uint8) if bits <= 8 else np.int64
    return values.astype(dtype)


def _activations(rng: np.random.Generator, layer: Layer, options: SyntheticOptions,
                 shape: tuple[int, ...] | None = None, signed: bool | None = None,
                 bits: int | None = None) -> np.ndarray:
    """Activations of the layer's input (or of ``shape`` with ``signed`` and ``bits``: a
    matmul's right operand, the second input of add/mul)."""
    shape = _input_shape(layer) if shape is None else shape
    signed = layer.activation_signed if signed is None else signed
    table = _activation_table(
        layer.activation_bits if bits is None else bits, signed,
        options.signed_activation_zero_fraction if signed else options.activation_zero_fraction,
        options.activation_median, options.activation_log_sigma)
    size = math.prod(shape)
    out = np.empty(size, dtype=table.dtype)
    for lo in range(0, size, _CHUNK):
        n = min(_CHUNK, size - lo)
        np.take(table, _raw_words(rng, n) >> (32 - _TABLE_BITS), out=out[lo:lo + n])
    return out.reshape(shape)


def _draw_magnitudes(rng: np.random.Generator, n: int,
                     beta: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generalised-normal magnitudes G^(1/beta), G ~ Gamma(1/beta) (float32), and
    ``n`` random signs (uint32, 1: negative). For the default beta = 1 (Laplace),
    G = -ln U is drawn by inversion from the same 32-bit words as the signs."""
    words = _raw_words(rng, n)
    if beta == 1.0:
        u = (words >> 8).astype(np.float32)
        u += np.float32(0.5)
        u *= np.float32(2.0**-24)
        magnitude = np.log(u, out=u)
        np.negative(magnitude, out=magnitude)
    else:
        magnitude = rng.standard_gamma(1.0 / beta, n, dtype=np.float32)
        np.power(magnitude, np.float32(1.0 / beta), out=magnitude)
    return magnitude, words & 1


def _quantise(magnitude: np.ndarray, negative: np.ndarray, qmax: int, out: np.ndarray) -> None:
    """Symmetric per-row (output channel) quantisation into ``out`` (F, K):
    ``sign * round(|w| / (max|w_f| / qmax))``, so every non-zero filter reaches +-qmax."""
    peak = (magnitude.max(axis=1) if magnitude.shape[1]
            else np.zeros(magnitude.shape[0], magnitude.dtype))
    scale = np.divide(qmax, peak, out=np.zeros_like(peak), where=peak > 0)
    magnitude *= scale[:, np.newaxis]
    np.rint(magnitude, out=magnitude)
    out[...] = magnitude
    # float32 holds qmax exactly only below 2**24: wider weights may round one above it
    np.minimum(out, qmax, out=out)
    # two's complement negation where the sign is set: (q ^ -s) + s
    s = negative.astype(out.dtype).reshape(out.shape)
    np.bitwise_xor(out, -s, out=out)
    out += s


def _weights(rng: np.random.Generator, layer: Layer, options: SyntheticOptions) -> np.ndarray:
    shape = _weight_shape(layer)
    filters, per_filter = shape[0], math.prod(shape[1:])
    qmax = (1 << (layer.weight_bits - 1)) - 1
    out = np.empty((filters, per_filter),
                   dtype=np.int8 if layer.weight_bits <= 8 else np.int64)
    beta = options.weight_shape
    if options.weight_prune_fraction > 0 or options.weight_structure == "2:4":
        # pruning ranks the whole layer: draw it at once (still chunk by chunk)
        draws = [_draw_magnitudes(rng, min(_CHUNK, out.size - lo), beta)
                 for lo in range(0, out.size, _CHUNK)]
        w = np.concatenate([np.where(neg == 1, -m, m) for m, neg in draws]
                           or [np.zeros(0, np.float32)])
        if options.weight_prune_fraction > 0:
            _prune(w, int(round(options.weight_prune_fraction * w.size)))
        w = w.reshape(shape)
        if options.weight_structure == "2:4":
            w = _two_of_four(w, layer)
        w = w.reshape(filters, per_filter)
        _quantise(np.abs(w), np.signbit(w), qmax, out)
        return out.reshape(shape)
    # whole filters per chunk: the per-filter scale needs the filter's largest magnitude
    step = max(1, _CHUNK // max(per_filter, 1))
    for lo in range(0, filters, step):
        hi = min(filters, lo + step)
        magnitude, negative = _draw_magnitudes(rng, (hi - lo) * per_filter, beta)
        _quantise(magnitude.reshape(hi - lo, per_filter), negative, qmax, out[lo:hi])
    return out.reshape(shape)


def _prune(w: np.ndarray, cut: int) -> None:
    """Zero the ``cut`` smallest magnitudes of flat ``w`` in place (ties: lowest index first,
    as a stable sort would), in linear time."""
    if cut <= 0:
        return
    magnitude = np.abs(w)
    threshold = np.partition(magnitude, cut - 1)[cut - 1]
    below = magnitude < threshold
    ties = np.flatnonzero(magnitude == threshold)[:cut - int(np.count_nonzero(below))]
    w[below] = 0
    w[ties] = 0


def _two_of_four(w: np.ndarray, layer: Layer) -> np.ndarray:
    """Keep the 2 largest magnitudes of every 4 consecutive K elements of each filter."""
    if layer.op == "conv2d":
        f, cg, r, s = w.shape
        g = layer.groups
        # the GEMM layout of lowering.weights_to_gemm, kept in float: (g, Kd, Fg)
        b = w.reshape(g, f // g, cg, r, s).transpose(0, 3, 4, 2, 1).reshape(g, r * s * cg, f // g)
    else:
        b = w.T[np.newaxis]
    g, kd, fg = b.shape
    pad = (-kd) % 4
    groups = np.concatenate([b, np.zeros((g, pad, fg), b.dtype)], axis=1).reshape(g, -1, 4, fg)
    rank = np.argsort(np.argsort(-np.abs(groups), axis=2, kind="stable"), axis=2)
    groups = np.where(rank < 2, groups, 0).reshape(g, kd + pad, fg)[:, :kd]
    # back from (g, Kd, Fg) with k = (r*S + s)*Cg + c to the layer's weight layout
    if layer.op != "conv2d":
        return groups[0].T.copy()
    out = groups.reshape(g, r, s, cg, f // g).transpose(0, 4, 3, 1, 2)
    return np.ascontiguousarray(out).reshape(f, cg, r, s)


def layer_tensors(layer: Layer, index: int, options: SyntheticOptions) -> LayerTensors:
    """The synthetic data of the ``index``-th layer of a workload."""
    rng = np.random.default_rng(np.random.SeedSequence([options.seed, index]))
    if layer.op == "matmul" or not layer.is_gemm:
        return transformer_tensors(rng, layer, options)
    activations = _activations(rng, layer, options)
    return LayerTensors(input=activations, weight=_weights(rng, layer, options))


def transformer_tensors(rng: np.random.Generator, layer: Layer,
                        options: SyntheticOptions) -> LayerTensors:
    """The synthetic data of a ``matmul`` or vector layer: the one place that draws them
    (docs/synthetic-data.md), with the activation law above.

    A matmul's left operand (batch, heads, tokens, K) is drawn as activations, its right
    operand (batch, kv_heads, K, N) from the same law with the layer's ``weight_signed`` and
    ``weight_bits``; a vector op's input (and the second input of ``add``/``mul``) as
    activations of shape (batch, heads, tokens, features) (pooling: (batch, C, H, W)).
    """
    activations = _activations(rng, layer, options)
    if layer.op == "matmul":  # the right operand is an activation too (K, V or P)
        shape = (layer.batch, layer.right_heads, layer.in_channels, layer.out_channels)
        right = _activations(rng, layer, options, shape, layer.weight_signed, layer.weight_bits)
        return LayerTensors(input=activations, weight=right)
    other = _activations(rng, layer, options) if layer.input_operands == 2 else None
    return LayerTensors(input=activations, weight=None, other=other)


def synthesize(workload: Workload, options: SyntheticOptions = SyntheticOptions()) -> Workload:
    """The same workload with lazily generated, seeded synthetic data.

    Returns
    -------
    Workload
        ``data_kind='synthetic'``; ``tensors(name)`` generates that layer's int input and
        weights (int8/uint8; ``bias`` and ``output`` are ``None``), or reads them from the
        cache (:mod:`simulator.workloads.data_cache`).
    """
    index = {layer.name: (i, layer) for i, layer in enumerate(workload.layers)}

    def tensors(name: str) -> LayerTensors:
        if name not in index:
            raise WorkloadError(f"{workload.source}: layer '{name}': no such layer")
        i, layer = index[name]
        draw = role_layer_tensors if layer.role else layer_tensors  # role: a transformer's
        return cached(layer, i, options, lambda: draw(layer, i, options))

    return dataclasses.replace(workload, tensors=tensors, data_kind="synthetic")


def role_layer_tensors(layer: Layer, index: int, options: SyntheticOptions) -> LayerTensors:
    """The synthetic data of the ``index``-th layer of a workload when it has a ``role`` (a
    transformer's layer): :func:`simulator.workloads.transformer_stats.transformer_tensor` per
    operand, from ``SeedSequence([seed, index])``; pruned or 2:4 weights when ``options`` ask
    for them (docs/synthetic-data.md, "Transformer tensors")."""
    from simulator.workloads import transformer_stats as tx

    rng = np.random.default_rng(np.random.SeedSequence([options.seed, index]))
    data = {operand: tx.transformer_tensor(layer, operand, shape, rng)
            for operand, shape in tx.operand_shapes(layer).items()}
    if layer.op in ("linear", "conv2d") and (options.weight_prune_fraction > 0
                                             or options.weight_structure != "none"):
        data["weight"] = _weights(rng, layer, options)
    return LayerTensors(**{"weight": None, **data})
