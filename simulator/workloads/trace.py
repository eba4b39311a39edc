"""Layer traces: the ``.npz`` format of docs/trace-format.md, its reader and its writer.

A trace is one numpy ``.npz`` archive. Its ``manifest`` member holds JSON text describing the
model and every conv2d/linear layer; each layer ``<name>`` carries the integer arrays
``<name>.input`` and ``<name>.weight`` and optionally ``<name>.bias`` and ``<name>.output``.

Loading is lazy: :func:`load_trace` reads the manifest and the array *headers* (shape and
dtype, a few bytes each), builds the :class:`~simulator.workloads.layers.Layer` shapes, and
returns a :class:`~simulator.workloads.layers.Workload` whose ``tensors(name)`` reads one
layer's arrays on demand. With ``verify_values=True`` (the default) it also reads every
layer's arrays once, one layer at a time, to check their value ranges and the archive's
checksums, so that a corrupt trace is refused before any simulation starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulator.config.files import load_json_text, open_input
from simulator.config.schema import did_you_mean
from simulator.errors import TraceError, shorten
from simulator.outputs import OutputError, file_mode, json_text, regular_target, temp_name
from simulator.records import record
from simulator.shipped import path_exists
from simulator.workloads.layers import (MAX_DIM, MAX_LAYER_DATA_BYTES, MAX_LAYERS, POOL_OPS,
                                        ROLES, VECTOR_OPS, Layer, LayerTensors, Workload,
                                        data_problem, format_bytes)
from simulator.workloads.lowering import output_shape

__all__ = [
    "TRACE_FORMAT",
    "TRACE_SCHEMA_VERSION",
    "SUPPORTED_VERSIONS",
    "TRACE_OPS",
    "ARRAY_KINDS",
    "TraceEntry",
    "TraceWriter",
    "load_trace",
    "read_input_scale",
    "read_manifest",
    "write_trace",
]

TRACE_FORMAT = "sasim-trace"
#: The newest schema version (the writer writes the oldest version that holds its layers).
TRACE_SCHEMA_VERSION = 2
#: Versions the reader accepts.
SUPPORTED_VERSIONS = (1, 2)
ARRAY_KINDS = ("input", "weight", "bias", "output", "other", "input_scale")
#: Ops a trace may hold, by schema version.
TRACE_OPS = {1: ("conv2d", "linear"), 2: ("conv2d", "linear", "matmul") + VECTOR_OPS}
#: Array kinds that may hold floats (in a vector op, and a per-row input scale).
_FLOAT_KINDS = ("input", "other", "output", "input_scale")
_FLOAT_DTYPES = ("float16", "float32", "float64")

_TOP_KEYS = {"format", "schema_version", "model", "provenance", "layers", "inference"}
_INFERENCE_KEYS = ("phase", "sequences", "seq_len", "context_len")
_COMMON_KEYS = {"name", "op", "arrays", "activation_signed", "activation_bits",
                "activation_scale"}
_CONV_KEYS = ("stride", "padding", "dilation", "groups")
_WEIGHT_KEYS = {"weight_bits", "weight_scales"}
_MATMUL_KEYS = {"heads", "kv_heads", "weight_signed", "weight_bits", "weight_scale",
                "kv_cache"}
_VECTOR_KEYS = {"output_scale", "output_signed", "output_bits", "other_scale", "other_signed",
                "other_bits"}
_POOL_KEYS = {"kernel_size", "stride", "padding"}
_LAYER_KEYS_V1 = _COMMON_KEYS | set(_CONV_KEYS) | _WEIGHT_KEYS
_LAYER_KEYS = {1: _LAYER_KEYS_V1,
               2: _LAYER_KEYS_V1 | {"role"} | _MATMUL_KEYS | _VECTOR_KEYS | _POOL_KEYS}
_MAX_MANIFEST_BYTES = 64 << 20
# Read errors numpy and zipfile raise for a corrupt, truncated or non-npz file.
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, IndexError,
                struct.error, zlib.error, NotImplementedError, RuntimeError)


@record
class TraceEntry:
    """One layer to write into a trace: its shape, data and quantisation scales.

    ``activation_scale`` (real value of one input step) and ``weight_scales`` (one per
    output channel) are optional: hand-written traces may leave them out. A ``matmul`` has
    one ``weight_scale`` for its right operand; a vector op may give ``output_scale`` and
    ``other_scale`` for integer outputs and second inputs. ``input_scale`` (an array, one
    scale per row of the input) replaces ``activation_scale`` for per-token (dynamic)
    quantisation.
    """

    layer: Layer
    tensors: LayerTensors
    activation_scale: float | None = None
    weight_scales: Sequence[float] | None = None
    weight_scale: float | None = None
    output_scale: float | None = None
    other_scale: float | None = None
    input_scale: np.ndarray | None = None


@record
class _ArrayInfo:
    shape: tuple[int, ...]
    dtype: np.dtype


def _fail(path: Path | str, name: str, problem: str) -> TraceError:
    return TraceError(f"{path}: layer '{name}': {problem}")


def _family(op: str) -> str:
    """``conv2d``, ``linear``, ``matmul``, ``pool`` or ``vector``."""
    if op in ("conv2d", "linear", "matmul"):
        return op
    return "pool" if op in POOL_OPS else "vector"


# --------------------------------------------------------------------------- manifest

def _pair(value: Any, path: Path, name: str, key: str, minimum: int) -> tuple[int, int]:
    items = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(items, list) or len(items) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in items)):
        raise _fail(path, name, f"manifest key '{key}': expected an integer >= {minimum} "
                                f"or a pair [h, w], got {value!r}")
    return (items[0], items[1])


def _positive_int(value: Any, path: Path, name: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(path, name, f"manifest key '{key}': expected a positive integer, "
                                f"got {value!r}")
    return value


def _bits(entry: Mapping[str, Any], key: str, path: Path, name: str) -> int:
    bits = _positive_int(entry[key], path, name, key)
    if bits > 32:
        raise _fail(path, name, f"manifest key '{key}': at most 32 bits, got {bits}")
    return bits


def _flag(entry: Mapping[str, Any], key: str, path: Path, name: str) -> bool:
    if not isinstance(entry[key], bool):
        raise _fail(path, name, f"manifest key '{key}': expected true or false, "
                                f"got {entry[key]!r}")
    return entry[key]


def _scale(entry: Mapping[str, Any], key: str, path: Path, name: str) -> float | None:
    scale = entry.get(key)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                              or not math.isfinite(scale) or scale <= 0):
        raise _fail(path, name, f"manifest key '{key}': expected a positive "
                                f"number or null, got {scale!r}")
    return None if scale is None else float(scale)


def _allowed_keys(op: str, version: int) -> set[str]:
    family = _family(op)
    if version == 1 or family in ("conv2d", "linear"):
        extra = set(_CONV_KEYS) | _WEIGHT_KEYS
    elif family == "matmul":
        extra = _MATMUL_KEYS
    elif family == "pool":
        extra = _VECTOR_KEYS | (_POOL_KEYS if op != "global_avgpool" else set())
    else:
        extra = _VECTOR_KEYS
    return _COMMON_KEYS | extra | ({"role"} if version >= 2 else set())


def _required_keys(op: str) -> tuple[str, ...]:
    family = _family(op)
    if family == "conv2d":
        return ("activation_signed", "activation_bits", "weight_bits") + _CONV_KEYS
    if family == "linear":
        return ("activation_signed", "activation_bits", "weight_bits")
    if family == "matmul":
        return ("activation_signed", "activation_bits", "weight_signed", "weight_bits",
                "heads", "kv_heads")
    if op in ("maxpool", "avgpool"):
        return ("kernel_size", "stride", "padding")
    return ()


def _check_op(entry: Mapping[str, Any], version: int, path: Path, name: str) -> str:
    op = entry.get("op")
    ops = TRACE_OPS[version]
    if op not in ops:
        if version == 1:
            raise _fail(path, name, f"manifest key 'op': expected 'conv2d' or 'linear', got "
                                    f"{op!r} (schema_version 2 adds matmul and vector ops)")
        raise _fail(path, name, f"unknown op {shorten(op)} (manifest key 'op': one of "
                                f"{', '.join(ops)})")
    return op


def _check_arrays(entry: Mapping[str, Any], op: str, path: Path, name: str) -> tuple[str, ...]:
    arrays = entry["arrays"]
    family = _family(op)
    if family in ("conv2d", "linear"):
        allowed, required = ("input", "weight", "bias", "output", "input_scale"), \
            ("input", "weight")
    elif family == "matmul":
        allowed, required = ("input", "weight", "output", "input_scale"), ("input", "weight")
    elif op in ("add", "mul"):
        allowed, required = ("input", "other", "output"), ("input", "other")
    else:
        allowed, required = ("input", "output"), ("input",)
    if (not isinstance(arrays, list) or any(a not in ARRAY_KINDS for a in arrays)
            or len(set(arrays)) != len(arrays)):
        raise _fail(path, name, f"manifest key 'arrays': expected a list of distinct names "
                                f"from {', '.join(allowed)}, got {arrays!r}")
    for kind in arrays:
        if kind not in allowed:
            raise _fail(path, name, f"manifest key 'arrays': a {op} layer has no '{kind}' "
                                    f"array (it may carry {', '.join(allowed)})")
    for kind in required:
        if kind not in arrays:
            raise _fail(path, name, f"manifest key 'arrays' must include '{kind}'")
    return tuple(a for a in ARRAY_KINDS if a in arrays)


def _check_layer_manifest(entry: Any, index: int, path: Path, seen: set[str],
                          version: int = TRACE_SCHEMA_VERSION) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise TraceError(f"{path}: manifest: layers[{index}]: expected a mapping, got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name or name == "manifest":
        raise TraceError(f"{path}: manifest: layers[{index}]: 'name' must be a non-empty "
                         f"string other than 'manifest', not {name!r}")
    if name in seen:
        raise _fail(path, name, "duplicate layer name in the manifest")
    seen.add(name)
    op = _check_op(entry, version, path, name)
    every = _LAYER_KEYS[version]
    for key in entry:
        if key not in every:
            raise _fail(path, name, f"unknown manifest key '{key}'"
                                    f"{did_you_mean(str(key), every)}")
    allowed = _allowed_keys(op, version)
    for key in entry:
        if key not in allowed and not (op == "linear" and key in _CONV_KEYS):
            raise _fail(path, name, f"manifest key '{key}' does not apply to a {op} layer")
    for key in ("name", "op", "arrays") + _required_keys(op):
        if key not in entry:
            raise _fail(path, name, f"manifest key '{key}' is missing")
    out: dict[str, Any] = {"name": name, "op": op}
    for key in ("activation_signed", "weight_signed", "kv_cache", "output_signed",
                "other_signed"):
        if key in entry:
            out[key] = _flag(entry, key, path, name)
    for key in ("activation_bits", "weight_bits", "output_bits", "other_bits"):
        if key in entry:
            out[key] = _bits(entry, key, path, name)
    for key in ("heads", "kv_heads"):
        if key in entry:
            out[key] = _positive_int(entry[key], path, name, key)
    if "heads" in out and out["heads"] % out["kv_heads"]:
        raise _fail(path, name, f"kv_heads={out['kv_heads']} must divide heads={out['heads']} "
                                f"(each K/V head serves the same number of query heads)")
    role = entry.get("role", "")
    if role not in ROLES:
        raise _fail(path, name, f"manifest key 'role': expected one of "
                                f"{', '.join(repr(r) for r in ROLES)}, got {shorten(role)}")
    out["role"] = role
    if op == "conv2d" or op in ("maxpool", "avgpool"):
        out["stride"] = _pair(entry["stride"], path, name, "stride", 1)
        out["padding"] = _pair(entry["padding"], path, name, "padding", 0)
    if op == "conv2d":
        out["dilation"] = _pair(entry["dilation"], path, name, "dilation", 1)
        out["groups"] = _positive_int(entry["groups"], path, name, "groups")
    elif op in ("maxpool", "avgpool"):
        out["kernel_size"] = _pair(entry["kernel_size"], path, name, "kernel_size", 1)
    elif op == "linear":
        for key in _CONV_KEYS:
            if key in entry and entry[key] not in (None, 1, [1, 1], 0, [0, 0]):
                raise _fail(path, name, f"manifest key '{key}' does not apply to a linear "
                                        f"layer (got {entry[key]!r})")
    for key in ("activation_scale", "weight_scale", "output_scale", "other_scale"):
        out[key] = _scale(entry, key, path, name)
    scales = entry.get("weight_scales")
    if scales is not None:
        if not isinstance(scales, list) or any(
                isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s)
                or s <= 0 for s in scales):
            raise _fail(path, name, "manifest key 'weight_scales': expected a list of "
                                    "positive numbers (one per output channel) or null")
        scales = [float(s) for s in scales]
    out["weight_scales"] = scales
    out["arrays"] = _check_arrays(entry, op, path, name)
    return out


def _check_manifest(manifest: Any, path: Path) -> dict[str, Any]:
    if not isinstance(manifest, Mapping):
        raise TraceError(f"{path}: manifest: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != TRACE_FORMAT:
        raise TraceError(f"{path}: manifest: 'format' must be {TRACE_FORMAT!r}, "
                         f"got {manifest.get('format')!r}")
    version = manifest.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise TraceError(f"{path}: manifest: schema_version: expected "
                         f"{' or '.join(str(v) for v in SUPPORTED_VERSIONS)}, "
                         f"got {shorten(version)}")
    for key in manifest:
        if key not in _TOP_KEYS:
            raise TraceError(f"{path}: manifest: unknown key '{key}'"
                             f"{did_you_mean(str(key), _TOP_KEYS)}")
    model = manifest.get("model")
    if not isinstance(model, str) or not model:
        raise TraceError(f"{path}: manifest: 'model' must be a non-empty string, got {model!r}")
    provenance = manifest.get("provenance", {})
    if not isinstance(provenance, Mapping):
        raise TraceError(f"{path}: manifest: 'provenance' must be an object, got {provenance!r}")
    inference = _check_inference(manifest, version, path)
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise TraceError(f"{path}: manifest: 'layers' must be a non-empty list")
    if len(layers) > MAX_LAYERS:
        raise TraceError(f"{path}: manifest: {len(layers):,} layers, more than the "
                         f"{MAX_LAYERS:,} sasim simulates in one workload")
    seen: set[str] = set()
    checked = [_check_layer_manifest(entry, i, path, seen, version)
               for i, entry in enumerate(layers)]
    return {"format": TRACE_FORMAT, "schema_version": version, "model": model,
            "provenance": dict(provenance), "layers": checked,
            "inference": inference}


def _check_inference(manifest: Mapping[str, Any], version: int, path: Path) -> dict[str, Any]:
    """The optional ``inference`` object of a version 2 manifest (the transformer phase)."""
    if "inference" not in manifest:
        return {"phase": "", "sequences": 1, "seq_len": 0, "context_len": 0}
    where = f"{path}: manifest: inference"
    value = manifest["inference"]
    if version < 2:
        raise TraceError(f"{where}: schema_version 2 adds 'inference' (version {version})")
    if not isinstance(value, Mapping):
        raise TraceError(f"{where}: expected an object, got {shorten(value)}")
    for key in value:
        if key not in _INFERENCE_KEYS:
            raise TraceError(f"{where}: unknown key '{key}'"
                             f"{did_you_mean(str(key), _INFERENCE_KEYS)}")
    phase = value.get("phase", "")
    if phase not in ("", "prefill", "decode"):
        raise TraceError(f"{where}: 'phase' must be prefill or decode, got {shorten(phase)}")
    out = {"phase": phase}
    for key, low in (("sequences", 1), ("seq_len", 0), ("context_len", 0)):
        item = value.get(key, 1 if key == "sequences" else 0)
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= MAX_DIM:
            raise TraceError(f"{where}: '{key}' must be an integer from {low} to {MAX_DIM:,}, "
                             f"got {shorten(item)}")
        out[key] = item
    return out


def _manifest_text(npz: Any, path: Path) -> str:
    if "manifest" not in npz.files:
        raise TraceError(f"{path}: manifest: the archive has no 'manifest' member")
    info = _array_info(npz, "manifest", path, "manifest")
    declared = info.dtype.itemsize * math.prod(info.shape)
    if declared > _MAX_MANIFEST_BYTES:
        raise TraceError(f"{path}: manifest: declares {format_bytes(declared)}, more than "
                         f"the {format_bytes(_MAX_MANIFEST_BYTES)} a manifest may take")
    try:
        raw = npz["manifest"]
    except _READ_ERRORS as exc:
        raise TraceError(f"{path}: manifest: cannot read it ({exc})") from None
    if raw.shape != () or raw.dtype.kind not in "US":
        raise TraceError(f"{path}: manifest: expected a 0-d string array holding JSON text, "
                         f"got dtype {raw.dtype} shape {raw.shape}")
    value = raw.item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise TraceError(f"{path}: manifest: not UTF-8 text") from None
    return value


def _open_npz(path: Path) -> Any:
    if not path_exists(path):
        raise TraceError(f"{path}: file not found")
    try:
        with open_input(path) as fh:  # a named pipe without a writer is not waited for
            if not zipfile.is_zipfile(fh):  # np.load would try it as a pickle
                raise TraceError(f"{path}: not an .npz archive (a trace is a zip of .npy "
                                 f"members)")
        npz = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise TraceError(f"{path}: not a readable .npz archive (truncated or corrupt?): "
                         f"{exc}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise TraceError(f"{path}: not an .npz archive (a trace is a zip of .npy members)")
    # A zip bomb is refused from the sizes its directory declares, before any member is
    # inflated (docs/trace-format.md).
    total = 0
    names: set[str] = set()
    for member in npz.zip.infolist():
        if member.filename in names:  # zipfile would read one copy, silently
            npz.close()
            raise TraceError(f"{path}: member '{shorten(member.filename, 80)[1:-1]}' is in "
                             f"the archive twice")
        names.add(member.filename)
        total += member.file_size
        if member.file_size > MAX_LAYER_DATA_BYTES or total > 4 * MAX_LAYER_DATA_BYTES:
            npz.close()
            raise TraceError(f"{path}: member '{shorten(member.filename, 80)[1:-1]}' "
                             f"inflates to {format_bytes(member.file_size)}; a trace may "
                             f"hold {format_bytes(MAX_LAYER_DATA_BYTES)} per member and "
                             f"{format_bytes(4 * MAX_LAYER_DATA_BYTES)} in all")
    return npz


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and validate a trace's manifest (no array data is read).

    Returns
    -------
    dict
        ``format``, ``schema_version``, ``model``, ``provenance`` and ``layers``, each layer
        normalised (pairs as tuples, ``arrays`` in canonical order).
    """
    path = Path(path)
    with _open_npz(path) as npz:
        text = _manifest_text(npz, path)
    manifest = load_json_text(text, f"{path}: manifest", TraceError)
    return _check_manifest(manifest, path)


# --------------------------------------------------------------------------- arrays

def _array_info(npz: Any, key: str, path: Path, name: str) -> _ArrayInfo:
    """Shape and dtype of one member, from its .npy header only."""
    member = f"{key}.npy"
    try:
        with npz.zip.open(member) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    except _READ_ERRORS as exc:
        raise _fail(path, name, f"array '{key}' is unreadable "
                                f"({shorten(str(exc))[1:-1]})") from None
    info = _ArrayInfo(tuple(int(d) for d in shape), np.dtype(dtype))
    declared = info.dtype.itemsize * math.prod(info.shape)
    if declared > MAX_LAYER_DATA_BYTES:
        raise _fail(path, name, f"array '{key}' declares shape {shorten(list(info.shape))}: "
                                f"{format_bytes(declared)}, more than the "
                                f"{format_bytes(MAX_LAYER_DATA_BYTES)} of one layer's data")
    return info


def _check_dtype(kind: str, dtype: np.dtype, path: Path | str, name: str,
                 op: str = "linear") -> None:
    if kind in _FLOAT_KINDS and dtype.name in _FLOAT_DTYPES and (
            kind == "input_scale" or _family(op) in ("vector", "pool")):
        return
    if kind == "input_scale":
        raise _fail(path, name, f"array '{name}.{kind}' has dtype {dtype}; expected a float "
                                f"dtype (float16, float32, float64)")
    if dtype.kind not in "iu" or dtype.itemsize > 8 or (dtype.kind == "u" and dtype.itemsize == 8):
        floats = " or a float dtype" if _family(op) in ("vector", "pool") and kind != "weight" \
            else ""
        raise _fail(path, name, f"array '{name}.{kind}' has dtype {dtype}; expected an integer "
                                f"dtype (int8..int64, uint8..uint32){floats}")


def _gemm_layer(spec: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]],
                path: Path | str, common: dict[str, Any]) -> Layer:
    """A conv2d or linear layer from its array shapes."""
    name = spec["name"]
    x, w = shapes["input"], shapes["weight"]
    if spec["op"] == "conv2d":
        if len(x) != 4:
            raise _fail(path, name, f"'{name}.input' must be 4-d (N, C, H, W) for conv2d, "
                                    f"got shape {list(x)}")
        if len(w) != 4:
            raise _fail(path, name, f"'{name}.weight' must be 4-d (F, C/groups, R, S) for "
                                    f"conv2d, got shape {list(w)}")
        g = spec["groups"]
        if x[1] % g or w[0] % g or w[1] * g != x[1]:
            raise _fail(path, name, f"shapes do not match groups={g}: input {list(x)} has "
                                    f"C={x[1]}, weight {list(w)} needs C/groups={w[1]} and F "
                                    f"divisible by groups")
        return Layer(op="conv2d", in_channels=x[1], out_channels=w[0], batch=x[0],
                     input_size=(x[2], x[3]), kernel_size=(w[2], w[3]),
                     stride=spec["stride"], padding=spec["padding"],
                     dilation=spec["dilation"], groups=g, **common)
    if len(x) != 2 or len(w) != 2:
        raise _fail(path, name, f"a linear layer needs input (N, in) and weight (out, in), "
                                f"got {list(x)} and {list(w)}")
    if x[1] != w[1]:
        raise _fail(path, name, f"input features {x[1]} do not match the weight's "
                                f"{w[1]} (weight {list(w)})")
    return Layer(op="linear", in_channels=x[1], out_channels=w[0], batch=x[0], **common)


def _matmul_layer(spec: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]],
                  path: Path | str, common: dict[str, Any]) -> Layer:
    """A matmul layer from its operands' shapes and the manifest's heads."""
    name = spec["name"]
    x, w = shapes["input"], shapes["weight"]
    if len(x) != 4 or len(w) != 4:
        raise _fail(path, name, f"a matmul needs input (batch, heads, tokens, K) and weight "
                                f"(batch, kv_heads, K, N), got {list(x)} and {list(w)}")
    if x[3] != w[2]:
        raise _fail(path, name, f"inner dimensions differ: input {list(x)} has K={x[3]}, "
                                f"weight {list(w)} has K={w[2]}")
    if x[0] != w[0]:
        raise _fail(path, name, f"batch differs: input {list(x)} has {x[0]} sequences, "
                                f"weight {list(w)} has {w[0]}")
    if x[1] != spec["heads"] or w[1] != spec["kv_heads"]:
        raise _fail(path, name, f"heads={spec['heads']}, kv_heads={spec['kv_heads']} do not "
                                f"match the arrays: input {list(x)} has {x[1]} heads, weight "
                                f"{list(w)} has {w[1]}")
    return Layer(op="matmul", in_channels=x[3], out_channels=w[3], batch=x[0], heads=x[1],
                 kv_heads=w[1], tokens=x[2], weight_signed=spec["weight_signed"],
                 kv_cache=spec.get("kv_cache", False), **common)


def _vector_layer(spec: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]],
                  path: Path | str, common: dict[str, Any]) -> Layer:
    """A vector (or pooling) layer from its input's shape."""
    name, op = spec["name"], spec["op"]
    x = shapes["input"]
    if _family(op) == "pool":
        if len(x) != 4:
            raise _fail(path, name, f"'{name}.input' must be 4-d (N, C, H, W) for {op}, got "
                                    f"shape {list(x)}")
        extra = {} if op == "global_avgpool" else dict(
            kernel_size=spec["kernel_size"], stride=spec["stride"], padding=spec["padding"])
        return Layer(op=op, in_channels=x[1], out_channels=x[1], batch=x[0],
                     input_size=(x[2], x[3]), **extra, **common)
    if not 2 <= len(x) <= 4:
        raise _fail(path, name, f"'{name}.input' must be (N, C), (batch, tokens, C) or "
                                f"(batch, heads, tokens, C), got shape {list(x)}")
    if op == "rotary" and x[-1] % 2:
        raise _fail(path, name, f"rotary rotates pairs: the last dimension must be even, "
                                f"got shape {list(x)}")
    heads, tokens = (x[1], x[2]) if len(x) == 4 else (1, x[1] if len(x) == 3 else 1)
    return Layer(op=op, in_channels=x[-1], out_channels=x[-1], batch=x[0], heads=heads,
                 tokens=tokens, **common)


def _expected_output_shape(layer: Layer, shapes: Mapping[str, tuple[int, ...]]) -> tuple:
    if layer.op == "matmul":
        return (layer.batch, layer.heads, layer.tokens, layer.out_channels)
    if layer.op == "global_avgpool":
        return (layer.batch, layer.in_channels)
    if layer.op in ("maxpool", "avgpool"):
        return (layer.batch, layer.in_channels, *layer.output_size)
    if layer.is_gemm:
        return output_shape(layer)
    return shapes["input"]


def _common_fields(spec: Mapping[str, Any], dtypes: Mapping[str, np.dtype] | None,
                   path: Path | str) -> dict[str, Any]:
    """The Layer fields every op shares: name, role and the input's (and weights') widths."""
    name = spec["name"]
    common: dict[str, Any] = dict(name=name, role=spec.get("role", ""))
    input_dtype = None if dtypes is None else dtypes.get("input")
    if input_dtype is not None and input_dtype.kind == "f":
        # a float input (vector ops): its width is what the memory moves
        common.update(activation_signed=True, activation_bits=min(32, 8 * input_dtype.itemsize))
    else:
        for key in ("activation_signed", "activation_bits"):
            if key not in spec:
                raise _fail(path, name, f"manifest key '{key}' is missing (the integer "
                                        f"'{name}.input' needs its signedness and width)")
        common.update(activation_signed=spec["activation_signed"],
                      activation_bits=spec["activation_bits"])
    if "weight_bits" in spec:
        common["weight_bits"] = spec["weight_bits"]
    for kind in ("other", "output"):
        dtype = None if dtypes is None else dtypes.get(kind)
        if (dtype is not None and dtype.kind in "iu" and _family(spec["op"]) in ("vector", "pool")
                and (f"{kind}_signed" not in spec or f"{kind}_bits" not in spec)):
            raise _fail(path, name, f"manifest keys '{kind}_signed' and '{kind}_bits' are "
                                    f"needed for the integer '{name}.{kind}'")
    return common


def _layer_from_shapes(spec: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]],
                       path: Path | str,
                       dtypes: Mapping[str, np.dtype] | None = None) -> Layer:
    """Build the Layer from the manifest entry and the array shapes, checking consistency."""
    name = spec["name"]
    common = _common_fields(spec, dtypes, path)
    family = _family(spec["op"])
    if family in ("conv2d", "linear"):
        layer = _gemm_layer(spec, shapes, path, common)
    elif family == "matmul":
        layer = _matmul_layer(spec, shapes, path, common)
    else:
        layer = _vector_layer(spec, shapes, path, common)
    for problem in layer.problems():
        raise _fail(path, name, problem)
    if "bias" in shapes and shapes["bias"] != (layer.out_channels,):
        raise _fail(path, name, f"'{name}.bias' must have shape [{layer.out_channels}], got "
                                f"{list(shapes['bias'])}")
    for kind in ("other", "output"):
        expected = shapes["input"] if kind == "other" else _expected_output_shape(layer, shapes)
        if kind in shapes and shapes[kind] != tuple(expected):
            raise _fail(path, name, f"'{name}.{kind}' must have shape {list(expected)} "
                                    f"(from the input, weight and manifest), got "
                                    f"{list(shapes[kind])}")
    if "input_scale" in shapes and shapes["input_scale"] != shapes["input"][:-1]:
        raise _fail(path, name, f"'{name}.input_scale' must have shape "
                                f"{list(shapes['input'][:-1])} (one scale per input row), got "
                                f"{list(shapes['input_scale'])}")
    scales = spec.get("weight_scales")
    if scales is not None and len(scales) != layer.out_channels:
        raise _fail(path, name, f"manifest key 'weight_scales' has {len(scales)} entries, the "
                                f"layer has {layer.out_channels} output channels")
    return layer


def _value_range(signed: bool, bits: int) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _operand_widths(layer: Layer, spec: Mapping[str, Any] | None) -> dict[str, tuple[bool, int]]:
    """(signed, bits) of each integer array whose range the format fixes."""
    widths = {"input": (layer.activation_signed, layer.activation_bits)}
    if layer.is_gemm:
        widths["weight"] = (layer.weight_signed if layer.op == "matmul" else True,
                            layer.weight_bits)
    elif spec is not None:
        for kind in ("other", "output"):
            if f"{kind}_bits" in spec:
                widths[kind] = (spec[f"{kind}_signed"], spec[f"{kind}_bits"])
    return widths


def _check_values(tensors: LayerTensors, layer: Layer, path: Path | str,
                  spec: Mapping[str, Any] | None = None) -> None:
    arrays = {"input": tensors.input, "weight": tensors.weight, "other": tensors.other,
              "output": tensors.output}
    widths = _operand_widths(layer, spec)
    for kind, array in arrays.items():
        if array is None or array.size == 0:
            continue
        if array.dtype.kind == "f":
            if not np.isfinite(array).all():
                raise _fail(path, layer.name, f"'{layer.name}.{kind}' has values that are not "
                                              f"finite (NaN or infinity)")
            continue
        if kind not in widths:
            continue
        signed, bits = widths[kind]
        low, high = _value_range(signed, bits)
        lo, hi = int(array.min()), int(array.max())
        if lo < low or hi > high:
            what = "signed" if signed else "unsigned"
            raise _fail(path, layer.name, f"'{layer.name}.{kind}' has values in [{lo}, {hi}], "
                                          f"outside the declared {what} {bits}-bit range "
                                          f"[{low}, {high}]")


def _check_input_scale(scale: np.ndarray | None, path: Path | str, name: str) -> None:
    if scale is not None and scale.size and not (np.isfinite(scale).all() and (scale > 0).all()):
        raise _fail(path, name, f"'{name}.input_scale' must hold positive finite numbers")


def _as_read(value: np.ndarray) -> np.ndarray:
    """Integers as int64, floats as float64 (how readers return every array)."""
    if value.dtype.kind == "f":
        return value.astype(np.float64, copy=False)
    return value.astype(np.int64, copy=False)


def _read_layer(npz: Any, spec: Mapping[str, Any], layer: Layer, path: Path) -> LayerTensors:
    arrays = {}
    for kind in spec["arrays"]:
        key = f"{spec['name']}.{kind}"
        try:
            value = npz[key]
        except _READ_ERRORS as exc:
            raise _fail(path, spec["name"], f"array '{key}' is unreadable (truncated or "
                                            f"corrupt?): {exc}") from None
        _check_dtype(kind, value.dtype, path, spec["name"], spec["op"])
        arrays[kind] = value
    dtypes = {k: v.dtype for k, v in arrays.items()}
    read = {k: _as_read(v) for k, v in arrays.items()}
    tensors = LayerTensors(input=read["input"], weight=read.get("weight"),
                           bias=read.get("bias"), output=read.get("output"),
                           other=read.get("other"))
    shapes = {k: v.shape for k, v in arrays.items()}
    if _layer_from_shapes(spec, shapes, path, dtypes) != layer:
        raise _fail(path, spec["name"], "the arrays changed since the trace was loaded")
    _check_values(tensors, layer, path, spec)
    _check_input_scale(read.get("input_scale"), path, spec["name"])
    return tensors


def read_input_scale(path: str | Path, name: str) -> np.ndarray | None:
    """The per-row input scales of layer ``name`` (``<name>.input_scale``), or None."""
    path = Path(path)
    with _open_npz(path) as npz:
        key = f"{name}.input_scale"
        if key not in npz.files:
            return None
        try:
            return npz[key].astype(np.float64)
        except _READ_ERRORS as exc:
            raise _fail(path, name, f"array '{key}' is unreadable: {exc}") from None


def load_trace(path: str | Path, verify_values: bool = True) -> Workload:
    """Load a layer trace (.npz) lazily, validating it.

    Parameters
    ----------
    path : str or Path
        The trace file.
    verify_values : bool
        Also read each layer's arrays once (one layer at a time) to check that values fit
        the declared bits and signedness and that the archive is intact. With ``False`` only
        the manifest and array headers are checked now; the values are still checked when
        ``tensors(name)`` reads them.

    Returns
    -------
    Workload
        ``format='trace'``, ``data_kind='trace'``; ``tensors(name)`` returns the layer's
        arrays as int64 (``bias``/``output`` are ``None`` when the trace omits them).

    Raises
    ------
    TraceError
        One line naming the file, the layer and the problem.
    """
    path = Path(path)
    manifest = read_manifest(path)
    specs = {spec["name"]: spec for spec in manifest["layers"]}
    layers = []
    with _open_npz(path) as npz:
        members = set(npz.files)
        expected = {"manifest"}
        for spec in manifest["layers"]:
            name = spec["name"]
            shapes, dtypes = {}, {}
            for kind in spec["arrays"]:
                key = f"{name}.{kind}"
                expected.add(key)
                if key not in members:
                    raise _fail(path, name, f"array '{key}' is missing from the archive "
                                            f"(the manifest lists it)")
                info = _array_info(npz, key, path, name)
                _check_dtype(kind, info.dtype, path, name, spec["op"])
                shapes[kind] = info.shape
                dtypes[kind] = info.dtype
            for kind in ARRAY_KINDS:
                if kind not in spec["arrays"] and f"{name}.{kind}" in members:
                    raise _fail(path, name, f"array '{name}.{kind}' is in the archive but not "
                                            f"in the manifest's 'arrays'")
            layer = _layer_from_shapes(spec, shapes, path, dtypes)
            problem = data_problem(layer)
            if problem is not None:
                raise _fail(path, name, problem)
            layers.append(layer)
        extra = sorted(members - expected)
        if extra:
            raise TraceError(f"{path}: manifest: archive member {shorten(extra[0], 80)} belongs to no "
                             f"layer of the manifest")
        if verify_values:
            for layer in layers:
                _read_layer(npz, specs[layer.name], layer, path)
    by_name = {layer.name: layer for layer in layers}

    def tensors(name: str) -> LayerTensors:
        if name not in by_name:
            raise TraceError(f"{path}: layer '{name}': no such layer in the trace"
                             f"{did_you_mean(name, by_name)}")
        with _open_npz(path) as npz:
            return _read_layer(npz, specs[name], by_name[name], path)

    return Workload(name=manifest["model"], source=str(path), layers=tuple(layers),
                    format="trace", tensors=tensors, data_kind="trace",
                    **manifest["inference"])


# --------------------------------------------------------------------------- writing

def _layer_manifest(entry: TraceEntry, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
    layer = entry.layer
    out: dict[str, Any] = {"name": layer.name, "op": layer.op}
    family = _family(layer.op)
    if layer.role:
        out["role"] = layer.role
    if family == "conv2d":
        out.update(stride=list(layer.stride), padding=list(layer.padding),
                   dilation=list(layer.dilation), groups=layer.groups)
    elif layer.op in ("maxpool", "avgpool"):
        out.update(kernel_size=list(layer.kernel_size), stride=list(layer.stride),
                   padding=list(layer.padding))
    if layer.is_gemm or arrays["input"].dtype.kind in "iu":
        out.update(activation_signed=layer.activation_signed,
                   activation_bits=layer.activation_bits)
    if layer.is_gemm:
        out["weight_bits"] = layer.weight_bits
    if layer.op == "matmul":
        out.update(weight_signed=layer.weight_signed, heads=layer.heads,
                   kv_heads=layer.right_heads, kv_cache=layer.kv_cache,
                   weight_scale=entry.weight_scale)
    elif layer.is_gemm:
        out["weight_scales"] = (None if entry.weight_scales is None
                                else [float(s) for s in entry.weight_scales])
    else:
        for kind, scale in (("output", entry.output_scale), ("other", entry.other_scale)):
            if kind in arrays and arrays[kind].dtype.kind in "iu":
                out.update({f"{kind}_signed": bool(arrays[kind].min(initial=0) < 0),
                            f"{kind}_bits": _width(arrays[kind])})
            if scale is not None:
                out[f"{kind}_scale"] = float(scale)
    out["activation_scale"] = entry.activation_scale
    out["arrays"] = list(arrays)
    return out


def _width(values: np.ndarray) -> int:
    """The smallest width (8, 16 or 32 bits) holding an integer array's values."""
    signed = bool(values.size and values.min() < 0)
    for bits in (8, 16, 32):
        low, high = _value_range(signed, bits)
        if values.size == 0 or (values.min() >= low and values.max() <= high):
            return bits
    return 32


def _version_of(specs: Sequence[Mapping[str, Any]]) -> int:
    """The oldest schema version that holds these layers (1 unless v2 ops, keys or arrays)."""
    for spec in specs:
        if (spec["op"] not in TRACE_OPS[1] or set(spec) - _LAYER_KEYS[1]
                or "input_scale" in spec["arrays"]):
            return 2
    return 1


class TraceWriter:
    """Write a trace one layer at a time (so an exporter never holds more than one layer).

    The archive is written to a temporary file next to ``path`` and renamed onto it by
    :meth:`close`; on an error (or :meth:`abort`) the temporary file is removed. Use it as a
    context manager::

        with TraceWriter("model.npz", "mymodel", {"tool": "by hand"}) as writer:
            writer.add(TraceEntry(layer, LayerTensors(x, w, None, y)))

    Parameters
    ----------
    path : str or Path
        The trace to create (replaced if it exists).
    model_name : str
        The model's name (the workload's name).
    provenance : mapping
        JSON-able description of how the trace was made (tool, data, calibration, ...).
    compress : bool
        Deflate the members (like ``np.savez_compressed``).
    inference : mapping, optional
        The transformer phase (``phase``, ``sequences``, ``seq_len``, ``context_len``):
        written as the manifest's ``inference`` object (schema version 2).
    """

    def __init__(self, path: str | Path, model_name: str, provenance: Mapping[str, Any],
                 compress: bool = True, inference: Mapping[str, Any] | None = None) -> None:
        self.path = regular_target(Path(path))  # a link's file; never a device or a pipe
        self._inference = None if inference is None else dict(inference)
        if self._inference is not None:
            _check_inference({"inference": self._inference}, TRACE_SCHEMA_VERSION, self.path)
        if not model_name:
            raise TraceError(f"{self.path}: manifest: the model name must be non-empty")
        self._model = model_name
        try:
            self._provenance = json.loads(json.dumps(dict(provenance)))
        except (TypeError, ValueError) as exc:
            raise TraceError(f"{self.path}: manifest: provenance is not JSON-able ({exc})") from None
        self._layers: list[dict[str, Any]] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a temporary name a later writer can clean up after a SIGKILL (simulator/outputs)
            self._tmp = self.path.parent / temp_name(self.path.name)
            self._tmp.touch(exist_ok=False)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        self._zip: zipfile.ZipFile | None = zipfile.ZipFile(
            self._tmp, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)

    def _write_array(self, key: str, array: np.ndarray) -> None:
        assert self._zip is not None
        with self._zip.open(f"{key}.npy", "w", force_zip64=True) as fp:
            np.lib.format.write_array(fp, array, allow_pickle=False)

    def add(self, entry: TraceEntry) -> None:
        """Validate one layer and append it to the archive."""
        if self._zip is None:
            raise TraceError(f"{self.path}: the trace writer is already closed")
        layer, tensors = entry.layer, entry.tensors
        name = layer.name
        if layer.op not in TRACE_OPS[TRACE_SCHEMA_VERSION]:
            raise _fail(self.path, name, f"op {layer.op!r} cannot be written to a trace "
                                         f"(one of {', '.join(TRACE_OPS[TRACE_SCHEMA_VERSION])})")
        if any(spec["name"] == name for spec in self._layers):
            raise _fail(self.path, name, "duplicate layer name")
        arrays = {"input": tensors.input, "weight": tensors.weight, "bias": tensors.bias,
                  "output": tensors.output, "other": tensors.other,
                  "input_scale": entry.input_scale}
        arrays = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
        for kind, value in arrays.items():
            _check_dtype(kind, value.dtype, self.path, name, layer.op)
        spec = _layer_manifest(entry, arrays)
        checked = _check_layer_manifest(spec, len(self._layers), self.path, set())
        built = _layer_from_shapes(checked, {k: v.shape for k, v in arrays.items()}, self.path,
                                   {k: v.dtype for k, v in arrays.items()})
        expected = dataclasses.replace(layer, output_rule="pytorch")
        if layer.op == "matmul":
            expected = dataclasses.replace(expected, kv_heads=layer.right_heads)
        if built != expected:
            raise _fail(self.path, name, f"the arrays' shapes do not match the layer "
                                         f"({built} != {expected})")
        _check_values(LayerTensors(arrays["input"], arrays.get("weight"),
                                   other=arrays.get("other"), output=arrays.get("output")),
                      built, self.path, checked)
        _check_input_scale(arrays.get("input_scale"), self.path, name)
        for kind, value in arrays.items():
            self._write_array(f"{name}.{kind}", value)
        self._layers.append(spec)

    def close(self) -> Path:
        """Write the manifest and move the archive into place; returns the path."""
        if self._zip is None:
            raise TraceError(f"{self.path}: the trace writer is already closed")
        if not self._layers:
            self.abort()
            raise TraceError(f"{self.path}: manifest: a trace needs at least one layer")
        version = 2 if self._inference is not None else _version_of(self._layers)
        manifest = {"format": TRACE_FORMAT, "schema_version": version,
                    "model": self._model, "provenance": self._provenance,
                    **({} if self._inference is None else {"inference": self._inference}),
                    "layers": self._layers}
        self._write_array("manifest", np.array(json_text(manifest, indent=1)))
        self._zip.close()
        self._zip = None
        os.chmod(self._tmp, file_mode())  # an ordinary data file, as open() would make it
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Discard the partial archive."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_trace(path: str | Path, model_name: str, entries: Iterable[TraceEntry],
                provenance: Mapping[str, Any], compress: bool = True,
                inference: Mapping[str, Any] | None = None) -> Path:
    """Write a whole trace atomically (temporary file + rename).

    ``entries`` may be a generator: layers are written as they come, so memory holds one
    layer at a time. Every layer is validated as it would be by :func:`load_trace`.
    ``inference`` is the transformer phase (:class:`TraceWriter`).
    """
    with TraceWriter(path, model_name, provenance, compress, inference) as writer:
        for entry in entries:
            writer.add(entry)
    return Path(path)
