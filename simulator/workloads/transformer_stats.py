"""Calibrated synthetic integer data for transformer layers (docs/synthetic-data.md,
"Transformer tensors").

Each operand of a layer with a ``role`` (the layers of a ``transformer:`` workload) gets the
float values its kind of tensor has in a trained model, quantised to the layer's bits as an
8-bit inference stack does (docs/hardware-spec.md §11):

- activations per tensor, symmetric, absmax-calibrated on the tensor itself:
  ``q = round(x * qmax / max|x|)`` (unsigned tensors use ``2^b - 1``);
- softmax outputs P with the fixed scale ``1 / (2^b - 1)`` (1/255 at 8 bits);
- weights per output channel, symmetric, absmax (every channel reaches +-qmax).

The kinds (:func:`tensor_kind`): Gaussian-like signed Q, K, V, logits and pre-activations;
GELU and SiLU·up outputs (almost no exact zeros); ReLU FFN outputs (a fraction of zeros drawn
per layer in [0.6, 0.95]); softmax rows of Gaussian logits with standard deviation
:data:`LOGIT_STD` (causal rows masked); and, for LLM widths (at least :data:`LLM_WIDTH`
channels), LLM.int8-style outlier channels in the inputs of the projections and the residual
stream, plus massive activations on the first token of each sequence in the residual stream
and one more token (prefill), which the per-tensor scale then squeezes the other values
under.

Everything is vectorised: a standard normal variate is a lookup of the top 16 bits of a raw
32-bit word in a table of 2^16 equally likely normal quantiles (range +-4.33), so the draws run
at memory speed; the randomness comes from the generator the caller passes (deterministic by
seed). Outlier and massive channels are fixed per width (the same channels in every layer, as
in real models).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from simulator.workloads.layers import POOL_OPS, Layer

__all__ = ["LOGIT_STD", "LLM_WIDTH", "TYPICAL_CLIP", "OUTLIER_MIN", "RELU_ZERO_RANGE",
           "MASSIVE_RATIO", "TENSOR_KINDS", "tensor_kind", "operand_shapes",
           "transformer_tensor", "outlier_channels", "massive_channels",
           "softmax_probabilities", "gelu", "silu"]

#: Standard deviation of the attention logits q.k/sqrt(d) before the softmax (a documented
#: assumption: docs/synthetic-data.md shows the zeros of P it gives at several lengths).
LOGIT_STD = 2.0
#: Tensors with at least this many channels get LLM outliers (LLM.int8 finds outlier features
#: in models of width 4096 and more; GPT-2, BERT-base and ViT-B have 768).
LLM_WIDTH = 2048
#: Typical hidden values lie within +-TYPICAL_CLIP (LLM.int8: within +-3.5).
TYPICAL_CLIP = 3.5
#: Outlier-channel magnitudes are at least this (LLM.int8: >= 6), plus an exponential tail.
OUTLIER_MIN = 6.0
#: Mean of the exponential tail added to OUTLIER_MIN.
OUTLIER_TAIL_MEAN = 6.0
#: Outlier channels per 4096 channels (LLM.int8: 6 feature dimensions at 6.7B, width 4096).
OUTLIER_PER_4096 = 6
#: Massive activations: channels per width, and the range of their magnitude over a
#: typical value (log-uniform; "Massive activations in LLMs", Sun et al., 2024: ~1e4x).
MASSIVE_CHANNELS = 2
MASSIVE_RATIO = (1e3, 1e5)
#: Fraction of exact zeros of a ReLU FFN output, drawn per layer uniformly in this range.
RELU_ZERO_RANGE = (0.6, 0.95)

_TABLE_BITS = 16
#: Values transformed per step (small temporaries).
_CHUNK = 1 << 18
#: Logits of whole softmax matrices drawn at once (at least one matrix).
_SOFTMAX_CHUNK = 1 << 20
#: Softmax values computed at once (whole rows; float64, 256 KiB: in cache).
_SOFTMAX_ROWS = 1 << 15


@functools.cache
def _normal_table() -> np.ndarray:
    """2^16 equally likely standard normal quantiles (float32)."""
    from simulator.workloads.synthetic import _normal_quantile

    cells = 1 << _TABLE_BITS
    return _normal_quantile((np.arange(cells) + 0.5) / cells).astype(np.float32)


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 values of ``shape`` (table lookup, chunk by chunk so that the
    temporaries stay small: memory speed)."""
    from simulator.workloads.synthetic import _raw_words

    n = math.prod(shape)
    table = _normal_table()
    out = np.empty(n, np.float32)
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        words = _raw_words(rng, hi - lo)
        words >>= 32 - _TABLE_BITS
        np.take(table, words, out=out[lo:hi])
    return out.reshape(shape)


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form (GPT-2's ``gelu_new``), float32."""
    x = np.asarray(x, np.float32)
    inner = np.float32(math.sqrt(2 / math.pi)) * (x + np.float32(0.044715) * x * x * x)
    return np.float32(0.5) * x * (np.float32(1) + np.tanh(inner))


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU ``x * sigmoid(x)``, float32."""
    x = np.asarray(x, np.float32)
    return x / (np.float32(1) + np.exp(-x))


def _width_rng(width: int, salt: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([width, salt]))


@functools.cache
def outlier_channels(width: int) -> np.ndarray:
    """The outlier channels of a width (fixed per width; sorted)."""
    count = max(1, round(OUTLIER_PER_4096 * width / 4096))
    return np.sort(_width_rng(width, 1).choice(width, size=count, replace=False))


@functools.cache
def massive_channels(width: int) -> np.ndarray:
    """The channels that carry massive activations (fixed per width, not outlier ones)."""
    rest = np.setdiff1d(np.arange(width), outlier_channels(width))
    return np.sort(_width_rng(width, 2).choice(rest, size=MASSIVE_CHANNELS, replace=False))


def _qmax(bits: int, signed: bool) -> int:
    return (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1


def _dtype(bits: int, signed: bool) -> type:
    if bits > 8:
        return np.int64
    return np.int8 if signed else np.uint8


def _per_tensor(x: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Symmetric per-tensor absmax quantisation of float ``x`` (destroys ``x``)."""
    peak = max(float(x.max()), -float(x.min())) if x.size else 0.0
    scale = np.float32(_qmax(bits, signed) / peak if peak > 0 else 0.0)
    flat = x.reshape(-1)
    out = np.empty(flat.size, _dtype(bits, signed))
    for lo in range(0, flat.size, _CHUNK):
        chunk = flat[lo:lo + _CHUNK]
        chunk *= scale
        np.rint(chunk, out=chunk)
        out[lo:lo + _CHUNK] = chunk
    return out.reshape(x.shape)


def _per_channel(w: np.ndarray, bits: int) -> np.ndarray:
    """Symmetric per-output-channel (axis 0) absmax quantisation of float ``w``."""
    flat = w.reshape(w.shape[0], -1)
    # max|w| per row without a full-size |w| copy
    peak = (np.maximum(flat.max(axis=1), -flat.min(axis=1)) if flat.shape[1]
            else np.zeros(flat.shape[0], np.float32))
    scale = np.divide(_qmax(bits, True), peak, out=np.zeros_like(peak), where=peak > 0)
    flat *= scale[:, np.newaxis]
    np.rint(flat, out=flat)
    return flat.astype(_dtype(bits, True)).reshape(w.shape)


def _elementwise(fn, x: np.ndarray) -> np.ndarray:
    """``fn(x)`` of an element-wise float32 function, chunk by chunk into ``x`` itself (its
    temporaries stay small; the values are those of ``fn(x)``)."""
    flat = x.reshape(-1)
    for lo in range(0, flat.size, _CHUNK):
        flat[lo:lo + _CHUNK] = fn(flat[lo:lo + _CHUNK])
    return x


def softmax_probabilities(logits: np.ndarray, causal: bool) -> np.ndarray:
    """Softmax over the last axis (float64). ``causal``: logits (..., T, S) with key j of
    query i masked when ``j > i + S - T`` (the last query sees every key)."""
    z = np.asarray(logits, np.float64)
    if causal:
        t, s = z.shape[-2:]
        mask = np.arange(s)[np.newaxis, :] > np.arange(t)[:, np.newaxis] + (s - t)
        z = np.where(mask, -np.inf, z)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def _probabilities(rng: np.random.Generator, layer: Layer, shape: tuple[int, ...]) -> np.ndarray:
    """Quantised softmax rows (B, H, T, S): Gaussian logits of std LOGIT_STD, scale 1/qmax.

    The logits of whole (T, S) matrices are drawn at once (the random stream does not depend
    on how the softmax is blocked); the softmax then runs on blocks of rows in place
    (:func:`_quantised_rows`), the same operations as :func:`softmax_probabilities` in a
    working set that stays in cache.
    """
    qmax = _qmax(layer.activation_bits, False)
    out = np.empty(shape, _dtype(layer.activation_bits, False))
    t, s = shape[-2:]
    flat = out.reshape(-1, t, s)
    step = max(1, _SOFTMAX_CHUNK // max(1, t * s))  # whole (T, S) matrices per chunk
    rows = max(1, _SOFTMAX_ROWS // max(1, s))
    work = np.empty((min(rows, t), s), np.float64)
    for lo in range(0, flat.shape[0], step):
        hi = min(flat.shape[0], lo + step)
        logits = _normal(rng, (hi - lo, t, s))
        logits *= np.float32(LOGIT_STD)
        for matrix in range(hi - lo):
            for first in range(0, t, rows):
                last = min(t, first + rows)
                _quantised_rows(logits[matrix, first:last], first, t, layer.causal, qmax,
                                work[:last - first], flat[lo + matrix, first:last])
    return out


def _quantised_rows(logits: np.ndarray, first: int, t: int, causal: bool, qmax: int,
                    z: np.ndarray, out: np.ndarray) -> None:
    """Rows ``first..`` of a (T, S) matrix of logits: their softmax (float64, in ``z``, as
    :func:`softmax_probabilities` computes it) quantised as ``min(rint(p * qmax), qmax)``
    into ``out``."""
    s = logits.shape[-1]
    z[...] = logits
    if causal:
        mask = (np.arange(s)[np.newaxis, :]
                > np.arange(first, first + z.shape[0])[:, np.newaxis] + (s - t))
        np.copyto(z, -np.inf, where=mask)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    z *= qmax
    np.rint(z, out=z)
    np.minimum(z, qmax, out=z)
    out[...] = z


def _add_outliers(x: np.ndarray, rng: np.random.Generator) -> None:
    """LLM.int8 outlier channels (last axis) in place: a fixed sign per channel and
    magnitude OUTLIER_MIN + Exp(OUTLIER_TAIL_MEAN)."""
    channels = outlier_channels(x.shape[-1])
    sign = np.where(_width_rng(x.shape[-1], 3).random(channels.size) < 0.5, -1.0, 1.0)
    tail = rng.exponential(OUTLIER_TAIL_MEAN, (*x.shape[:-1], channels.size))
    x[..., channels] = (sign * (OUTLIER_MIN + tail)).astype(np.float32)


def _add_massive(x: np.ndarray, rng: np.random.Generator) -> None:
    """Massive activations in ``x`` (B, H, T, C), T > 1: on token 0 of every sequence and on
    one further token (a delimiter's place, drawn per sequence), in the massive channels."""
    channels = massive_channels(x.shape[-1])
    low, high = np.log10(MASSIVE_RATIO[0]), np.log10(MASSIVE_RATIO[1])
    b, h, t = x.shape[:3]
    ratio = 10.0 ** (low + (high - low) * rng.random((2, b, h, channels.size)))
    second = 1 + rng.integers(0, t - 1, size=b)  # a token after the first
    x[:, :, 0, channels] = ratio[0].astype(np.float32)
    x[np.arange(b)[:, None, None], np.arange(h)[None, :, None], second[:, None, None],
      channels[None, None, :]] = ratio[1].astype(np.float32)


def _hidden(rng: np.random.Generator, layer: Layer, shape: tuple[int, ...],
            massive: bool) -> np.ndarray:
    """Residual stream or normed values: N(0, 1) clipped at TYPICAL_CLIP; LLM widths add
    outlier channels and (``massive``, 4-d shapes with several tokens) massive ones."""
    x = _normal(rng, shape)
    np.clip(x, -TYPICAL_CLIP, TYPICAL_CLIP, out=x)
    if shape[-1] >= LLM_WIDTH:
        _add_outliers(x, rng)
        if massive and len(shape) == 4 and shape[2] > 1:
            _add_massive(x, rng)
    return x


#: The kinds of tensor the generator draws (docs/synthetic-data.md, "Transformer tensors").
TENSOR_KINDS = ("query", "keys", "values", "logits", "gaussian", "normed", "hidden", "gelu_out",
                "gated", "glu_out", "relu_out", "probs", "weight")
#: Linear layers whose input is a normed hidden state (the expansion's names).
_NORMED = ("q_proj", "k_proj", "v_proj", "fc1", "gate_proj", "up_proj", "lm_head", "head")


def tensor_kind(layer: Layer, operand: str) -> str:
    """What an operand of a transformer layer holds (docs/synthetic-data.md)."""
    short = layer.name.rsplit(".", 1)[-1]
    if operand == "weight":
        if layer.op == "matmul":
            return "keys" if layer.activation_signed else "values"
        return "weight"
    if layer.op == "matmul":
        return "query" if layer.activation_signed else "probs"
    if not layer.activation_signed:
        return "relu_out"
    if layer.op == "softmax":
        return "logits"
    if layer.op in ("layernorm", "rmsnorm") or (layer.op == "add" and operand == "input"):
        return "hidden"  # the residual stream (an add's other input is the branch output)
    if layer.op == "mul":
        return "gated" if operand == "input" else "gaussian"
    if layer.op in ("gelu", "silu", "relu", "rotary"):
        return "gaussian"
    if short in _NORMED:
        return "normed"
    if short == "fc2":
        return "gelu_out"
    if short == "down_proj":
        return "glu_out"
    return "gaussian"


def operand_shapes(layer: Layer) -> dict[str, tuple[int, ...]]:
    """The arrays of a layer's data (the layout of LayerTensors)."""
    if layer.op == "matmul":
        return {"input": (layer.batch, layer.heads, layer.tokens, layer.in_channels),
                "weight": (layer.batch, layer.right_heads, layer.in_channels,
                           layer.out_channels)}
    if layer.op == "conv2d":
        return {"input": (layer.batch, layer.in_channels, *layer.input_size),
                "weight": (layer.out_channels, layer.in_channels // layer.groups,
                           *layer.kernel_size)}
    if layer.is_gemm:
        return {"input": (layer.batch, layer.in_channels),
                "weight": (layer.out_channels, layer.in_channels)}
    if layer.op in POOL_OPS:
        return {"input": (layer.batch, layer.in_channels, *layer.input_size)}
    shape = (layer.batch, layer.heads, layer.tokens, layer.in_channels)
    return {"input": shape, "other": shape} if layer.input_operands == 2 else {"input": shape}


def _relu_out(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """max(x, 0) with x ~ N(mu, 1), mu set so that a fraction z ~ U(RELU_ZERO_RANGE) is 0."""
    from simulator.workloads.synthetic import _normal_quantile

    zeros = RELU_ZERO_RANGE[0] + (RELU_ZERO_RANGE[1] - RELU_ZERO_RANGE[0]) * rng.random()
    x = _normal(rng, shape)
    x -= np.float32(_normal_quantile(np.array(zeros))[()])
    return np.maximum(x, 0, out=x)


def transformer_tensor(layer: Layer, operand: str, shape: tuple[int, ...],
                       rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """Quantised synthetic values of one operand (``input``, ``weight`` or ``other``) of a
    transformer layer, of ``shape``, drawn from ``rng``.

    ``kind`` draws that kind of tensor instead of :func:`tensor_kind`'s (for layers named
    otherwise than the expansion names them, e.g. a trace's: benchmarks/transformer_stats.py
    compares real traces with the generator this way).

    Returns
    -------
    numpy.ndarray
        int8/uint8 (int64 above 8 bits); unsigned for softmax outputs and ReLU outputs.
    """
    kind = kind or tensor_kind(layer, operand)
    if kind not in TENSOR_KINDS:
        raise ValueError(f"unknown tensor kind {kind!r} (kinds: {', '.join(TENSOR_KINDS)})")
    abits, wbits = layer.activation_bits, layer.weight_bits
    if kind == "weight":
        return _per_channel(_normal(rng, shape), wbits)
    if kind in ("keys", "values"):
        return _per_tensor(_normal(rng, shape), wbits, True)
    if kind == "probs":
        return _probabilities(rng, layer, shape)
    if kind == "relu_out":
        return _per_tensor(_relu_out(rng, shape), abits, False)
    if kind in ("hidden", "normed"):
        return _per_tensor(_hidden(rng, layer, shape, kind == "hidden"), abits, True)
    if kind == "gelu_out":
        return _per_tensor(_elementwise(gelu, _normal(rng, shape)), abits, True)
    if kind == "gated":
        return _per_tensor(_elementwise(silu, _normal(rng, shape)), abits, True)
    if kind == "glu_out":
        x = _elementwise(silu, _normal(rng, shape))
        x *= _normal(rng, shape)
        return _per_tensor(x, abits, True)
    return _per_tensor(_normal(rng, shape), abits, True)  # gaussian, query, logits
