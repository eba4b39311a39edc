"""Integer-only vector ops (I-BERT: Kim et al., "I-BERT: Integer-only BERT Quantization",
ICML 2021) and their error against floating point on a layer's data (docs/transformers.md,
"Integer-only variants").

Every function takes int64 codes ``q`` of real values ``x = q * scale`` and returns int64
codes and their scale; everything between is integer arithmetic (floor divisions, shifts and
products of int64), with constants rounded once from the scale, as the hardware would hold
them:

- :func:`i_exp` (x <= 0): ``x = -z ln2 + p`` with ``z = floor(-q / q_ln2)``, then the
  second-order polynomial ``0.3585 (p + 1.353)^2 + 0.344`` and a right shift by z;
- :func:`i_softmax`: subtract the row's maximum, i-exp, and an integer division by the row's
  sum into ``OUTPUT_BITS`` fractional bits;
- :func:`i_gelu`: ``x (1 + i-erf(x / sqrt 2)) / 2`` with i-erf the clipped polynomial
  ``sign(x) (-0.2888 (min(|x|, 1.769) - 1.769)^2 + 1)``;
- :func:`i_silu`: ``x * sigmoid(x)`` with sigmoid from i-exp of ``-|x|`` and one division;
- :func:`i_layernorm` / :func:`i_rmsnorm`: the row's mean and variance in integers, the
  integer square root by Newton's iteration, an integer division into ``OUTPUT_BITS``
  fractional bits.

:func:`float_reference` computes the same op in float64 on the dequantised input, and
:func:`integer_error` the signal-to-noise ratio of the integer result against it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["INTEGER_OPS", "OUTPUT_BITS", "i_exp", "i_softmax", "i_gelu", "i_silu",
           "i_layernorm", "i_rmsnorm", "isqrt", "integer_op", "float_reference",
           "integer_error", "input_scale"]

#: Ops with an integer-only variant.
INTEGER_OPS = ("softmax", "layernorm", "rmsnorm", "gelu", "silu")
#: Fractional bits of the outputs of the integer softmax and norms.
OUTPUT_BITS = 16
#: Bits the input codes are shifted left by before i-exp and i-erf (a finer scale for their
#: polynomial constants; I-BERT feeds them 32-bit accumulators).
PRECISION_BITS = 8
_LN2 = math.log(2.0)
_EXP_A, _EXP_B, _EXP_C = 0.3585, 1.353, 0.344
_ERF_A, _ERF_B = -0.2888, -1.769


def input_scale(op: str, bits: int, signed: bool) -> float:
    """The real value of one input code: the largest code stands for 8 (softmax scores and
    the activations' inputs) or 4 (norm inputs), typical ranges of BERT-like models. A
    signed 1-bit input has no positive code: its one non-zero code, -1, stands for -8 (-4)."""
    top = max((1 << (bits - 1)) - 1, 1) if signed else (1 << bits) - 1
    return (4.0 if op in ("layernorm", "rmsnorm") else 8.0) / top


def _finer(q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """The codes shifted left by :data:`PRECISION_BITS`, and their scale."""
    return np.asarray(q, dtype=np.int64) << PRECISION_BITS, scale / (1 << PRECISION_BITS)


def i_exp(q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """exp(x) of codes ``q <= 0`` (int64): codes and scale of the result."""
    q = np.asarray(q, dtype=np.int64)
    q_ln2 = max(1, math.floor(_LN2 / scale))
    z = (-q) // q_ln2
    p = q + z * q_ln2
    q_b = math.floor(_EXP_B / scale)
    q_c = math.floor(_EXP_C / (_EXP_A * scale * scale))
    poly = (p + q_b) * (p + q_b) + q_c
    shift = np.minimum(z, 62)
    return poly >> shift, _EXP_A * scale * scale


def i_softmax(q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """Softmax over the last axis: codes with ``OUTPUT_BITS`` fractional bits."""
    q, scale = _finer(q, scale)
    e, _ = i_exp(q - q.max(axis=-1, keepdims=True), scale)
    total = e.sum(axis=-1, keepdims=True)
    return (e << OUTPUT_BITS) // np.maximum(total, 1), 2.0 ** -OUTPUT_BITS


def _i_erf(q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    q_b = math.floor(_ERF_B / scale)
    q_c = math.floor(1.0 / (_ERF_A * scale * scale))
    clipped = np.minimum(np.abs(q), -q_b)
    return np.sign(q) * ((clipped + q_b) * (clipped + q_b) + q_c), _ERF_A * scale * scale


def i_gelu(q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """GELU: codes and scale of ``x (1 + erf(x / sqrt 2)) / 2``."""
    q, scale = _finer(q, scale)
    erf, erf_scale = _i_erf(q, scale / math.sqrt(2.0))
    one = math.floor(1.0 / erf_scale)
    return q * (erf + one), scale * erf_scale / 2


def i_silu(q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """SiLU: ``x sigmoid(x)``, sigmoid(x) = 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x)
    below, with e = i-exp(-|x|); codes with ``OUTPUT_BITS`` fractional bits of sigmoid."""
    q, scale = _finer(q, scale)
    e, e_scale = i_exp(-np.abs(q), scale)
    one = math.floor(1.0 / e_scale)
    numerator = np.where(q >= 0, one, e)
    sigmoid = (numerator << OUTPUT_BITS) // np.maximum(one + e, 1)
    return q * sigmoid, scale * 2.0 ** -OUTPUT_BITS


def isqrt(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) of non-negative int64 by Newton's iteration (I-BERT's integer square
    root), element-wise."""
    n = np.asarray(n, dtype=np.int64)
    x = np.where(n > 0, np.int64(1) << ((_bit_length(n) + 1) // 2), 0)
    while True:
        y = np.where(x > 0, (x + n // np.maximum(x, 1)) // 2, 0)
        if not (y < x).any():
            return x
        x = np.where(y < x, y, x)


def _bit_length(n: np.ndarray) -> np.ndarray:
    out = np.zeros(n.shape, dtype=np.int64)
    v = n.copy()
    while (v > 0).any():
        out += v > 0
        v >>= 1
    return out


def _normalise(centred: np.ndarray, squares: np.ndarray) -> tuple[np.ndarray, float]:
    n = centred.shape[-1]
    std = isqrt(squares.sum(axis=-1, keepdims=True) // n)
    return (centred << OUTPUT_BITS) // np.maximum(std, 1), 2.0 ** -OUTPUT_BITS


def i_layernorm(q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """LayerNorm over the last axis (no affine): (x - mean) / std in integers."""
    q = np.asarray(q, dtype=np.int64)
    centred = q - q.sum(axis=-1, keepdims=True) // q.shape[-1]
    return _normalise(centred, centred * centred)


def i_rmsnorm(q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """RMSNorm over the last axis (no gain): x / rms(x) in integers."""
    q = np.asarray(q, dtype=np.int64)
    return _normalise(q, q * q)


_INTEGER = {"softmax": i_softmax, "layernorm": i_layernorm, "rmsnorm": i_rmsnorm,
            "gelu": i_gelu, "silu": i_silu}


def integer_op(op: str, q: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """The integer-only variant of ``op``."""
    return _INTEGER[op](q, scale)


def float_reference(op: str, x: np.ndarray) -> np.ndarray:
    """``op`` in float64 on real values ``x`` (rows along the last axis)."""
    x = np.asarray(x, dtype=np.float64)
    if op == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if op == "gelu":
        from math import erf

        return x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0))) / 2.0
    if op == "silu":
        return x / (1.0 + np.exp(-x))
    if op == "layernorm":
        centred = x - x.mean(axis=-1, keepdims=True)
        return centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + 1e-12)
    if op == "rmsnorm":
        return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + 1e-12)
    raise ValueError(f"no float reference for {op!r}")


def integer_error(op: str, q: np.ndarray, scale: float) -> float | None:
    """SQNR in dB of the integer variant of ``op`` on codes ``q`` against float64 on the
    same dequantised input; None when they agree exactly."""
    codes, out_scale = integer_op(op, q, scale)
    exact = float_reference(op, np.asarray(q, dtype=np.float64) * scale)
    noise = float(np.sum((codes * out_scale - exact) ** 2))
    signal = float(np.sum(exact ** 2))
    if noise == 0:
        return None
    return 10 * math.log10(signal / noise) if signal > 0 else -math.inf
