"""Accuracy of the shipped transformers with a design's PEs computing every linear and matmul
layer (docs/accuracy.md, "Transformers").

``digits_vit`` reports top-1 on the 540 held-out digits; ``char_gpt`` the per-character loss
and perplexity on the held-out tenth of its text. The model is quantised by the transformer
exporter (:mod:`simulator.export.transformer`), exactly as its shipped trace; every integer
layer's GEMMs (``batch * kv_heads`` GEMMs of a matmul) are then computed by the PE model with
:func:`simulator.hw.gemm.run_groups`, the call ``sasim run`` makes per layer. Everything else
(softmax, LayerNorm/RMSNorm, GELU/SiLU, residual adds) stays float. There is no BatchNorm to
recalibrate: LayerNorm and RMSNorm normalise each token with its own statistics at run time.

:func:`layer_sqnr` measures the PE's numeric error per layer on a shipped trace's recorded
operands (signal-to-quantisation-noise ratio of the PE's outputs against the exact ones).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from simulator.accuracy.evaluation import arch_pe
from simulator.accuracy.hardware import check_pe
from simulator.config.arch import ArchConfig
from simulator.config.schema import dump
from simulator.errors import SasimError
from simulator.export.ptq import evaluate
from simulator.export.transformer import QuantizedTransformer, quantize_transformer
from simulator.hw.gemm import run_groups
from simulator.hw.pe import PEModel
from simulator.records import record

__all__ = ["TRANSFORMERS", "TransformerBaseline", "prepare_transformer",
           "evaluate_transformer", "hardware_gemm", "layer_sqnr"]

#: The shipped transformers ``sasim accuracy --model`` knows, and what it reports for each.
TRANSFORMERS = {"digits_vit": "top1", "char_gpt": "perplexity"}


@record
class TransformerBaseline:
    """A shipped transformer set up for accuracy runs.

    Attributes
    ----------
    name : str
        ``digits_vit`` or ``char_gpt``.
    metric : str
        ``top1`` or ``perplexity``.
    qmodel : QuantizedTransformer
        The exporter's quantised model (as the shipped trace).
    x, y : torch.Tensor
        The evaluation inputs and labels (images and classes; windows and next characters).
    data : str
        What the evaluation set is.
    float_score, int8_score : dict
        ``top1`` (fraction) or ``loss`` (nats per character) and ``perplexity``.
    """

    name: str
    metric: str
    qmodel: QuantizedTransformer
    x: torch.Tensor
    y: torch.Tensor
    data: str
    float_score: dict[str, float]
    int8_score: dict[str, float]

    def score(self, model: torch.nn.Module, batch_size: int) -> dict[str, float]:
        """The metric of ``model`` on the evaluation set."""
        if self.metric == "top1":
            return {"top1": evaluate(model, self.x, self.y, batch_size)}
        from simulator.export.tiny_transformers import lm_loss

        loss = lm_loss(model, self.x, self.y, batch_size)
        return {"loss": loss, "perplexity": math.exp(loss)}


def _setup(name: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(float model, calibration inputs, evaluation inputs, labels, data description)."""
    from simulator.export import tiny_transformers as tt

    if name == "digits_vit":
        model = tt.pretrained_vit()
        x, y = tt.vit_split("test")
        return (model, tt.vit_split("train")[0][:tt.VIT_CALIBRATION], x, y,
                "digits:test (8x8)")
    model, vocab = tt.pretrained_gpt()
    _, train_ids, test_ids = tt.text_splits(tt.read_text(), vocab)
    x, y = tt.windows(test_ids)
    return (model, tt.windows(train_ids)[0][:tt.GPT_CALIBRATION], x, y,
            f"{tt.DEFAULT_TEXT}, held-out last 10 % ({y.numel()} characters)")


def prepare_transformer(name: str, limit: int | None = None,
                        batch_size: int = 128) -> TransformerBaseline:
    """Load a shipped transformer, quantise it as its trace and score float and INT8.

    Parameters
    ----------
    name : str
        ``digits_vit`` or ``char_gpt``.
    limit : int, optional
        Evaluate on the first ``limit`` images (windows of 64 characters) only.
    batch_size : int
        Images (windows) per forward pass.
    """
    if name not in TRANSFORMERS:
        raise SasimError(f"unknown transformer {name!r} (shipped: {', '.join(TRANSFORMERS)})")
    if batch_size <= 0:
        raise SasimError(f"the batch size must be positive, not {batch_size}")
    model, calibration, x, y, data = _setup(name)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    from simulator.export import tiny_transformers as tt

    qmodel = quantize_transformer(model, calibration, tt.SHIPPED_OPTIONS)
    base = TransformerBaseline(name, TRANSFORMERS[name], qmodel, x, y, data, {}, {})
    return dataclasses.replace(base, float_score=base.score(model, batch_size),
                               int8_score=base.score(qmodel, batch_size))


def hardware_gemm(pe: PEModel):
    """The ``gemm`` function of an integer layer that runs on ``pe`` (one
    :meth:`~simulator.hw.pe.PEModel.simulate_gemm` per group, as ``sasim run``)."""
    def gemm(layer, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return run_groups(pe, layer, a, b).outputs
    return gemm


def evaluate_transformer(arch: ArchConfig, baseline: TransformerBaseline,
                         batch_size: int = 128) -> dict[str, Any]:
    """Score the transformer with every linear and matmul layer on ``arch``'s PE.

    Returns
    -------
    dict
        JSON-able: ``arch``, ``pe``, ``model``, ``metric``, ``data``, ``samples``, ``float``,
        ``int8``, ``hardware`` (each ``top1``, or ``loss`` and ``perplexity``), ``seconds``.
    """
    if batch_size <= 0:
        raise SasimError(f"the batch size must be positive, not {batch_size}")
    start = time.perf_counter()
    pe = arch_pe(arch)
    check_pe(pe, baseline.qmodel)
    model = copy.deepcopy(baseline.qmodel)
    model.set_gemm(hardware_gemm(pe))
    hardware = baseline.score(model, batch_size)
    return {"arch": arch.name, "pe": dump(arch.pe), "model": baseline.name,
            "metric": baseline.metric, "data": baseline.data,
            "samples": int(baseline.x.shape[0]), "float": baseline.float_score,
            "int8": baseline.int8_score, "hardware": hardware,
            "seconds": time.perf_counter() - start}


def layer_sqnr(arch: ArchConfig, trace: str) -> list[dict[str, Any]]:
    """Per GEMM layer of a trace: the SQNR (dB) of the PE's outputs against the exact ones.

    SQNR = 10 log10(Σ exact² / Σ (pe − exact)²) over the layer's outputs (``inf`` when the PE
    is exact on it), computed on the trace's recorded integer operands.
    """
    from simulator.shipped import WORKLOAD_DIR
    from simulator.workloads.matmul import matmul_operands
    from simulator.workloads.trace import load_trace

    pe = arch_pe(arch)
    path = Path(trace)
    if not path.suffix and not path.exists():
        path = WORKLOAD_DIR / f"{trace}.npz"  # a shipped trace by name
    workload = load_trace(path)
    rows = []
    for layer in workload.layers:
        if layer.op not in ("linear", "matmul"):
            continue
        tensors = workload.tensors(layer.name)
        if layer.op == "matmul":
            a, b = matmul_operands(tensors.input, tensors.weight, layer)
        else:
            a = tensors.input.reshape(1, *tensors.input.shape)
            b = np.ascontiguousarray(tensors.weight.T)[None]
        out = run_groups(pe, layer, a, b).outputs.astype(np.float64)
        exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
        noise = float(np.sum((out - exact) ** 2))
        signal = float(np.sum(exact ** 2))
        rows.append({"layer": layer.name, "op": layer.op, "role": layer.role,
                     "sqnr_db": math.inf if noise == 0 else 10 * math.log10(signal / noise),
                     "signal": signal, "noise": noise})
    return rows
