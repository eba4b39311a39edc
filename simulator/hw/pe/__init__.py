"""Processing-element models, one module per PE type, found through :mod:`.registry`."""

from simulator.hw.pe import dense  # noqa: F401  (registers the PE type)
from simulator.hw.pe.registry import PEModel, get_pe_model, option_types, pe_types

__all__ = ["PEModel", "get_pe_model", "option_types", "pe_types"]
