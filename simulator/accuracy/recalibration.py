"""BatchNorm recalibration with the simulated hardware in the loop (docs/hardware-spec.md §3).

The deployed network has every BatchNorm folded into its conv, so its statistics cannot be
re-estimated on the quantised model itself. The recalibration runs the **un-folded float
model** instead, with every Conv2d/Linear replaced by the hardware's computation:

1. Start from the exporter's quantised model Q0 (BatchNorm folded with the original
   statistics, activation scales calibrated).
2. In a copy of the float model, replace each conv/linear by its Q0 integer layer on the PE
   (quantise the input with Q0's activation scale, the PE's GEMM of the integer input and
   Q0's folded integer weights). A conv whose BatchNorm Q0 folded gets back the raw conv's
   scale: with the fold factor phi = gamma / sqrt(var + eps) of the original statistics
   (folded weight W * phi), the raw conv output is ``s_a * s_w * acc / phi + conv bias``
   (``acc`` the PE's accumulator without the integer bias). Layers without a folded
   BatchNorm output what the deployed layer outputs.
3. Reset every BatchNorm's running statistics, put the BatchNorms (only) in train mode with
   a cumulative average (``momentum=None``), and run the first N training images through in
   ceil(N / batch size) equal batches (sizes differ by at most one) without gradients: each
   BatchNorm normalises with its batch statistics and accumulates the running mean and
   (unbiased) variance of the hardware-computed activations, averaged over the batches.
4. Copy the new statistics into a fresh copy of the float model, fold and quantise it again
   (:func:`simulator.export.quantize`): activation scales kept from Q0 (``keep``, the
   default: the quantisers the statistics were measured through) or calibrated again on the
   float model (``recalibrate``).

Symmetric per-channel weight quantisation makes the integer weights of a folded conv
independent of phi when phi keeps its sign (``round(W phi / (max|W phi| / 127))`` =
``round(W / (max|W| / 127))``), so the recalibration changes the weight scales and the
integer biases the hardware adds, not the weights it multiplies. A channel with gamma = 0
outputs beta whatever its statistics; its raw output is taken as 0.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from simulator.accuracy.hardware import HardwareLayer, check_pe
from simulator.errors import SasimError
from simulator.export import QuantizedModel, batchnorm_pairs, quantize
from simulator.hw.pe import PEModel

__all__ = ["ActivationScales", "recalibrate_batchnorm", "recalibrated_model"]

ActivationScales = Literal["keep", "recalibrate"]
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _RawConvOnHardware(nn.Module):
    """A conv whose BatchNorm Q0 folded: the PE's folded output brought back to the raw
    conv's scale (so that the BatchNorm after it sees what the hardware computes)."""

    def __init__(self, hardware: HardwareLayer, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        self.hardware = hardware
        with torch.no_grad():
            factor = bn.running_var.double().add(bn.eps).rsqrt()
            if bn.affine:
                factor = factor * bn.weight.double()
            # gamma = 0: the channel outputs beta whatever its statistics (raw output 0)
            inverse = torch.where(factor == 0, torch.zeros_like(factor), 1 / factor)
            bias = (conv.bias.detach().double() if conv.bias is not None
                    else torch.zeros_like(factor))
        self.register_buffer("inverse_factor", inverse.reshape(1, -1, 1, 1))
        self.register_buffer("conv_bias", bias.reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hardware = self.hardware
        acc = hardware.gemm_accumulator(hardware.integer.quantize_input(x))
        raw = acc * hardware.output_scale() * self.inverse_factor + self.conv_bias
        return raw.to(x.dtype)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def recalibrate_batchnorm(model: nn.Module, qmodel: QuantizedModel, pe: PEModel,
                          images: torch.Tensor, batch_size: int = 128) -> nn.Module:
    """Re-estimate the float model's BatchNorm statistics with ``pe`` in the loop.

    Parameters
    ----------
    model : nn.Module
        The float model ``qmodel`` was quantised from (unchanged).
    qmodel : QuantizedModel
        Its quantised model (the quantisers and folded integer weights the PE computes with).
    pe : PEModel
        The PE model (every conv/linear runs on it).
    images : torch.Tensor
        Training inputs (the N images of the recalibration).
    batch_size : int
        Images per forward pass (each BatchNorm normalises with its batch's statistics).

    Returns
    -------
    nn.Module
        A copy of ``model`` (eval mode) with every BatchNorm's running mean and variance
        re-estimated; everything else is unchanged.

    Raises
    ------
    SasimError
        No images, a bad batch size, or a model without BatchNorm.
    """
    if images.shape[0] < 2:
        raise SasimError(f"BatchNorm recalibration needs at least 2 images (batch "
                         f"statistics), not {images.shape[0]}")
    if batch_size < 2:
        raise SasimError(f"the recalibration batch size must be at least 2 (batch "
                         f"statistics), not {batch_size}")
    check_pe(pe, qmodel)
    loop = copy.deepcopy(model).eval()
    norms = {name: m for name, m in loop.named_modules()
             if isinstance(m, _BATCHNORMS) and m.track_running_stats}
    if not norms:
        raise SasimError("the model has no BatchNorm layer with running statistics to "
                         "recalibrate")
    pairs = batchnorm_pairs(loop, images[:min(8, images.shape[0])])
    for name, integer in qmodel.integer_layers().items():
        hardware = HardwareLayer(integer, pe)
        if name in pairs:
            layer = _RawConvOnHardware(hardware, loop.get_submodule(name),
                                       loop.get_submodule(pairs[name]))
        else:
            layer = hardware
        _set_module(loop, name, layer)
    for bn in norms.values():
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    # equal batches (sizes differ by at most one): every batch weighs the same in the
    # cumulative average, and no batch is a single image
    batches = -(-images.shape[0] // batch_size)
    with torch.no_grad():
        for batch in torch.tensor_split(images, batches):
            loop(batch)
    out = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, bn in norms.items():
            target = out.get_submodule(name)
            target.running_mean.copy_(bn.running_mean)
            target.running_var.copy_(bn.running_var)
            target.num_batches_tracked.copy_(bn.num_batches_tracked)
    return out


def recalibrated_model(model: nn.Module, qmodel: QuantizedModel, pe: PEModel,
                       images: torch.Tensor, calibration: torch.Tensor,
                       activation_scales: ActivationScales = "keep",
                       batch_size: int = 128) -> QuantizedModel:
    """The quantised model after BatchNorm recalibration (re-folded and re-quantised).

    Parameters
    ----------
    model, qmodel, pe, images, batch_size
        As for :func:`recalibrate_batchnorm`.
    calibration : torch.Tensor
        The calibration inputs ``qmodel`` was quantised with.
    activation_scales : {'keep', 'recalibrate'}
        ``keep``: the activation quantisers of ``qmodel``; ``recalibrate``: calibrate them
        again on the recalibrated float model (``qmodel.options``).
    """
    if activation_scales not in ("keep", "recalibrate"):
        raise SasimError(f"activation_scales must be keep or recalibrate, not "
                         f"{activation_scales!r}")
    recalibrated = recalibrate_batchnorm(model, qmodel, pe, images, batch_size)
    scales: Mapping[str, tuple[float, bool]] | None = None
    if activation_scales == "keep":
        scales = {name: (layer.activation_scale, layer.signed)
                  for name, layer in qmodel.integer_layers().items()}
    return quantize(recalibrated, calibration, qmodel.options, activation_scales=scales)
