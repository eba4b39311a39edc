"""Layers and their lowering to GEMMs (docs/hardware-spec.md §1).

A conv2d with input (N, C, H, W), weight (F, C/g, R, S) becomes ``g`` GEMMs
``O (M x Fg) = A (M x Kd) . B (Kd x Fg)`` with M = N*P*Q, Kd = (C/g)*R*S, Fg = F/g. The K
order is tap-major, channel-minor: ``k = (r*S + s)*(C/g) + c``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np

__all__ = ["GemmShape", "Layer", "LayerTensors", "Workload", "output_extent"]

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
        for name in ("in_channels", "out_channels", "batch", "groups",
                     "activation_bits", "weight_bits"):
            if getattr(self, name) <= 0:
                yield f"{name} must be positive, not {getattr(self, name)}"
        for name in ("input_size", "kernel_size", "stride", "dilation"):
            if min(getattr(self, name)) <= 0:
                yield f"{name} must be positive, not {list(getattr(self, name))}"
        if min(self.padding) < 0:
            yield f"padding must be non-negative, not {list(self.padding)}"
        if self.in_channels % self.groups or self.out_channels % self.groups:
            yield (f"groups={self.groups} must divide in_channels={self.in_channels} "
                   f"and out_channels={self.out_channels}")
        if self.op == "conv2d" and min(self.input_size) > 0 and min(self.output_size) <= 0:
            yield (f"the kernel {list(self.kernel_size)} does not fit the input "
                   f"{list(self.input_size)} (output size {list(self.output_size)})")

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
