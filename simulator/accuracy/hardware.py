"""Quantised layers computed by a PE model's functional simulation, batched over images.

The exporter's integer layer (:mod:`simulator.export.ptq`) quantises its input, computes the
exact integer accumulator, adds the integer bias and rescales to float. A
:class:`HardwareLayer` keeps the quantiser and the rescaling and takes the accumulator from
the PE model instead, by the steps ``sasim run`` takes on a trace layer
(:func:`simulator.api.simulate`): :func:`~simulator.workloads.lowering.im2col` of the integer
input, :func:`~simulator.workloads.lowering.weights_to_gemm` of the integer weights, one
:meth:`~simulator.hw.pe.PEModel.simulate_gemm` per group,
:func:`~simulator.workloads.lowering.gemm_to_output`, plus the integer bias. A batch of images
is one GEMM (M = images x output pixels), so a forward pass makes one PE call per layer and
group; there is no second implementation of the arithmetic.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from simulator.errors import SimulationError
from simulator.export.ptq import QuantizedModel
from simulator.hw.accumulator import check_accumulator
from simulator.hw.gemm import run_groups
from simulator.hw.pe import PEModel
from simulator.workloads.lowering import gemm_to_output, im2col, weights_to_gemm

__all__ = ["HardwareLayer", "check_pe", "hardware_layers", "with_hardware"]


class HardwareLayer(nn.Module):
    """One of the exporter's integer layers with its accumulator computed by a PE model.

    Parameters
    ----------
    integer : nn.Module
        The exporter's integer layer (an element of ``QuantizedModel.integer_layers()``):
        its quantiser, integer weights and bias, and scales are used as they are.
    pe : PEModel
        The PE model that computes the layer's GEMMs.

    Attributes
    ----------
    counters : collections.Counter
        The PE's activity counters summed over every call (``GemmRun.counters``).
    """

    def __init__(self, integer: nn.Module, pe: PEModel, zap: Any = None) -> None:
        super().__init__()
        self.integer = integer
        self.pe = pe
        self.layer_name: str = integer.layer_name
        self.counters: Counter[str] = Counter()
        self._weights: np.ndarray | None = None
        #: (LayerZap, ZapConfig) when ZAP gates this layer's outputs (docs/zap.md), and
        #: ZAP's counts summed over every call.
        self.zap = zap
        self.zap_counts: Counter[str] = Counter()

    def gemm_accumulator(self, xq: torch.Tensor) -> torch.Tensor:
        """The PE's integer outputs for the integer input ``xq``, without the bias.

        Parameters
        ----------
        xq : torch.Tensor
            Integer input (float64 holding integers, from the layer's quantiser):
            (N, C, H, W) for a conv, (..., in_features) for a linear layer.

        Returns
        -------
        torch.Tensor
            float64 holding the int64 outputs, in the layout of the layer's output.
        """
        integer = self.integer
        layer = integer.layer(xq)
        x = xq.detach().numpy().astype(np.int64)
        if not integer.is_conv:
            x = x.reshape(-1, x.shape[-1])
        if self._weights is None:
            # the weights are fixed: lower them once
            self._weights = weights_to_gemm(integer.weight_int.numpy().astype(np.int64), layer)
        a = im2col(x, layer)
        b = self._weights
        run = run_groups(self.pe, layer, a, b)
        self.counters.update(run.counters)
        out = gemm_to_output(run.outputs, layer)
        if not integer.is_conv:
            out = out.reshape(*xq.shape[:-1], out.shape[-1])
        return torch.from_numpy(out.astype(np.float64))

    def accumulator(self, xq: torch.Tensor) -> torch.Tensor:
        """:meth:`gemm_accumulator` plus the integer bias: what the exporter's exact
        ``integer_output`` computes, with the PE's arithmetic."""
        acc = self.gemm_accumulator(xq)
        bias = self.integer.bias_int
        if bias is not None:
            acc = acc + (bias.reshape(1, -1, 1, 1) if self.integer.is_conv else bias)
        self.zap_counts["layer_macs"] += acc.numel() * self.integer.weight_int[0].numel()
        if self.zap is None:
            return acc
        from simulator.hw.zap import apply_zap

        plan, config = self.zap
        outcome = apply_zap(plan, acc.numpy().astype(np.int64), config)
        self.zap_counts.update(outcome.counts)
        self.zap_counts["macs_saved"] += outcome.counts["predicted_zero"] * (
            self.integer.weight_int[0].numel())
        return torch.from_numpy(outcome.outputs.astype(np.float64))

    def output_scale(self) -> torch.Tensor:
        """Real value of one accumulator step per output channel (broadcastable)."""
        integer = self.integer
        scale = integer.activation_scale * integer.weight_scales
        return scale.reshape(1, -1, 1, 1) if integer.is_conv else scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        acc = self.accumulator(self.integer.quantize_input(x))
        return (acc * self.output_scale()).to(x.dtype)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def check_pe(pe: PEModel, qmodel: QuantizedModel) -> None:
    """Raise :class:`SimulationError` when the PE's options name layers the model lacks
    (as ``sasim run`` does for a workload)."""
    names = list(qmodel.integer_layers())
    try:
        pe.check_layers(set(names))
        check_accumulator(pe, set(names))
    except ValueError as exc:
        raise SimulationError(f"{exc} (the model's layers: {', '.join(names)})") from None


def with_hardware(qmodel: QuantizedModel, pe: PEModel,
                  layers: Collection[str] | None = None,
                  zap: Mapping[str, Any] | None = None) -> QuantizedModel:
    """A copy of ``qmodel`` whose integer layers run on ``pe``.

    Parameters
    ----------
    qmodel : QuantizedModel
        The exporter's quantised model (unchanged).
    pe : PEModel
        The PE model; per-layer options (SySMT's ``layer_threads``) apply by layer name,
        the names of the exporter's layers (and of a trace's).
    layers : collection of str, optional
        The layers that run on ``pe`` (default: all); the others keep the exporter's exact
        integer arithmetic.
    zap : mapping, optional
        Layer name -> (LayerZap, ZapConfig): ZAP gates those layers' outputs (docs/zap.md).

    Raises
    ------
    SimulationError
        When ``layers`` or the PE's options name a layer the model does not have.
    """
    check_pe(pe, qmodel)
    model = copy.deepcopy(qmodel)
    integer = model.integer_layers()
    chosen = list(integer) if layers is None else list(layers)
    unknown = [name for name in chosen if name not in integer]
    if unknown:
        raise SimulationError(f"unknown layer(s) {', '.join(unknown)} (the model's layers: "
                              f"{', '.join(integer)})")
    for name in chosen:
        # the exporter puts each integer layer at its own module name in the folded model
        _set_module(model.model, name, HardwareLayer(integer[name], pe,
                                                     None if zap is None else zap.get(name)))
    return model


def hardware_layers(model: nn.Module) -> dict[str, HardwareLayer]:
    """The :class:`HardwareLayer` modules of ``model`` by layer name."""
    return {m.layer_name: m for m in model.modules() if isinstance(m, HardwareLayer)}
