"""Transformer model templates: the ``transformer:`` section of a workload YAML.

A model's published hyper-parameters (d_model, blocks, heads, ...) and an inference phase
expand into the :class:`~simulator.workloads.layers.Layer` objects of docs/hardware-spec.md §11
(reference: docs/workloads.md, "Transformer models"). With ``B`` sequences, ``T`` query tokens
per sequence and ``S`` key tokens:

- prefill: ``T = S = seq_len`` (all tokens at once; K and V are the projections of this very
  pass, read as ordinary activations: ``kv_cache`` false);
- decode: ``T = 1`` new token that attends to the ``context_len`` cached tokens and to itself,
  ``S = context_len + 1``; its K/V are appended to the cache first, and the scores and context
  matmuls read all ``S`` keys and values from the KV cache (``kv_cache`` true).

Causal masking is not subtracted: the scores and context matmuls count the full ``T x S``
matrix (as SCALE-Sim and its peers do); ``causal: true`` only marks the layers (synthetic
softmax outputs are zero above the diagonal).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from simulator.config.schema import build, did_you_mean, in_range, option
from simulator.errors import ConfigError, WorkloadError, shorten
from simulator.records import record
from simulator.workloads.layers import MAX_DIM, MAX_LAYERS, Layer, Workload
from simulator.workloads.shapes import check_name

__all__ = ["TransformerSpec", "expand", "transformer_workload", "load_transformer_yaml",
           "layers_per_block"]

_dim = in_range(1, MAX_DIM)


def _dim0(value: int) -> str | None:
    return None if 0 <= value <= MAX_DIM else f"a number from 0 to {MAX_DIM:,}"


@record
class TransformerSpec:
    """``transformer:``: a model's hyper-parameters and the phase to simulate."""

    d_model: int = option(doc="Hidden size (model width).", check=_dim)
    layers: int = option(doc="Transformer blocks.", check=in_range(1, MAX_LAYERS))
    heads: int = option(doc="Query heads per block.", check=_dim)
    ffn_dim: int = option(doc="Inner width of the feed-forward network.", check=_dim)
    kv_heads: int = option(0, doc="K/V heads (grouped-query attention; 0: as many as heads). "
                                  "Must divide heads.", check=_dim0)
    head_dim: int = option(0, doc="Width of one head (0: d_model / heads, which must then be "
                                  "an integer).", check=_dim0)
    ffn: Literal["gelu", "relu", "swiglu", "geglu"] = option(
        "gelu", doc="Feed-forward type: gelu/relu (two linears), swiglu/geglu (gate, up and "
                    "down linears, SiLU/GELU of the gate times up).")
    norm: Literal["layernorm", "rmsnorm"] = option("layernorm", doc="Normalisation op.")
    norm_placement: Literal["pre", "post"] = option(
        "pre", doc="pre: norm before attention and FFN, plus a final norm (GPT-2, Llama, ViT); "
                   "post: norm after each residual add, plus an embedding norm (BERT).")
    positions: Literal["learned", "rope"] = option(
        "learned", doc="learned: a position embedding added to the token embeddings; rope: "
                       "rotary op on Q and K in every block.")
    causal: bool = option(False, doc="Decoder (causal) attention: keys after the query are "
                                     "masked (still counted in the MACs).")
    vocab: int = option(0, doc="Vocabulary size: an LM head linear d_model -> vocab "
                               "(0: none).", check=_dim0)
    logits: Literal["all", "last"] = option(
        "all", doc="Query tokens the LM head runs on in prefill: all, or the last of each "
                   "sequence (decode has one).")
    classes: int = option(0, doc="A classifier head d_model -> classes on the class token "
                                 "(0: none).", check=_dim0)
    image_size: int = option(0, doc="ViT: input image side in pixels (0: a text model).",
                             check=_dim0)
    patch_size: int = option(0, doc="ViT: patch side; a conv2d patchify with kernel = stride "
                                    "= patch_size, then a class token.", check=_dim0)
    channels: int = option(3, doc="ViT: image channels.", check=_dim)
    phase: Literal["prefill", "decode"] = option(
        "prefill", doc="prefill: seq_len tokens per sequence at once; decode: one new token "
                       "per sequence over context_len cached tokens.")
    batch: int = option(1, doc="Sequences (images) processed together.", check=_dim)
    seq_len: int = option(0, doc="Prefill: tokens per sequence (a ViT: patches + 1, derived "
                                 "when 0).", check=_dim0)
    context_len: int = option(0, doc="Decode: cached tokens; the new token attends to them "
                                     "and to itself.", check=_dim0)
    activation_bits: int = option(8, doc="Activation bit width (1 to 32).",
                                  check=in_range(1, 32))
    weight_bits: int = option(8, doc="Weight bit width (2 to 32).", check=in_range(2, 32))


def layers_per_block(spec: TransformerSpec) -> int:
    """Layers one block expands to (docs/workloads.md, "Transformer models")."""
    ffn = 7 if spec.ffn in ("swiglu", "geglu") else 5
    return 9 + (2 if spec.positions == "rope" else 0) + ffn


def _check(spec: TransformerSpec, where: str) -> None:
    """Cross-key checks; ConfigError naming ``where.key``."""
    if spec.head_dim == 0 and spec.d_model % spec.heads:
        raise ConfigError(f"{where}.heads: {spec.heads} heads do not divide "
                          f"d_model={spec.d_model} (give head_dim)")
    head_dim = spec.head_dim or spec.d_model // spec.heads
    if spec.positions == "rope" and head_dim % 2:
        key = "head_dim" if spec.head_dim else "d_model"
        raise ConfigError(f"{where}.{key}: rope rotates pairs of features: the head width "
                          f"{head_dim} must be even")
    kv = spec.kv_heads or spec.heads
    if spec.heads % kv:
        raise ConfigError(f"{where}.kv_heads: {kv} K/V heads do not divide heads={spec.heads}")
    vit = spec.patch_size > 0 or spec.image_size > 0
    if vit:
        if not (spec.patch_size and spec.image_size):
            key = "patch_size" if spec.image_size else "image_size"
            raise ConfigError(f"{where}.{key}: a ViT needs both image_size and patch_size")
        if spec.image_size % spec.patch_size:
            raise ConfigError(f"{where}.patch_size: {spec.patch_size} does not divide "
                              f"image_size={spec.image_size}")
        tokens = (spec.image_size // spec.patch_size) ** 2 + 1
        if spec.phase == "decode":
            raise ConfigError(f"{where}.phase: a ViT (patch_size) has no decode phase")
        if spec.seq_len and spec.seq_len != tokens:
            raise ConfigError(f"{where}.seq_len: {spec.seq_len}, but {spec.image_size}/"
                              f"{spec.patch_size} patches + class token make {tokens}")
    if spec.phase == "prefill":
        if spec.seq_len == 0 and not vit:
            raise ConfigError(f"{where}.seq_len: required in prefill (tokens per sequence)")
        if spec.context_len:
            raise ConfigError(f"{where}.context_len: applies to decode; prefill uses seq_len")
    else:
        if spec.context_len == 0:
            raise ConfigError(f"{where}.context_len: decode needs at least 1 cached token")
        if spec.seq_len:
            raise ConfigError(f"{where}.seq_len: applies to prefill; decode uses context_len")
        if spec.context_len >= MAX_DIM:
            raise ConfigError(f"{where}.context_len: at most {MAX_DIM - 1:,}")
    if spec.classes and not vit and spec.phase == "decode":
        raise ConfigError(f"{where}.classes: a classifier head applies to prefill")
    count = spec.layers * layers_per_block(spec) + 6
    if count > MAX_LAYERS:
        raise ConfigError(f"{where}.layers: {spec.layers:,} blocks expand to about {count:,} "
                          f"layers, more than the {MAX_LAYERS:,} sasim simulates in one "
                          f"workload")


@record
class _Dims:
    """The sizes one block is built from."""

    b: int   # sequences
    t: int   # query tokens per sequence
    s: int   # key tokens per sequence
    d: int   # d_model
    h: int   # query heads
    kv: int  # K/V heads
    dh: int  # head dim


def _dims(spec: TransformerSpec) -> _Dims:
    if spec.phase == "decode":
        t, s = 1, spec.context_len + 1
    elif spec.patch_size:
        t = s = (spec.image_size // spec.patch_size) ** 2 + 1
    else:
        t = s = spec.seq_len
    return _Dims(b=spec.batch, t=t, s=s, d=spec.d_model, h=spec.heads,
                 kv=spec.kv_heads or spec.heads, dh=spec.head_dim or spec.d_model // spec.heads)


class _Builder:
    """Collects layers with the spec's bit widths."""

    def __init__(self, spec: TransformerSpec):
        self.spec = spec
        self.bits = dict(activation_bits=spec.activation_bits, weight_bits=spec.weight_bits)
        self.layers: list[Layer] = []

    def linear(self, name: str, rows: int, k: int, n: int, role: str,
               signed: bool = True) -> None:
        self.layers.append(Layer(name=name, op="linear", in_channels=k, out_channels=n,
                                 batch=rows, activation_signed=signed, role=role, **self.bits))

    def vector(self, name: str, op: str, width: int, dims: _Dims, role: str,
               heads: int = 1, signed: bool = True, causal: bool = False) -> None:
        self.layers.append(Layer(name=name, op=op, in_channels=width, out_channels=width,
                                 batch=dims.b, tokens=dims.t, heads=heads,
                                 activation_signed=signed, role=role, causal=causal,
                                 **self.bits))

    def matmul(self, name: str, dims: _Dims, k: int, n: int, signed: bool) -> None:
        self.layers.append(Layer(name=name, op="matmul", in_channels=k, out_channels=n,
                                 batch=dims.b, heads=dims.h,
                                 kv_heads=dims.kv if dims.kv != dims.h else 0,
                                 tokens=dims.t, activation_signed=signed, weight_signed=True,
                                 kv_cache=self.spec.phase == "decode",
                                 causal=self.spec.causal and self.spec.phase == "prefill",
                                 role="attention", **self.bits))


def _attention(out: _Builder, p: str, dims: _Dims) -> None:
    """Norm (pre), Q/K/V projections, rotary, scores, softmax, context, output projection,
    residual add."""
    spec, rows = out.spec, dims.b * dims.t
    if spec.norm_placement == "pre":
        out.vector(f"{p}.attn_norm", spec.norm, dims.d, dims, "attention")
    out.linear(f"{p}.q_proj", rows, dims.d, dims.h * dims.dh, "attention")
    out.linear(f"{p}.k_proj", rows, dims.d, dims.kv * dims.dh, "attention")
    out.linear(f"{p}.v_proj", rows, dims.d, dims.kv * dims.dh, "attention")
    if spec.positions == "rope":
        out.vector(f"{p}.q_rotary", "rotary", dims.dh, dims, "attention", heads=dims.h)
        out.vector(f"{p}.k_rotary", "rotary", dims.dh, dims, "attention", heads=dims.kv)
    causal = spec.causal and spec.phase == "prefill"
    out.matmul(f"{p}.scores", dims, dims.dh, dims.s, signed=True)
    out.vector(f"{p}.softmax", "softmax", dims.s, dims, "attention", heads=dims.h,
               causal=causal)
    out.matmul(f"{p}.context", dims, dims.s, dims.dh, signed=False)
    out.linear(f"{p}.o_proj", rows, dims.h * dims.dh, dims.d, "attention")
    out.vector(f"{p}.attn_add", "add", dims.d, dims, "attention")
    if spec.norm_placement == "post":
        out.vector(f"{p}.attn_norm", spec.norm, dims.d, dims, "attention")


def _ffn(out: _Builder, p: str, dims: _Dims) -> None:
    """Norm (pre), the feed-forward linears and activation (and gating), residual add."""
    spec, rows, f = out.spec, dims.b * dims.t, out.spec.ffn_dim
    if spec.norm_placement == "pre":
        out.vector(f"{p}.ffn_norm", spec.norm, dims.d, dims, "ffn")
    if spec.ffn in ("gelu", "relu"):
        out.linear(f"{p}.fc1", rows, dims.d, f, "ffn")
        out.vector(f"{p}.act", spec.ffn, f, dims, "ffn")
        out.linear(f"{p}.fc2", rows, f, dims.d, "ffn", signed=spec.ffn == "gelu")
    else:
        out.linear(f"{p}.gate_proj", rows, dims.d, f, "ffn")
        out.linear(f"{p}.up_proj", rows, dims.d, f, "ffn")
        out.vector(f"{p}.act", "silu" if spec.ffn == "swiglu" else "gelu", f, dims, "ffn")
        out.vector(f"{p}.gate_mul", "mul", f, dims, "ffn")
        out.linear(f"{p}.down_proj", rows, f, dims.d, "ffn")
    out.vector(f"{p}.ffn_add", "add", dims.d, dims, "ffn")
    if spec.norm_placement == "post":
        out.vector(f"{p}.ffn_norm", spec.norm, dims.d, dims, "ffn")


def expand(spec: TransformerSpec) -> list[Layer]:
    """The layers of the model in execution order (the spec must be checked)."""
    dims = _dims(spec)
    out = _Builder(spec)
    if spec.patch_size:
        side = spec.image_size
        out.layers.append(Layer(name="patch_embed", op="conv2d", in_channels=spec.channels,
                                out_channels=dims.d, batch=dims.b, input_size=(side, side),
                                kernel_size=(spec.patch_size,) * 2,
                                stride=(spec.patch_size,) * 2, activation_signed=True,
                                role="other", **out.bits))
    if spec.positions == "learned":
        out.vector("pos_add", "add", dims.d, dims, "other")
    if spec.norm_placement == "post":
        out.vector("embed_norm", spec.norm, dims.d, dims, "other")
    for i in range(spec.layers):
        _attention(out, f"block{i}", dims)
        _ffn(out, f"block{i}", dims)
    if spec.norm_placement == "pre":
        out.vector("final_norm", spec.norm, dims.d, dims, "other")
    if spec.classes:
        out.linear("head", dims.b, dims.d, spec.classes, "other")
    if spec.vocab:
        rows = dims.b * (1 if spec.logits == "last" else dims.t)
        out.linear("lm_head", rows, dims.d, spec.vocab, "other")
    return out.layers


#: Top-level keys of a workload file with a ``transformer:`` section.
_TOP_KEYS = ("schema_version", "name", "description", "data", "transformer")
#: Top-level keys of a ``layers:`` workload that a transformer gives inside its section.
_LAYER_FILE_KEYS = ("batch", "layers", "phase", "seq_len", "context_len")


def _check_top(data: Mapping[str, Any], path: Path) -> None:
    """The file's keys beside ``transformer:`` (ConfigError naming the file and key)."""
    from simulator.workloads.shapes import WORKLOAD_SCHEMA_VERSION

    version = data.get("schema_version")
    if type(version) is not int or version != WORKLOAD_SCHEMA_VERSION:
        raise ConfigError(f"{path}: schema_version: expected {WORKLOAD_SCHEMA_VERSION}, "
                          f"got {shorten(version)}")
    for key in data:
        if key in _LAYER_FILE_KEYS:
            raise ConfigError(f"{path}: {key}: not allowed beside transformer: (its layers "
                              f"are expanded; give transformer.{key} where it applies)")
        if key not in _TOP_KEYS:
            raise ConfigError(f"{path}: unknown key {shorten(key)}"
                              f"{did_you_mean(str(key), _TOP_KEYS)}")
    check_name(path, data)


def transformer_workload(section: Any, path: Path, name: str) -> Workload:
    """The workload of a ``transformer:`` section (ConfigError naming the file and key)."""
    where = f"{path}: transformer"
    spec = build(TransformerSpec, section, where)
    _check(spec, where)
    layers = expand(spec)
    for layer in layers:
        for problem in layer.problems():
            raise ConfigError(f"{where}: layer {layer.name}: {problem}")
    dims = _dims(spec)
    return Workload(name=name, source=str(path), layers=tuple(layers), format="yaml",
                    phase=spec.phase, sequences=spec.batch,
                    seq_len=dims.t if spec.phase == "prefill" else 0,
                    context_len=spec.context_len)


def load_transformer_yaml(data: Mapping[str, Any], path: Path) -> Workload:
    """The workload of a YAML file (read into ``data``) with a ``transformer:`` section.

    Raises
    ------
    WorkloadError
        One line naming the file and the key.
    """
    try:
        _check_top(data, path)
        workload = transformer_workload(data["transformer"], path, data.get("name", path.stem))
    except ConfigError as exc:
        raise WorkloadError(str(exc)) from None
    from simulator.workloads.synthetic import data_section

    return dataclasses.replace(workload, data_options=data_section(data, path))
