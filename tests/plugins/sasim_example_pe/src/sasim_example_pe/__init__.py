"""An example PE plug-in for sasim: the ``lanes`` PE (see docs/extending.md)."""

__all__ = ["lanes"]
