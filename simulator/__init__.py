"""sasim: a cycle-accurate simulator of sparsity- and precision-aware DNN accelerators."""

#: The package version; ``pyproject.toml`` reads it from here (``[tool.setuptools.dynamic]``),
#: so start-up does not pay for ``importlib.metadata`` (docs/performance.md).
__version__ = "0.1.0"

__all__ = ["__version__"]
