"""End-to-end accuracy of a network with its quantised layers computed by a PE model.

``sasim accuracy`` (docs/accuracy.md) and :func:`accuracy_for` (the cached accuracy of a
design point, for sweeps). The model is quantised by the exporter (:mod:`simulator.export`);
every conv/linear layer's integer GEMM is then computed by the design's PE model exactly as
``sasim run`` computes a trace layer (:mod:`simulator.accuracy.hardware`), batched over
images. BatchNorm recalibration with the hardware in the loop is in
:mod:`simulator.accuracy.recalibration`. Needs the torch extra, like the exporter.
"""

from __future__ import annotations

import simulator.export  # noqa: F401  (raises a clear SasimError without torch)
from simulator.accuracy.evaluation import (Baseline, Scores, accuracy_for,
                                           clear_accuracy_cache, evaluate_accuracy,
                                           layer_sensitivity, per_layer_override, prepare,
                                           score)
from simulator.accuracy.hardware import HardwareLayer, hardware_layers, with_hardware
from simulator.accuracy.models import DIGITS, ModelSetup, load_setup
from simulator.accuracy.recalibration import recalibrate_batchnorm, recalibrated_model

__all__ = [
    "DIGITS",
    "Baseline",
    "HardwareLayer",
    "ModelSetup",
    "Scores",
    "accuracy_for",
    "clear_accuracy_cache",
    "evaluate_accuracy",
    "hardware_layers",
    "layer_sensitivity",
    "load_setup",
    "per_layer_override",
    "prepare",
    "recalibrate_batchnorm",
    "recalibrated_model",
    "score",
    "with_hardware",
]
