"""Post-training INT8 quantisation of transformers and export of their trace (version 2).

Attention must be written explicitly, with the building blocks of this module, so that both
of its products have integer operands (docs/trace-format.md, docs/digits-model.md):

- :class:`MatMul` multiplies two activations, left (batch, heads, tokens, K) by right
  (batch, kv_heads, K, N) (``Q·Kᵀ`` and ``P·V``; grouped-query attention when
  kv_heads < heads). Construct the ``P·V`` one with ``probabilities=True``.
- :class:`Add` and :class:`Mul` are the element-wise ops of the graph (residual adds, gates).
- ``nn.Linear`` layers are GEMMs; ``nn.LayerNorm``, ``nn.RMSNorm``, ``nn.GELU``, ``nn.SiLU``,
  ``nn.ReLU`` and ``nn.Softmax(dim=-1)`` are recorded as vector layers.

``nn.MultiheadAttention`` and ``F.scaled_dot_product_attention`` compute attention inside one
op whose Q, K, V and P cannot be quantised: a model using them is refused with a message
saying how to write attention explicitly. So is an activation product (``@``,
``torch.matmul``, ``bmm``, ``einsum``) outside a :class:`MatMul`, which would stay float.

The quantised model (:func:`quantize_transformer`):

- ``nn.Linear``: weights symmetric per output channel (``weight_bits``, 8); the input per
  tensor with zero point 0 (``static``: scale calibrated with ``max``/``percentile``/``mse``
  clipping, unsigned when every calibration input was non-negative) or per row (``dynamic``:
  each token's own scale ``max|row| / qmax`` at run time). Optional SmoothQuant smoothing
  (``smooth_alpha``): per input channel ``s_j = max|X_j|^α / max|W_j|^(1-α)`` (calibrated), the
  input divided by ``s`` and the weight columns multiplied by it before quantisation (in a
  deployment the division is folded into the preceding LayerNorm; here the quantiser applies
  it). The bias is added in float after the rescale (it is not part of the integer output).
- :class:`MatMul`: the left operand (Q, or P) quantised like a linear input (static or
  dynamic); the right operand (Kᵀ, or V) per tensor, static, signed; P (``probabilities``)
  unsigned with the fixed scale 1/(2^b − 1) (``probability_scale="fixed"``) or calibrated.
- Everything else runs in float, as the model computes it.

Each integer layer computes its integer product through its ``gemm`` attribute, a function
``(layer, A (G, M, K), B (G, K, N)) -> (G, M, N)`` int64: exact by default
(:func:`~simulator.workloads.lowering.gemm_product`); ``sasim accuracy`` puts a PE model there
(:mod:`simulator.accuracy.transformers`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

import simulator
from simulator.errors import SasimError
from simulator.export.ptq import CalibrationOptions, _clip_from_histogram, _smallest_int_dtype
from simulator.records import record
from simulator.workloads.layers import Layer, LayerTensors
from simulator.workloads.lowering import gemm_product
from simulator.workloads.matmul import exact_matmul, matmul_operands, matmul_output
from simulator.workloads.trace import TraceEntry, TraceWriter, load_trace

__all__ = ["Add", "MatMul", "Mul", "GemmFunction", "TransformerOptions",
           "TransformerExport", "QuantizedTransformer", "quantize_transformer",
           "export_transformer", "exact_gemm"]

#: ``(layer, A (G, M, K), B (G, K, N)) -> (G, M, N)`` int64: how an integer layer multiplies.
GemmFunction = Callable[[Layer, np.ndarray, np.ndarray], np.ndarray]

_PRODUCT_NAMES = {"matmul", "bmm", "mm", "einsum", "baddbmm", "__matmul__", "__rmatmul__"}


def exact_gemm(layer: Layer, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact int64 product (the default ``gemm`` of the integer layers)."""
    return gemm_product(a, b)


# --------------------------------------------------------------------------- building blocks

class MatMul(nn.Module):
    """``left @ right`` of two activations: (B, H, T, K) x (B, KVH, K, N) -> (B, H, T, N).

    The ``H // KVH`` query heads of one K/V head share its right operand (grouped-query
    attention). ``probabilities=True`` marks the ``P·V`` product (its left operand is a
    softmax output, quantised unsigned with a fixed scale by default).
    """

    def __init__(self, probabilities: bool = False) -> None:
        super().__init__()
        self.probabilities = probabilities

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        b, h, t, k = left.shape
        kvh, n = right.shape[1], right.shape[-1]
        out = left.reshape(b, kvh, (h // kvh) * t, k) @ right
        return out.reshape(b, h, t, n)


class Add(nn.Module):
    """``a + b`` (a residual add), recorded as an ``add`` vector layer."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Mul(nn.Module):
    """``a * b`` (a gate), recorded as a ``mul`` vector layer."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


_VECTOR_MODULES: tuple[tuple[type, str], ...] = (
    (nn.LayerNorm, "layernorm"), (nn.RMSNorm, "rmsnorm"), (nn.GELU, "gelu"),
    (nn.SiLU, "silu"), (nn.ReLU, "relu"), (nn.Softmax, "softmax"), (Add, "add"), (Mul, "mul"))


def _vector_op(module: nn.Module) -> str | None:
    for kind, op in _VECTOR_MODULES:
        if isinstance(module, kind):
            return op
    return None


# --------------------------------------------------------------------------- options

Activations = Literal["static", "dynamic"]


@record
class TransformerOptions:
    """How a transformer is quantised.

    Attributes
    ----------
    calibration : CalibrationOptions
        Clipping method and bit widths of the static scales (as for CNNs).
    activations : {'static', 'dynamic'}
        Linear inputs and matmul left operands: one calibrated scale per tensor
        (``static``) or one scale per row (token) computed at run time (``dynamic``).
    smooth_alpha : float or None
        SmoothQuant migration strength α in [0, 1] for the linear layers (None: off).
    probability_scale : {'fixed', 'calibrated'}
        The softmax output P before ``P·V``: scale 1/(2^b − 1) or calibrated.
    """

    calibration: CalibrationOptions = CalibrationOptions()
    activations: Activations = "static"
    smooth_alpha: float | None = None
    probability_scale: Literal["fixed", "calibrated"] = "fixed"

    def __post_init__(self) -> None:
        if self.activations not in ("static", "dynamic"):
            raise SasimError(f"activations must be static or dynamic, not {self.activations!r}")
        if self.smooth_alpha is not None and not 0 <= self.smooth_alpha <= 1:
            raise SasimError(f"the SmoothQuant alpha must be in [0, 1], not {self.smooth_alpha}")
        if self.probability_scale not in ("fixed", "calibrated"):
            raise SasimError(f"probability_scale must be fixed or calibrated, not "
                             f"{self.probability_scale!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-able description (for a trace's provenance)."""
        return {**dataclasses.asdict(self.calibration), "activations": self.activations,
                "smooth_alpha": self.smooth_alpha,
                "probability_scale": self.probability_scale}


# --------------------------------------------------------------------------- refusals

class _Guard(TorchFunctionMode):
    """Refuse attention computed inside one op and activation products outside MatMul."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        if func is F.scaled_dot_product_attention:
            raise SasimError("the model calls F.scaled_dot_product_attention: its Q, K, V and "
                             "P cannot be quantised inside one op; write attention explicitly "
                             "with simulator.export.transformer.MatMul (Q·Kᵀ, softmax, P·V; "
                             "docs/digits-model.md)")
        if not self.inside and getattr(func, "__name__", "") in _PRODUCT_NAMES:
            raise SasimError(f"the model multiplies activations with {func.__name__} outside "
                             f"a simulator.export.transformer.MatMul module: that product "
                             f"would stay float; use MatMul for it")
        return func(*args, **(kwargs or {}))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _guarded_forward(model: nn.Module, x: torch.Tensor) -> None:
    """One float forward pass that refuses what the exporter cannot quantise."""
    for name, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            raise SasimError(f"module '{name}' is an nn.MultiheadAttention: it computes "
                             f"attention inside one op, whose Q, K, V and P cannot be "
                             f"quantised; write attention explicitly with nn.Linear "
                             f"projections and simulator.export.transformer.MatMul "
                             f"(docs/digits-model.md)")
    guard = _Guard()

    def enter(module: nn.Module, inputs: Any) -> None:
        guard.inside += 1

    def leave(module: nn.Module, inputs: Any, output: Any) -> None:
        guard.inside -= 1

    handles = []
    for module in model.modules():
        if isinstance(module, MatMul):
            handles.append(module.register_forward_pre_hook(enter))
            handles.append(module.register_forward_hook(leave))
    try:
        with torch.no_grad(), guard:
            model(x)
    except RuntimeError as exc:
        raise SasimError(f"the model cannot run on the calibration data: "
                         f"{_first_line(exc)}") from None
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------- calibration

@dataclasses.dataclass
class _Range:
    """Range and histogram of one tensor over the calibration set."""

    minimum: float = math.inf
    maximum_abs: float = 0.0
    hist: np.ndarray | None = None
    zeros: int = 0
    channels: torch.Tensor | None = None  # max |x| per last-axis channel

    def observe(self, x: torch.Tensor, phase: str, bins: int) -> None:
        x = x.detach().double()
        if phase == "channels":
            channel = x.abs().reshape(-1, x.shape[-1]).amax(dim=0)
            self.channels = channel if self.channels is None else torch.maximum(
                self.channels, channel)
        elif phase == "range":
            self.minimum = min(self.minimum, float(x.min()))
            self.maximum_abs = max(self.maximum_abs, float(x.abs().max()))
        else:
            magnitude = x.abs().flatten()
            nonzero = magnitude[magnitude > 0]
            self.zeros += int(magnitude.numel() - nonzero.numel())
            counts = torch.histc(nonzero, bins=bins, min=0.0,
                                 max=max(self.maximum_abs, 1e-12)).numpy()
            self.hist = counts if self.hist is None else self.hist + counts

    def scale(self, options: CalibrationOptions, bits: int) -> tuple[float, bool]:
        """(scale, signed) of this tensor's quantiser."""
        signed = self.minimum < 0
        qmax = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        if self.maximum_abs == 0:
            return 1.0, signed
        if options.method == "max":
            clip = self.maximum_abs
        else:
            edges = np.linspace(0.0, max(self.maximum_abs, 1e-12), options.bins + 1)
            clip = _clip_from_histogram(self.hist, edges, self.zeros, qmax, options)
        return (clip / qmax if clip > 0 else 1.0), signed


def _calibrate(model: nn.Module, data: torch.Tensor, options: TransformerOptions,
               ) -> tuple[dict[str, _Range], dict[str, torch.Tensor]]:
    """Ranges of every linear input and matmul operand (keys ``name`` / ``name.left`` /
    ``name.right``) and the SmoothQuant factors of the linear layers."""
    ranges: dict[str, _Range] = {}
    smoothing: dict[str, torch.Tensor] = {}
    phase = ["range"]
    bins = options.calibration.bins

    def linear_hook(name: str) -> Callable[..., None]:
        def observe(module: nn.Module, inputs: Any) -> None:
            x = inputs[0]
            if name in smoothing:
                x = x / smoothing[name].to(x.dtype)
            ranges.setdefault(name, _Range()).observe(x, phase[0], bins)
        return observe

    def matmul_hook(name: str) -> Callable[..., None]:
        def observe(module: nn.Module, inputs: Any) -> None:
            if phase[0] == "channels":
                return
            ranges.setdefault(f"{name}.left", _Range()).observe(inputs[0], phase[0], bins)
            ranges.setdefault(f"{name}.right", _Range()).observe(inputs[1], phase[0], bins)
        return observe

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            handles.append(module.register_forward_pre_hook(linear_hook(name)))
        elif isinstance(module, MatMul):
            handles.append(module.register_forward_pre_hook(matmul_hook(name)))
    passes = (["channels"] if options.smooth_alpha is not None else []) + ["range"] + (
        [] if options.calibration.method == "max" else ["histogram"])
    modules = dict(model.named_modules())
    try:
        with torch.no_grad():
            for phase[0] in passes:
                for start in range(0, data.shape[0], options.calibration.batch_size):
                    model(data[start:start + options.calibration.batch_size])
                if phase[0] == "channels":
                    smoothing.update(_smoothing(modules, ranges, options.smooth_alpha))
                    ranges.clear()
    finally:
        for handle in handles:
            handle.remove()
    return ranges, smoothing


def _smoothing(modules: Mapping[str, nn.Module], ranges: Mapping[str, _Range],
               alpha: float) -> dict[str, torch.Tensor]:
    """SmoothQuant factors s_j = max|X_j|^α / max|W_j|^(1-α), per linear layer."""
    out = {}
    for name, observed in ranges.items():
        weight = modules[name].weight.detach().double()
        w_max = weight.abs().amax(dim=0).clamp(min=1e-8)
        x_max = observed.channels.clamp(min=1e-8)
        out[name] = (x_max ** alpha / w_max ** (1 - alpha)).clamp(min=1e-5)
    return out


# --------------------------------------------------------------------------- integer layers

def _quantise(x: torch.Tensor, scale: float | None, signed: bool,
              bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integers (float64) and their scale: per tensor (``scale``) or per row (None)."""
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    x = x.double()
    if scale is None:
        qmax = high
        row = x.abs().amax(dim=-1, keepdim=True) / qmax
        row = torch.where(row > 0, row, torch.ones_like(row))
        return torch.clamp(torch.round(x / row), low, high), row
    step = torch.tensor(scale, dtype=torch.float64)
    return torch.clamp(torch.round(x / step), low, high), step


class _IntegerLinear(nn.Module):
    """An ``nn.Linear`` computed on integers (float in, float out)."""

    def __init__(self, name: str, source: nn.Linear, scale: float | None, signed: bool,
                 smoothing: torch.Tensor | None, bits: int, weight_bits: int, role: str) -> None:
        super().__init__()
        self.layer_name, self.role = name, role
        self.activation_scale, self.signed = scale, signed
        self.activation_bits, self.weight_bits = bits, weight_bits
        weight = source.weight.detach().double()
        if smoothing is not None:
            weight = weight * smoothing.reshape(1, -1)
        self.register_buffer("smoothing", smoothing)
        wmax = (1 << (weight_bits - 1)) - 1
        per_channel = weight.abs().amax(dim=1)
        scales = torch.where(per_channel > 0, per_channel / wmax, torch.ones_like(per_channel))
        self.register_buffer("weight_scales", scales)
        self.register_buffer("weight_int", torch.clamp(torch.round(weight / scales[:, None]),
                                                       -wmax, wmax))
        self.register_buffer("bias", None if source.bias is None
                             else source.bias.detach().double())
        self.gemm: GemmFunction = exact_gemm
        self.recorder: Callable[..., None] | None = None

    def layer(self, rows: int) -> Layer:
        """The sasim layer of a call with ``rows`` input rows."""
        return Layer(name=self.layer_name, op="linear", in_channels=self.weight_int.shape[1],
                     out_channels=self.weight_int.shape[0], batch=rows,
                     activation_signed=self.signed, activation_bits=self.activation_bits,
                     weight_bits=self.weight_bits, role=self.role)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1]).double()
        if self.smoothing is not None:
            flat = flat / self.smoothing
        xq, step = _quantise(flat, self.activation_scale, self.signed, self.activation_bits)
        layer = self.layer(flat.shape[0])
        a = xq.numpy().astype(np.int64)[None]
        b = np.ascontiguousarray(self.weight_int.numpy().astype(np.int64).T)[None]
        acc = self.gemm(layer, a, b)[0]
        if self.recorder is not None:
            self.recorder(self, layer, a[0], b[0].T, acc, step, tuple(shape[:-1]))
        out = torch.from_numpy(acc.astype(np.float64)) * step * self.weight_scales
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], -1).to(x.dtype)


class _IntegerMatMul(nn.Module):
    """A :class:`MatMul` with both operands quantised (float in, float out)."""

    def __init__(self, name: str, left: tuple[float | None, bool], right: tuple[float, bool],
                 bits: int, role: str) -> None:
        super().__init__()
        self.layer_name, self.role = name, role
        self.activation_scale, self.signed = left
        self.right_scale, self.right_signed = right
        self.activation_bits = bits
        self.gemm: GemmFunction = exact_gemm
        self.recorder: Callable[..., None] | None = None

    def layer(self, left: torch.Tensor, right: torch.Tensor) -> Layer:
        """The sasim layer of a call with these operands."""
        b, h, t, k = left.shape
        return Layer(name=self.layer_name, op="matmul", in_channels=k,
                     out_channels=right.shape[-1], batch=b, heads=h, kv_heads=right.shape[1],
                     tokens=t, activation_signed=self.signed,
                     activation_bits=self.activation_bits, weight_bits=self.activation_bits,
                     weight_signed=self.right_signed, role=self.role)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        lq, lstep = _quantise(left, self.activation_scale, self.signed, self.activation_bits)
        rq, rstep = _quantise(right, self.right_scale, self.right_signed, self.activation_bits)
        layer = self.layer(left, right)
        lint, rint = lq.numpy().astype(np.int64), rq.numpy().astype(np.int64)
        a, b = matmul_operands(lint, rint, layer)
        acc = matmul_output(self.gemm(layer, a, b), layer)
        if self.recorder is not None:
            self.recorder(self, layer, lint, rint, acc, lstep, tuple(left.shape[:-1]))
        out = torch.from_numpy(acc.astype(np.float64)) * lstep * rstep
        return out.to(left.dtype)


def _role(names: list[str], modules: Mapping[str, nn.Module], default: str) -> str:
    """The ``sasim_role`` of the module or its nearest ancestor, else ``default``."""
    for name in names:
        role = getattr(modules[name], "sasim_role", None)
        if role is not None:
            return role
    return default


def _ancestry(name: str) -> list[str]:
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(len(parts), -1, -1)]


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


class QuantizedTransformer(nn.Module):
    """The quantised transformer: float graph, integer linear and matmul layers."""

    def __init__(self, model: nn.Module, options: TransformerOptions) -> None:
        super().__init__()
        self.model = model
        self.options = options

    def integer_layers(self) -> dict[str, nn.Module]:
        """The integer linear and matmul layers by name (module order)."""
        return {m.layer_name: m for m in self.model.modules()
                if isinstance(m, _IntegerLinear | _IntegerMatMul)}

    def set_gemm(self, gemm: GemmFunction, layers: list[str] | None = None) -> None:
        """Compute the named integer layers' products (default: all) with ``gemm``."""
        for name, module in self.integer_layers().items():
            if layers is None or name in layers:
                module.gemm = gemm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def quantize_transformer(model: nn.Module, calibration: torch.Tensor,
                         options: TransformerOptions = TransformerOptions(),
                         ) -> QuantizedTransformer:
    """Calibrate on ``calibration`` and quantise every ``nn.Linear`` and :class:`MatMul`.

    Raises
    ------
    SasimError
        An empty calibration set, a model with ``nn.MultiheadAttention``,
        ``F.scaled_dot_product_attention`` or an activation product outside MatMul, or no
        layer to quantise.
    """
    if calibration.shape[0] == 0:
        raise SasimError("the calibration set is empty")
    model = copy.deepcopy(model).eval()
    _guarded_forward(model, calibration[:min(2, calibration.shape[0])])
    ranges, smoothing = _calibrate(model, calibration, options)
    modules = dict(model.named_modules())
    bits = options.calibration.activation_bits
    dynamic = options.activations == "dynamic"
    count = 0
    for name, module in list(modules.items()):
        if isinstance(module, nn.Linear) and name in ranges:
            scale, signed = ranges[name].scale(options.calibration, bits)
            role = _role(_ancestry(name), modules, "")
            _set_module(model, name, _IntegerLinear(
                name, module, None if dynamic else scale, signed, smoothing.get(name), bits,
                options.calibration.weight_bits, role))
            count += 1
        elif isinstance(module, MatMul) and f"{name}.left" in ranges:
            left_scale, left_signed = ranges[f"{name}.left"].scale(options.calibration, bits)
            if module.probabilities:
                left_signed = False
                if options.probability_scale == "fixed":
                    left_scale = 1.0 / ((1 << bits) - 1)
            elif dynamic:
                left_scale = None
            right = ranges[f"{name}.right"].scale(options.calibration, bits)
            role = _role(_ancestry(name), modules, "attention")
            _set_module(model, name, _IntegerMatMul(name, (left_scale, left_signed), right,
                                                    bits, role))
            count += 1
    if not count:
        raise SasimError("the model has no nn.Linear or MatMul layer to quantise")
    return QuantizedTransformer(model, options).eval()


# --------------------------------------------------------------------------- export

@record
class TransformerExport:
    """What :func:`export_transformer` wrote: the trace, its layers and the samples."""

    path: Path
    layers: tuple[str, ...]
    traced_samples: int


def _int_array(values: np.ndarray, signed: bool) -> np.ndarray:
    return values.astype(_smallest_int_dtype(values, signed))


def _float_array(x: torch.Tensor) -> np.ndarray:
    return x.detach().to(torch.float32).numpy()


def _vector_entry(name: str, op: str, role: str, inputs: tuple, output: torch.Tensor,
                  ) -> TraceEntry:
    x = _float_array(inputs[0])
    other = _float_array(inputs[1]) if op in ("add", "mul") else None
    shape = x.shape
    if not 2 <= len(shape) <= 4:
        raise SasimError(f"layer '{name}': a {op} on a {len(shape)}-d tensor cannot be "
                         f"recorded (2-d to 4-d)")
    heads, tokens = (shape[1], shape[2]) if len(shape) == 4 else \
        (1, shape[1] if len(shape) == 3 else 1)
    layer = Layer(name=name, op=op, in_channels=shape[-1], out_channels=shape[-1],
                  batch=shape[0], heads=heads, tokens=tokens, activation_signed=True,
                  activation_bits=32, role=role)
    return TraceEntry(layer, LayerTensors(x, None, output=_float_array(output), other=other))


Phase = Literal["", "prefill", "decode"]


def _last_token(name: str, array: np.ndarray, lead: tuple[int, ...], axis: int) -> np.ndarray:
    """The last token's rows of ``array`` whose leading dims are ``lead`` (tokens on
    ``axis``): what a decode step computes."""
    if len(lead) <= axis:
        raise SasimError(f"layer '{name}': a decode trace needs a token axis; its input has "
                         f"leading shape {list(lead)}")
    shaped = array.reshape(*lead, *array.shape[1:]) if array.shape[0] != lead[0] else array
    index = [slice(None)] * shaped.ndim
    index[axis] = slice(lead[axis] - 1, lead[axis])
    return shaped[tuple(index)]


def _decode_entry(entry: TraceEntry, lead: tuple[int, ...]) -> TraceEntry:
    """The decode step of one recorded layer: the last token's rows; a matmul's right operand
    (all tokens' K or V) is read from the KV cache."""
    layer, tensors = entry.layer, entry.tensors
    name = layer.name
    if layer.op == "matmul":
        left = _last_token(name, tensors.input, lead, 2)
        out = dataclasses.replace(layer, tokens=1, kv_cache=True)
        scale = None if entry.input_scale is None else entry.input_scale[:, :, -1:]
        return dataclasses.replace(entry, layer=out, input_scale=scale, tensors=LayerTensors(
            left, tensors.weight, output=_last_token(name, tensors.output, lead, 2)))
    if layer.op == "linear":
        rows = _last_token(name, tensors.input, lead, 1).reshape(-1, layer.in_channels)
        output = _last_token(name, tensors.output, lead, 1).reshape(rows.shape[0], -1)
        scale = (None if entry.input_scale is None
                 else _last_token(name, entry.input_scale, lead, 1).reshape(-1))
        return dataclasses.replace(entry, layer=dataclasses.replace(layer, batch=rows.shape[0]),
                                   input_scale=scale,
                                   tensors=LayerTensors(rows, tensors.weight, output=output))
    axis = 2 if tensors.input.ndim == 4 else 1
    if tensors.input.ndim < 3:
        raise SasimError(f"layer '{name}': a decode trace needs a token axis; the {layer.op}'s "
                         f"input has shape {list(tensors.input.shape)}")
    cut = {k: None if v is None else _last_token(name, v, v.shape[:-1], axis)
           for k, v in (("input", tensors.input), ("other", tensors.other),
                        ("output", tensors.output))}
    return dataclasses.replace(entry, layer=dataclasses.replace(layer, tokens=1),
                               tensors=LayerTensors(cut["input"], None, output=cut["output"],
                                                    other=cut["other"]))


def export_transformer(model: nn.Module, calibration: torch.Tensor, trace_inputs: torch.Tensor,
                       out: str | Path, model_name: str,
                       options: TransformerOptions = TransformerOptions(),
                       provenance: Mapping[str, Any] | None = None,
                       verify: bool = True, phase: Phase = "") -> TransformerExport:
    """Quantise a transformer and write the version 2 trace of ``trace_inputs``.

    Every linear and matmul layer is recorded with its integer operands and exact int64
    output (the accumulator, no bias), in execution order, with the vector layers between
    them (their float input, second input and output, as the quantised model computed
    them: the references an integer or approximate implementation is checked against).

    Parameters
    ----------
    model : nn.Module
        The float model (explicit attention, see the module docstring).
    calibration : torch.Tensor
        Calibration inputs.
    trace_inputs : torch.Tensor
        The inputs whose layers are recorded (one forward pass: keep it small).
    out : str or Path
        The ``.npz`` trace (written atomically).
    model_name : str
        The model's name in the manifest.
    options : TransformerOptions
        The quantisation.
    provenance : mapping, optional
        Extra JSON-able provenance.
    verify : bool
        Reload the trace and check every GEMM layer's output against the exact product.
    phase : {'', 'prefill', 'decode'}
        ``prefill`` records the whole sequences (``trace_inputs`` is batch x tokens) and
        writes the manifest's ``inference`` object; ``decode`` records one decode step:
        the last token of each sequence, attending to the K and V of all its tokens read
        from the KV cache (``kv_cache: true``; ``context_len`` = tokens − 1). A decode trace
        is only a real decode step for a causal model (each token's K and V independent of
        later tokens).
    """
    if phase not in ("", "prefill", "decode"):
        raise SasimError(f"phase must be '', prefill or decode, not {phase!r}")
    qmodel = quantize_transformer(model, calibration, options)
    modules = dict(qmodel.model.named_modules())
    info = {"tool": f"sasim {simulator.__version__} simulator.export.transformer",
            "torch": torch.__version__, "quantisation": options.as_dict(),
            "weights": "symmetric per output channel, zero point 0",
            "activations": ("per tensor, zero point 0, unsigned if non-negative in calibration"
                            if options.activations == "static"
                            else "per row (token), dynamic, zero point 0"),
            "calibration_samples": int(calibration.shape[0]),
            "traced_samples": int(trace_inputs.shape[0]),
            "output": "GEMM layers: exact int64 accumulator (bias added in float after); "
                      "vector layers: float32 values of the quantised model",
            **dict(provenance or {})}
    traced: list[str] = []

    def claim(name: str) -> None:
        if name in traced:
            raise SasimError(f"layer '{name}' runs more than once per forward pass (a shared "
                             f"module); a trace needs one call per layer")
        traced.append(name)

    inference = None
    if phase:
        if trace_inputs.dim() < 2:
            raise SasimError(f"a {phase} trace needs inputs of (sequences, tokens, ...), got "
                             f"shape {list(trace_inputs.shape)}")
        sequences, tokens = int(trace_inputs.shape[0]), int(trace_inputs.shape[1])
        if phase == "decode" and tokens < 2:
            raise SasimError("a decode trace needs at least 2 tokens per sequence (one cached)")
        inference = ({"phase": "prefill", "sequences": sequences, "seq_len": tokens}
                     if phase == "prefill" else
                     {"phase": "decode", "sequences": sequences, "context_len": tokens - 1})
    with TraceWriter(out, model_name, info, inference=inference) as writer:
        def add(entry: TraceEntry, lead: tuple[int, ...]) -> None:
            writer.add(_decode_entry(entry, lead) if phase == "decode" else entry)

        def record(module: nn.Module, layer: Layer, left: np.ndarray, right: np.ndarray,
                   acc: np.ndarray, step: torch.Tensor, lead: tuple[int, ...]) -> None:
            claim(module.layer_name)
            per_row = step.numel() > 1
            tensors = LayerTensors(input=_int_array(left, layer.activation_signed),
                                   weight=_int_array(right, True), output=acc)
            scale = None if per_row else float(step)
            input_scale = step.reshape(left.shape[:-1]).numpy() if per_row else None
            if layer.op == "linear":
                entry = TraceEntry(layer, tensors, scale, module.weight_scales.tolist(),
                                   input_scale=input_scale)
            else:
                entry = TraceEntry(layer, tensors, scale, weight_scale=module.right_scale,
                                   input_scale=input_scale)
            add(entry, lead)

        def vector_hook(name: str, op: str) -> Callable[..., None]:
            role = _role(_ancestry(name), modules, "attention" if op == "softmax" else "")

            def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
                if op == "softmax" and module.dim not in (-1, inputs[0].dim() - 1):
                    raise SasimError(f"layer '{name}': nn.Softmax(dim={module.dim}); a "
                                     f"trace's softmax works along the last axis (dim=-1)")
                claim(name)
                add(_vector_entry(name, op, role, inputs, output), ())
            return hook

        handles = []
        for name, module in modules.items():
            op = _vector_op(module)
            if op is not None:
                handles.append(module.register_forward_hook(vector_hook(name, op)))
        integer = qmodel.integer_layers()
        for module in integer.values():
            module.recorder = record
        try:
            with torch.no_grad():
                qmodel(trace_inputs)
        except RuntimeError as exc:
            raise SasimError(f"the model cannot run on the trace data: "
                             f"{_first_line(exc)}") from None
        finally:
            for module in integer.values():
                module.recorder = None
            for handle in handles:
                handle.remove()
    if verify:
        _verify(out)
    return TransformerExport(Path(out), tuple(traced), int(trace_inputs.shape[0]))


def _verify(out: str | Path) -> None:
    workload = load_trace(out)
    for layer in workload.layers:
        if not layer.is_gemm:
            continue
        tensors = workload.tensors(layer.name)
        if layer.op == "matmul":
            exact = exact_matmul(tensors.input, tensors.weight, layer)
        else:
            exact = gemm_product(tensors.input[None], tensors.weight.T[None])[0]
        if not np.array_equal(exact, tensors.output):
            raise SasimError(f"{out}: layer '{layer.name}': the recorded output differs from "
                             f"the exact product of its operands (exporter bug)")

