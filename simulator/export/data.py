"""Model factories and data sets for the exporter (``sasim export``).

A model is named ``path/to/file.py:factory``: the file is imported and ``factory()`` must
return a ``torch.nn.Module`` with its weights loaded. A data set is named either
``digits:train`` / ``digits:test`` (scikit-learn's bundled handwritten digits, prepared as
for the shipped digits model, see :mod:`simulator.export.digits`) or ``path/to/file.npz``
holding a float array ``x`` (the model's inputs, e.g. N x C x H x W) and optionally integer
labels ``y``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from simulator.errors import SasimError, said
from simulator.records import record

__all__ = ["Dataset", "load_dataset", "load_factory"]


@record
class Dataset:
    """Model inputs ``x`` (float32) and optional labels ``y`` (int64); ``name`` says where from."""

    name: str
    x: torch.Tensor
    y: torch.Tensor | None

    def head(self, count: int | None) -> Dataset:
        """The first ``count`` samples (all when ``None``)."""
        if count is None:
            return self
        if count <= 0:
            raise SasimError(f"data set {self.name}: the sample count must be positive, "
                             f"not {count}")
        return Dataset(f"{self.name}[:{count}]", self.x[:count],
                       None if self.y is None else self.y[:count])


def load_factory(spec: str) -> nn.Module:
    """Import ``path/to/file.py:factory`` and return ``factory()`` (an ``nn.Module``)."""
    path_text, sep, attr = spec.rpartition(":")
    if not sep or not path_text.endswith(".py") or not attr.isidentifier():
        raise SasimError(f"model {spec!r}: expected path/to/file.py:factory")
    path = Path(path_text)
    if not path.is_file():
        raise SasimError(f"model {spec!r}: {path}: file not found")
    module_name = f"_sasim_model_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise SasimError(f"model {spec!r}: cannot import {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    with model_code(spec, f"importing {path.name}"):
        module_spec.loader.exec_module(module)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SasimError(f"model {spec!r}: {path} has no callable '{attr}'")
    with model_code(spec, f"{attr}()"):
        model = factory()
    if not isinstance(model, nn.Module):
        raise SasimError(f"model {spec!r}: {attr}() returned {type(model).__name__}, "
                         f"not a torch.nn.Module")
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise SasimError(f"model {spec!r}: {name} holds NaN or infinite values")
    return model.eval()


@contextlib.contextmanager
def model_code(spec: str, doing: str) -> Iterator[None]:
    """Run a user's model code (its module, its factory, its forward pass on the data): an
    exception it raises, or a call of ``sys.exit``, becomes one :class:`SasimError` line
    naming the model."""
    try:
        yield
    except SasimError:
        raise
    except SystemExit as exc:
        raise SasimError(f"model {spec!r}: {doing} ended the process (exit({exc.code!r}))"
                         ) from None
    except Exception as exc:  # noqa: BLE001  (any failure of the user's code)
        raise SasimError(f"model {spec!r}: {doing} failed: {said(exc)}") from None


def load_dataset(spec: str) -> Dataset:
    """Load ``digits:train``, ``digits:test`` or an ``.npz`` file with ``x`` (and ``y``)."""
    if spec.startswith("digits"):
        from simulator.export.digits import digits_split

        split = spec.partition(":")[2] or "test"
        if split not in ("train", "test"):
            raise SasimError(f"data set {spec!r}: expected digits:train or digits:test")
        x, y = digits_split(split)
        return Dataset(f"digits:{split}", x, y)
    path = Path(spec)
    if path.suffix.lower() != ".npz":
        raise SasimError(f"data set {spec!r}: expected digits:train, digits:test or a .npz "
                         f"file with arrays x (and y)")
    if not path.is_file():
        raise SasimError(f"data set {spec!r}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "x" not in npz.files:
                raise SasimError(f"data set {spec!r}: no array 'x' (found {', '.join(npz.files)})")
            x = np.asarray(npz["x"])
            y = np.asarray(npz["y"]) if "y" in npz.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SasimError(f"data set {spec!r}: cannot read it: {exc}") from None
    if x.dtype.kind not in "fiu":
        raise SasimError(f"data set {spec!r}: 'x' must be numeric, not {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise SasimError(f"data set {spec!r}: 'x' must hold samples along its first axis "
                         f"(at least one), got shape {list(x.shape)}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise SasimError(f"data set {spec!r}: 'x' holds NaN or infinite values")
    if y is not None and (y.dtype.kind not in "iu" or y.shape != (x.shape[0],)):
        raise SasimError(f"data set {spec!r}: 'y' must be integer labels of shape "
                         f"[{x.shape[0]}], got {y.dtype} {list(y.shape)}")
    return Dataset(str(path), torch.from_numpy(x.astype(np.float32)),
                   None if y is None else torch.from_numpy(y.astype(np.int64)))
