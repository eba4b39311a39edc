"""Transform coding in the loop of an accuracy run (docs/transform-coding.md, "Accuracy").

Every coded layer's integer input (the exporter's quantiser's output) is encoded and decoded
by the layer's codec (:mod:`simulator.memory.codec`, the code ``sasim run`` uses) before the
layer computes on it: the layer sees the decoded activation, re-quantised to its integer
format. The codecs are calibrated on the exact INT8 model's layer inputs over the first
:data:`CALIBRATION_IMAGES` calibration images (the paper's one batch of about 250).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from simulator.config.arch import ActivationCodecConfig
from simulator.export.ptq import QuantizedModel, run_hooked
from simulator.memory.codec import (Codec, activation_range, calibrate_layer, code,
                                    one_blas_thread, pixels, table_bytes)

__all__ = ["CALIBRATION_IMAGES", "PRE_ACTIVATION_BITS", "CodecStage", "PreActivationStage",
           "calibrate_codecs", "codec_summary", "coded_names", "with_codec"]

#: Calibration images of the codecs (the paper calibrates on one batch of about 250).
CALIBRATION_IMAGES = 256
#: Bits of the signed integer grid a pre-activation is put on before it is coded.
PRE_ACTIVATION_BITS = 8


@dataclasses.dataclass
class _Totals:
    values: int = 0
    symbols: int = 0
    code_bits: int = 0
    stream_bytes: int = 0
    histogram: np.ndarray | None = None


class CodecStage(nn.Module):
    """Codes the input of one integer layer: quantise as the layer does, encode, decode,
    and hand the layer the decoded integers (times its scale, so its quantiser gives them
    back exactly).

    Attributes
    ----------
    totals : the coded values, symbols, code bits and stream bytes over every call.
    """

    def __init__(self, integer: nn.Module, codec: Codec, options: ActivationCodecConfig
                 ) -> None:
        super().__init__()
        self.layer_name: str = integer.layer_name
        self.quantize_input = integer.quantize_input
        self.scale = float(integer.activation_scale)
        self.activation_bits = int(integer.activation_bits)
        self.codec = codec
        self.options = options
        self.totals = _Totals(histogram=np.zeros(1 << codec.bits, dtype=np.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quantize_input(x).detach().numpy().astype(np.int64)
        return (_code_integers(self, xq) * self.scale).to(x.dtype)


def _code_integers(stage: CodecStage | PreActivationStage, xq: np.ndarray) -> torch.Tensor:
    """Encode and decode integer activations (N, C, H, W) or (..., K) by a stage's codec,
    counting them in its ``totals``; the decoded integers as a float64 tensor."""
    shape = xq.shape
    flat = xq if xq.ndim == 4 else xq.reshape(-1, shape[-1])
    o = stage.options
    with one_blas_thread():
        coded = code(stage.codec, flat, lanes=o.lanes, word_bits=o.word_bits,
                     burst_bytes=o.burst_bytes)
    t = stage.totals
    t.values += coded.values
    t.symbols += coded.symbols
    t.code_bits += coded.code_bits
    t.stream_bytes += coded.stream_bytes
    t.histogram += coded.histogram
    return torch.from_numpy(coded.decoded.reshape(shape).astype(np.float64))


class PreActivationStage(nn.Module):
    """Codes the output of one integer layer (``tensor: pre_activation``: after its folded
    BatchNorm, before ReLU): put on a signed :data:`PRE_ACTIVATION_BITS`-bit grid of step
    ``scale`` (the largest magnitude over the calibration images / 127), encoded, decoded,
    and handed on as ``decoded * scale``.

    Attributes
    ----------
    totals : as :class:`CodecStage`'s.
    """

    def __init__(self, name: str, scale: float, codec: Codec,
                 options: ActivationCodecConfig) -> None:
        super().__init__()
        self.layer_name = name
        self.scale = scale
        self.activation_bits = PRE_ACTIVATION_BITS
        self.codec = codec
        self.options = options
        self.totals = _Totals(histogram=np.zeros(1 << codec.bits, dtype=np.int64))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        low, high = activation_range(PRE_ACTIVATION_BITS, True)
        yq = torch.clamp(torch.round(y.double() / self.scale), low, high)
        decoded = _code_integers(self, yq.numpy().astype(np.int64))
        return (decoded * self.scale).to(y.dtype)


def _inputs(qmodel: QuantizedModel, names: list[str], images: torch.Tensor,
            batch_size: int) -> dict[str, list[np.ndarray]]:
    """Each named integer layer's integer input pixels over ``images`` (exact INT8)."""
    layers = qmodel.integer_layers()
    seen: dict[str, list[np.ndarray]] = {name: [] for name in names}
    handles = []
    for name in names:
        def hook(module: nn.Module, inputs: tuple, name: str = name) -> None:
            xq = module.quantize_input(inputs[0]).numpy().astype(np.int64)
            seen[name].append(pixels(xq if xq.ndim == 4 else xq.reshape(-1, xq.shape[-1])))
        handles.append(layers[name].register_forward_pre_hook(hook))
    run_hooked(qmodel, images, batch_size, handles)
    return seen


def coded_names(qmodel: QuantizedModel, tensor: str = "layer_input") -> list[str]:
    """The integer layers whose input is coded (``layer_input``: all but the first, whose
    input is the image) or whose output is (``pre_activation``: all but the last, whose
    output is the network's); the exporter's integer layers are all conv2d or linear."""
    names = list(qmodel.integer_layers())
    return names[1:] if tensor == "layer_input" else names[:-1]


def _outputs(qmodel: QuantizedModel, names: list[str], images: torch.Tensor,
             batch_size: int) -> dict[str, list[np.ndarray]]:
    """Each named integer layer's float output (its pre-activation) over ``images``."""
    layers = qmodel.integer_layers()
    seen: dict[str, list[np.ndarray]] = {name: [] for name in names}
    handles = []
    for name in names:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor,
                 name: str = name) -> None:
            seen[name].append(output.double().numpy())
        handles.append(layers[name].register_forward_hook(hook))
    run_hooked(qmodel, images, batch_size, handles)
    return seen


def _pre_activation_codecs(qmodel: QuantizedModel, calibration: torch.Tensor,
                           options: ActivationCodecConfig, batch_size: int
                           ) -> dict[str, tuple[float, Codec]]:
    """(grid step, codec) per coded pre-activation: the step is the largest magnitude over
    the calibration images over 127, the codec calibrated on the integers."""
    names = coded_names(qmodel, "pre_activation")
    seen = _outputs(qmodel, names, calibration[:CALIBRATION_IMAGES], batch_size)
    low, high = activation_range(PRE_ACTIVATION_BITS, True)
    out = {}
    for name in names:
        y = np.concatenate(seen[name])
        largest = float(np.abs(y).max(initial=0.0))
        scale = largest / high if largest > 0 else 1.0
        yq = np.clip(np.round(y / scale), low, high).astype(np.int64)
        flat = yq if yq.ndim == 4 else yq.reshape(-1, yq.shape[-1])
        with one_blas_thread():
            out[name] = (scale, calibrate_layer(pixels(flat), options, low=low, high=high))
    return out


def calibrate_codecs(qmodel: QuantizedModel, calibration: torch.Tensor,
                     options: ActivationCodecConfig, batch_size: int = 128
                     ) -> dict[str, Codec] | dict[str, tuple[float, Codec]]:
    """A codec per coded layer, from the exact INT8 inputs of the first
    :data:`CALIBRATION_IMAGES` calibration images; with ``tensor: pre_activation``, a
    (grid step, codec) per coded layer output (:func:`_pre_activation_codecs`)."""
    if options.tensor == "pre_activation":
        return _pre_activation_codecs(qmodel, calibration, options, batch_size)
    names = coded_names(qmodel)
    seen = _inputs(qmodel, names, calibration[:CALIBRATION_IMAGES], batch_size)
    layers = qmodel.integer_layers()
    codecs = {}
    for name in names:
        integer = layers[name]
        low, high = activation_range(integer.activation_bits, integer.signed)
        with one_blas_thread():
            codecs[name] = calibrate_layer(np.concatenate(seen[name]), options, low=low,
                                           high=high)
    return codecs


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def with_codec(model: QuantizedModel, qmodel: QuantizedModel, codecs: Mapping[str, Codec],
               options: ActivationCodecConfig) -> QuantizedModel:
    """``model`` (a copy of ``qmodel``, maybe with hardware layers) with a
    :class:`CodecStage` before every coded layer, or with ``tensor: pre_activation`` a
    :class:`PreActivationStage` after it (changed in place and returned)."""
    integer = qmodel.integer_layers()
    for name, codec in codecs.items():
        module = model.model.get_submodule(name)
        if options.tensor == "pre_activation":
            scale, codec = codec
            stages = [module, PreActivationStage(name, scale, codec, options)]
        else:
            stages = [CodecStage(integer[name], codec, options), module]
        _set_module(model.model, name, nn.Sequential(*stages))
    return model


def codec_summary(model: nn.Module, options: ActivationCodecConfig) -> dict:
    """Per coded layer and in total: entropy, code and stored bits per value, and stored
    bytes (with the tables) against the raw 8-bit bytes, over the evaluation images."""
    from simulator.kernels.huffman import entropy_bits

    layers, values, stored, raw = [], 0, 0, 0
    entropy_total = code_total = 0.0
    for stage in model.modules():
        if (not isinstance(stage, (CodecStage, PreActivationStage))
                or stage.totals.values == 0):
            continue
        t = stage.totals
        per_symbol = t.symbols / t.values
        entropy = entropy_bits(t.histogram) * per_symbol
        tables = table_bytes(stage.codec, options.basis_bits)
        layer_raw = -(-t.values * stage.activation_bits // 8)
        layers.append({"layer": stage.layer_name, "values": t.values,
                       "components": stage.codec.components,
                       "entropy_bits_per_value": entropy,
                       "code_bits_per_value": t.code_bits / t.values,
                       "stored_bits_per_value": 8 * (t.stream_bytes + tables) / t.values,
                       "stored_bytes": t.stream_bytes + tables, "raw_bytes": layer_raw})
        values += t.values
        stored += t.stream_bytes + tables
        raw += layer_raw
        entropy_total += entropy * t.values
        code_total += t.code_bits
    return {"bits": options.bits, "transform": options.transform, "tensor": options.tensor,
            "layers": layers,
            "values": values,
            "entropy_bits_per_value": entropy_total / values if values else None,
            "code_bits_per_value": code_total / values if values else None,
            "stored_bits_per_value": 8 * stored / values if values else None,
            "stored_bytes": stored, "raw_bytes": raw}
