"""Synthetic tensors kept on disk by their seed (docs/synthetic-data.md, "The cache").

A layer's synthetic data depend only on its fields, its index, the ``data:`` options (the
seed among them), the generator's source and numpy's version. Generating ResNet-18's takes
about 0.1 s, reading them back about 0.01 s, so :func:`cached` keeps each layer's tensors in
one file named by a digest of all of those, and a later run (or sweep worker) reads it
instead of drawing the values again: the same bytes either way.

The folder is ``$SASIM_DATA_CACHE``, else ``~/.cache/sasim/synthetic``; ``SASIM_DATA_CACHE=off``
turns the cache off. A file is written whole or not at all (a temporary renamed over it; a
killed writer's temporary is removed by the next write); a
file that does not read back as expected (truncated, another format, another key) is drawn
again and replaced; a folder that cannot be written is not used. When the folder holds more
than ``SASIM_DATA_CACHE_MB`` (default 2048) MB, the files used least recently go first, and
a layer whose tensors alone exceed a quarter of that is never kept.

A file: the magic line, the header's length (8 bytes, little-endian), a JSON header (the key
and each operand's name, dtype, shape and offset), then each operand's bytes at an offset
that is a multiple of 64.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from simulator.workloads.layers import LayerTensors

__all__ = ["cached", "cache_dir", "key"]

_MAGIC = b"SASIM-SYNTHETIC-1\n"
_ALIGN = 64
_OPERANDS = ("input", "weight", "other")
_SUFFIX = ".tensors"


def cache_dir() -> Path | None:
    """The cache's folder, or ``None`` when it is off."""
    value = os.environ.get("SASIM_DATA_CACHE", "")
    if value.strip().lower() in ("off", "0", "none", "false"):
        return None
    return Path(value) if value else Path.home() / ".cache" / "sasim" / "synthetic"


def _limit_bytes() -> int:
    try:
        return max(0, int(os.environ.get("SASIM_DATA_CACHE_MB", "2048"))) << 20
    except ValueError:
        return 2048 << 20


@functools.cache
def _generator_digest() -> bytes | None:
    """The generator's source (the modules that draw the values) and numpy's version;
    ``None`` when the source cannot be read (then nothing is cached)."""
    digest = hashlib.sha256(np.__version__.encode())
    here = Path(__file__).resolve().parent
    try:
        for name in ("synthetic.py", "transformer_stats.py", "data_cache.py"):
            digest.update((here / name).read_bytes())
    except OSError:
        return None
    return digest.digest()


def key(layer: Any, index: int, options: Any) -> str | None:
    """The file name of a layer's tensors: a digest of what they depend on (``None``: the
    generator's source cannot be read)."""
    source = _generator_digest()
    if source is None:
        return None
    digest = hashlib.sha256(source)
    digest.update(repr((index, layer, options)).encode())
    return digest.hexdigest()[:40]


def cached(layer: Any, index: int, options: Any,
           make: Callable[[], LayerTensors]) -> LayerTensors:
    """``make()``'s tensors for the ``index``-th layer, read from the cache when there."""
    folder = cache_dir()
    name = None if folder is None else key(layer, index, options)
    if folder is None or name is None:
        return make()
    path = folder / name[:2] / (name + _SUFFIX)
    found = _read(path, name)
    if found is not None:
        return found
    tensors = make()
    _write(path, name, tensors, folder)
    return tensors


def _read(path: Path, name: str) -> LayerTensors | None:
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            buffer = np.empty(size, np.uint8)
            if fh.readinto(memoryview(buffer)) != size:
                return None
    except OSError:
        return None
    try:
        start = len(_MAGIC) + 8
        if bytes(buffer[:len(_MAGIC)]) != _MAGIC:
            return None
        length = int.from_bytes(bytes(buffer[len(_MAGIC):start]), "little")
        header = json.loads(bytes(buffer[start:start + length]))
        if header.get("key") != name:
            return None
        operands: dict[str, np.ndarray | None] = dict.fromkeys(_OPERANDS)
        for entry in header["operands"]:
            dtype = np.dtype(entry["dtype"])
            shape = tuple(int(n) for n in entry["shape"])
            offset = int(entry["offset"])
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if entry["name"] not in operands or offset % _ALIGN or offset + nbytes > size:
                return None
            operands[entry["name"]] = buffer[offset:offset + nbytes].view(dtype).reshape(shape)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # used now: the last to go
    return LayerTensors(**operands)


def _write(path: Path, name: str, tensors: LayerTensors, folder: Path) -> None:
    from simulator.outputs import OutputError, atomic_write, remove_stale

    arrays = {n: np.ascontiguousarray(getattr(tensors, n)) for n in _OPERANDS
              if getattr(tensors, n, None) is not None}
    if any(a.dtype.hasobject for a in arrays.values()):
        return
    total = sum(a.nbytes for a in arrays.values())
    limit = _limit_bytes()
    if total > limit // 4:
        return
    entries, offset = [], 0
    for operand, array in arrays.items():
        entries.append({"name": operand, "dtype": array.dtype.str, "shape": list(array.shape),
                        "offset": offset})
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    # room for the header with the offsets made absolute (at most 20 digits more each)
    room = len(json.dumps({"key": name, "operands": entries})) + 20 * len(entries)
    data_start = -(-(len(_MAGIC) + 8 + room) // _ALIGN) * _ALIGN
    for entry in entries:
        entry["offset"] += data_start
    text = json.dumps({"key": name, "operands": entries}).encode()
    text += b" " * (data_start - len(_MAGIC) - 8 - len(text))

    def write(fh: Any) -> None:
        fh.write(_MAGIC + len(text).to_bytes(8, "little") + text)
        for entry, array in zip(entries, arrays.values()):
            fh.seek(entry["offset"])
            fh.write(memoryview(array.reshape(-1).view(np.uint8)))

    try:
        atomic_write(path, write, sync=False)
    except (OutputError, OSError):
        return
    remove_stale(path.parent)  # temporaries of writers that were killed
    _evict(folder, limit)


def _evict(folder: Path, limit: int) -> None:
    """Remove the least recently used files until the folder holds at most ``limit``."""
    files = []
    try:
        for sub in os.scandir(folder):
            if sub.is_dir(follow_symlinks=False):
                for entry in os.scandir(sub.path):
                    if entry.name.endswith(_SUFFIX):
                        stat = entry.stat(follow_symlinks=False)
                        files.append((stat.st_mtime, stat.st_size, entry.path))
    except OSError:
        return
    total = sum(size for _, size, _ in files)
    for _, size, file in sorted(files):
        if total <= limit:
            break
        with contextlib.suppress(OSError):
            os.unlink(file)
            total -= size
