"""Export layer traces from PyTorch models with post-training INT8 quantisation.

This package imports torch, which is an optional extra (``pip install 'sasim[torch]'``);
nothing else in sasim imports it. Importing it without torch raises a
:class:`~simulator.errors.SasimError` saying how to install the extra.

Main entry points: :func:`export_trace` (fold BatchNorm, calibrate, quantise, trace and
evaluate a model), :func:`quantize` and :func:`fold_batchnorm` for finer control, and
:func:`load_factory` / :func:`load_dataset` for the ``sasim export`` command line.
"""

from __future__ import annotations

from simulator.errors import SasimError

try:
    import torch  # noqa: F401
except ImportError:
    raise SasimError("the exporter needs PyTorch: install the torch extra: "
                     "pip install 'sasim[torch]'") from None

from simulator.export.data import Dataset, load_dataset, load_factory  # noqa: E402
from simulator.export.ptq import (CalibrationOptions, ExportResult, QuantizedModel,  # noqa: E402
                                  batchnorm_pairs, evaluate, export_trace, fold_batchnorm,
                                  quantize)

__all__ = [
    "CalibrationOptions",
    "Dataset",
    "ExportResult",
    "QuantizedModel",
    "batchnorm_pairs",
    "evaluate",
    "export_trace",
    "fold_batchnorm",
    "load_dataset",
    "load_factory",
    "quantize",
]
