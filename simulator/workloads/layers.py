"""Layers and their lowering to GEMMs (docs/hardware-spec.md §1).

A conv2d with input (N, C, H, W), weight (F, C/g, R, S) becomes ``g`` GEMMs
``O (M x Fg) = A (M x Kd) . B (Kd x Fg)`` with M = N*P*Q, Kd = (C/g)*R*S, Fg = F/g. The K
order is tap-major, channel-minor: ``k = (r*S + s)*(C/g) + c``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np

__all__ = ["GemmShape", "Layer", "LayerTensors", "Workload", "output_extent", "MAX_DIM",
           "MAX_LAYERS", "MAX_MACS", "MAX_PLANE", "MAX_LAYER_DATA_BYTES", "data_bytes", "data_limit",
           "data_problem",
           "format_bytes"]

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


def output_extent(size: int, kernel: int, stride: int, padding: int, dilation: int,
                  rule: OutputRule = "pytorch") -> int:
    """Output height (or width) of a convolution along one axis.

    ``pytorch``: floor((H + 2p - d(R-1) - 1)/s) + 1.  ``scalesim``: SCALE-Sim's topology
    convention, where H already includes padding and P = ceil((H - R + s)/s).
    """
    if rule == "scalesim":
        return -(-(size - kernel + stride) // stride)
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclasses.dataclass(frozen=True)
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


@dataclasses.dataclass(frozen=True)
class Layer:
    """One conv2d / linear / GEMM layer of a workload.

    For ``linear``, ``in_channels``/``out_channels`` are the in/out features and ``batch`` the
    number of rows (batch x tokens). For ``gemm``, M = ``batch``, K = ``in_channels``,
    N = ``out_channels``.
    """

    name: str
    op: Literal["conv2d", "linear", "gemm"]
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

    @property
    def output_size(self) -> tuple[int, int]:
        """(P, Q) for conv2d; (1, 1) otherwise."""
        if self.op != "conv2d":
            return (1, 1)
        return tuple(
            output_extent(self.input_size[a], self.kernel_size[a], self.stride[a],
                          self.padding[a], self.dilation[a], self.output_rule)
            for a in range(2))

    def problems(self) -> Iterator[str]:
        """Yield what is inconsistent about this layer's shape (empty when valid)."""
        if not self.name:
            yield "the layer name must be non-empty"
        for name in ("in_channels", "out_channels", "batch", "groups"):
            if not 0 < getattr(self, name) <= MAX_DIM:
                yield f"{name} must be from 1 to {MAX_DIM:,}, not {getattr(self, name)}"
        if not 0 < self.activation_bits <= 32:
            yield f"activation_bits must be from 1 to 32, not {self.activation_bits}"
        if not 1 < self.weight_bits <= 32:
            yield f"weight_bits must be from 2 to 32 (weights are signed), not {self.weight_bits}"
        for name in ("input_size", "kernel_size", "stride", "dilation"):
            if min(getattr(self, name)) <= 0 or max(getattr(self, name)) > MAX_DIM:
                yield f"{name} must be from 1 to {MAX_DIM:,}, not {list(getattr(self, name))}"
        if self.op == "conv2d" and max(self.input_size) > MAX_PLANE:
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
        if self.op == "conv2d" and min(self.input_size) > 0 and min(self.output_size) <= 0:
            yield (f"the kernel {list(self.kernel_size)} does not fit the input "
                   f"{list(self.input_size)} (output size {list(self.output_size)})")

    def problems_of_size(self) -> Iterator[str]:
        """Yield a problem when the layer's MACs exceed :data:`MAX_MACS`."""
        if self.op == "conv2d" and min(self.output_size) <= 0:
            return
        macs = self.macs
        if macs > MAX_MACS:
            yield (f"{macs:,} multiply-accumulates, more than the {MAX_MACS:,} sasim "
                   f"simulates in one layer")

    @property
    def gemm(self) -> GemmShape:
        """The GEMM this layer lowers to."""
        if self.op == "conv2d":
            p, q = self.output_size
            r, s = self.kernel_size
            g = self.groups
            return GemmShape(m=self.batch * p * q, k=(self.in_channels // g) * r * s,
                             n=self.out_channels // g, groups=g)
        return GemmShape(m=self.batch, k=self.in_channels, n=self.out_channels, groups=1)

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer."""
        return self.gemm.macs


def data_bytes(layer: Layer) -> int:
    """Bytes of the int64 data a functional run of ``layer`` holds at once: its input,
    weights, im2col matrix and outputs."""
    gemm = layer.gemm
    if layer.op == "conv2d":
        h, w = layer.input_size
        inputs = layer.batch * layer.in_channels * h * w
    else:
        inputs = gemm.m * gemm.k
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


@dataclasses.dataclass(frozen=True)
class LayerTensors:
    """The integer data of one layer (a trace's arrays, or synthetic ones)."""

    input: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None = None
    output: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
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

    @property
    def macs(self) -> int:
        """Total multiply-accumulates."""
        return sum(layer.macs for layer in self.layers)
