"""sasim: a cycle-accurate simulator of sparsity- and precision-aware DNN accelerators."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sasim")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
