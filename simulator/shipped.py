"""Where the shipped data lives: arch configs, technology tables, workloads and sweeps.

The repository keeps them in top-level folders (``arch_configs/``, ``arch_configs/tech/``,
``workloads/``, ``sweeps/``). A wheel carries copies of those folders inside the package, as
``simulator/_shipped/<folder>/`` (the ``package-dir`` mapping in pyproject.toml). This module
is the one place that knows both layouts (docs/getting-started.md, "Installing"):

- installed from a wheel: the package's own resources (:func:`importlib.resources.files`);
- a source checkout (``pip install -e .``, or ``PYTHONPATH`` pointing at a clone): the
  top-level folders beside the ``simulator`` package, so editing a shipped config takes
  effect without reinstalling.

Only one of the two exists for a given ``simulator`` package, so the choice is never
ambiguous. (An editable install cannot serve the mapped folders as packages: setuptools'
editable finder does not import a mapped package without ``__init__.py`` below a regular one,
so the checkout's folders are read directly.)
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

__all__ = ["ARCH_DIR", "TECH_DIR", "WORKLOAD_DIR", "SWEEP_DIR", "folder", "resolve",
           "path_exists", "shipped_archs", "shipped_sweeps", "shipped_workloads"]

#: The package (inside ``simulator``) that holds the wheel's copies of the shipped folders.
_SHIPPED_PACKAGE = "_shipped"


def folder(name: str) -> Path:
    """The directory of the shipped folder ``name`` (``"arch_configs/tech"``, ``"workloads"``).

    Parameters
    ----------
    name : str
        The folder's path in the repository, with ``/`` separators.

    Returns
    -------
    pathlib.Path
        The installed copy when the package carries one (a wheel install), else the folder of
        the source checkout the package was imported from. The path may not exist (a package
        installed without its data): lookups in it then find nothing, and loading a name
        fails with the loaders' "file not found" message.
    """
    # a regular package installed as files (pip always unpacks wheels): a pathlib.Path
    package = Path(str(files("simulator")))
    installed = package / _SHIPPED_PACKAGE / name
    if installed.is_dir():
        return installed
    # a source checkout: the package directory sits beside the top-level data folders
    return package.parent / name


ARCH_DIR = folder("arch_configs")
TECH_DIR = folder("arch_configs/tech")
WORKLOAD_DIR = folder("workloads")
SWEEP_DIR = folder("sweeps")


def resolve(spec: str | Path, directory: Path, suffixes: Sequence[str]) -> Path:
    """A path as given, or the name of a shipped file in ``directory`` (``resnet18``).

    Parameters
    ----------
    spec : str or pathlib.Path
        A path (an existing file, or any name with a suffix, taken as a path) or a bare name.
    directory : pathlib.Path
        The shipped folder to look the bare name up in.
    suffixes : sequence of str
        Suffixes tried in order (``(".yaml", ".npz")``).

    Returns
    -------
    pathlib.Path
        The shipped file, or ``spec`` as a path when no shipped file has that name (the
        loader then reports it as not found).
    """
    path = Path(spec)
    if path_exists(path) or path.suffix:
        return path
    for suffix in suffixes:
        candidate = directory / f"{spec}{suffix}"
        if path_exists(candidate):
            return candidate
    return path


def path_exists(path: Path) -> bool:
    """``path.exists()``, False for a name the system refuses (too long, ...): the loader
    then reports the name it cannot read."""
    try:
        return path.exists()
    except OSError:
        return False


def shipped_archs() -> list[Path]:
    """The shipped arch configs (``arch_configs/*.yaml``), sorted by name."""
    return sorted(ARCH_DIR.glob("*.yaml"))


def shipped_workloads() -> list[Path]:
    """The shipped workloads (``workloads/*.yaml`` and traces ``workloads/*.npz``, not a
    trace's ZAP predictors ``*_zap.npz``: docs/zap.md), sorted."""
    return sorted([*WORKLOAD_DIR.glob("*.yaml"),
                   *(p for p in WORKLOAD_DIR.glob("*.npz") if not p.name.endswith("_zap.npz"))])


def shipped_sweeps() -> list[Path]:
    """The shipped sweep specs (``sweeps/*.yaml``), sorted by name."""
    return sorted(SWEEP_DIR.glob("*.yaml"))
