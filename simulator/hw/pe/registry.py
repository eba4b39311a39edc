"""The registry of PE types: each PE module registers its model class by name (``register_pe``)."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from simulator.config.arch import ArrayConfig, PEOptions
from simulator.workloads.layers import Layer

__all__ = ["Composition", "GemmRun", "FoldSteps", "PEModel", "register_pe", "get_pe_model",
           "option_types", "pe_types"]

_REGISTRY: dict[str, type[PEModel]] = {}


@dataclasses.dataclass(frozen=True)
class GemmRun:
    """What a PE model computes for one GEMM group.

    Attributes
    ----------
    outputs : int64 (M, N), the integer outputs the hardware produces (exact or approximated).
    counters : per-PE-step activity counts over the M x N x steps PE-steps that hold work,
        by the names in the model's ``counter_names``; they partition those PE-steps.
    stats : further integer totals of the GEMM that are not a partition of PE-steps (lane
        activations, stored weight bits, ...), by the names in the model's ``stat_names``.
    """

    outputs: np.ndarray
    counters: dict[str, int]
    stats: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class FoldSteps:
    """Reduction steps of every column fold, for a PE whose timing depends on the weights.

    Attributes
    ----------
    steps : int64 (groups, ceil(Fg / cols)), the steps of the column folds as the PE runs
        them (every row fold of a column fold takes the same steps).
    alternatives : named step arrays of the same shape under other choices the PE reports
        beside the one it runs (for SWIS: ``scheduled`` and ``unscheduled`` filter orders).
    """

    steps: np.ndarray
    alternatives: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Composition:
    """What one PE is built from and what each kind of PE-step does, in the component names
    of the technology tables (``arch_configs/tech/``; docs/energy-model.md).

    Attributes
    ----------
    parts : component -> count in one PE (its area). ``register_bit`` counts the PE's
        flip-flops; the energy model clocks all of them every cycle.
    events : counter name -> {component: actions per PE-step of that kind} (its dynamic
        energy beyond the registers). Every counter of the PE model has an entry.
    """

    parts: Mapping[str, float]
    events: Mapping[str, Mapping[str, float]]


class PEModel(ABC):
    """A PE type: its timing (steps per fold) and its functional model.

    Subclasses set ``type_name``, ``summary``, ``Options`` (a :class:`PEOptions`
    dataclass) and ``counter_names``, and are registered with :func:`register_pe`.
    """

    type_name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[PEOptions]]
    #: Dataflows whose timing this PE type defines.
    dataflows: ClassVar[tuple[str, ...]] = ("os",)
    #: Names of the activity counters :meth:`simulate_gemm` returns.
    counter_names: ClassVar[tuple[str, ...]] = ()
    #: Names of the further totals :meth:`simulate_gemm` returns in ``GemmRun.stats``.
    stat_names: ClassVar[tuple[str, ...]] = ()
    #: True when counters or outputs depend on the data, so a shape-only workload is given
    #: synthetic data for a complete report.
    data_dependent: ClassVar[bool] = False
    #: True when the steps of a fold depend on the layer's weights: the timing then comes
    #: from :meth:`column_fold_steps` (a shape-only workload gets synthetic data even for a
    #: timing-only run).
    weight_dependent_timing: ClassVar[bool] = False

    def __init__(self, options: PEOptions, array: ArrayConfig | None = None) -> None:
        self.options = options
        #: The array the PE sits in (the schema's default array when not given).
        self.array = array if array is not None else ArrayConfig()

    @abstractmethod
    def reduction_steps(self, layer: Layer) -> int:
        """Steps a PE takes to consume the layer's Kd operands (the T of one OS fold)."""

    @abstractmethod
    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        """Functional simulation of one GEMM group: A (M, Kd) . B (Kd, N), int64 inputs."""

    def check_layers(self, names: set[str]) -> None:
        """Raise ValueError when options name layers the workload does not have."""

    def layer_problem(self, layer: Layer) -> str | None:
        """Why this PE cannot run ``layer`` (e.g. operand widths it does not take), or None.

        Checked for every layer before a run starts (docs/config-reference.md, "Input
        limits").
        """
        return None

    def peak_macs_per_step(self, layer: Layer) -> int:
        """MACs one PE can complete per step at best (1 for a dense 8b x 8b PE)."""
        return 1

    @abstractmethod
    def composition(self, layer: Layer | None = None) -> Composition:
        """The PE's components and per-counter actions (``layer`` selects per-layer modes,
        such as a thread-count override; ``parts`` must not depend on it)."""

    def column_fold_steps(self, layer: Layer, weights: np.ndarray) -> FoldSteps | None:
        """Steps of every column fold from the layer's weights (int64 (groups, Kd, Fg)).

        Only PEs with ``weight_dependent_timing`` return steps; the others return None and
        every fold takes :meth:`reduction_steps`.
        """
        return None


def register_pe(cls: type[PEModel]) -> type[PEModel]:
    """Class decorator: add a PE model to the registry under ``cls.type_name``."""
    if cls.type_name in _REGISTRY:
        raise ValueError(f"PE type {cls.type_name!r} registered twice")
    _REGISTRY[cls.type_name] = cls
    return cls


def get_pe_model(options: PEOptions, array: ArrayConfig | None = None) -> PEModel:
    """Instantiate the PE model for validated options, in ``array`` (default: the schema's)."""
    return _REGISTRY[options.type](options, array)


def option_types() -> dict[str, type[PEOptions]]:
    """Option schema of each PE type, by name (what the arch loader validates against)."""
    return {name: cls.Options for name, cls in _REGISTRY.items()}


def pe_types() -> dict[str, type[PEModel]]:
    """Every registered PE model class, by name."""
    return dict(_REGISTRY)
