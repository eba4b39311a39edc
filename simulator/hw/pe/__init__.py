"""Processing-element models, one module per PE type (or a plug-in package), found through
:mod:`.registry`; see docs/extending.md."""

from simulator.config.arch import PEOptions
from simulator.hw.pe.registry import (Composition, FoldSteps, GemmRun, LayerOverride, PEModel,
                                      ReferenceRule, Rtl, SerialOperands, baseline_family,
                                      broken_plugins, builtin_pe_types, get_pe_model, option_types,
                                      pe_model_class, pe_types, word_parallel_baseline)

__all__ = ["Composition", "FoldSteps", "GemmRun", "LayerOverride", "PEModel", "PEOptions",
           "ReferenceRule", "Rtl", "SerialOperands", "baseline_family", "broken_plugins",
           "builtin_pe_types", "get_pe_model", "option_types", "pe_model_class", "pe_types",
           "word_parallel_baseline"]
