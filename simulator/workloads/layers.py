"""Layers and their lowering to GEMMs (docs/hardware-spec.md §1 and §11).

A conv2d with input (N, C, H, W), weight (F, C/g, R, S) becomes ``g`` GEMMs
``O (M x Fg) = A (M x Kd) . B (Kd x Fg)`` with M = N*P*Q, Kd = (C/g)*R*S, Fg = F/g. The K
order is tap-major, channel-minor: ``k = (r*S + s)*(C/g) + c``.

A ``matmul`` multiplies two activations, batched over sequences and heads: for each of the
``batch`` sequences and each of the ``heads`` query heads, a left operand (``tokens`` x
``in_channels``) times a right operand (``in_channels`` x ``out_channels``). With grouped-query
attention ``kv_heads`` < ``heads`` right operands are shared: the ``heads // kv_heads`` query
heads of one K/V head are stacked along M, so the layer is ``batch * kv_heads`` GEMMs of
M = ``tokens * heads // kv_heads`` (the shared right operand is loaded once per group).

The other ops (:data:`VECTOR_OPS`) have no MACs: they run on the vector unit, element by
element over ``rows = batch * heads * tokens`` rows of ``in_channels`` elements (times the
``input_size`` plane for pooling).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import field
from typing import Any, Literal

import numpy as np

from simulator.records import record

__all__ = ["GEMM_OPS", "VECTOR_OPS", "POOL_OPS", "ROLES", "GemmShape", "Layer", "LayerTensors", "Workload", "output_extent", "MAX_DIM",
           "MAX_LAYERS", "MAX_MACS", "MAX_PLANE", "MAX_LAYER_DATA_BYTES", "data_bytes", "data_limit",
           "data_problem",
           "format_bytes", "float_codes"]

#: Largest size of one dimension (batch, channels, features, H, W, kernel, stride, ...).
MAX_DIM = (1 << 31) - 1
#: Largest input feature-map height or width of a conv2d (the memory model's footprint keeps
#: a bitmask per input row).
MAX_PLANE = 1 << 16
#: Most multiply-accumulates of one layer (its cycle counts must fit in 64 bits).
MAX_MACS = 1 << 50
#: Most layers in one workload (a SCALE-Sim depthwise row expands to one layer per channel).
MAX_LAYERS = 1 << 14
#: Largest int64 working set of one layer's data (input, weights, im2col matrix, outputs)
#: that a functional run or a trace may hold (docs/config-reference.md, "Input limits").
MAX_LAYER_DATA_BYTES = 8 << 30


def format_bytes(count: int) -> str:
    """``"12.0 GiB (12,884,901,888 bytes)"``."""
    size, unit = float(count), "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024:
            break
        size, unit = size / 1024, name
    return f"{count:,} bytes" if unit == "bytes" else f"{size:.1f} {unit} ({count:,} bytes)"

OutputRule = Literal["pytorch", "scalesim"]

#: Ops that run on the array (they lower to GEMMs).
GEMM_OPS = ("conv2d", "linear", "gemm", "matmul")
#: Pooling ops: a window over each channel's (H, W) plane (``global_avgpool``: the whole plane).
POOL_OPS = ("maxpool", "avgpool", "global_avgpool")
#: Ops that run on the vector unit, element by element (no MACs).
VECTOR_OPS = ("softmax", "layernorm", "rmsnorm", "gelu", "silu", "relu", "add", "mul",
              "rotary") + POOL_OPS
#: What part of a transformer block a layer belongs to (reports add up time per role).
ROLES = ("", "attention", "ffn", "other")


def output_extent(size: int, kernel: int, stride: int, padding: int, dilation: int,
                  rule: OutputRule = "pytorch") -> int:
    """Output height (or width) of a convolution along one axis.

    ``pytorch``: floor((H + 2p - d(R-1) - 1)/s) + 1.  ``scalesim``: SCALE-Sim's topology
    convention, where H already includes padding and P = ceil((H - R + s)/s).
    """
    if rule == "scalesim":
        return -(-(size - kernel + stride) // stride)
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@record
class GemmShape:
    """``groups`` independent GEMMs of (m x k) . (k x n)."""

    m: int
    k: int
    n: int
    groups: int = 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all groups."""
        return self.groups * self.m * self.k * self.n


@record
class Layer:
    """One layer of a workload.

    For ``linear``, ``in_channels``/``out_channels`` are the in/out features and ``batch`` the
    number of rows (batch x tokens). For ``gemm``, M = ``batch``, K = ``in_channels``,
    N = ``out_channels``. For ``matmul`` (both operands activations), ``batch`` is the number
    of sequences, ``tokens`` the left operand's rows per sequence and head, ``in_channels``
    the inner dimension, ``out_channels`` the right operand's columns, ``heads``/``kv_heads``
    the left/right operands per sequence (``kv_heads`` 0 means ``heads``); ``weight_signed``
    and ``weight_bits`` describe the right operand, and ``kv_cache`` says it is read from the
    KV cache in DRAM. For a vector op, ``in_channels`` is the row length (``out_channels``
    equals it), the rows are ``batch * heads * tokens``, and pooling ops use ``input_size``,
    ``kernel_size``, ``stride`` and ``padding`` over each of ``batch * in_channels`` planes.
    ``role`` tags the layer for the per-role time shares of the reports.
    """

    name: str
    op: Literal["conv2d", "linear", "gemm", "matmul", "softmax", "layernorm", "rmsnorm",
                "gelu", "silu", "relu", "add", "mul", "rotary", "maxpool", "avgpool",
                "global_avgpool"]
    in_channels: int
    out_channels: int
    batch: int = 1
    input_size: tuple[int, int] = (1, 1)
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    activation_signed: bool = False
    activation_bits: int = 8
    weight_bits: int = 8
    output_rule: OutputRule = "pytorch"
    heads: int = 1
    kv_heads: int = 0
    tokens: int = 1
    weight_signed: bool = True
    kv_cache: bool = False
    role: str = ""
    #: Causal attention (a ``matmul`` or ``softmax`` of a decoder's prefill): keys after the
    #: query are masked. The MACs and elements still count the full matrix; synthetic data
    #: puts zeros in the masked softmax outputs.
    causal: bool = False

    @property
    def is_gemm(self) -> bool:
        """The layer runs on the array (it lowers to GEMMs); else on the vector unit."""
        return self.op in GEMM_OPS

    @property
    def right_heads(self) -> int:
        """Right operands per sequence of a ``matmul`` (``kv_heads``, or ``heads`` when 0)."""
        return self.kv_heads or self.heads

    @property
    def output_size(self) -> tuple[int, int]:
        """(P, Q) for conv2d and pooling ((1, 1) for global pooling); (1, 1) otherwise."""
        if self.op == "global_avgpool" or self.op not in ("conv2d", "maxpool", "avgpool"):
            return (1, 1)
        return tuple(
            output_extent(self.input_size[a], self.kernel_size[a], self.stride[a],
                          self.padding[a], self.dilation[a], self.output_rule)
            for a in range(2))

    def problems(self) -> Iterator[str]:
        """Yield what is inconsistent about this layer's shape (empty when valid)."""
        if not self.name:
            yield "the layer name must be non-empty"
        elif any(ord(c) < 32 or 127 <= ord(c) < 160 for c in self.name):  # C0, DEL, C1
            yield (f"the layer name {self.name!r} holds a control character (reports, files "
                   f"and plots name layers by it)")
        elif self.name.startswith(("/", "\\")) or ".." in self.name.replace("\\", "/").split("/"):
            yield (f"the layer name {self.name!r} leads out of a folder (outputs.npz keeps "
                   f"each layer's outputs as a member of that name)")
        if self.op not in GEMM_OPS + VECTOR_OPS:
            yield f"unknown op {self.op!r}"
            return
        for name in ("in_channels", "out_channels", "batch", "groups", "heads", "tokens"):
            if not 0 < getattr(self, name) <= MAX_DIM:
                yield f"{name} must be from 1 to {MAX_DIM:,}, not {getattr(self, name)}"
        if self.role not in ROLES:
            yield f"role must be one of {', '.join(repr(r) for r in ROLES)}, not {self.role!r}"
        yield from self._op_problems()
        if not 0 < self.activation_bits <= 32:
            yield f"activation_bits must be from 1 to 32, not {self.activation_bits}"
        if not 1 < self.weight_bits <= 32:
            yield f"weight_bits must be from 2 to 32 (weights are signed), not {self.weight_bits}"
        for name in ("input_size", "kernel_size", "stride", "dilation"):
            if min(getattr(self, name)) <= 0 or max(getattr(self, name)) > MAX_DIM:
                yield f"{name} must be from 1 to {MAX_DIM:,}, not {list(getattr(self, name))}"
        if self.op in ("conv2d",) + POOL_OPS and max(self.input_size) > MAX_PLANE:
            yield (f"input_size must be at most {MAX_PLANE:,} on each side, not "
                   f"{list(self.input_size)}")
        if min(self.padding) < 0 or max(self.padding) > MAX_DIM:
            yield f"padding must be from 0 to {MAX_DIM:,}, not {list(self.padding)}"
        if any(p for p in self.problems_of_size()):
            yield from self.problems_of_size()
            return
        if self.in_channels % self.groups or self.out_channels % self.groups:
            yield (f"groups={self.groups} must divide in_channels={self.in_channels} "
                   f"and out_channels={self.out_channels}")
        if (self.op in ("conv2d", "maxpool", "avgpool") and min(self.input_size) > 0
                and min(self.output_size) <= 0):
            yield (f"the kernel {list(self.kernel_size)} does not fit the input "
                   f"{list(self.input_size)} (output size {list(self.output_size)})")

    def _op_problems(self) -> Iterator[str]:
        """Yield what is inconsistent about the op-specific fields."""
        if self.op == "matmul":
            if not 0 <= self.kv_heads <= MAX_DIM:
                yield f"kv_heads must be from 0 to {MAX_DIM:,}, not {self.kv_heads}"
            elif self.heads % self.right_heads:
                yield (f"kv_heads={self.right_heads} must divide heads={self.heads} "
                       f"(each K/V head serves the same number of query heads)")
            if self.groups != 1:
                yield f"a matmul has no groups (groups={self.groups}); use heads"
        elif self.kv_heads:
            yield f"kv_heads applies to matmul only, not {self.op}"
        elif self.kv_cache:
            yield f"kv_cache applies to matmul only, not {self.op}"
        if self.causal and self.op not in ("matmul", "softmax"):
            yield f"causal applies to matmul and softmax only, not {self.op}"
        if self.op == "rotary" and self.in_channels % 2:
            yield (f"rotary rotates pairs of features: features={self.in_channels} must be "
                   f"even")
        if self.op in VECTOR_OPS and self.out_channels != self.in_channels:
            yield (f"a {self.op} keeps its row length: out_channels={self.out_channels} must "
                   f"equal in_channels={self.in_channels}")

    def problems_of_size(self) -> Iterator[str]:
        """Yield a problem when the layer's MACs or elements exceed :data:`MAX_MACS`."""
        if self.op in ("conv2d", "maxpool", "avgpool") and min(self.output_size) <= 0:
            return
        if self.op == "matmul" and (self.kv_heads < 0 or self.heads % self.right_heads):
            return
        macs = self.macs if self.is_gemm else self.elements
        if macs > MAX_MACS:
            what = "multiply-accumulates" if self.is_gemm else "elements"
            yield f"{macs:,} {what}, more than the {MAX_MACS:,} sasim simulates in one layer"

    @property
    def rows(self) -> int:
        """Rows of a vector op (``batch * heads * tokens``); pooling: ``batch`` images."""
        return self.batch * self.heads * self.tokens

    @property
    def elements(self) -> int:
        """Elements of the layer's (first) input: what a vector op reads per operand."""
        if self.op in ("conv2d",) + POOL_OPS:
            return self.batch * self.in_channels * self.input_size[0] * self.input_size[1]
        if self.op == "matmul":
            return self.batch * self.heads * self.tokens * self.in_channels
        if self.is_gemm:
            return self.gemm.m * self.gemm.k * self.gemm.groups
        return self.rows * self.in_channels

    @property
    def output_elements(self) -> int:
        """Elements of the layer's output."""
        if self.op in ("conv2d",) + POOL_OPS:
            p, q = self.output_size
            return self.batch * self.out_channels * p * q
        if self.op == "matmul":
            return self.batch * self.heads * self.tokens * self.out_channels
        if self.is_gemm:
            return self.gemm.m * self.gemm.n * self.gemm.groups
        return self.elements

    @property
    def input_operands(self) -> int:
        """Inputs of the same shape a vector op reads (2 for ``add`` and ``mul``)."""
        return 2 if self.op in ("add", "mul") else 1

    @property
    def gemm(self) -> GemmShape:
        """The GEMM this layer lowers to (a vector op has none: ValueError)."""
        if not self.is_gemm:
            raise ValueError(f"layer {self.name!r}: a {self.op} runs on the vector unit, "
                             f"it has no GEMM")
        if self.op == "matmul":
            shared = self.heads // self.right_heads
            return GemmShape(m=self.tokens * shared, k=self.in_channels, n=self.out_channels,
                             groups=self.batch * self.right_heads)
        if self.op == "conv2d":
            p, q = self.output_size
            r, s = self.kernel_size
            g = self.groups
            return GemmShape(m=self.batch * p * q, k=(self.in_channels // g) * r * s,
                             n=self.out_channels // g, groups=g)
        return GemmShape(m=self.batch, k=self.in_channels, n=self.out_channels, groups=1)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer (0 for a vector op)."""
        return self.gemm.macs if self.is_gemm else 0


def data_bytes(layer: Layer) -> int:
    """Bytes of the int64 data a functional run of ``layer`` holds at once: its input,
    weights, im2col matrix and outputs (a vector op: its inputs and output)."""
    if not layer.is_gemm:
        return 8 * (layer.input_operands * layer.elements + layer.output_elements)
    gemm = layer.gemm
    inputs = layer.elements
    weights = gemm.groups * gemm.k * gemm.n
    return 8 * (inputs + weights + gemm.groups * gemm.m * (gemm.k + gemm.n))


def data_limit() -> int:
    """Bytes one layer's data may take: :data:`MAX_LAYER_DATA_BYTES`, or half this machine's
    memory when that is less."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return MAX_LAYER_DATA_BYTES
    return min(MAX_LAYER_DATA_BYTES, physical // 2) if physical > 0 else MAX_LAYER_DATA_BYTES


def data_problem(layer: Layer, limit: int | None = None) -> str | None:
    """Why ``layer``'s data cannot be held (its bytes and the limit), or None."""
    limit = data_limit() if limit is None else limit
    need = data_bytes(layer)
    if need <= limit:
        return None
    return (f"its data take {format_bytes(need)} as int64 (input, weights, im2col matrix "
            f"and outputs), more than the {format_bytes(limit)} sasim allows for one layer; "
            f"use a smaller batch or shape, or run --timing-only")


@record
class LayerTensors:
    """The integer data of one layer (a trace's arrays, or synthetic ones).

    For a ``matmul``, ``input`` is the left operand (batch, heads, tokens, in_channels) and
    ``weight`` the right one (batch, kv_heads, in_channels, out_channels). A vector op has
    no ``weight``; ``other`` is the second input of ``add`` and ``mul``.
    """

    input: np.ndarray
    weight: np.ndarray | None
    bias: np.ndarray | None = None
    output: np.ndarray | None = None
    other: np.ndarray | None = None


def float_codes(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Signed 8-bit codes (int64) of a float array, per tensor (scale max|x| / 127), and the
    scale: how a trace's float vector-layer input is read as codes (docs/transformers.md)."""
    top = float(np.max(np.abs(x))) if x.size else 0.0
    scale = top / 127 if top > 0 else 1.0
    return np.rint(np.asarray(x, dtype=np.float64) / scale).astype(np.int64), scale


@record
class Workload:
    """A network: its layers in execution order and, optionally, a source of their data.

    ``tensors`` loads one layer's data at a time (lazily), so that memory never holds more
    than one layer beyond what the report needs.
    """

    name: str
    source: str
    layers: tuple[Layer, ...]
    format: Literal["yaml", "scalesim-csv", "trace"]
    tensors: Callable[[str], LayerTensors] | None = None
    data_kind: Literal["none", "trace", "synthetic"] = "none"
    #: A transformer inference phase: "" (not one), "prefill" (``seq_len`` tokens per
    #: sequence) or "decode" (one new token per sequence over ``context_len`` cached ones);
    #: ``sequences`` is the batch of sequences.
    phase: Literal["", "prefill", "decode"] = ""
    sequences: int = 1
    seq_len: int = 0
    context_len: int = 0
    #: A YAML workload's ``data:`` section, validated when the file is read
    #: (:class:`simulator.workloads.synthetic.SyntheticOptions`; ``None`` for other formats:
    #: the defaults), so that a run parses its workload file once.
    data_options: Any = field(default=None, compare=False, repr=False)

    @property
    def macs(self) -> int:
        """Total multiply-accumulates."""
        return sum(layer.macs for layer in self.layers)
