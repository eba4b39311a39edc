"""Sharing one layer among several cores (docs/memory-model.md, "Multi-core";
docs/hardware-spec.md, "Multi-core").

A :class:`Share` is one core's part of a layer: a sub-layer (a :class:`Layer` of its own
shape, planned and timed like any layer) and the range of the split axis it covers, which
slices the layer's data (:func:`share_tensors`) and places the sub-layer's outputs back
(:func:`place_outputs`). The shares compute disjoint outputs, so their outputs put together
are the layer's, bit for bit.

- ``batch``: images ``[lo, hi)`` (rows of a linear or gemm layer, sequences of a matmul);
- ``output_channels``: output channels ``[lo, hi)`` of every group (each share loads all
  inputs and its slice of the weights);
- ``spatial``: output rows ``[lo, hi)`` of every image of a conv2d (its input rows with the
  halo; padding rows at the edges become explicit zero rows), rows of a linear or gemm.

Pipeline stages (:func:`pipeline_stages`): contiguous runs of layers balanced by MACs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from simulator.records import record
from simulator.workloads.layers import Layer, LayerTensors

__all__ = ["Share", "split_problem", "split_layer", "share_tensors", "share_outputs",
           "place_outputs", "pipeline_stages"]


@record
class Share:
    """One core's part of a layer: its sub-layer and the range ``[lo, hi)`` of ``axis``."""

    layer: Layer
    axis: str  # "batch", "output_channels" or "spatial"
    lo: int
    hi: int


def _even(count: int, parts: int) -> list[tuple[int, int]]:
    """``[0, count)`` cut into ``parts`` near-equal ranges (the first ones one longer)."""
    cuts = [i * count // parts for i in range(parts + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def split_problem(layer: Layer, partition: str, cores: int) -> str | None:
    """What keeps ``layer`` from being shared by ``cores`` cores this way, or ``None``."""
    if partition == "batch":
        if layer.batch % cores:
            return f"batch {layer.batch} is not divisible by {cores} cores (partition batch)"
        return None
    if partition == "output_channels":
        per_group = layer.out_channels // layer.groups
        if per_group % cores:
            return (f"{per_group} output channels per group (out_channels "
                    f"{layer.out_channels} / groups {layer.groups}) are not divisible by "
                    f"{cores} cores (partition output_channels)")
        return None
    if partition == "spatial":
        if layer.op == "matmul":
            return "partition spatial is defined for conv2d, linear and gemm layers, not matmul"
        rows = layer.output_size[0] if layer.op == "conv2d" else layer.batch
        if rows < cores:
            return (f"{rows} output rows cannot be shared by {cores} cores "
                    f"(partition spatial needs at least one row per core)")
        if layer.op == "conv2d":
            for lo, hi in _even(rows, cores):
                band = _band(layer, lo, hi)
                if any(True for _ in band.problems()) or band.output_size[0] != hi - lo:
                    return (f"output rows {lo}..{hi - 1} do not map to a band of input rows "
                            f"(partition spatial)")
        return None
    return f"unknown partition {partition!r}"


def split_layer(layer: Layer, partition: str, cores: int) -> list[Share]:
    """The ``cores`` shares of ``layer`` (check :func:`split_problem` first)."""
    if partition == "batch":
        step = layer.batch // cores
        return [Share(dataclasses.replace(layer, batch=step), "batch", c * step,
                      (c + 1) * step) for c in range(cores)]
    if partition == "output_channels":
        step = layer.out_channels // layer.groups // cores
        return [Share(dataclasses.replace(layer, out_channels=step * layer.groups),
                      "output_channels", c * step, (c + 1) * step) for c in range(cores)]
    if layer.op == "conv2d":
        if cores == 1:  # the whole layer, its padding implicit as on one array
            return [Share(layer, "spatial", 0, layer.output_size[0])]
        return [Share(_band(layer, lo, hi), "spatial", lo, hi)
                for lo, hi in _even(layer.output_size[0], cores)]
    return [Share(dataclasses.replace(layer, batch=hi - lo), "spatial", lo, hi)
            for lo, hi in _even(layer.batch, cores)]


def _input_rows(layer: Layer, lo: int, hi: int) -> tuple[int, int]:
    """Rows ``[first, stop)`` of the top-and-bottom padded input that output rows
    ``[lo, hi)`` read (clipped to the padded input)."""
    stride, dilation = layer.stride[0], layer.dilation[0]
    padded = layer.input_size[0] + 2 * layer.padding[0]
    first = lo * stride
    stop = (hi - 1) * stride + dilation * (layer.kernel_size[0] - 1) + 1
    return first, min(stop, padded)


def _band(layer: Layer, lo: int, hi: int) -> Layer:
    """The sub-layer of output rows ``[lo, hi)`` of a conv2d: its input rows (with the halo
    and, at the edges, the padding rows as explicit zero rows), no vertical padding."""
    first, stop = _input_rows(layer, lo, hi)
    return dataclasses.replace(layer, input_size=(stop - first, layer.input_size[1]),
                               padding=(0, layer.padding[1]))


def share_tensors(layer: Layer, share: Share, tensors: LayerTensors) -> LayerTensors:
    """The data of one share: views of ``tensors`` where the split allows (no copy), the
    padded input band of a spatial conv2d share."""
    if share.layer == layer:  # one share: the whole layer
        return tensors
    x, w, bias, out = tensors.input, tensors.weight, tensors.bias, tensors.output
    lo, hi = share.lo, share.hi
    if share.axis == "batch":
        if layer.op == "matmul":
            w = w[lo:hi]
        return dataclasses.replace(tensors, input=x[lo:hi], weight=w,
                                   output=None if out is None else out[lo:hi])
    if share.axis == "output_channels":
        if layer.op == "matmul":
            return dataclasses.replace(tensors, weight=w[..., lo:hi],
                                       output=None if out is None else out[..., lo:hi])
        g = layer.groups
        per = layer.out_channels // g
        w = w.reshape(g, per, *w.shape[1:])[:, lo:hi].reshape(-1, *w.shape[1:])
        if bias is not None:
            bias = np.asarray(bias).reshape(g, per)[:, lo:hi].reshape(-1)
        if out is not None:
            out = out.reshape(out.shape[0], g, per, *out.shape[2:])[:, :, lo:hi]
            out = out.reshape(out.shape[0], -1, *out.shape[3:])
        return dataclasses.replace(tensors, weight=w, bias=bias, output=out)
    if layer.op != "conv2d":
        return dataclasses.replace(tensors, input=x[lo:hi],
                                   output=None if out is None else out[lo:hi])
    first, stop = _input_rows(layer, lo, hi)
    pad = layer.padding[0]
    top, bottom = max(0, pad - first), max(0, stop - pad - layer.input_size[0])
    band = x[:, :, max(0, first - pad):min(layer.input_size[0], stop - pad)]
    if top or bottom:
        band = np.pad(band, ((0, 0), (0, 0), (top, bottom), (0, 0)))
    return dataclasses.replace(tensors, input=band,
                               output=None if out is None else out[:, :, lo:hi])


def share_outputs(layer: Layer, share: Share, outputs: np.ndarray) -> np.ndarray:
    """The share's part of an array in the layer's output layout (its outputs, or anything
    of their shape such as ZAP's decisions): the inverse of :func:`place_outputs`."""
    lo, hi = share.lo, share.hi
    if share.axis == "batch" or (share.axis == "spatial" and layer.op != "conv2d"):
        return outputs[lo:hi]
    if share.axis == "spatial":
        return outputs[:, :, lo:hi]
    if layer.op == "matmul":
        return outputs[..., lo:hi]
    g = layer.groups
    part = outputs.reshape(outputs.shape[0], g, -1, *outputs.shape[2:])[:, :, lo:hi]
    return part.reshape(outputs.shape[0], -1, *outputs.shape[2:])


def place_outputs(layer: Layer, shares: Sequence[Share],
                  outputs: Sequence[np.ndarray]) -> np.ndarray:
    """The layer's outputs (layer layout) put together from its shares' outputs."""
    axis = shares[0].axis
    if axis == "batch" or (axis == "spatial" and layer.op != "conv2d"):
        return np.concatenate(outputs, axis=0)
    if axis == "spatial":
        return np.concatenate(outputs, axis=2)
    if layer.op == "matmul":
        return np.concatenate(outputs, axis=-1)
    g = layer.groups
    parts = [o.reshape(o.shape[0], g, -1, *o.shape[2:]) for o in outputs]
    whole = np.concatenate(parts, axis=2)
    return whole.reshape(whole.shape[0], -1, *whole.shape[3:])


def pipeline_stages(macs: Sequence[int], cores: int) -> list[tuple[int, int]]:
    """Layers ``[lo, hi)`` of each of ``cores`` contiguous, non-empty stages whose largest
    MAC sum is the smallest possible (``len(macs) >= cores``).

    The smallest feasible bottleneck is found by bisection (a greedy fill tells whether a
    bound fits in ``cores`` stages); the stages are then filled greedily under it, a stage
    closing early when each later stage needs its own layer.
    """
    count = len(macs)

    def stages_needed(bound: int) -> int:
        needed, load = 1, 0
        for m in macs:
            if load + m > bound:
                needed, load = needed + 1, 0
            load += m
        return needed

    low, high = max(macs), sum(macs)
    while low < high:
        mid = (low + high) // 2
        if stages_needed(mid) <= cores:
            high = mid
        else:
            low = mid + 1
    stages, lo, load = [], 0, 0
    for i, m in enumerate(macs):
        left = cores - len(stages)  # stages still to fill, this one included
        if i > lo and (load + m > low or count - i < left):
            stages.append((lo, i))
            lo, load = i, 0
        load += m
    stages.append((lo, count))
    return stages
