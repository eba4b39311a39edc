"""Exception types every layer of sasim may raise.

Library code raises these with the file, key or layer in the message; only the CLI turns
them into a one-line message and exit status 2.
"""

from __future__ import annotations

__all__ = ["SasimError", "ConfigError", "WorkloadError", "TraceError", "SimulationError",
           "ResultsError", "PluginError", "MAX_VALUE_CHARS", "MAX_MESSAGE_CHARS", "shorten", "one_line",
           "said"]

#: A user value quoted in a message is cut to this many characters (docs/config-reference.md).
MAX_VALUE_CHARS = 200
#: A whole message is cut to this many characters and printed as one line.
MAX_MESSAGE_CHARS = 500


def shorten(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, for quoting user values in messages.

    Never fails: the repr of an integer too long to print (Python refuses more than 4300
    digits) is replaced by its size.
    """
    try:
        text = repr(value)
    except ValueError:  # int too large to convert to a string
        text = f"<integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    if len(text) > limit:
        text = f"{text[: limit - 20]}... ({len(text)} chars)"
    return text


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as one line (line breaks escaped) of at most ``limit`` characters."""
    text = " ".join(text.splitlines())  # every line break Python knows (\u2028, \x85, ...)
    if len(text) > limit:
        text = f"{text[: limit - 25]}... ({len(text)} chars)"
    return text


def said(exc: BaseException, limit: int = 300) -> str:
    """An exception as ``Type: message`` on one line of bounded length, whatever third-party
    code (a plug-in, a user's model) put in its message."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


class SasimError(Exception):
    """Base class of every error sasim reports to a user (exit status 2 in the CLI).

    ``str()`` of the error is always one line of at most :data:`MAX_MESSAGE_CHARS`.
    """

    def __str__(self) -> str:
        return one_line(super().__str__())


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
