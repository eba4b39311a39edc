"""Sweep specs: the YAML schema, and its expansion into validated points.

A spec names one or more base arch configs, the workloads, and the axes that vary: ``grid``
(a cartesian product) and ``zip`` (axes that move together). :func:`plan_sweep` expands it
into one :class:`SweepPoint` per (design, workload) pair and validates every design through
:func:`simulator.api.load_arch` -- exactly the path of ``sasim run --set`` -- before anything
runs, so a bad value fails fast with the axis and the value named. See docs/sweeps.md.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import simulator
from simulator import api, shipped
from simulator.config.files import open_input, read_yaml_mapping
from simulator.config.schema import build, dump, model_name, option
from simulator.errors import ConfigError, SasimError, shorten
from simulator.records import record

__all__ = [
    "SCHEMA_VERSION",
    "BASE_AXIS",
    "SweepSpec",
    "SweepPoint",
    "SweepPlan",
    "load_sweep",
    "sweep_from_mapping",
    "plan_sweep",
    "override_text",
    "MAX_POINTS",
]

SCHEMA_VERSION = 1
#: Most points (designs x workloads) of one sweep; counted before any design is built or
#: validated (docs/sweeps.md).
MAX_POINTS = 100_000
#: The column that names each design's base arch (as written in the spec).
BASE_AXIS = "base"

#: One axis value: a YAML scalar. Strings stay strings (``'1e9'`` is not turned into a number
#: here; the arch schema decides what a value means).
Scalar = bool | int | str | float | None

_DOTTED_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _supported_version(value: int) -> str | None:
    return None if value == SCHEMA_VERSION else f"schema_version {SCHEMA_VERSION}"


def _non_empty(value: Sequence[Any]) -> str | None:
    return None if len(value) else "a non-empty list"


@record
class AccuracySpec:
    """``accuracy:`` in a sweep: add the model's top-1 under each design (docs/accuracy.md)."""

    model: str = option("digits", doc="`digits` (the shipped model) or `path/to/file.py:factory`.",
                        check=model_name)
    data: str | None = option(None, doc="Evaluation set (.npz with x and y); null: the "
                                        "model's default (digits: the 540 held-out images).")
    bn_recalibrate: int = option(0, doc="N > 0 also reports top-1 after BatchNorm "
                                        "recalibration on N training images.",
                                 check=lambda v: None if v >= 0 else "a non-negative integer")
    limit: int | None = option(None, doc="Evaluate on the first `limit` images only.",
                               check=lambda v: None if v > 0 else "a positive integer")


@record
class SweepSpec:
    """A sweep spec file (``sweeps/*.yaml``), as validated data."""

    schema_version: int = option(doc="Version of the sweep file format (required).",
                                 check=_supported_version)
    base: str | tuple[str, ...] = option(
        doc="The arch config every design starts from: a shipped name, an arch YAML or a "
            "SCALE-Sim .cfg (paths relative to the spec file), or a list of them (each base "
            "is crossed with the axes; the `base` column names it). Required.")
    workloads: tuple[str, ...] = option(
        doc="Workloads every design runs: shipped names, workload YAMLs, topology CSVs or "
            "traces (paths relative to the spec file). Required.", check=_non_empty)
    name: str = option("", doc="A short name for reports (defaults to the file name).")
    description: str = option("", doc="Free text.")
    grid: Mapping[str, tuple[Scalar, ...]] = option(
        default_factory=dict,
        doc="Dotted arch keys (as for `--set`) mapped to lists of values; every combination "
            "is a design (cartesian product, the last key varying fastest).")
    zip: Mapping[str, tuple[Scalar, ...]] = option(
        default_factory=dict,
        doc="Dotted arch keys mapped to lists of equal length that move together (the i-th "
            "values form one setting); crossed with `grid`.")
    baseline: str | Mapping[str, Scalar] | None = option(
        None,
        doc="The design every ratio is taken against (per workload): a mapping of axis values "
            "that picks exactly one design (`base` may be one of its keys), or an arch "
            "config (name or path) run as an extra design. null: no ratio columns.")
    timing_only: bool = option(
        False, doc="Skip the functional simulation (no counters, energy or error metrics; "
                   "cycles, memory figures and area only). Much faster.")
    accuracy: AccuracySpec | None = option(
        None, doc="Also evaluate a model's accuracy under every design (extra `torch`): "
                  "adds top1, top1_drop_points, int8_top1, float_top1 and "
                  "recalibrated_top1 columns; cached per design point.")


@record
class SweepPoint:
    """One (design, workload) pair: one row of ``results.csv``, one file in ``points/``.

    ``base`` and ``workload`` are as written in the spec; ``base_path`` and ``workload_path``
    are what is handed to the api. ``axes`` holds the design's value of every axis column
    (``None`` for the axes an extra baseline design does not set).
    """

    index: int
    id: str
    base: str
    base_path: str
    workload: str
    workload_path: str
    axes: tuple[tuple[str, Any], ...]
    overrides: tuple[str, ...]
    timing_only: bool
    baseline: bool
    #: (model, data, bn_recalibrate, limit) when the sweep asks for accuracy.
    accuracy: tuple[str, str | None, int, int | None] | None = None


@record
class SweepPlan:
    """A validated, expanded sweep: its axis columns and every point in spec order."""

    spec: SweepSpec
    source: Path
    name: str
    axes: tuple[str, ...]
    points: tuple[SweepPoint, ...]
    has_baseline: bool

    @property
    def designs(self) -> int:
        """Number of distinct designs (points per workload)."""
        return len(self.points) // len(self.spec.workloads)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec YAML (a path, or a shipped spec's name such as
    ``designs_resnet18``); errors name the file and the key path."""
    path = shipped.resolve(path, shipped.SWEEP_DIR, (".yaml",))
    return sweep_from_mapping(read_yaml_mapping(path), f"{path}: sweep")


def sweep_from_mapping(data: Mapping[str, Any], where: str) -> SweepSpec:
    """Validate a raw sweep mapping (``where`` prefixes every message)."""
    if "schema_version" not in data:
        raise ConfigError(f"{where}.schema_version: required key is missing "
                          f"(this version of sasim reads schema_version {SCHEMA_VERSION})")
    _check_size(data, where)  # before every value of every axis is converted
    spec = build(SweepSpec, data, where)
    bases = (spec.base,) if isinstance(spec.base, str) else spec.base
    if not bases:
        raise ConfigError(f"{where}.base: expected a non-empty list, got []")
    _check_unique(bases, f"{where}.base")
    _check_unique(spec.workloads, f"{where}.workloads")
    for section in ("grid", "zip"):
        for key, values in getattr(spec, section).items():
            if not _DOTTED_KEY.match(key):
                raise ConfigError(f"{where}.{section}: {key!r} is not a dotted arch key "
                                  f"(e.g. array.rows)")
            if key in ("name", "schema_version"):
                raise ConfigError(f"{where}.{section}.{key}: cannot be swept")
            if not values:
                raise ConfigError(f"{where}.{section}.{key}: expected a non-empty list, got []")
            if section == "grid":  # a zip's rows are checked whole, below
                _check_unique(values, f"{where}.{section}.{key}")
    designs = len(bases) * math.prod(len(v) for v in spec.grid.values())
    designs *= len(next(iter(spec.zip.values()))) if spec.zip else 1
    points = (designs + (spec.baseline is not None)) * len(spec.workloads)
    if points > MAX_POINTS:
        raise ConfigError(f"{where}: {designs:,} designs x {len(spec.workloads)} workload(s) "
                          f"make {points:,} points, more than the {MAX_POINTS:,} of one sweep; "
                          f"split it into several sweeps")
    both = set(spec.grid) & set(spec.zip)
    if both:
        raise ConfigError(f"{where}.zip.{sorted(both)[0]}: already an axis of grid")
    lengths = {key: len(values) for key, values in spec.zip.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ConfigError(f"{where}.zip: lists must have equal lengths ({detail})")
    # a zip row is one setting: a value may repeat down a column (pe.threads: [null, 2, null]
    # beside pe.type: [sparq, sysmt, dense]), a whole row may not
    seen: dict[tuple[Any, ...], int] = {}
    for number, row in enumerate(zip(*spec.zip.values()), start=1):
        key = tuple((type(v), v) for v in row)
        if key in seen:
            shown = ", ".join(f"{k}={shorten(v, 40)}" for k, v in zip(spec.zip, row))
            raise ConfigError(f"{where}.zip: rows {seen[key]} and {number} are the same "
                              f"setting ({shown})")
        seen[key] = number
    if isinstance(spec.baseline, Mapping):
        axes = {BASE_AXIS, *spec.grid, *spec.zip}
        for key in spec.baseline:
            if key not in axes:
                raise ConfigError(f"{where}.baseline.{key}: not an axis of this sweep "
                                  f"(axes: {', '.join(sorted(axes))})")
    return spec


def _check_size(data: Mapping[str, Any], where: str) -> None:
    """Refuse, from the raw lists' lengths, a spec whose grid alone makes more than
    :data:`MAX_POINTS` designs, or one of whose lists is longer (the full count, with the
    bases, the zip and the workloads, follows the schema's checks)."""
    lengths = []
    for section in ("grid", "zip"):
        axes = data.get(section)
        if isinstance(axes, Mapping):
            lengths += [(f"{section}.{key}", len(values)) for key, values in axes.items()
                        if isinstance(values, list)]
    for key, length in lengths:
        if length > MAX_POINTS:
            raise ConfigError(f"{where}.{key}: {length:,} values, more than the "
                              f"{MAX_POINTS:,} points of one sweep; split it into several "
                              f"sweeps")
    grid = math.prod(n for key, n in lengths if key.startswith("grid.") and n)
    if grid > MAX_POINTS:
        raise ConfigError(f"{where}.grid: {grid:,} designs, more than the {MAX_POINTS:,} "
                          f"points of one sweep; split it into several sweeps")


def _check_unique(values: Sequence[Any], where: str) -> None:
    """Refuse a value listed twice (in linear time: an axis may hold 100,000 values)."""
    seen: set[Any] = set()
    for value in values:
        key = (type(value), value)  # 1, 1.0 and True are different values here
        if key in seen:
            raise ConfigError(f"{where}: {shorten(value)} is listed twice")
        seen.add(key)


def override_text(key: str, value: Any) -> str:
    """The ``--set`` text that sets ``key`` to ``value`` (the value as YAML that reads back
    as the same value, e.g. ``'on'`` quoted so that it stays a string)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].strip()
    return f"{key}={text}"


@functools.lru_cache(maxsize=4096)
def _cached_override_text(key: str, kind: type, value: Any) -> str:
    del kind  # part of the cache key only: 1, 1.0 and True are equal but print differently
    return override_text(key, value)


def _override_text(key: str, value: Any) -> str:
    return _cached_override_text(key, type(value), value)


def _local_path(entry: str, folder: Path) -> str:
    """A spec entry as a path relative to the spec file when it names a file there; else as
    written (a shipped name, or a path relative to the working directory)."""
    candidate = folder / entry
    if ("/" in entry or Path(entry).suffix) and shipped.path_exists(candidate):
        return str(candidate)
    return entry


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open_input(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _point_id(base: str, overrides: Sequence[str], arch: Mapping[str, Any], workload: str,
              workload_digest: str, timing_only: bool, accuracy: Any = None) -> str:
    """A stable id: the hash of what determines the point's result.

    The resolved arch config and the workload file's bytes are part of it, so editing a base
    config or a workload re-runs the points that use it; the sasim version too.
    """
    key = {"base": base, "overrides": list(overrides), "arch": arch, "workload": workload,
           "workload_sha256": workload_digest, "timing_only": timing_only,
           "sasim_version": simulator.__version__}
    if accuracy is not None:
        key["accuracy"] = list(accuracy)
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@record
class _Design:
    base: str
    axes: tuple[tuple[str, Any], ...]  # every axis column, None where not set
    overrides: tuple[tuple[str, Any], ...]  # (axis, value) in application order
    baseline: bool = False


def _designs(spec: SweepSpec, bases: Sequence[str], axes: Sequence[str]) -> list[_Design]:
    grid_keys = list(spec.grid)
    zip_keys = list(spec.zip)
    zip_rows = list(zip(*spec.zip.values())) if zip_keys else [()]
    designs = []
    for base in bases:
        for grid_values in itertools.product(*spec.grid.values()):
            for zip_values in zip_rows:
                settings = (*zip(grid_keys, grid_values), *zip(zip_keys, zip_values))
                values = {BASE_AXIS: base, **dict(settings)}
                designs.append(_Design(base, tuple((a, values.get(a)) for a in axes),
                                       tuple(settings)))
    return designs


def _mark_baseline(spec: SweepSpec, designs: list[_Design], axes: Sequence[str],
                   where: str) -> list[_Design]:
    wanted = spec.baseline
    if wanted is None:
        return designs
    if isinstance(wanted, str):
        for i, design in enumerate(designs):
            if design.base == wanted and not design.overrides:
                designs[i] = dataclasses.replace(design, baseline=True)
                return designs
        extra = _Design(wanted, tuple((a, wanted if a == BASE_AXIS else None) for a in axes),
                        (), baseline=True)
        return [extra, *designs]
    matches = [i for i, d in enumerate(designs)
               if all(_same(dict(d.axes)[k], v) for k, v in wanted.items())]
    if len(matches) != 1:
        free = [a for a in axes if a not in wanted and len({repr(dict(d.axes)[a])
                                                            for d in designs}) > 1]
        hint = f"; give values for {', '.join(free)} too" if matches and free else ""
        raise ConfigError(f"{where}.baseline: {dict(wanted)} matches {len(matches)} designs, "
                          f"expected exactly one{hint}")
    designs[matches[0]] = dataclasses.replace(designs[matches[0]], baseline=True)
    return designs


def _same(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def plan_sweep(spec: SweepSpec, source: str | Path) -> SweepPlan:
    """Expand ``spec`` (read from ``source``) into points, validating every design first.

    Every design is loaded as :func:`simulator.api.load_arch` would (the base plus its axis
    values as ``--set`` overrides, applied together and validated once) and every workload with :func:`simulator.api.load_workload`
    before anything runs.

    Raises
    ------
    ConfigError
        Naming the spec file, the axis and the value of the first invalid design, with the
        arch schema's own message.
    """
    source = shipped.resolve(source, shipped.SWEEP_DIR, (".yaml",))
    where = f"{source}: sweep"
    folder = source.resolve().parent
    bases = (spec.base,) if isinstance(spec.base, str) else spec.base
    axes = (BASE_AXIS, *spec.grid, *spec.zip)
    designs = _mark_baseline(spec, _designs(spec, bases, axes), axes, where)
    workloads = []
    for entry in spec.workloads:
        path = _local_path(entry, folder)
        try:
            workload = api.load_workload(path)
        except SasimError as exc:
            raise type(exc)(f"{where}.workloads: {entry}: {exc}") from None
        workloads.append((entry, path, _file_digest(workload.source)))
    points = []
    acc = spec.accuracy
    accuracy = (None if acc is None else
                (acc.model, None if acc.data is None else _local_path(acc.data, folder),
                 acc.bn_recalibrate, acc.limit))
    loaders: dict[str, Any] = {}
    for design in designs:
        base_path = _local_path(design.base, folder)
        overrides = tuple(_override_text(key, value) for key, value in design.overrides)
        loader = loaders.get(base_path)
        if loader is None:
            try:
                loader = loaders[base_path] = api.arch_loader(base_path)
                loader(())
            except ConfigError as exc:
                # an extra baseline design comes from sweep.baseline, not sweep.base
                key = "baseline" if design.base not in bases else "base"
                text = str(exc)
                named = text if text.startswith(f"{design.base}:") else \
                    f"{design.base}: {text}"
                raise ConfigError(f"{where}.{key}: {named}") from None
        # only the point ids keep the resolved arch (100,000 of them would be kept alive)
        arch = dump(_validated_arch(spec, loader, design, overrides, where))
        for entry, path, digest in workloads:
            points.append(SweepPoint(
                index=len(points),
                id=_point_id(design.base, overrides, arch, entry, digest, spec.timing_only,
                             accuracy),
                base=design.base, base_path=base_path, workload=entry, workload_path=path,
                axes=design.axes, overrides=overrides, timing_only=spec.timing_only,
                baseline=design.baseline, accuracy=accuracy))
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):  # only identical base/overrides/workload can collide
        raise ConfigError(f"{where}: two points are the same design on the same workload")
    return SweepPlan(spec=spec, source=source, name=spec.name or source.stem,
                     axes=axes, points=tuple(points), has_baseline=spec.baseline is not None)


def _validated_arch(spec: SweepSpec, loader: Any, design: _Design,
                    overrides: Sequence[str], where: str):
    """Load one design: the base with all its axis values applied together and validated
    once (as ``sasim run --set ... --set ...``). A message names the axis whose key the
    error is about (else every axis value) and the other values of the design."""
    try:
        return loader(overrides, name_overrides=False)
    except ConfigError as exc:
        message = str(exc)
    def about(key: str) -> bool:
        parent, _, last = key.rpartition(".")
        return (message.startswith((f"arch.{key}:", f"arch.{key}.", f"arch.{key}["))
                or message.startswith(f"arch.{parent}: unknown key '{last}'"))

    culprit = next((i for i, (key, _) in enumerate(design.overrides) if about(key)), None)
    if culprit is None:  # e.g. a cross-field check: name the whole design
        context = ", ".join(f"{k}={shorten(v, 60)}" for k, v in design.overrides)
        return_where = f"{where}: design ({context or 'no axis values'})"
        raise ConfigError(f"{return_where} on base {design.base}: {message}") from None
    key, value = design.overrides[culprit]
    others = ", ".join(f"{k}={shorten(v, 60)}" for i, (k, v) in enumerate(design.overrides)
                       if i != culprit)
    context = f" (with {others})" if others else ""
    section = "grid" if key in spec.grid else "zip"
    raise ConfigError(f"{where}.{section}.{key}: value {shorten(value, 60)} on base "
                      f"{design.base}{context}: {message}") from None
