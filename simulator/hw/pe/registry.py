"""The registry of PE types and the interface the rest of sasim asks them through.

Everything sasim knows about a PE type lives in its model class (a :class:`PEModel`
subclass): options, timing, functional model, counters, composition, its reference-array
rule, whether it is exact, when it needs data, its baseline family for comparisons, how
accuracy tooling may override it per layer and, when it has one, its RTL datapath
(:class:`Rtl`, docs/rtl.md). The core never names a PE type.

Built-in types are the modules of :mod:`simulator.hw.pe` (:data:`BUILTIN_MODULES`), imported
on first use of the registry. Third-party types register through the entry-point group
``sasim.pe_types`` (:data:`ENTRY_POINT_GROUP`): each entry point names a :class:`PEModel`
subclass, ``name = "package.module:ClassName"``, whose ``type_name`` is the entry point's
name. Entry points are loaded lazily, only when a type is not among the built-ins or when
every type is listed, so start-up stays fast. See docs/extending.md.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from simulator.config.arch import ArrayConfig, PEOptions
from simulator.errors import PluginError, said
from simulator.records import record
from simulator.workloads.layers import Layer

__all__ = ["BUILTIN_MODULES", "BUILTIN_TYPES", "ENTRY_POINT_GROUP", "Composition", "GemmRun", "FoldSteps",
           "LayerOverride", "PEModel", "ReferenceRule", "register_pe", "get_pe_model",
           "pe_model_class", "option_types", "pe_types", "builtin_pe_types",
           "baseline_family", "word_parallel_baseline", "AccumulationFeed", "Rtl",
           "SerialOperands", "broken_plugins"]

#: The entry-point group third-party PE types register in.
ENTRY_POINT_GROUP = "sasim.pe_types"
#: The built-in PE types, in listing order; type ``t`` lives in ``simulator.hw.pe.t``, so a
#: run imports only the modules of the types it uses.
BUILTIN_TYPES = ("dense", "sysmt", "sparq", "a4w8", "bitserial", "swis")
#: Modules of the built-in PE types; importing one registers its type.
BUILTIN_MODULES = tuple(f"simulator.hw.pe.{name}" for name in BUILTIN_TYPES)

_REGISTRY: dict[str, type[PEModel]] = {}
#: Entry points that could not be registered: name -> the one-line reason.
_BROKEN: dict[str, str] = {}
_STATE = {"builtins": False, "entry_points": False}


@record
class GemmRun:
    """What a PE model computes for one GEMM group.

    Attributes
    ----------
    outputs : int64 (M, N), the integer outputs the hardware produces (exact or approximated).
    counters : per-PE-step activity counts over the M x N x steps PE-steps that hold work,
        by the names in the model's ``counter_names``; they partition those PE-steps.
    stats : further integer totals of the GEMM that are not a partition of PE-steps (lane
        activations, stored weight bits, ...), by the names in the model's ``stat_names``.
    exact : int64 (M, N), the exact product ``a @ b`` when the model computed it along the
        way (the error metrics then need no reference product), else ``None``.
    """

    outputs: np.ndarray
    counters: dict[str, int]
    stats: dict[str, int] = dataclasses.field(default_factory=dict)
    exact: np.ndarray | None = None


@record
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


@record
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


@record
class ReferenceRule:
    """How a PE type runs in the register-level reference array (docs/reference-array.md).

    A rule is either a built-in numba rule of :mod:`simulator.kernels.reference_array`
    (``step`` is its integer ``RULE_*`` id and ``options`` names its parameter codes) or a
    plain-Python rule (``step`` is a callable; ``options`` is empty). A Python rule is
    called once per PE-step as ``step(acts, wgts, params)`` with the T activations and T
    weights the PE holds (int64 arrays) and the rule's parameters as a dict of str; it
    returns ``(partial_sum, counter_index)``.

    Attributes
    ----------
    step : int or callable
        The kernel rule id, or the Python per-PE-step function.
    threads : tuple of int
        The thread counts T (rows of the schedule) the rule accepts.
    options : mapping of str to mapping of str to int
        Kernel rules: parameter name -> {value name: kernel code}, in the kernel's
        parameter-array order. Python rules: parameter name -> {value name: 0}, the
        accepted values (they reach ``step`` as names).
    counter_names : tuple of str, optional
        The counter of each counter index (the default decoding); None: ``decode`` is given.
    counter_slots : int
        How many counter indices ``step`` may return when ``decode`` reads them (the array
        is at least ``len(counter_names)`` and T + 1 long).
    decode : callable, optional
        ``decode(counts, threads) -> (counters, stats)``: turns the int64 array of PE-steps
        per counter index into named counters and stats; None: ``counter_names`` by index.
    """

    step: int | Callable[..., tuple[int, int]]
    threads: tuple[int, ...]
    options: Mapping[str, Mapping[str, int]] = dataclasses.field(default_factory=dict)
    counter_names: tuple[str, ...] | None = None
    counter_slots: int = 0
    decode: Callable[[Any, int], tuple[dict[str, int], dict[str, int]]] | None = None

    def slots(self, threads: int) -> int:
        """Length of the counter array for a run with ``threads`` threads."""
        return max(self.counter_slots, threads + 1, len(self.counter_names or ()))


@record
class AccumulationFeed:
    """The order in which a PE adds into its accumulator (docs/accumulators.md): what the
    reference array feeds it, step by step.

    Attributes
    ----------
    rule : the PE's kernel rule id in :mod:`simulator.kernels.reference_array`.
    params : int64, the rule's parameter codes.
    sched : int64 (T, S), the K index thread t feeds at step s, or -1.
    """

    rule: int
    params: np.ndarray
    sched: np.ndarray


@record
class Rtl:
    """A PE type's RTL datapath (docs/rtl.md, "How the RTL is organised").

    Attributes
    ----------
    module : the dotted name of the module that builds the datapath (``build(design)``,
        ``COUNTERS`` and the optional hooks of docs/rtl.md, "The datapath interface"); it may
        import Amaranth, and is imported only by ``sasim rtl``.
    isolating : the datapath can be built with operand isolation (``--operand-isolation``).
    extra_acc_bits : accumulator bits the datapath needs beyond what holds the exact sum of
        8-bit products (a SWIS weight's represented magnitude can reach 255).
    area_ratios : (operand slots, area relative to the dense PE) pairs a paper reports, shown
        beside the synthesised ratio by ``sasim rtl synth``.
    """

    module: str
    isolating: bool = False
    extra_acc_bits: int = 0
    area_ratios: tuple[tuple[int, float], ...] = ()


@record
class SerialOperands:
    """What the array edges of a bit-serial datapath feed for one GEMM group
    (docs/rtl.md, "Bit-serial and SWIS"), as the PE model computes it.

    Attributes
    ----------
    kind : ``"bits"`` (each operand in p-bit codes, one bit position a step) or
        ``"positions"`` (weights decomposed into a few shared bit positions a group).
    args : the stream builder's arguments (:mod:`simulator.rtl.streams`).
    rule : the reference-array rule that runs the expanded stream.
    """

    kind: str
    args: Mapping[str, Any]
    rule: str


@record
class LayerOverride:
    """A per-layer option that runs some layers of a design more precisely.

    Attributes
    ----------
    key : the dotted option, e.g. ``pe.layer_threads``.
    value : its whole new value (layer name -> setting).
    changed : the layers' new settings.
    """

    key: str
    value: Mapping[str, Any]
    changed: Mapping[str, Any]


class PEModel(ABC):
    """A PE type: its timing (steps per fold) and its functional model.

    Subclasses set ``type_name``, ``summary``, ``Options`` (a :class:`PEOptions`
    dataclass) and ``counter_names``, and are registered with :func:`register_pe` (built-in
    modules) or through the ``sasim.pe_types`` entry-point group (plug-ins).
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
    #: True when :meth:`simulate_gemm`'s outputs are the exact GEMM for any data: a run then
    #: reports the layer exact without computing a reference product (docs/performance.md).
    exact: ClassVar[bool] = False
    #: The family of like-for-like baselines in ``sasim compare``: a design is compared with
    #: the first design of the list whose PE type is this family's name (default: the
    #: designs of the registry's first type, the exact word-parallel baseline).
    baseline_family: ClassVar[str | None] = None
    #: True when a GEMM's outputs are its column blocks' outputs side by side and its
    #: counters and stats their sums, for blocks of whole array column folds: a run may then
    #: simulate a large layer a block of columns at a time (bounded memory).
    columns_independent: ClassVar[bool] = False
    #: True when :meth:`simulate_gemm` takes A and B in the data's own integer dtype (int8,
    #: uint8 for 8-bit data): a run then lowers them without int64 copies
    #: (docs/performance.md). Otherwise they come as int64.
    narrow_operands: ClassVar[bool] = False

    #: True when :meth:`accumulation_feed` gives the PE's step order, so a narrow
    #: accumulator (``pe.accumulator``, docs/accumulators.md) can run on it.
    accumulates_in_steps: ClassVar[bool] = False

    def __init__(self, options: PEOptions, array: ArrayConfig | None = None) -> None:
        self.options = options
        #: The array the PE sits in (the schema's default array when not given).
        self.array = array if array is not None else ArrayConfig()
        accumulators = (getattr(options, "accumulator", None),
                        *getattr(options, "accumulator_layers", {}).values())
        if any(acc is not None and acc.type != "exact" for acc in accumulators):
            #: A narrow accumulator rounds: the outputs are no longer exact by construction.
            self.exact = False

    @abstractmethod
    def reduction_steps(self, layer: Layer) -> int:
        """Steps a PE takes to consume the layer's Kd operands (the T of one OS fold)."""

    @abstractmethod
    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        """Functional simulation of one GEMM group: A (M, Kd) . B (Kd, N), int64 inputs."""

    def accumulation_feed(self, layer: Layer, a: np.ndarray) -> AccumulationFeed:
        """The PE's rule and step schedule for ``layer`` on activations ``a`` (M, Kd): the
        order its accumulator receives partial sums. Only PE types with
        :attr:`accumulates_in_steps` define it."""
        raise NotImplementedError(f"PE type {self.type_name!r} has no accumulation order")

    def exact_counters(self, layer: Layer, a_nonzero: np.ndarray,
                       b_nonzero: np.ndarray) -> dict[str, int] | None:
        """Counters of an :attr:`exact` PE whose activity depends only on which operands are
        zero, from per-K counts of non-zero operands (int64 (g, Kd) each: rows of A, columns
        of B), without the outputs; None when the PE needs the full data (the default)."""
        return None

    def check_layers(self, names: set[str]) -> None:
        """Raise ValueError when options name layers the workload does not have."""

    def synthetic_data(self) -> Mapping[str, Any]:
        """Synthetic-data options this PE needs (keys of a workload's ``data:`` section,
        docs/synthetic-data.md), over the workload's own when a shape-only workload is given
        synthetic data: e.g. 2:4 structured weights for a PE that only runs those. Empty by
        default."""
        return {}

    def layer_problem(self, layer: Layer) -> str | None:
        """Why this PE cannot run ``layer`` (e.g. operand widths it does not take), or None.

        Checked for every layer before a run starts (docs/config-reference.md, "Input
        limits").
        """
        return None

    def peak_macs_per_step(self, layer: Layer) -> int:
        """MACs one PE can complete per step at best (1 for a dense 8b x 8b PE)."""
        return 1

    def setup_cycles(self, layer: Layer) -> int:
        """Cycles the array waits before the layer's first fold for work at its edge that
        the folds cannot hide (SWIS's online decomposition of a dynamic right operand,
        docs/transformers.md); 0 by default."""
        return 0

    def extra_actions(self, layer: Layer, stats: Mapping[str, int]) -> dict[str, float]:
        """Component actions of the layer beyond its PE-steps (tech-table component ->
        count), from the layer's ``stats``: e.g. a decomposition unit at the array edge.
        Priced like the PE-steps' actions (docs/energy-model.md); none by default."""
        return {}

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

    def prepare_weights(self, layer: Layer, b: np.ndarray
                        ) -> tuple[np.ndarray, Mapping[str, int]]:
        """The weights B (Kd, N) the PE computes with, and stats to add to the layer's: B
        itself by default; e.g. pruned to the structure the PE runs. The run's error metrics
        still compare with the exact GEMM of the original B."""
        return b, {}

    def notes(self, stats: Mapping[str, int]) -> list[str]:
        """Lines the run report adds about what the PE did to the data, from the run's
        stats totals (e.g. how many weights it pruned); none by default."""
        return []

    def stored_weights(self, layer: Layer, weights: np.ndarray) -> tuple[str, int] | None:
        """The name of the PE's own weight format and the bits it stores for the layer's
        weights (int64 (groups, Kd, Fg)), metadata included, when it keeps them compressed
        in DRAM and its filter buffer (``memory.compression.weights``, docs/memory-model.md,
        "Compressed operands"); None (the default): plain ``weight_bits`` words."""
        return None

    def runs_without_numba(self) -> bool:
        """Whether this PE's functional model runs without importing numba (its kernels were
        compiled ahead of time, or it has none): the process of ``sasim run`` then shares the
        functional work with its child (docs/performance.md, "Functional models beside the
        engine"), which would otherwise cost it numba's import and cache load. Default
        False."""
        return False

    def needs_data(self, functional: bool) -> bool:
        """Whether a run of this PE needs layer data (a shape-only workload then gets
        synthetic data): a functional run of a data-dependent PE, or any run of a PE whose
        timing depends on the weights. The one decision ``simulate`` and sweeps share."""
        return (functional and self.data_dependent) or self.weight_dependent_timing

    def layer_override(self, layers: Sequence[str]) -> LayerOverride | None:
        """The per-layer option that runs ``layers`` more precisely, for accuracy tooling;
        None when the PE type has none or the layers are already as precise as it goes."""
        return None

    @classmethod
    def reference_rule(cls) -> ReferenceRule | None:
        """This PE type's rule in the register-level reference array (None: it has none).

        Called only by :mod:`simulator.hw.reference_array`, so a rule may import kernels.
        """
        return None

    def reference_params(self, a: np.ndarray | None = None) -> dict[str, str]:
        """The reference rule's parameters for these options (names of
        :attr:`ReferenceRule.options`, each the option of the same name; a PE type whose
        parameter is derived, or depends on the activations ``a``, overrides this)."""
        rule = type(self).reference_rule()
        keys = rule.options if rule is not None else {}
        return {key: str(getattr(self.options, key)) for key in keys}

    #: The PE type's RTL datapath (``sasim rtl``, docs/rtl.md); None: it has none.
    rtl: ClassVar[Rtl | None] = None

    @classmethod
    def rtl_design(cls, options: PEOptions) -> tuple[int, dict[str, Any]]:
        """The RTL design's operand slots per PE and the options its datapath depends on
        (``params.json``), for PE options ``options``."""
        return 1, {}

    @classmethod
    def rtl_label(cls, threads: int, options: Mapping[str, Any]) -> str:
        """How ``sasim rtl`` names a design of ``threads`` slots and ``options`` (those of
        :meth:`rtl_design`)."""
        return cls.type_name

    def step_schedule(self, layer: Layer, a: np.ndarray) -> np.ndarray:
        """The K index each operand slot feeds at each step, int (slots, steps) (-1: none),
        for one GEMM group on activations ``a`` (M, Kd): what the register-level array and
        ``sasim rtl verify`` feed the PE. Default: the model's ``schedule(kd)`` or
        ``schedule(layer, a)`` when it has one, else one slot, K in order."""
        schedule = getattr(self, "schedule", None)
        if schedule is None:
            return np.arange(a.shape[1], dtype=np.int64)[None, :]
        takes_kd = len(inspect.signature(schedule).parameters) == 1
        return schedule(a.shape[1]) if takes_kd else schedule(layer, a)

    def serial_operands(self, layer: Layer, a: np.ndarray,
                        b: np.ndarray) -> SerialOperands | None:
        """A bit-serial datapath's edge streams for one GEMM group (A (M, Kd), B (Kd, N));
        None for a word-parallel PE (the default)."""
        return None


def register_pe(cls: type[PEModel]) -> type[PEModel]:
    """Class decorator: add a PE model to the registry under ``cls.type_name``."""
    if cls.type_name in _REGISTRY and _REGISTRY[cls.type_name] is not cls:
        raise ValueError(f"PE type {cls.type_name!r} registered twice")
    _REGISTRY[cls.type_name] = cls
    return cls


def _load_builtins() -> None:
    if not _STATE["builtins"]:
        _STATE["builtins"] = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def _load_entry_points() -> None:
    """Register every PE type of the ``sasim.pe_types`` entry-point group (once). A broken
    plug-in is set aside with its reason (:func:`broken_plugins`): it fails only a run that
    asks for its type, not the others."""
    if _STATE["entry_points"]:
        return
    _STATE["entry_points"] = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            _register_entry_point(point)
        except PluginError as exc:
            _BROKEN.setdefault(point.name, str(exc))


def _register_entry_point(point: Any) -> None:
    """Load one entry point and register its class, or raise :class:`PluginError`."""
    where = f"PE plug-in entry point {point.name!r} ({point.value})"
    try:
        cls = point.load()
    except Exception as exc:  # noqa: BLE001  (any failure of third-party code)
        raise PluginError(f"{where} cannot be loaded: {said(exc)}") from exc
    if not (isinstance(cls, type) and issubclass(cls, PEModel)):
        raise PluginError(f"{where} must name a subclass of "
                          f"simulator.hw.pe.PEModel, not {type(cls).__name__} "
                          f"{getattr(cls, '__qualname__', '?')}")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(f"{where}: the class does not define {missing}")
    name = getattr(cls, "type_name", None)
    if name != point.name:
        raise PluginError(f"{where}: the class's type_name {name!r} must equal the entry "
                          f"point's name")
    if not isinstance(getattr(cls, "summary", None), str):
        raise PluginError(f"{where}: the class must define summary, a one-line description "
                          f"(sasim list shows it)")
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and issubclass(options, PEOptions)
            and dataclasses.is_dataclass(options)):
        raise PluginError(f"{where}: Options must be a dataclass subclassing "
                          f"simulator.config.arch.PEOptions, not {options!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise PluginError(f"{where}: PE type {name!r} is already defined by "
                          f"{_REGISTRY[name].__module__}")
    _REGISTRY[name] = cls


def broken_plugins() -> dict[str, str]:
    """Entry points of ``sasim.pe_types`` that could not be registered: name -> reason."""
    _load_builtins()
    _load_entry_points()
    return dict(_BROKEN)


def pe_model_class(type_name: str) -> type[PEModel]:
    """The model class of PE type ``type_name`` (built-ins first, then entry points).

    A built-in type imports its own module only.

    Raises
    ------
    KeyError
        If no built-in type or plug-in has that name.
    PluginError
        If a plug-in had to be loaded and is broken.
    """
    if type_name in _REGISTRY:
        return _REGISTRY[type_name]
    if type_name in BUILTIN_TYPES:
        importlib.import_module(f"simulator.hw.pe.{type_name}")
        return _REGISTRY[type_name]
    _load_builtins()
    if type_name not in _REGISTRY:
        _load_entry_points()
    if type_name not in _REGISTRY and type_name in _BROKEN:
        raise PluginError(_BROKEN[type_name])
    return _REGISTRY[type_name]


def get_pe_model(options: PEOptions, array: ArrayConfig | None = None) -> PEModel:
    """Instantiate the PE model for validated options, in ``array`` (default: the schema's)."""
    return pe_model_class(options.type)(options, array)


class _OptionTypes(Mapping[str, type[PEOptions]]):
    """Option schemas by type name; looking up an unknown name loads the plug-ins.

    ``default`` is the type of an arch that names none: the first built-in type.
    """

    @property
    def default(self) -> str:
        return BUILTIN_TYPES[0]

    def __getitem__(self, name: str) -> type[PEOptions]:
        try:
            return pe_model_class(name).Options
        except KeyError:
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            pe_model_class(name)
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(pe_types())

    def __len__(self) -> int:
        return len(pe_types())

    @property
    def broken(self) -> dict[str, str]:
        """Plug-ins that could not be registered (:func:`broken_plugins`)."""
        return broken_plugins()


def option_types() -> Mapping[str, type[PEOptions]]:
    """Option schema of each PE type, by name (what the arch loader validates against).

    A lazy mapping: built-in types are answered at once; an unknown name, iteration or
    ``len`` loads the entry-point plug-ins.
    """
    return _OptionTypes()


def _order(cls: type[PEModel]) -> int:
    """Built-ins in :data:`BUILTIN_MODULES` order, then plug-ins (in registration order)."""
    module = cls.__module__
    return BUILTIN_MODULES.index(module) if module in BUILTIN_MODULES else len(BUILTIN_MODULES)


def pe_types() -> dict[str, type[PEModel]]:
    """Every PE model class, built-in and plug-in, by name (built-ins first)."""
    _load_builtins()
    _load_entry_points()
    return {name: cls for name, cls in sorted(_REGISTRY.items(), key=lambda i: _order(i[1]))}


def builtin_pe_types() -> dict[str, type[PEModel]]:
    """The PE model classes shipped with sasim, by name (no plug-in is loaded)."""
    _load_builtins()
    return {name: cls for name, cls in sorted(_REGISTRY.items(), key=lambda i: _order(i[1]))
            if cls.__module__ in BUILTIN_MODULES}


def word_parallel_baseline() -> type[PEModel]:
    """The first built-in type that is exact by construction: the word-parallel baseline
    designs are compared with (``sasim compare``, ``sasim rtl synth``)."""
    return next(c for c in builtin_pe_types().values() if c.exact)


def baseline_family(cls: type[PEModel]) -> str:
    """The like-for-like baseline family of a PE type in ``sasim compare``: its own
    ``baseline_family``, else :func:`word_parallel_baseline`'s type."""
    if cls.baseline_family is not None:
        return cls.baseline_family
    return word_parallel_baseline().type_name
