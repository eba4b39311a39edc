"""The ``zap:`` section of an arch: zero-valued activation prediction (docs/zap.md,
docs/hardware-spec.md §9)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from simulator.config.schema import in_range, option
from simulator.records import record

__all__ = ["ZapConfig", "ZapLayer", "PER_LAYER"]

#: ``zap.threshold`` value that picks each layer's threshold under ``zap.error_budget``.
PER_LAYER = "per_layer"


def _threshold_problem(value: float | str) -> str | None:
    if value == PER_LAYER:
        return None
    return None if 0 <= value <= 1e6 else "a number from 0 to 1,000,000 or 'per_layer'"


@record
class ZapLayer:
    """One layer's ZAP override (``zap.layers.<name>``)."""

    enabled: bool = option(True, doc="Predict this layer's zeros (false: compute it densely).")
    mask_type: int | None = option(None, doc="This layer's mask pattern (0..10); null: the "
                                             "arch's.", check=in_range(0, 10))
    threshold: float | None = option(None, doc="This layer's threshold; null: the arch's.",
                                     check=in_range(0, 1e6))


@record
class ZapConfig:
    """Zero-valued activation prediction on conv layers followed by ReLU (docs/zap.md)."""

    enabled: bool = option(False, doc="Predict zero outputs of the eligible conv layers.")
    mask_type: int = option(5, doc="Mask pattern type 0..10: the share of output positions "
                                   "computed exactly (11, 22, 25, 33, 40, 50, 60, 67, 75, 78, "
                                   "89 %); 5 is a checkerboard.", check=in_range(0, 10))
    threshold: float | Literal["per_layer"] = option(
        0.0, doc="An output outside the mask is computed only if the predictor's score "
                 "exceeds this; 'per_layer': each layer's largest threshold whose activation "
                 "mass lost stays within error_budget (trained predictors).",
        check=_threshold_problem)
    error_budget: float = option(0.01, doc="Fraction of a layer's activation mass that "
                                           "threshold: per_layer may lose.",
                                 check=in_range(0, 1))
    predictor: Literal["array", "side_unit"] = option(
        "side_unit", doc="Where the predictor runs: on the array (a depthwise pass, its "
                         "folds), or on a side unit of `lanes` MACs per cycle.")
    lanes: int = option(64, doc="MAC lanes of the side unit.", check=in_range(1, 1 << 20))
    schedule: Literal["none", "compact"] = option(
        "compact", doc="Phase-two schedule on the OS array: none (a fold is skipped only when "
                       "all its outputs are predicted zero) or compact (each channel's "
                       "surviving pixels are packed into full rows of its column).")
    predictor_source: Literal["trained", "synthetic"] = option(
        "trained", doc="trained: the predictors trained on the model, stored beside its trace "
                       "(predictors); synthetic: a SYNTHETIC predictor of the given recall "
                       "and precision (shape-only workloads).")
    predictors: str = option("", doc="Trained predictors file; empty: <trace>_zap.npz beside "
                                     "the trace.")
    untrained: Literal["synthetic", "refuse"] = option(
        "synthetic", doc="predictor_source: trained on a workload without predictors (a "
                         "shape-only workload, or a trace with no <trace>_zap.npz beside it, "
                         "predictors empty): 'synthetic' runs the SYNTHETIC predictor (recall, "
                         "precision, seed, exclude) in their place and every report says so; "
                         "'refuse' stops with an error.")
    recall: float = option(0.9, doc="SYNTHETIC predictor: share of the true non-zero outputs "
                                    "outside the mask it predicts non-zero.",
                           check=in_range(0, 1))
    precision: float = option(0.9, doc="SYNTHETIC predictor: share of its predicted non-zeros "
                                       "that are truly non-zero.", check=in_range(1e-6, 1))
    seed: int = option(0, doc="Seed of the SYNTHETIC predictor's choices.",
                       check=in_range(0, 1 << 32))
    exclude: tuple[str, ...] = option(
        ("*downsample*", "*shortcut*"),
        doc="Shape-only workloads: conv2d layers whose name matches one of these patterns "
            "(fnmatch) are not followed by ReLU and are left alone; a trace's eligible layers "
            "are those its predictors file has.")
    layers: Mapping[str, ZapLayer] = option(
        default_factory=dict, doc="Per-layer overrides by layer name: enabled, mask_type, "
                                  "threshold.")
