"""Shape-only workloads: the workload YAML format and SCALE-Sim topology CSVs."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from simulator.config.files import read_text, read_yaml_mapping
from simulator.config.schema import build, did_you_mean, in_range, option, positive
from simulator.errors import ConfigError, WorkloadError, shorten
from simulator.records import record
from simulator.workloads.layers import (GEMM_OPS, MAX_DIM, MAX_LAYERS, POOL_OPS,
                                        VECTOR_OPS, Layer, Workload)

__all__ = ["WORKLOAD_SCHEMA_VERSION", "load_workload_yaml", "load_topology_csv", "layer_from_entry",
           "check_name"]

WORKLOAD_SCHEMA_VERSION = 1

Pair = int | tuple[int, ...]


@record
class _Base:
    name: str = option(doc="Layer name (unique in the workload, non-empty).",
                       check=lambda v: None if v.strip() else "a non-empty name")
    activation_signed: bool = option(False, doc="Input activations are signed (not post-ReLU).")
    activation_bits: int = option(8, doc="Activation bit width (1 to 32).",
                                  check=in_range(1, 32))
    role: Literal["", "attention", "ffn", "other"] = option(
        "", doc="Part of a transformer block the layer belongs to (attention, ffn, other): "
                "reports add up time per role.")


@record
class _Common(_Base):
    weight_bits: int = option(8, doc="Weight bit width (2 to 32: weights are signed; a "
                                     "matmul's right operand).", check=in_range(2, 32))


@record
class Conv2dEntry(_Common):
    """``op: conv2d``: PyTorch's Conv2d arguments plus the unpadded input size."""

    op: Literal["conv2d"] = option("conv2d", doc="Layer type.")
    in_channels: int = option(1, doc="Input channels C.", check=positive)
    out_channels: int = option(1, doc="Output channels (filters) F.", check=positive)
    input_size: Pair = option(1, doc="Input feature map [H, W] before padding.")
    kernel_size: Pair = option(1, doc="Kernel [R, S].")
    stride: Pair = option(1, doc="Stride.")
    padding: Pair = option(0, doc="Zero padding on each side.")
    dilation: Pair = option(1, doc="Dilation.")
    groups: int = option(1, doc="Groups (in_channels for depthwise).", check=positive)


@record
class LinearEntry(_Common):
    """``op: linear``: a fully connected layer; ``tokens`` multiplies the batch."""

    op: Literal["linear"] = option("linear", doc="Layer type.")
    in_features: int = option(1, doc="Input features (K).", check=positive)
    out_features: int = option(1, doc="Output features (N).", check=positive)
    tokens: int = option(1, doc="Rows per batch item (sequence length).", check=positive)


@record
class GemmEntry(_Common):
    """``op: gemm``: a plain GEMM (M x K) . (K x N); the batch does not apply."""

    op: Literal["gemm"] = option("gemm", doc="Layer type.")
    m: int = option(1, doc="Rows of A and O.", check=positive)
    k: int = option(1, doc="Reduction dimension.", check=positive)
    n: int = option(1, doc="Columns of B and O.", check=positive)


@record
class MatmulEntry(_Common):
    """``op: matmul``: both operands activations, per sequence and head (attention's Q.K^T
    and P.V); the right operand takes the place of the weights (docs/transformers.md)."""

    op: Literal["matmul"] = option("matmul", doc="Layer type.")
    in_features: int = option(1, doc="Inner dimension K (head dim for Q.K^T, key tokens for "
                                     "P.V).", check=positive)
    out_features: int = option(1, doc="Columns N of the right operand (key tokens for "
                                      "Q.K^T, head dim for P.V).", check=positive)
    tokens: int = option(1, doc="Rows of the left operand per sequence and head (query "
                                "tokens; 1 at decode).", check=positive)
    left: tuple[int, ...] | None = option(
        None, doc="Left operand shape [tokens, K] per head (instead of tokens and "
                  "in_features).")
    right: tuple[int, ...] | None = option(
        None, doc="Right operand shape [K, N] per head (instead of in_features and "
                  "out_features); its K must equal the left operand's.")
    heads: int = option(1, doc="Query heads (left operands per sequence).", check=positive)
    kv_heads: int = option(0, doc="K/V heads (right operands per sequence; 0 = heads). Must "
                                  "divide heads (grouped-query attention).",
                           check=in_range(0, MAX_DIM))
    weight_signed: bool = option(True, doc="The right operand is signed (K, V: true; a "
                                           "softmax output P on the left is unsigned).")
    kv_cache: bool = option(False, doc="The right operand (K or V) is read from the KV cache "
                                       "in DRAM (reported as KV-cache traffic).")


@record
class VectorEntry(_Base):
    """A vector-unit op (softmax, layernorm, rmsnorm, gelu, silu, relu, add, mul, rotary):
    ``batch * heads * tokens`` rows of ``features`` elements, no MACs."""

    op: Literal["softmax", "layernorm", "rmsnorm", "gelu", "silu", "relu", "add", "mul",
                "rotary"] = option("relu", doc="Layer type.")
    features: int = option(1, doc="Row length (elements per row: hidden size, or key tokens "
                                  "for a softmax over attention scores).", check=positive)
    tokens: int = option(1, doc="Rows per sequence and head.", check=positive)
    heads: int = option(1, doc="Heads (rows per token; 1 for a hidden-state op).",
                        check=positive)


@record
class PoolEntry(_Base):
    """``op: maxpool | avgpool | global_avgpool``: a window over each channel's plane, on the
    vector unit."""

    op: Literal["maxpool", "avgpool", "global_avgpool"] = option("maxpool", doc="Layer type.")
    channels: int = option(1, doc="Channels C (planes per image).", check=positive)
    input_size: Pair = option(1, doc="Input plane [H, W] before padding.")
    kernel_size: Pair = option(1, doc="Window [R, S] (global_avgpool: the whole plane).")
    stride: Pair | None = option(None, doc="Stride (default: the kernel size, as in "
                                           "PyTorch).")
    padding: Pair = option(0, doc="Padding on each side.")


_ENTRIES: dict[str, type] = {"conv2d": Conv2dEntry, "linear": LinearEntry, "gemm": GemmEntry,
                             "matmul": MatmulEntry,
                             **{op: VectorEntry for op in VECTOR_OPS if op not in POOL_OPS},
                             **{op: PoolEntry for op in POOL_OPS}}
#: The workload's inference phase (docs/transformers.md, "Prefill and decode").
PHASES = ("", "prefill", "decode")


def _pair(value: Pair, where: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if len(value) != 2:
        raise ConfigError(f"{where}: expected an integer or a pair [h, w], "
                          f"got {shorten(list(value))}")
    return (value[0], value[1])


def layer_from_entry(entry: Mapping[str, Any], where: str, batch: int) -> Layer:
    """Validate one layer mapping of a workload file and build the :class:`Layer`."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
    op = entry.get("op")
    if not isinstance(op, str) or op not in _ENTRIES:
        hint = did_you_mean(op, _ENTRIES) if isinstance(op, str) else ""
        raise ConfigError(f"{where}.op: expected one of {', '.join(GEMM_OPS + VECTOR_OPS)}, "
                          f"got {shorten(op)}{hint}")
    parsed = build(_ENTRIES[op], entry, where)
    common = dict(name=parsed.name, activation_signed=parsed.activation_signed,
                  activation_bits=parsed.activation_bits,
                  weight_bits=getattr(parsed, "weight_bits", 8), role=parsed.role)
    if isinstance(parsed, Conv2dEntry):
        layer = Layer(op="conv2d", in_channels=parsed.in_channels,
                      out_channels=parsed.out_channels, batch=batch,
                      input_size=_pair(parsed.input_size, f"{where}.input_size"),
                      kernel_size=_pair(parsed.kernel_size, f"{where}.kernel_size"),
                      stride=_pair(parsed.stride, f"{where}.stride"),
                      padding=_pair(parsed.padding, f"{where}.padding"),
                      dilation=_pair(parsed.dilation, f"{where}.dilation"),
                      groups=parsed.groups, **common)
    elif isinstance(parsed, LinearEntry):
        layer = Layer(op="linear", in_channels=parsed.in_features,
                      out_channels=parsed.out_features, batch=batch * parsed.tokens, **common)
    elif isinstance(parsed, MatmulEntry):
        layer = _matmul_layer(parsed, entry, where, batch, common)
    elif isinstance(parsed, VectorEntry):
        layer = Layer(op=parsed.op, in_channels=parsed.features, out_channels=parsed.features,
                      batch=batch, tokens=parsed.tokens, heads=parsed.heads, **common)
    elif isinstance(parsed, PoolEntry):
        size = _pair(parsed.input_size, f"{where}.input_size")
        kernel = (size if parsed.op == "global_avgpool" and "kernel_size" not in entry
                  else _pair(parsed.kernel_size, f"{where}.kernel_size"))
        layer = Layer(op=parsed.op, in_channels=parsed.channels, out_channels=parsed.channels,
                      batch=batch, input_size=size, kernel_size=kernel,
                      stride=(kernel if parsed.stride is None
                              else _pair(parsed.stride, f"{where}.stride")),
                      padding=_pair(parsed.padding, f"{where}.padding"), **common)
    else:
        layer = Layer(op="gemm", in_channels=parsed.k, out_channels=parsed.n, batch=parsed.m,
                      **common)
    for problem in layer.problems():
        raise ConfigError(f"{where}: {problem}")
    return layer


def _matmul_layer(parsed: MatmulEntry, entry: Mapping[str, Any], where: str, batch: int,
                  common: dict[str, Any]) -> Layer:
    """The :class:`Layer` of a ``matmul`` entry: its dimensions from ``tokens``,
    ``in_features`` and ``out_features`` or from the ``left``/``right`` shapes."""
    tokens, k, n = parsed.tokens, parsed.in_features, parsed.out_features
    for key, value in (("left", parsed.left), ("right", parsed.right)):
        if value is None:
            continue
        if len(value) != 2 or min(value) <= 0:
            raise ConfigError(f"{where}.{key}: expected a shape [rows, columns] of two positive "
                              f"integers, got {shorten(list(value))}")
        clash = [f for f in (("tokens", "in_features") if key == "left"
                             else ("in_features", "out_features")) if f in entry]
        if clash:
            raise ConfigError(f"{where}: give {key} or {' and '.join(clash)}, not both")
    if parsed.left is not None and parsed.right is not None and parsed.left[1] != parsed.right[0]:
        raise ConfigError(f"{where}: the matmul's inner dimensions differ: left "
                          f"{list(parsed.left)} has K={parsed.left[1]}, right "
                          f"{list(parsed.right)} has K={parsed.right[0]}")
    if parsed.left is not None:
        tokens, k = parsed.left
    if parsed.right is not None:
        k, n = parsed.right
    if parsed.kv_heads and parsed.heads % parsed.kv_heads:
        raise ConfigError(f"{where}.kv_heads: {parsed.kv_heads} does not divide heads="
                          f"{parsed.heads} (each K/V head serves the same number of query "
                          f"heads)")
    return Layer(op="matmul", in_channels=k, out_channels=n, batch=batch, tokens=tokens,
                 heads=parsed.heads, kv_heads=parsed.kv_heads,
                 weight_signed=parsed.weight_signed, kv_cache=parsed.kv_cache, **common)


def _phase(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The workload's ``phase``, ``seq_len`` and ``context_len`` keys, checked."""
    phase = data.get("phase", "")
    if not isinstance(phase, str) or phase not in PHASES:
        hint = did_you_mean(phase, PHASES[1:]) if isinstance(phase, str) else ""
        raise ConfigError(f"{path}: phase: expected prefill or decode, got {shorten(phase)}"
                          f"{hint}")
    out: dict[str, Any] = {"phase": phase}
    for key in ("seq_len", "context_len"):
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DIM:
            raise ConfigError(f"{path}: {key}: expected a non-negative integer of at most "
                              f"{MAX_DIM:,}, got {shorten(value)}")
        out[key] = value
    if (out["seq_len"] or out["context_len"]) and not phase:
        raise ConfigError(f"{path}: seq_len and context_len need phase: prefill or decode")
    return out


def check_name(path: Path, data: dict) -> None:
    """Raise ConfigError unless the workload file's ``name`` (default: the file's stem) is a
    non-empty string and its ``description``, when given, a string."""
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key}: expected a string, got {shorten(data[key])}")
    if not data.get("name", path.stem).strip():
        raise ConfigError(f"{path}: name: expected a non-empty string")


def load_workload_yaml(path: str | Path) -> Workload:
    """Load a shape-only workload YAML file (see docs/workloads.md)."""
    path = Path(path)
    data = read_yaml_mapping(path, WorkloadError)
    if "transformer" in data:  # a model template: simulator/workloads/transformer.py
        from simulator.workloads.transformer import load_transformer_yaml

        return load_transformer_yaml(data, path)
    try:
        version = data.get("schema_version")
        if type(version) is not int or version != WORKLOAD_SCHEMA_VERSION:
            raise ConfigError(f"{path}: schema_version: expected {WORKLOAD_SCHEMA_VERSION}, "
                              f"got {shorten(version)}")
        allowed = {"schema_version", "name", "description", "batch", "layers", "data",
                   "phase", "seq_len", "context_len"}
        for key in data:
            if key not in allowed:
                raise ConfigError(f"{path}: unknown key {shorten(key)}"
                                  f"{did_you_mean(str(key), allowed)}")
        check_name(path, data)
        batch = data.get("batch", 1)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 0 < batch <= MAX_DIM:
            raise ConfigError(f"{path}: batch: expected a positive integer of at most "
                              f"{MAX_DIM:,}, got {shorten(batch)}")
        phase = _phase(data, path)
        raw_layers = data.get("layers")
        if not isinstance(raw_layers, list) or not raw_layers:
            raise ConfigError(f"{path}: layers: expected a non-empty list of layers")
        if len(raw_layers) > MAX_LAYERS:
            raise ConfigError(f"{path}: layers: {len(raw_layers):,} layers, more than the "
                              f"{MAX_LAYERS:,} sasim simulates in one workload")
        layers = []
        seen: set[str] = set()
        for i, entry in enumerate(raw_layers):
            label = entry.get("name") if isinstance(entry, Mapping) else None
            where = f"{path}: layers[{i}]" + (f" ({shorten(label, 80)[1:-1]})"
                                              if isinstance(label, str) and label else "")
            layer = layer_from_entry(entry, where, batch)
            if layer.name in seen:
                raise ConfigError(f"{where}: duplicate layer name '{layer.name}'")
            seen.add(layer.name)
            layers.append(layer)
    except ConfigError as exc:
        raise WorkloadError(str(exc)) from None
    from simulator.workloads.synthetic import data_section  # numpy's user: loaded here

    return Workload(name=data.get("name", path.stem), source=str(path), layers=tuple(layers),
                    format="yaml", sequences=batch, **phase,
                    data_options=data_section(data, path))


def _int_cell(text: str, where: str, what: str) -> int:
    text = text.strip()
    if text.isdigit() and len(text) > 12:
        raise WorkloadError(f"{where}: {what}: expected at most {MAX_DIM:,}, got {shorten(text)}")
    try:
        value = int(text) if len(text) <= 12 else None
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise WorkloadError(f"{where}: {what}: expected a positive integer, got {shorten(text)}")
    if value > MAX_DIM:
        raise WorkloadError(f"{where}: {what}: expected at most {MAX_DIM:,}, got {shorten(text)}")
    return value


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


_CONV_COLUMNS = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
                 "Num Filter", "Strides")
_GEMM_COLUMNS = ("M", "N", "K")


def load_topology_csv(path: str | Path) -> Workload:
    """Load a SCALE-Sim topology CSV (conv format or GEMM ``M, N, K`` format).

    Conv rows: ``name, IFMAP H, IFMAP W, R, S, C, F, stride,`` with IFMAP sizes that
    already include padding (P = ceil((H - R + s)/s)); as in SCALE-Sim, a layer whose name
    contains ``DP`` runs as C single-channel layers (its depthwise convention). GEMM rows: ``name, M, N, K,`` meaning
    (M x K) . (K x N). The trailing comma of each row is part of the format.
    """
    path = Path(path)
    text = read_text(path, "a topology file", WorkloadError)
    try:
        rows = [r for r in csv.reader(io.StringIO(text))]
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (128 KiB)
        raise WorkloadError(f"{path}: malformed CSV: {shorten(str(exc))[1:-1]}") from None
    rows = [(i + 1, [c.strip() for c in r]) for i, r in enumerate(rows)]
    rows = [(n, r[:-1] if r and r[-1] == "" else r) for n, r in rows if any(c for c in r)]
    if not rows:
        raise WorkloadError(f"{path}: empty topology file")
    header_line, header = rows[0]
    if len(header) > 1 and all(_is_int(c) for c in header[1:]):
        # No header row: the first row is a layer (refusing it would be unkind, dropping it
        # silently is what SCALE-Sim's reader does). The column count says which format.
        kind = "gemm" if len(header) == 1 + len(_GEMM_COLUMNS) else "conv"
        body = rows
    elif (len(header) == 1 + len(_GEMM_COLUMNS)
          and [c.upper() for c in header[1:]] == list(_GEMM_COLUMNS)):  # m, n, k too
        kind, body = "gemm", rows[1:]
    elif len(header) >= 1 + len(_CONV_COLUMNS):
        kind, body = "conv", rows[1:]
    else:
        raise WorkloadError(
            f"{path}: line {header_line}: expected a SCALE-Sim topology header "
            f"('Layer name, IFMAP Height, ..., Strides,' or 'Layer, M, N, K,'), "
            f"got {shorten(','.join(header))}")
    layers: list[Layer] = []
    seen: set[str] = set()
    for line, row in body:
        where = f"{path}: line {line}"
        expected = 1 + (len(_GEMM_COLUMNS) if kind == "gemm" else len(_CONV_COLUMNS))
        if len(row) < expected:
            raise WorkloadError(f"{where}: expected {expected} columns, got {len(row)}")
        width = expected if body is rows else max(expected, len(header))
        if any(row[width:]):  # a value no column names (a conv row under a GEMM header?)
            raise WorkloadError(f"{where}: {len(row)} columns, more than the {width} of "
                                f"{'the header' if width > expected else kind + ' rows'}")
        name = row[0]
        if not name:
            raise WorkloadError(f"{where}: empty layer name")
        where = f"{where} ({shorten(name, 80)[1:-1]})"
        if name in seen:
            raise WorkloadError(f"{where}: duplicate layer name")
        seen.add(name)
        if kind == "gemm":
            m, n, k = (_int_cell(row[i + 1], where, c) for i, c in enumerate(_GEMM_COLUMNS))
            layer = Layer(name=name, op="gemm", in_channels=k, out_channels=n, batch=m)
        else:
            h, w, r, s, c, f, stride = (_int_cell(row[i + 1], where, col)
                                        for i, col in enumerate(_CONV_COLUMNS))
            conv = dict(op="conv2d", out_channels=f, input_size=(h, w), kernel_size=(r, s),
                        stride=(stride, stride), output_rule="scalesim")
            if "DP" in name and len(layers) + c > MAX_LAYERS:
                raise WorkloadError(f"{where}: a depthwise (DP) layer runs as one layer per "
                                    f"channel; {c:,} channels make more than the "
                                    f"{MAX_LAYERS:,} layers sasim simulates in one workload")
            if "DP" in name:
                # SCALE-Sim's depthwise convention: a layer whose name contains "DP" runs as
                # C single-channel layers named <name>Channel_<i>, each with all F filters.
                layer_list = [Layer(name=f"{name}Channel_{i}", in_channels=1, **conv)
                              for i in range(c)]
            else:
                layer_list = [Layer(name=name, in_channels=c, **conv)]
        if kind == "gemm":
            layer_list = [layer]
        for layer in layer_list[:1]:  # the channels of a DP row share one shape
            for problem in layer.problems():
                raise WorkloadError(f"{where}: {problem}")
        if len(layers) + len(layer_list) > MAX_LAYERS:
            raise WorkloadError(f"{where}: more than the {MAX_LAYERS:,} layers sasim "
                                f"simulates in one workload")
        layers.extend(layer_list)
    if not layers:
        raise WorkloadError(f"{path}: no layers after the header")
    return Workload(name=path.stem, source=str(path), layers=tuple(layers), format="scalesim-csv")
