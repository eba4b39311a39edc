"""Processing-element models, one module per PE type, found through :mod:`.registry`."""

from simulator.hw.pe import dense, sysmt  # noqa: F401  (each module registers its PE type)
from simulator.hw.pe import a4w8, sparq  # noqa: F401
from simulator.hw.pe import bitserial, swis  # noqa: F401
from simulator.hw.pe.registry import (Composition, FoldSteps, GemmRun, PEModel, get_pe_model,
                                      option_types, pe_types)

__all__ = ["Composition", "FoldSteps", "GemmRun", "PEModel", "get_pe_model", "option_types",
           "pe_types"]
