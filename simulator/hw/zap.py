"""ZAP on the array: which layers it applies to, their predictors, the gating of their
outputs, the accounting and the two-phase timing (docs/hardware-spec.md §9, docs/zap.md).

A trained predictors file (``<trace>_zap.npz``, written by ``benchmarks/zap_digits.py
train``) holds, per mask type and layer, the predictor's two depthwise 3x3 convs with their
BatchNorms folded (``w1``, ``b1``, ``w2``, ``b2``), the layer's output scale per channel
(real value of one integer output step) and, measured on the training images, the activation
mass lost at each threshold of a grid (for ``threshold: per_layer``).
"""

from __future__ import annotations

import fnmatch
import json
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulator.config.files import open_input
from simulator.config.zap import PER_LAYER, ZapConfig
from simulator.errors import ConfigError
from simulator.kernels.zap import gate, mask_pattern, phase_folds, predictor_scores, zap_counts
from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["Predictor", "TrainedPredictors", "LayerZap", "ZapOutcome", "load_predictors",
           "eligible", "predictors_path", "plan_zap", "apply_zap", "zap_cycles",
           "synthetic_kept", "predictor_macs", "depthwise_layer", "active_steps",
           "PREDICTOR_MACS_PER_OUTPUT"]

#: The predictor's MACs per output: two depthwise 3x3 convs (docs/hardware-spec.md §9).
PREDICTOR_MACS_PER_OUTPUT = 2 * 9
#: Suffix of a trace's predictors file: ``digits_int8.npz`` -> ``digits_int8_zap.npz``.
SUFFIX = "_zap.npz"


@record
class Predictor:
    """One layer's trained predictor (BatchNorms folded) and its output scale."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    scale: np.ndarray


@record
class TrainedPredictors:
    """A predictors file: ``predictors[mask_type][layer]``, the threshold grid and the mass
    lost at each of its thresholds ``errors[mask_type][layer]`` on the training images."""

    path: str
    layers: tuple[str, ...]
    predictors: Mapping[int, Mapping[str, Predictor]]
    grid: np.ndarray
    errors: Mapping[int, Mapping[str, np.ndarray]]
    manifest: Mapping[str, Any]


def predictors_path(config: ZapConfig, source: str) -> Path:
    """The predictors file of a run: ``zap.predictors``, or ``<trace>_zap.npz`` beside the
    workload ``source``."""
    if config.predictors:
        return Path(config.predictors)
    path = Path(source)
    return path.with_name(path.stem + SUFFIX)


def load_predictors(path: str | Path) -> TrainedPredictors:
    """Read a predictors file; a missing or malformed one raises :class:`ConfigError`
    naming it."""
    path = Path(path)
    try:
        # through open_input: a named pipe without a writer fails at once, not forever
        with open_input(path) as fh, np.load(fh, allow_pickle=False) as npz:
            manifest = json.loads(str(npz["manifest"]))
            grid = np.asarray(npz["grid"], dtype=np.float64)
            predictors: dict[int, dict[str, Predictor]] = {}
            errors: dict[int, dict[str, np.ndarray]] = {}
            for kind in manifest["mask_types"]:
                predictors[kind], errors[kind] = {}, {}
                for name in manifest["layers"]:
                    key = f"{kind}/{name}"
                    predictors[kind][name] = Predictor(
                        *(np.asarray(npz[f"{key}.{part}"], dtype=np.float64)
                          for part in ("w1", "b1", "w2", "b2")),
                        scale=np.asarray(npz[f"{name}.scale"], dtype=np.float64))
                    errors[kind][name] = np.asarray(npz[f"{key}.error"], dtype=np.float64)
    except FileNotFoundError:
        raise ConfigError(f"{path}: ZAP predictors file not found (train them: "
                          f"benchmarks/zap_digits.py train; or zap.predictor_source: "
                          f"synthetic)") from None
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: not a ZAP predictors file ({exc or type(exc).__name__})"
                          ) from None
    return TrainedPredictors(str(path), tuple(manifest["layers"]), predictors, grid, errors,
                             manifest)


@record
class LayerZap:
    """ZAP's settings for one layer: its mask, threshold and predictor (None: SYNTHETIC)."""

    name: str
    mask_type: int
    threshold: float
    predictor: Predictor | None
    synthetic: bool


def _threshold(config: ZapConfig, name: str, kind: int,
               trained: TrainedPredictors | None) -> float | None:
    """The layer's threshold; None when ``per_layer`` finds none within the error budget
    (the layer is then computed densely)."""
    override = config.layers.get(name)
    if override is not None and override.threshold is not None:
        return override.threshold
    if config.threshold != PER_LAYER:
        return float(config.threshold)
    if trained is None:
        raise ConfigError(f"zap.threshold: per_layer needs trained predictors (their error "
                          f"curves), not zap.predictor_source: {config.predictor_source}")
    errors = trained.errors[kind][name]
    within = np.flatnonzero(errors <= config.error_budget)
    return float(trained.grid[within.max()]) if within.size else None


def eligible(config: ZapConfig, layer: Layer, trained: TrainedPredictors | None) -> bool:
    """Whether ZAP applies to ``layer``: a conv2d followed by ReLU (a trained predictor
    exists for it, or, SYNTHETIC, its name matches no ``zap.exclude`` pattern), not turned
    off in ``zap.layers``."""
    override = config.layers.get(layer.name)
    if override is not None and not override.enabled:
        return False
    if layer.op != "conv2d":
        return False
    if trained is not None:
        return layer.name in trained.layers
    return not any(fnmatch.fnmatchcase(layer.name, p) for p in config.exclude)


def plan_zap(config: ZapConfig, layers: Sequence[Layer],
             trained: TrainedPredictors | None) -> dict[str, LayerZap]:
    """Each eligible layer's :class:`LayerZap` (``trained`` None: SYNTHETIC predictors);
    a ``zap.layers`` name the workload lacks raises :class:`ConfigError`."""
    names = {layer.name for layer in layers}
    unknown = sorted(set(config.layers) - names)
    if unknown:
        raise ConfigError(f"zap.layers: no layer {unknown[0]!r} in the workload")
    if trained is not None and trained.layers and not names & set(trained.layers):
        raise ConfigError(f"{trained.path}: its predictors are for layers "
                          f"{', '.join(repr(n) for n in trained.layers[:3])}"
                          f"{', ...' if len(trained.layers) > 3 else ''}, none of which the "
                          f"workload has (another model's predictors?)")
    plan = {}
    for layer in layers:
        if not eligible(config, layer, trained):
            continue
        override = config.layers.get(layer.name)
        kind = config.mask_type
        if override is not None and override.mask_type is not None:
            kind = override.mask_type
        predictor = None
        if trained is not None:
            if kind not in trained.predictors:
                raise ConfigError(f"zap.mask_type {kind}: {trained.path} has predictors for "
                                  f"mask types {sorted(trained.predictors)}")
            predictor = trained.predictors[kind][layer.name]
            if predictor.scale.shape[0] != layer.out_channels:
                raise ConfigError(f"{trained.path}: layer '{layer.name}': its predictor has "
                                  f"{predictor.scale.shape[0]} channels, the layer "
                                  f"{layer.out_channels}")
        threshold = _threshold(config, layer.name, kind, trained)
        if threshold is not None:
            plan[layer.name] = LayerZap(layer.name, kind, threshold, predictor, trained is None)
    return plan


@record
class ZapOutcome:
    """One layer's outputs with ZAP: the gated outputs, which were computed, the counts."""

    outputs: np.ndarray
    kept: np.ndarray
    mask: np.ndarray
    counts: dict[str, float]


def synthetic_kept(outputs: np.ndarray, mask: np.ndarray, recall: float, precision: float,
                   seed: int) -> np.ndarray:
    """A SYNTHETIC predictor's decisions (docs/zap.md): outside the mask, round(recall * T)
    of the T truly non-zero outputs, chosen at random, are predicted non-zero, and so are
    round(kept * (1 - precision) / precision) of the truly zero ones (at most all)."""
    rng = np.random.default_rng(seed)
    outside = ~np.broadcast_to(mask[None, None], outputs.shape)
    kept = ~outside
    flat = kept.reshape(-1)
    nonzero = np.flatnonzero((outside & (outputs > 0)).reshape(-1))
    zero = np.flatnonzero((outside & (outputs <= 0)).reshape(-1))
    hits = int(round(recall * nonzero.size))
    false = min(zero.size, int(round(hits * (1 - precision) / precision)))
    flat[rng.choice(nonzero, hits, replace=False)] = True
    flat[rng.choice(zero, false, replace=False)] = True
    return kept


def apply_zap(plan: LayerZap, outputs: np.ndarray, config: ZapConfig) -> ZapOutcome:
    """Gate one conv layer's integer outputs (N, C, H, W; accumulator + bias, before ReLU):
    an output ZAP does not compute is written 0."""
    mask = mask_pattern(plan.mask_type, outputs.shape[2], outputs.shape[3])
    activations = zap_activations(plan, outputs)
    if plan.synthetic:
        seed = (config.seed + zlib.crc32(plan.name.encode())) % (1 << 32)
        kept = synthetic_kept(outputs, mask, config.recall, config.precision, seed)
    else:
        p = plan.predictor
        scores = predictor_scores(activations, mask, p.w1, p.b1, p.w2, p.b2)
        kept = gate(scores, mask, plan.threshold)
    gated = np.where(kept, outputs, 0)
    return ZapOutcome(gated, kept, mask, zap_counts(outputs, activations, mask, kept))


def zap_activations(plan: LayerZap, outputs: np.ndarray) -> np.ndarray:
    """The post-ReLU map the predictor and the counts see: in real units (the trained
    predictor's per-channel scale), or the integer outputs (a synthetic predictor)."""
    positive = np.maximum(outputs, 0)
    if plan.synthetic:
        return positive.astype(np.float64)
    return positive * plan.predictor.scale.reshape(1, -1, 1, 1)


def predictor_macs(layer: Layer) -> int:
    """The predictor's MACs on one layer: 2 x 9 per channel per output position."""
    p, q = layer.output_size
    return PREDICTOR_MACS_PER_OUTPUT * layer.batch * layer.out_channels * p * q


def depthwise_layer(layer: Layer) -> Layer:
    """The predictor's depthwise 3x3 conv as a layer on the array (one of its two)."""
    return Layer(name=f"{layer.name}.zap_predictor", op="conv2d",
                 in_channels=layer.out_channels, out_channels=layer.out_channels,
                 batch=layer.batch, input_size=layer.output_size, kernel_size=(3, 3),
                 stride=(1, 1), padding=(1, 1), groups=layer.out_channels)


def zap_cycles(layer: Layer, outcome: ZapOutcome, rows: int, cols: int,
               cycles_per_fold: int, predictor_cycles: int) -> dict[str, int]:
    """The layer's compute cycles with ZAP under both schedules (docs/hardware-spec.md §9):
    the folds of phase one and phase two at ``cycles_per_fold`` each, plus the predictor's
    ``predictor_cycles`` between them."""
    out = {"predictor_cycles": predictor_cycles}
    for schedule in ("none", "compact"):
        one, two = phase_folds(outcome.kept, outcome.mask, layer.groups, rows, cols, schedule)
        out["phase1_folds"] = one
        out[f"phase2_folds_{schedule}"] = two
        out[f"cycles_{schedule}"] = (one + two) * cycles_per_fold + predictor_cycles
    return out


def active_steps(x: np.ndarray, weight: np.ndarray, layer: Layer, kept: np.ndarray
                 ) -> tuple[int, int]:
    """(active steps of the gated-off outputs, active steps of all outputs): an output's
    active steps are the MACs of its window whose activation and weight are both non-zero
    (docs/energy-model.md, "ZAP"), counted by the conv of the two non-zero maps."""
    from simulator.kernels.zap import conv_exact_float32
    from simulator.workloads.lowering import tap_geometry

    x_nz = (np.asarray(x) != 0).astype(np.int8)
    w_nz = (np.asarray(weight) != 0).astype(np.int8)
    counts = conv_exact_float32(x_nz, w_nz, layer.stride, layer.dilation, layer.padding,
                                tap_geometry(layer, *x_nz.shape[2:]), layer.output_size,
                                layer.groups)
    if counts is None:  # not for 0/1 maps (counts below 2**24), kept for the signature
        raise ValueError(f"layer '{layer.name}': active-step counts out of float range")
    return int(counts[~kept].sum()), int(counts.sum())
