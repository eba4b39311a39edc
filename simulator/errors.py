"""Exception types every layer of sasim may raise.

Library code raises these with the file, key or layer in the message; only the CLI turns
them into a one-line message and exit status 2.
"""

from __future__ import annotations

__all__ = ["SasimError", "ConfigError", "WorkloadError", "TraceError", "SimulationError",
           "ResultsError", "PluginError"]


class SasimError(Exception):
    """Base class of every error sasim reports to a user (exit status 2 in the CLI)."""


class ConfigError(SasimError):
    """An architecture, technology or sweep configuration is invalid."""


class WorkloadError(SasimError):
    """A workload (shape-only YAML, topology CSV or trace) is invalid."""


class TraceError(WorkloadError):
    """A layer trace (.npz) is missing data or is inconsistent."""


class SimulationError(SasimError):
    """A configuration and workload that are each valid cannot be simulated together."""


class ResultsError(SasimError):
    """Saved results (a sweep's results.csv and point files, a summary.json) cannot be read
    or do not hold what a report needs."""


class PluginError(ConfigError):
    """A PE plug-in (an entry point of the ``sasim.pe_types`` group) cannot be loaded or is
    not a PE model; the message names the entry point (docs/extending.md)."""
