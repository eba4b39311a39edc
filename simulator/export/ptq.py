"""Post-training INT8 quantisation of a PyTorch model and export of its layer trace.

The quantised model keeps every operation except conv2d/linear in float. Each
``nn.Conv2d``/``nn.Linear`` becomes an integer layer (docs/hardware-spec.md §1 values):

- its input is quantised per tensor with zero point 0: unsigned ``[0, 2^b - 1]`` when every
  calibration input was non-negative (post-ReLU), signed ``[-2^(b-1), 2^(b-1) - 1]``
  otherwise; the scale comes from the calibration set (``max``, ``percentile`` or ``mse``);
- its weights are quantised symmetrically per output channel, ``[-(2^(b-1) - 1), 2^(b-1) - 1]``,
  scale ``max|W_f| / (2^(b-1) - 1)``;
- its bias becomes an integer in the accumulator's scale ``s_a * s_w[f]``;
- the integer product is computed exactly (float64 holds these sums exactly), the integer
  bias is added, and the result is rescaled to float for the rest of the network.

BatchNorm2d layers whose input is the output of a Conv2d are folded into that conv first.
The trace records, per conv/linear, the integer input, weights, bias and the exact integer
output (accumulator + bias) of exactly this computation.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import simulator
from simulator.errors import SasimError
from simulator.records import record
from simulator.workloads.layers import Layer, LayerTensors
from simulator.workloads.trace import TraceEntry, TraceWriter, load_trace
from simulator.workloads.lowering import exact_output

__all__ = ["CalibrationOptions", "ExportResult", "QuantizedModel", "batchnorm_pairs", "evaluate",
           "export_trace", "fold_batchnorm", "quantize", "run_hooked"]

CalibrationMethod = Literal["max", "percentile", "mse"]


@record
class CalibrationOptions:
    """How activation scales are chosen from the calibration set.

    Attributes
    ----------
    method : {'max', 'percentile', 'mse'}
        ``max``: clip at the largest |x| seen. ``percentile``: clip at the given percentile
        of |x|. ``mse``: the clipping value that minimises the expected squared quantisation
        error (clipping + rounding) over a histogram of |x|.
    percentile : float
        Percentile (0-100] used by ``percentile``.
    activation_bits, weight_bits : int
        Integer widths (8 for INT8).
    bins : int
        Histogram bins over [0, max|x|] for ``percentile`` and ``mse``.
    batch_size : int
        Calibration batch size (images per forward pass).
    """

    method: CalibrationMethod = "mse"
    percentile: float = 99.99
    activation_bits: int = 8
    weight_bits: int = 8
    bins: int = 2048
    batch_size: int = 128

    def __post_init__(self) -> None:
        if self.method not in ("max", "percentile", "mse"):
            raise SasimError(f"calibration method must be max, percentile or mse, "
                             f"not {self.method!r}")
        if not 0 < self.percentile <= 100:
            raise SasimError(f"calibration percentile must be in (0, 100], not {self.percentile}")
        for name in ("activation_bits", "weight_bits"):
            if not 2 <= getattr(self, name) <= 16:
                raise SasimError(f"{name} must be between 2 and 16, not {getattr(self, name)}")
        if self.bins < 16 or self.batch_size <= 0:
            raise SasimError("bins must be >= 16 and batch_size positive")


_QUANTISABLE = (nn.Conv2d, nn.Linear)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _batches(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, x.shape[0], batch_size):
        yield x[start:start + batch_size]


def run_hooked(model: nn.Module, x: torch.Tensor, batch_size: int,
               handles: list[torch.utils.hooks.RemovableHandle]) -> None:
    """Run ``model`` on ``x`` batch by batch without gradients, for what its hooks record,
    then remove the hooks (``handles``), also when the run fails."""
    try:
        with torch.no_grad():
            for batch in _batches(x, batch_size):
                model(batch)
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------- BN folding

def batchnorm_pairs(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """The Conv2d -> BatchNorm2d pairs :func:`fold_batchnorm` folds, by module name.

    The pairs are found by running ``example`` once and matching tensors: a BatchNorm2d
    pairs with a Conv2d when its input is the very tensor the conv returned (conv -> bn in
    the graph), the conv runs once, its BatchNorm is its only such consumer, the channel
    counts agree and the BatchNorm tracks running statistics.

    Parameters
    ----------
    model : nn.Module
        The float model, in eval mode (a forward pass in train mode would update the
        BatchNorm statistics).
    example : torch.Tensor
        A small input batch.

    Returns
    -------
    dict of str to str
        Conv name -> BatchNorm name, in the order the BatchNorms run.
    """
    modules = dict(model.named_modules())
    producer: dict[int, str] = {}
    keep_alive: list[torch.Tensor] = []
    sources: dict[str, set[str | None]] = {}
    calls: dict[str, int] = {}

    def conv_hook(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            calls[name] = calls.get(name, 0) + 1
            producer[id(output)] = name
            keep_alive.append(output)
        return hook

    def bn_hook(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any) -> None:
            sources.setdefault(name, set()).add(producer.get(id(inputs[0])))
        return hook

    handles = []
    for name, module in modules.items():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook(name)))
        elif isinstance(module, nn.BatchNorm2d):
            handles.append(module.register_forward_pre_hook(bn_hook(name)))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
        keep_alive.clear()

    pairs: dict[str, str] = {}
    for bn_name, srcs in sources.items():
        if len(srcs) != 1:
            continue
        (conv_name,) = srcs
        if conv_name is None or conv_name in pairs or calls.get(conv_name) != 1:
            continue
        conv, bn = modules[conv_name], modules[bn_name]
        if bn.num_features != conv.out_channels or not bn.track_running_stats:
            continue
        pairs[conv_name] = bn_name
    return pairs


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, list[str]]:
    """Fold every BatchNorm2d that directly consumes a Conv2d's output into that conv.

    The pairs are those of :func:`batchnorm_pairs` (found by running ``example`` once). The
    conv's raw output must not be used elsewhere (true of torchvision-style models).

    Parameters
    ----------
    model : nn.Module
        The float model (left unchanged; a deep copy is folded, in eval mode).
    example : torch.Tensor
        A small input batch.

    Returns
    -------
    (nn.Module, list of str)
        The folded copy (folded BatchNorms replaced by ``nn.Identity``) and the names of the
        folded BatchNorm layers.
    """
    folded = copy.deepcopy(model).eval()
    modules = dict(folded.named_modules())
    names = []
    for conv_name, bn_name in batchnorm_pairs(folded, example).items():
        conv, bn = modules[conv_name], modules[bn_name]
        with torch.no_grad():
            std = torch.sqrt(bn.running_var + bn.eps)
            gamma = bn.weight if bn.affine else torch.ones_like(std)
            beta = bn.bias if bn.affine else torch.zeros_like(std)
            factor = gamma / std
            conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(std)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                              conv.stride, conv.padding, conv.dilation, conv.groups, bias=True,
                              padding_mode=conv.padding_mode)
            fused.weight.copy_(conv.weight * factor.reshape(-1, 1, 1, 1))
            fused.bias.copy_((conv_bias - bn.running_mean) * factor + beta)
        _set_module(folded, conv_name, fused)
        _set_module(folded, bn_name, nn.Identity())
        names.append(bn_name)
    return folded, names


# --------------------------------------------------------------------------- calibration

def _activation_range(bits: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _clip_from_histogram(hist: np.ndarray, edges: np.ndarray, zeros: int, qmax: int,
                         options: CalibrationOptions) -> float:
    """The clipping value for |x| from a histogram of the non-zero magnitudes."""
    total = int(hist.sum()) + zeros
    if options.method == "percentile":
        target = options.percentile / 100.0 * total
        cumulative = zeros + np.cumsum(hist)
        index = int(np.searchsorted(cumulative, target, side="left"))
        return float(edges[min(index + 1, len(edges) - 1)])
    centers = (edges[:-1] + edges[1:]) / 2
    best_clip, best_error = float(edges[-1]), math.inf
    for index in range(max(1, len(hist) // 64), len(hist) + 1):
        clip = float(edges[index])
        step = clip / qmax
        clipped = centers > clip
        # rounding error of a value spread uniformly over a step is step^2 / 12
        error = (float(np.sum(hist[clipped] * (centers[clipped] - clip) ** 2))
                 + float(np.sum(hist[~clipped])) * step * step / 12.0)
        if error < best_error:
            best_clip, best_error = clip, error
    return best_clip


@dataclasses.dataclass
class _Observer:
    minimum: float = math.inf
    maximum_abs: float = 0.0
    hist: np.ndarray | None = None
    zeros: int = 0


def _calibrate(model: nn.Module, names: list[str], data: torch.Tensor,
               options: CalibrationOptions) -> dict[str, tuple[float, bool]]:
    """Activation scale and signedness of every quantisable layer's input."""
    modules = dict(model.named_modules())
    observers = {name: _Observer() for name in names}
    phase = ["range"]

    def hook(name: str) -> Callable[..., None]:
        def observe(module: nn.Module, inputs: Any) -> None:
            x = inputs[0].detach().double()
            obs = observers[name]
            if phase[0] == "range":
                obs.minimum = min(obs.minimum, float(x.min()))
                obs.maximum_abs = max(obs.maximum_abs, float(x.abs().max()))
                return
            magnitude = x.abs().flatten()
            nonzero = magnitude[magnitude > 0]
            obs.zeros += int(magnitude.numel() - nonzero.numel())
            counts = torch.histc(nonzero, bins=options.bins, min=0.0,
                                 max=max(obs.maximum_abs, 1e-12)).numpy()
            obs.hist = counts if obs.hist is None else obs.hist + counts
        return observe

    handles = [modules[name].register_forward_pre_hook(hook(name)) for name in names]
    passes = ["range"] if options.method == "max" else ["range", "histogram"]
    with torch.no_grad():
        for phase[0] in passes:
            for batch in _batches(data, options.batch_size):
                model(batch)
    for handle in handles:
        handle.remove()
    scales = {}
    for name in names:
        obs = observers[name]
        if obs.minimum == math.inf:
            continue  # never called: not part of the traced network
        signed = obs.minimum < 0
        qmax = _activation_range(options.activation_bits, signed)[1]
        if obs.maximum_abs == 0:
            clip = 1.0
        elif options.method == "max":
            clip = obs.maximum_abs
        else:
            edges = np.linspace(0.0, max(obs.maximum_abs, 1e-12), options.bins + 1)
            clip = _clip_from_histogram(obs.hist, edges, obs.zeros, qmax, options)
        scales[name] = (clip / qmax if clip > 0 else 1.0, signed)
    return scales


# --------------------------------------------------------------------------- quantised layers

Recorder = Callable[["_IntegerLayer", torch.Tensor, torch.Tensor], None]


class _IntegerLayer(nn.Module):
    """A conv2d/linear computed exactly on integers; float in, float out."""

    def __init__(self, name: str, source: nn.Module, activation_scale: float, signed: bool,
                 options: CalibrationOptions) -> None:
        super().__init__()
        self.layer_name = name
        self.is_conv = isinstance(source, nn.Conv2d)
        if self.is_conv:
            if isinstance(source.padding, str):
                if source.padding != "valid":
                    raise SasimError(f"layer '{name}': padding='{source.padding}' is not "
                                     f"supported; give the padding as integers")
                padding = (0, 0)
            else:
                padding = tuple(source.padding)
            if source.padding_mode != "zeros":
                raise SasimError(f"layer '{name}': padding_mode '{source.padding_mode}' is not "
                                 f"supported (only zero padding)")
            self.stride, self.padding = tuple(source.stride), padding
            self.dilation, self.groups = tuple(source.dilation), source.groups
        self.activation_scale = float(activation_scale)
        self.signed = signed
        self.activation_bits = options.activation_bits
        self.weight_bits = options.weight_bits
        self.low, self.high = _activation_range(options.activation_bits, signed)
        weight = source.weight.detach().double()
        wmax = (1 << (options.weight_bits - 1)) - 1
        per_channel = weight.reshape(weight.shape[0], -1).abs().amax(dim=1)
        scales = torch.where(per_channel > 0, per_channel / wmax, torch.ones_like(per_channel))
        self.register_buffer("weight_scales", scales)
        self.register_buffer("weight_int", torch.clamp(
            torch.round(weight / scales.reshape(-1, *([1] * (weight.dim() - 1)))), -wmax, wmax))
        if source.bias is not None:
            self.register_buffer("bias_int", torch.round(
                source.bias.detach().double() / (self.activation_scale * scales)))
        else:
            self.bias_int = None
        self.recorder: Recorder | None = None

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The integer input (as float64 holding integers)."""
        return torch.clamp(torch.round(x.double() / self.activation_scale), self.low, self.high)

    def integer_output(self, xq: torch.Tensor) -> torch.Tensor:
        """The exact accumulator plus integer bias (float64 holding integers)."""
        if self.is_conv:
            acc = F.conv2d(xq, self.weight_int, None, self.stride, self.padding, self.dilation,
                           self.groups)
            if self.bias_int is not None:
                acc = acc + self.bias_int.reshape(1, -1, 1, 1)
        else:
            acc = F.linear(xq, self.weight_int, self.bias_int)
        return acc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = self.quantize_input(x)
        acc = self.integer_output(xq)
        if self.recorder is not None:
            self.recorder(self, xq, acc)
        scale = self.activation_scale * self.weight_scales
        scale = scale.reshape(1, -1, 1, 1) if self.is_conv else scale
        return (acc * scale).to(x.dtype)

    def layer(self, xq: torch.Tensor) -> Layer:
        """The sasim layer of this call (batch from the input)."""
        common = dict(name=self.layer_name, activation_signed=self.signed,
                      activation_bits=self.activation_bits, weight_bits=self.weight_bits)
        if self.is_conv:
            n, c, h, w = xq.shape
            f, _, r, s = self.weight_int.shape
            return Layer(op="conv2d", in_channels=c, out_channels=f, batch=n, input_size=(h, w),
                         kernel_size=(r, s), stride=self.stride, padding=self.padding,
                         dilation=self.dilation, groups=self.groups, **common)
        rows = int(np.prod(xq.shape[:-1]))
        return Layer(op="linear", in_channels=xq.shape[-1],
                     out_channels=self.weight_int.shape[0], batch=rows, **common)


class QuantizedModel(nn.Module):
    """The post-training-quantised model: float graph, integer conv2d/linear layers.

    Attributes
    ----------
    model : nn.Module
        The folded model with its Conv2d/Linear modules replaced by integer layers.
    folded_batchnorms : list of str
        BatchNorm layers folded into their convs.
    options : CalibrationOptions
        How it was calibrated.
    """

    def __init__(self, model: nn.Module, folded: list[str], options: CalibrationOptions) -> None:
        super().__init__()
        self.model = model
        self.folded_batchnorms = folded
        self.options = options

    def integer_layers(self) -> dict[str, _IntegerLayer]:
        """The integer layers by their name in the original model."""
        return {m.layer_name: m for m in self.model.modules() if isinstance(m, _IntegerLayer)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def quantize(model: nn.Module, calibration: torch.Tensor,
             options: CalibrationOptions = CalibrationOptions(),
             activation_scales: Mapping[str, tuple[float, bool]] | None = None,
             ) -> QuantizedModel:
    """Fold BatchNorm, calibrate on ``calibration`` and quantise every Conv2d/Linear.

    Parameters
    ----------
    model : nn.Module
        The float model (unchanged).
    calibration : torch.Tensor
        Calibration inputs (e.g. a few hundred training images), float.
    options : CalibrationOptions
        Calibration method and bit widths.
    activation_scales : mapping, optional
        Layer name -> (activation scale, signed) to use instead of calibrating (e.g. the
        quantisers of an earlier quantisation of the same network, whose layers it names).
        A layer it does not name stays float, as a layer the calibration never reaches
        does; ``calibration`` then only finds the BatchNorm pairs.
    """
    if calibration.shape[0] == 0:
        raise SasimError("the calibration set is empty")
    folded, bn_names = fold_batchnorm(model, calibration[:min(8, calibration.shape[0])])
    names = [n for n, m in folded.named_modules() if isinstance(m, _QUANTISABLE)]
    if not names:
        raise SasimError("the model has no nn.Conv2d or nn.Linear layer to quantise")
    if activation_scales is None:
        scales = _calibrate(folded, names, calibration, options)
    else:
        unknown = sorted(set(activation_scales) - set(names))
        if unknown:
            raise SasimError(f"activation scales given for unknown layer(s) "
                             f"{', '.join(unknown)} (layers: {', '.join(names)})")
        scales = {name: (float(scale), bool(signed))
                  for name, (scale, signed) in activation_scales.items()}
    modules = dict(folded.named_modules())
    for name in names:
        if name in scales:
            scale, signed = scales[name]
            _set_module(folded, name, _IntegerLayer(name, modules[name], scale, signed, options))
    return QuantizedModel(folded, bn_names, options).eval()


# --------------------------------------------------------------------------- evaluation / export

def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy (a fraction) of ``model`` on inputs ``x`` with labels ``y``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start:start + batch_size])
            correct += int((logits.argmax(dim=1) == y[start:start + batch_size]).sum())
    return correct / x.shape[0] if x.shape[0] else 0.0


def _smallest_int_dtype(values: np.ndarray, signed: bool) -> np.dtype:
    for dtype in ((np.int8, np.int16, np.int32) if signed else (np.uint8, np.uint16, np.uint32)):
        info = np.iinfo(dtype)
        if values.size == 0 or (values.min() >= info.min and values.max() <= info.max):
            return np.dtype(dtype)
    return np.dtype(np.int64)


@record
class ExportResult:
    """What :func:`export_trace` made.

    ``float_top1`` / ``int8_top1`` are fractions (``None`` without labelled evaluation data);
    ``layers`` lists the traced layers in execution order.
    """

    path: Path
    layers: tuple[str, ...]
    folded_batchnorms: tuple[str, ...]
    traced_samples: int
    float_top1: float | None
    int8_top1: float | None
    eval_samples: int


def export_trace(model: nn.Module, calibration: torch.Tensor, trace_inputs: torch.Tensor,
                 out: str | Path, model_name: str,
                 options: CalibrationOptions = CalibrationOptions(),
                 evaluation: tuple[torch.Tensor, torch.Tensor] | None = None,
                 provenance: Mapping[str, Any] | None = None,
                 verify: bool = True) -> ExportResult:
    """Quantise ``model`` post-training and write the trace of ``trace_inputs``.

    Parameters
    ----------
    model : nn.Module
        Float model (e.g. a torchvision model with its weights loaded).
    calibration : torch.Tensor
        Calibration inputs (training images).
    trace_inputs : torch.Tensor
        The inputs whose layer data are recorded (one forward pass; keep it small: the
        trace stores every conv/linear layer's input and int64 output).
    out : str or Path
        The ``.npz`` trace to write (atomically).
    model_name : str
        The model name stored in the manifest.
    options : CalibrationOptions
        Calibration method and bit widths.
    evaluation : (inputs, labels), optional
        Labelled data on which float and quantised top-1 are measured.
    provenance : mapping, optional
        Extra JSON-able provenance stored in the manifest (data sets, seeds, ...).
    verify : bool
        Reload the trace and check every layer's ``output`` against the exact GEMM lowering.

    Returns
    -------
    ExportResult
    """
    qmodel = quantize(model, calibration, options)
    integer_layers = qmodel.integer_layers()
    float_top1 = int8_top1 = None
    if evaluation is not None:
        float_top1 = evaluate(model, *evaluation)
        int8_top1 = evaluate(qmodel, *evaluation)
    info = {"tool": f"sasim {simulator.__version__} simulator.export",
            "torch": torch.__version__,
            "quantisation": {"scheme": "post-training, BatchNorm folded",
                             **dataclasses.asdict(options)},
            "weights": "symmetric per output channel, zero point 0",
            "activations": "per tensor, zero point 0, unsigned if non-negative in calibration",
            "calibration_samples": int(calibration.shape[0]),
            "traced_samples": int(trace_inputs.shape[0]),
            "folded_batchnorms": list(qmodel.folded_batchnorms),
            "output": "exact int64 accumulator including the integer bias",
            **({"float_top1": float_top1, "int8_top1": int8_top1,
                "eval_samples": int(evaluation[0].shape[0])} if evaluation is not None else {}),
            **dict(provenance or {})}
    traced: list[str] = []
    with TraceWriter(out, model_name, info) as writer:
        def record(module: _IntegerLayer, xq: torch.Tensor, acc: torch.Tensor) -> None:
            if module.layer_name in traced:
                raise SasimError(f"layer '{module.layer_name}' runs more than once per forward "
                                 f"pass (shared weights); a trace needs one call per layer")
            traced.append(module.layer_name)
            x = xq.numpy().astype(np.int64)
            if not module.is_conv:
                x = x.reshape(-1, x.shape[-1])
            layer = module.layer(xq)
            bias = None if module.bias_int is None else module.bias_int.numpy().astype(np.int64)
            output = acc.numpy().astype(np.int64).reshape(-1, layer.out_channels) \
                if not module.is_conv else acc.numpy().astype(np.int64)
            tensors = LayerTensors(
                input=x.astype(_smallest_int_dtype(x, layer.activation_signed)),
                weight=module.weight_int.numpy().astype(np.int64).astype(
                    _smallest_int_dtype(module.weight_int.numpy(), True)),
                bias=None if bias is None else bias.astype(_smallest_int_dtype(bias, True)),
                output=output)
            writer.add(TraceEntry(layer, tensors, module.activation_scale,
                                  module.weight_scales.tolist()))

        for module in integer_layers.values():
            module.recorder = record
        try:
            with torch.no_grad():
                qmodel(trace_inputs)
        finally:
            for module in integer_layers.values():
                module.recorder = None
    if verify:
        workload = load_trace(out)
        for layer in workload.layers:
            tensors = workload.tensors(layer.name)
            if not np.array_equal(exact_output(tensors, layer), tensors.output):
                raise SasimError(f"{out}: layer '{layer.name}': the recorded output differs "
                                 f"from the exact GEMM of its input and weights (exporter bug)")
    return ExportResult(path=Path(out), layers=tuple(traced),
                        folded_batchnorms=tuple(qmodel.folded_batchnorms),
                        traced_samples=int(trace_inputs.shape[0]), float_top1=float_top1,
                        int8_top1=int8_top1,
                        eval_samples=0 if evaluation is None else int(evaluation[0].shape[0]))
