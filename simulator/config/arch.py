"""The architecture schema: array, processing element, timing convention and memory system."""

from __future__ import annotations

import configparser
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from simulator import shipped
from simulator.config.accumulator import AccumulatorConfig
from simulator.config.dram import IDEAL, DramConfig, dram_spec
from simulator.config.files import apply_overrides, parse_override, read_text, read_yaml_mapping
from simulator.config.schema import (MAX_EXACT_INT, MIN_BANDWIDTH, at_least, build,
                                     did_you_mean, in_range, option, positive)
from simulator.config.multicore import MulticoreConfig
from simulator.config.zap import ZapConfig
from simulator.errors import ConfigError, PluginError, shorten
from simulator.records import record

__all__ = [
    "SCHEMA_VERSION",
    "default_pe_type",
    "ArrayConfig",
    "TimingConfig",
    "EnergyConfig",
    "MemoryConfig",
    "prefetch_mode",
    "IDEAL_MEMORY",
    "ideal_memory",
    "ActivationCodecConfig",
    "CompressionConfig",
    "VectorConfig",
    "VectorPrimitives",
    "VECTOR_PRIMITIVES",
    "DEFAULT_RECIPES",
    "INTEGER_RECIPES",
    "PEOptions",
    "ArchConfig",
    "load_arch",
    "read_arch_mapping",
    "apply_arch_overrides",
    "arch_from_mapping",
    "scalesim_cfg_to_mapping",
]

SCHEMA_VERSION = 1
#: Bounds on sizes (docs/config-reference.md, "Input limits").
MAX_ARRAY_SIDE = 1 << 16
MAX_BUFFER_KIB = float(1 << 32)
MAX_LATENCY_CYCLES = 1 << 20


def _supported_version(value: int) -> str | None:
    return None if value == SCHEMA_VERSION else f"schema_version {SCHEMA_VERSION}"


@record
class ArrayConfig:
    """The systolic array: its shape, dataflow and clock."""

    rows: int = option(16, doc="PE rows of the array (rows map GEMM M in the OS dataflow).",
                       check=in_range(1, MAX_ARRAY_SIDE))
    cols: int = option(16, doc="PE columns of the array (columns map output channels).",
                       check=in_range(1, MAX_ARRAY_SIDE))
    dataflow: Literal["os", "ws", "is"] = option(
        "os", doc="Dataflow: output-, weight- or input-stationary.")
    clock_mhz: float = option(1000.0, doc="Clock frequency in MHz (turns cycles into time).",
                              check=in_range(1e-6, 1e6))


@record
class TimingConfig:
    """How cycles are counted."""

    convention: Literal["native", "scalesim"] = option(
        "native",
        doc="'scalesim' reproduces SCALE-Sim v3's COMPUTE_REPORT exactly (OS folds charge "
            "T+rows+cols-2, total minus one); 'native' is what the register-level array does "
            "(OS folds also drain their outputs: T+2*rows+cols-2).")


LoopOrder = Literal["column_folds_outer", "row_folds_outer", "auto"]
PrefetchMode = Literal["none", "weights", "all"]


@record
class ActivationCodecConfig:
    """Feature-map transform coding of the activations between layers and DRAM
    (docs/transform-coding.md): per-layer PCA, a b-bit uniform quantiser, a static Huffman
    code. Off while ``bits`` is null."""

    bits: int | None = option(
        None, doc="Quantiser bits b of the projected activations (1..16); null = no codec.",
        check=in_range(1, 16))
    tensor: Literal["layer_input", "pre_activation"] = option(
        "layer_input", doc="What is coded: layer_input, the tensor each conv/linear layer "
                           "loads (after ReLU, pooling and adds; sasim run and sasim "
                           "accuracy); pre_activation, each conv/linear layer's output after "
                           "its folded BatchNorm, before ReLU, as the paper's code does "
                           "(sasim accuracy only).")
    transform: Literal["pca", "none"] = option(
        "pca", doc="pca: per-layer principal components of the channel vector of each pixel; "
                   "none: entropy coding of the quantised activations alone.")
    wide_layers: Literal["untransformed", "refuse"] = option(
        "untransformed", doc="A layer whose input has more channels than a PCA is calibrated "
                             "over (4,096; e.g. a fully connected layer's flattened input): "
                             "untransformed, coded with transform none (the quantiser and "
                             "Huffman code alone; the layer report says so); refuse, an "
                             "error naming the layer.")
    energy_fraction: float = option(
        1.0, doc="Keep the leading components that hold this fraction of the calibration "
                 "variance (1.0: all); the others are not coded.", check=in_range(1e-6, 1.0))
    basis_bits: int | None = option(
        8, doc="Bits of each basis entry (integer arithmetic, exact); null = a float64 basis.",
        check=in_range(2, 8))
    calibration_fraction: float = option(
        0.5, doc="sasim run: the leading fraction of a layer's images (at least one) that "
                 "calibrate its codec; all of them are coded.", check=in_range(1e-6, 1.0))
    inverse: Literal["array", "side_unit"] = option(
        "array", doc="Where the inverse transform (a 1x1 GEMM, C x k MACs per pixel) runs: "
                     "on the array before the layer, or on a side unit beside the decoder.")
    side_unit_macs_per_cycle: int = option(
        64, doc="MACs per cycle of the side unit (inverse: side_unit).",
        check=in_range(1, 1 << 24))
    lanes: int = option(16, doc="Coder lanes (each a Huffman encoder and decoder); component "
                                "j goes to lane j mod lanes.", check=in_range(1, 1 << 16))
    symbols_per_cycle: float = option(1.0, doc="Symbols one lane codes per cycle.",
                                      check=in_range(1e-3, 1e3))
    word_bits: int = option(16, doc="Bits of the words each lane packs its codes into.",
                            check=in_range(8, 32))
    burst_bytes: int = option(32, doc="DRAM burst: a layer's coded stream is padded to whole "
                                      "bursts.", check=in_range(1, 1 << 16))


@record
class CompressionConfig:
    """Compressed operands in DRAM and the buffers (docs/memory-model.md, "Compressed
    operands"). Off by default."""

    weights: bool = option(
        False, doc="Weights of a PE that stores them compressed (SWIS: masks, signs and "
                   "shared positions; SPARQ pairing stc: 2 of 4 values with 2-bit indices) "
                   "move and sit in the filter buffer at their stored size.")
    activations: Literal["none", "bitmask", "rle"] = option(
        "none", doc="Zero compression of layer inputs (DRAM and the ifmap buffer; outputs "
                    "are compressed on their way to DRAM): bitmask (1 bit per value + the "
                    "non-zero values) or rle (zero-run, value entries packed into words).")
    run_bits: int = option(4, doc="rle: bits of an entry's zero-run count.",
                           check=in_range(1, 16))
    word_bits: int = option(64, doc="rle: bits of the words entries are packed into (an "
                                    "entry never straddles two words).",
                            check=in_range(8, 1024))
    burst_bytes: int = option(32, doc="bitmask and rle: a layer's compressed stream is "
                                      "padded to whole DRAM bursts.",
                              check=in_range(1, 1 << 16))


@record
class MemoryConfig:
    """On-chip buffers and the DRAM channel (docs/memory-model.md).

    The defaults are unbounded buffers and bandwidth: the memory never stalls the array, so
    the cycles are the array's alone.
    """

    ifmap_kib: float | None = option(
        None, doc="Input-activation buffer size in KiB (1024 bytes); null = unbounded.",
        check=in_range(1 / 1024, MAX_BUFFER_KIB))
    filter_kib: float | None = option(
        None, doc="Weight buffer size in KiB; null = unbounded.",
        check=in_range(1 / 1024, MAX_BUFFER_KIB))
    ofmap_kib: float | None = option(
        None, doc="Output buffer size in KiB (outputs and partial sums); null = unbounded.",
        check=in_range(1 / 1024, MAX_BUFFER_KIB))
    double_buffering: bool = option(
        True, doc="Load the next fold's (or chunk's) operands while the current one computes; "
                  "false: loads and write-backs wait for the array to finish with a buffer.")
    buffer_banks: int = option(
        1, doc="SRAM banks each buffer is made of (docs/memory-model.md, \"The shipped "
               "chips\"): an access reads or writes one bank, so its energy is the SRAM law's "
               "at the bank's size (size / banks); the area is the whole buffer's. 2: the "
               "ping-pong halves of a double-buffered buffer of single-ported SRAMs.",
        check=in_range(1, 1024))
    dram_bandwidth_bytes_per_cycle: float | None = option(
        None, doc="Bytes per cycle of the one DRAM channel shared by loads and write-backs; "
                  "null = unbounded (transfers take no time).",
        check=at_least(MIN_BANDWIDTH))
    dram_latency_cycles: int = option(
        0, doc="Cycles from the end of a load's transfer until its data is usable.",
        check=in_range(0, MAX_LATENCY_CYCLES))
    loop_order: LoopOrder = option(
        "column_folds_outer",
        doc="Fold loop order: column_folds_outer (SCALE-Sim's order: the column fold's tile "
            "stays while the row folds stream past it), row_folds_outer, or auto (per layer, "
            "the order that moves fewer DRAM bytes).")
    output_bits: int | None = option(
        None, doc="Bits of one output word written to DRAM; null = the layer's activation_bits "
                  "(outputs are requantised on their way out).", check=in_range(1, 64))
    partial_sum_bits: int = option(
        32, doc="Bits of one partial sum held in the output buffer or spilled to DRAM "
                "(WS/IS accumulate over row folds).", check=in_range(1, 64))
    activation_codec: ActivationCodecConfig = option(
        default_factory=ActivationCodecConfig,
        doc="Transform coding of activations on their way to and from DRAM.")
    dram: str | DramConfig = option(
        IDEAL, doc="The DRAM behind the channel (docs/memory-model.md, \"DRAM timing and "
                   "energy\"): ideal (the fixed bandwidth and latency above), a preset "
                   "(ddr4_3200, lpddr5_6400, hbm2e), or a mapping with `preset` and "
                   "overrides of its values (the memory.dram.* keys).")
    compression: CompressionConfig = option(
        default_factory=CompressionConfig,
        doc="Compressed weights and zero-compressed activations in DRAM and the buffers.")
    prefetch: PrefetchMode | None = option(
        None, doc="Cross-layer prefetch (docs/memory-model.md, \"Cross-layer prefetch\"): "
                  "while a layer computes, the next layer's first loads go into free buffer "
                  "space. none: each layer starts alone with empty buffers; weights: only "
                  "the next layer's weight bytes load early (its inputs wait for this "
                  "layer's last write-back); all: weights and input tiles load early "
                  "(assumes the inputs are ready: an upper bound). null: all in the native "
                  "timing convention, none in the scalesim one.")

    def __post_init__(self) -> None:
        if self.compression.activations != "none" and self.activation_codec.bits is not None:
            raise ValueError("memory.compression.activations and memory.activation_codec are "
                             "exclusive (both code the activations); set one of them")
        if self.dram == IDEAL:
            return
        try:
            spec = dram_spec(self.dram, "dram")  # impossible timings: one line naming the key
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if spec is None:  # {preset: ideal} with nothing to override is the ideal channel
            object.__setattr__(self, "dram", IDEAL)
            return
        if self.dram_bandwidth_bytes_per_cycle is not None:
            raise ValueError("dram_bandwidth_bytes_per_cycle applies to the ideal channel "
                             "only; with a DRAM preset the device sets the bandwidth "
                             "(set it to null)")


#: The vector unit's primitive operations (docs/transformers.md, "The vector unit").
VECTOR_PRIMITIVES = ("add", "mul", "max", "shift", "exp", "div", "rsqrt")

#: Per-element recipes of the vector ops: primitive -> count per element (pooling: per
#: window element; rotary: per element, a pair is two), and the per-row extras under the key
#: ``row_<primitive>`` (once per row: a norm's reciprocal square root). Derivations and
#: sources are in docs/transformers.md; ``vector.recipes`` overrides them per op.
DEFAULT_RECIPES: dict[str, dict[str, float]] = {
    # online softmax: running max and rescaled sum, then exp(x - m) / d: 3 exp + 7 ops
    "softmax": {"exp": 3, "max": 1, "add": 4, "mul": 1, "div": 1},
    # mean, variance (sub, square, sum), normalise (sub, scale), affine (mul, add): 8 ops
    "layernorm": {"add": 5, "mul": 3, "row_rsqrt": 1},
    # square, sum, scale by the reciprocal RMS, gain: 4 ops, ~5 with the row's rsqrt
    "rmsnorm": {"add": 1, "mul": 3, "row_rsqrt": 1},
    # tanh GELU: x^3 (2 mul), 0.044715 x^3 + x, *sqrt(2/pi), tanh by exp: 9 ops + exp
    "gelu": {"mul": 5, "add": 3, "div": 1, "exp": 1},
    # x / (1 + exp(-x)): exp + 3
    "silu": {"exp": 1, "mul": 1, "add": 1, "div": 1},
    "relu": {"max": 1},
    "add": {"add": 1},
    "mul": {"mul": 1},
    # (x0 cos - x1 sin, x0 sin + x1 cos): 6 ops per pair, 3 per element
    "rotary": {"mul": 2, "add": 1},
    "maxpool": {"max": 1},
    "avgpool": {"add": 1},
    "global_avgpool": {"add": 1},
}
#: I-BERT's integer-only variants (Kim et al., ICML 2021): i-exp (a second-order polynomial
#: after a shift-based range reduction), i-GELU (i-erf polynomial), integer LayerNorm (an
#: integer square root by Newton iterations per row); the ops without one are unchanged.
INTEGER_RECIPES: dict[str, dict[str, float]] = {
    "softmax": {"max": 1, "add": 6, "mul": 4, "shift": 2, "div": 1},
    "layernorm": {"add": 5, "mul": 3, "div": 1, "row_div": 4, "row_add": 4, "row_shift": 4},
    "rmsnorm": {"add": 1, "mul": 2, "div": 1, "row_div": 4, "row_add": 4, "row_shift": 4},
    "gelu": {"max": 2, "add": 3, "mul": 4, "shift": 1},
    "silu": {"max": 2, "add": 4, "mul": 5, "shift": 1},
}


@record
class VectorPrimitives:
    """Cycles one lane takes per primitive, in vector-unit cycles (docs/transformers.md)."""

    add: int = option(1, doc="Add or subtract.", check=in_range(1, 1 << 16))
    mul: int = option(1, doc="Multiply.", check=in_range(1, 1 << 16))
    max: int = option(1, doc="Maximum or compare.", check=in_range(1, 1 << 16))
    shift: int = option(1, doc="Shift (integer variants).", check=in_range(1, 1 << 16))
    exp: int = option(4, doc="Exponential (range reduction and a degree-3 polynomial).",
                      check=in_range(1, 1 << 16))
    div: int = option(8, doc="Divide (reciprocal seed and two Newton steps).",
                      check=in_range(1, 1 << 16))
    rsqrt: int = option(8, doc="Reciprocal square root (seed and two Newton steps).",
                        check=in_range(1, 1 << 16))


def _recipe_problem(value: Mapping[str, Mapping[str, float]]) -> str | None:
    for op, recipe in value.items():
        if op not in DEFAULT_RECIPES:
            return (f"recipes of vector ops ({', '.join(DEFAULT_RECIPES)}), not {op!r}"
                    f"{did_you_mean(op, DEFAULT_RECIPES)}")
        for key, count in recipe.items():
            if key.removeprefix("row_") not in VECTOR_PRIMITIVES:
                return (f"primitives {', '.join(VECTOR_PRIMITIVES)} (or row_<primitive>) in "
                        f"{op}, not {key!r}")
            if not 0 <= count <= 1 << 20:
                return f"counts from 0 to {1 << 20:,} in {op}.{key}, not {count}"
    return None


@record
class VectorConfig:
    """The vector unit beside the array: softmax, norms, activations, residual adds, pooling
    (docs/transformers.md)."""

    lanes: int = option(16, doc="Lanes: elements processed in parallel per vector cycle.",
                        check=in_range(1, MAX_ARRAY_SIDE * MAX_ARRAY_SIDE))
    clock_ratio: float = option(1.0, doc="Vector clock / array clock (2: two vector cycles "
                                         "per array cycle).", check=in_range(1e-3, 1e3))
    cycles: VectorPrimitives = option(default_factory=VectorPrimitives,
                                      doc="Cycles per primitive.")
    recipes: Mapping[str, Mapping[str, float]] = option(
        default_factory=dict, doc="Per-op recipe overrides: op -> {primitive: count per "
                                  "element, row_<primitive>: count per row}; the defaults "
                                  "are in docs/transformers.md.", check=_recipe_problem)
    integer: bool = option(False, doc="Integer-only variants of softmax, norms, GELU and "
                                      "SiLU (I-BERT), for every op.")
    integer_ops: tuple[str, ...] = option(
        (), doc="Ops that use their integer-only variant (when integer is false).",
        check=lambda v: next((f"ops with an integer variant ({', '.join(INTEGER_RECIPES)}), "
                              f"not {o!r}" for o in v if o not in INTEGER_RECIPES), None))
    overlap: bool = option(False, doc="A vector layer runs beside the next array layer "
                                      "instead of between it and the one before (the report "
                                      "shows the cycles hidden).")

    def recipe(self, op: str) -> dict[str, float]:
        """The recipe of ``op``: its override, else its integer variant when chosen, else the
        default."""
        if op in self.recipes:
            return dict(self.recipes[op])
        if op in INTEGER_RECIPES and (self.integer or op in self.integer_ops):
            return dict(INTEGER_RECIPES[op])
        return dict(DEFAULT_RECIPES[op])


def _tech_table(value: str) -> str | None:
    """``energy.tech`` names a file that exists (its contents are checked when a run loads
    it, with the file's own name in the message)."""
    if value.strip() and shipped.path_exists(shipped.resolve(value, shipped.TECH_DIR,
                                                             (".yaml",))):
        return None
    return ("a technology table shipped in arch_configs/tech/ (by name) or the path of an "
            "existing YAML table")


@record
class EnergyConfig:
    """How energy and area are priced (docs/energy-model.md)."""

    tech: str = option("generic_45nm", doc="Technology table: a table shipped in "
                                           "arch_configs/tech/ by name, or a path to a YAML "
                                           "table (a relative path is read from the "
                                           "working directory, like --arch and --workload).",
                       check=_tech_table)


@record
class PEOptions:
    """Base class of every PE type's options; each PE module subclasses it."""

    #: Empty here: an arch without ``pe.type`` (or a SCALE-Sim ``.cfg``) gets the registry's
    #: default type (:func:`default_pe_type`); each PE type's options carry its own name.
    type: str = option("", doc="PE type (see `sasim list`); without one, the exact "
                               "word-parallel baseline, the first type `sasim list` shows.")
    accumulator: AccumulatorConfig = option(
        default_factory=AccumulatorConfig,
        doc="The number format of every PE's running sum (docs/accumulators.md).")
    accumulator_layers: Mapping[str, AccumulatorConfig] = option(
        default_factory=dict, doc="Per-layer accumulator formats replacing `accumulator`, by "
                                  "layer name (docs/accumulators.md).")


def prefetch_mode(prefetch: PrefetchMode | None, convention: str,
                  double_buffering: bool) -> PrefetchMode:
    """The cross-layer prefetch a run uses (docs/memory-model.md, "Cross-layer prefetch"):
    ``memory.prefetch``, or when it is null ``all`` in the native timing convention and
    ``none`` in SCALE-Sim's (whose validated numbers have each layer start alone); ``none``
    without double buffering (no load overlaps compute)."""
    if not double_buffering:
        return "none"
    if prefetch is not None:
        return prefetch
    return "none" if convention == "scalesim" else "all"


@record
class ArchConfig:
    """A whole accelerator configuration (one arch YAML file)."""

    schema_version: int = option(SCHEMA_VERSION, doc="Version of this file format.",
                                 check=_supported_version)
    name: str = option("", doc="A short name used in reports (defaults to the file name).")
    description: str = option("", doc="Free text.")
    array: ArrayConfig = option(default_factory=ArrayConfig, doc="The array.")
    timing: TimingConfig = option(default_factory=TimingConfig, doc="Cycle counting.")
    memory: MemoryConfig = option(default_factory=MemoryConfig,
                                  doc="On-chip buffers and DRAM; `ideal`: these defaults, "
                                      "unbounded (docs/memory-model.md, \"Ideal memory\").")
    pe: PEOptions = option(default_factory=PEOptions, doc="The processing element.")
    energy: EnergyConfig = option(default_factory=EnergyConfig, doc="Energy and area pricing.")
    vector: VectorConfig = option(default_factory=VectorConfig,
                                  doc="The vector unit (non-GEMM ops of transformers).")
    zap: ZapConfig = option(default_factory=ZapConfig,
                            doc="Zero-valued activation prediction (docs/zap.md).")
    multicore: MulticoreConfig = option(
        default_factory=MulticoreConfig,
        doc="Several identical arrays sharing the DRAM (docs/memory-model.md, \"Multi-core\").")


def arch_from_mapping(data: Mapping[str, Any], source: str,
                      pe_types: Mapping[str, type[PEOptions]],
                      overrides: Sequence[str] = (), *,
                      name_overrides: bool = True) -> ArchConfig:
    """Validate a raw arch mapping read from ``source`` (a file name, for messages), with
    ``overrides`` applied first; the ``pe`` section is checked against ``pe_types``.

    A message names the file and, when there are overrides, all of them: the key it names may
    have come from either (``name_overrides=False``: a message starts at ``arch.``, for a
    caller that names the file and the overrides itself).
    """
    where = f"{source}: arch"
    if overrides:
        try:
            data = apply_arch_overrides(data, overrides, pe_types)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if name_overrides else str(exc)) from None
        # at most three overrides named: the key and the problem must fit the one line
        shown = " ".join(f"--set {shorten(o, 80)[1:-1]}" for o in overrides[:3])
        if len(overrides) > 3:
            shown += f" (and {len(overrides) - 3} more --set)"
        where = f"{source} with {shown}: arch" if name_overrides else "arch"
    return _arch_from_mapping(dict(data), where, pe_types)


def _arch_from_mapping(data: dict[str, Any], where: str,
                       pe_types: Mapping[str, type[PEOptions]]) -> ArchConfig:
    if "schema_version" not in data:
        raise ConfigError(f"{where}.schema_version: required key is missing "
                          f"(this version of sasim reads schema_version {SCHEMA_VERSION})")
    if "memory" in data:
        data["memory"] = ideal_memory(data["memory"])
    raw_pe = data.pop("pe", None)
    arch = build(ArchConfig, data, where)
    if raw_pe is None:
        raw_pe = {}
    if not isinstance(raw_pe, Mapping):
        raise ConfigError(f"{where}.pe: expected a mapping, got {shorten(raw_pe)}")
    pe_type = raw_pe.get("type", default_pe_type(pe_types))
    if not isinstance(pe_type, str):
        raise ConfigError(f"{where}.pe.type: expected a string (a PE type name), "
                          f"got {shorten(pe_type)}")
    try:
        known = pe_type in pe_types
    except PluginError as exc:  # a broken plug-in of that name (docs/extending.md)
        raise PluginError(f"{where}.pe.type: {exc}") from None
    if not known:
        broken = sorted(getattr(pe_types, "broken", {}))
        hint = (f" (plug-ins that failed to load: {', '.join(broken)}; sasim list says why)"
                if broken else "")
        raise ConfigError(f"{where}.pe.type: unknown PE type {shorten(pe_type)}"
                          f"{did_you_mean(pe_type, pe_types)}{hint}")
    pe = build(pe_types[pe_type], {**raw_pe, "type": pe_type}, f"{where}.pe")
    return dataclasses.replace(arch, pe=pe)


#: ``memory: ideal``: the unbounded memory of the schema's defaults (docs/memory-model.md,
#: "Ideal memory").
IDEAL_MEMORY = "ideal"


def ideal_memory(value: Any) -> Any:
    """``value`` of an arch's ``memory`` key with ``ideal`` read as the schema's defaults
    (unbounded buffers, the ideal DRAM channel): an empty mapping; other values unchanged."""
    return {} if value == IDEAL_MEMORY else value


def default_pe_type(pe_types: Mapping[str, type[PEOptions]]) -> str:
    """The PE type of an arch that names none: the mapping's ``default`` when it has one
    (the registry's), else its first type."""
    default = getattr(pe_types, "default", None)
    return default if default is not None else next(iter(pe_types))


_CFG_KEYS = {
    "arrayheight": ("array", "rows"), "arraywidth": ("array", "cols"),
    "dataflow": ("array", "dataflow"),
    "ifmapsramszkb": ("memory", "ifmap_kib"), "filtersramszkb": ("memory", "filter_kib"),
    "ofmapsramszkb": ("memory", "ofmap_kib"), "bandwidth": ("memory", "bandwidth"),
    "ifmapoffset": None, "filteroffset": None, "ofmapoffset": None,
    "memorybanks": None, "readrequestbuffer": None, "writerequestbuffer": None,
}


def _cfg_number(value: str, where: str, *, positive_int: bool) -> float:
    text = value.strip()
    try:
        number = float(text) if len(text) <= 64 else math.inf
    except ValueError:
        raise ConfigError(f"{where}: expected a number, got {shorten(value)}") from None
    if not math.isfinite(number) or abs(number) > MAX_EXACT_INT:
        raise ConfigError(f"{where}: expected a finite number of at most {MAX_EXACT_INT:,}, "
                          f"got {shorten(value)}")
    if positive_int and (not number.is_integer() or number <= 0):
        raise ConfigError(f"{where}: expected a positive integer, got {shorten(value)}")
    if number < 0:
        raise ConfigError(f"{where}: expected a non-negative number, got {shorten(value)}")
    return number


def scalesim_cfg_to_mapping(path: Path) -> dict[str, Any]:
    """Read a SCALE-Sim ``.cfg`` into an arch mapping in the SCALE-Sim timing convention.

    The array shape and dataflow set ``array``; the SRAM sizes (SCALE-Sim's kB are KiB) set
    the ``memory`` buffers, with SCALE-Sim's 1-byte words and double buffering. In
    ``InterfaceBandwidth: CALC`` mode (the default; SCALE-Sim sizes the interface so that the
    array never stalls) the DRAM bandwidth is unbounded; in ``USER`` mode it is the first
    ``Bandwidth`` value in words (bytes) per cycle. Offsets and bank settings are checked to be
    numbers and otherwise unused.
    """
    # No interpolation: a '%' in a value is just a character (SCALE-Sim reads it that way).
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep SCALE-Sim's key spelling for messages
    text = read_text(path, "a SCALE-Sim config").removeprefix("\ufeff")  # a BOM (Notepad)
    try:
        parser.read_string(text, str(path))
    except configparser.Error as exc:
        raise ConfigError(f"{path}: malformed SCALE-Sim config: "
                          f"{shorten(exc.message.splitlines()[0])}") from None
    section = "architecture_presets"
    if not parser.has_section(section):
        raise ConfigError(f"{path}: missing section [{section}]")
    out: dict[str, dict[str, Any]] = {"array": {}, "memory": {}}
    bandwidth: list[float] = []
    for key, value in parser.items(section):
        if key.lower() not in _CFG_KEYS:
            continue  # SCALE-Sim itself ignores keys it does not know
        target = _CFG_KEYS[key.lower()]
        where = f"{path}: [{section}] {key}"
        if target is None:
            _cfg_number(value, where, positive_int=False)
            continue
        group, name = target
        if name == "dataflow":
            flow = value.strip().lower()
            if flow not in ("os", "ws", "is"):
                raise ConfigError(f"{where}: expected one of os, ws, is, got {shorten(value)}")
            out[group][name] = flow
        elif name == "bandwidth":
            bandwidth = [_cfg_number(v, where, positive_int=True) for v in value.split(",")]
        elif group == "memory":
            out[group][name] = _cfg_number(value, where, positive_int=True)
        else:
            out[group][name] = int(_cfg_number(value, where, positive_int=True))
    for needed, key in (("rows", "ArrayHeight"), ("cols", "ArrayWidth"),
                        ("dataflow", "Dataflow")):
        if needed not in out["array"]:
            raise ConfigError(f"{path}: [{section}] {key}: required key is missing")
    mode = parser.get("run_presets", "InterfaceBandwidth", fallback="CALC").strip().upper()
    if mode not in ("CALC", "USER"):
        raise ConfigError(f"{path}: [run_presets] InterfaceBandwidth: expected CALC or USER, "
                          f"got {shorten(mode)}")
    if mode == "USER":
        if not bandwidth:
            raise ConfigError(f"{path}: [{section}] Bandwidth: required in USER bandwidth mode")
        out["memory"]["dram_bandwidth_bytes_per_cycle"] = bandwidth[0]
    # SCALE-Sim's words are one byte, outputs and partial sums included.
    out["memory"].update(double_buffering=True, output_bits=8, partial_sum_bits=8)
    name = parser.get("general", "run_name", fallback=path.stem).strip()
    return {"schema_version": SCHEMA_VERSION, "name": name, "array": out["array"],
            "timing": {"convention": "scalesim"}, "memory": out["memory"]}


def _usable(pe_type: str, pe_types: Mapping[str, type[PEOptions]]) -> bool:
    """Whether ``pe_type`` names a type that loads (an unknown type or a broken plug-in is
    reported, with the file and key, when the ``pe`` section is validated)."""
    try:
        return pe_type in pe_types
    except PluginError:
        return False


def _switch_pe_type(base: Mapping[str, Any], data: dict[str, Any], given: set[str],
                    pe_types: Mapping[str, type[PEOptions]]) -> dict[str, Any]:
    """When overrides change ``pe.type``, drop the base's type-specific ``pe`` keys (the
    accumulator, every type's, stays): the new type starts
    from its own defaults, since a key of the same name may mean something else there
    (SPARQ's ``rounding: round`` is not a SySMT rounding) (docs/config-reference.md,
    "Overrides"). ``given`` (the ``pe`` keys the overrides set) are kept, so a wrong one is
    still reported."""
    old_pe, new_pe = base.get("pe"), data.get("pe")
    if not isinstance(old_pe, Mapping) or not isinstance(new_pe, Mapping):
        return data
    default = default_pe_type(pe_types)
    old_type, new_type = old_pe.get("type", default), new_pe.get("type", default)
    if not isinstance(new_type, str) or new_type == old_type or not _usable(new_type, pe_types):
        return data
    # The accumulator is every type's (docs/accumulators.md): it stays.
    kept = {k: v for k, v in new_pe.items()
            if k in ("type", "accumulator", "accumulator_layers") or k in given}
    return {**data, "pe": kept}


def _dram_overridable(data: Mapping[str, Any],
                      parsed: Sequence[tuple[tuple[str, ...], Any]]) -> Mapping[str, Any]:
    """``memory.dram`` given as a preset's name, and an override of one of its values
    (``--set memory.dram.channels=4``): the name becomes the mapping that says the same
    (``{preset: NAME}``), which the override then extends."""
    memory = data.get("memory")
    dram = memory.get("dram") if isinstance(memory, Mapping) else None
    sub_key = any(len(path) > 2 and path[:2] == ("memory", "dram") for path, _ in parsed)
    set_whole = any(path in (("memory",), ("memory", "dram")) for path, _ in parsed)
    if not sub_key or set_whole or not isinstance(dram, str) or dram == IDEAL:
        return data
    return {**data, "memory": {**memory, "dram": {"preset": dram}}}


def apply_arch_overrides(data: Mapping[str, Any], overrides: Sequence[str],
                         pe_types: Mapping[str, type[PEOptions]]) -> dict[str, Any]:
    """Apply ``"dotted.key=value"`` overrides to a raw arch mapping, all together.

    Nothing is validated here: the result is validated once, so overrides that must change
    together (``pe.window_bits`` and ``pe.options``) are never checked one at a time. When
    the overrides change ``pe.type``, the base's ``pe`` keys are dropped (the new type starts
    from its defaults).
    """
    parsed = [(path, ideal_memory(value) if path == ("memory",) else value)
              for path, value in (parse_override(text) for text in overrides)]
    out = apply_overrides(_dram_overridable(data, parsed), parsed)
    if any(path == ("pe",) for path, _ in parsed):
        return out  # a whole new pe mapping: nothing of the old one is left to drop
    given = {path[1] for path, _ in parsed if len(path) > 1 and path[0] == "pe"}
    out = _switch_pe_type(data, out, given, pe_types)
    unset = {path[1] for path, value in parsed
             if len(path) == 2 and path[0] == "pe" and value is None}
    return _drop_unknown_nulls(out, unset, pe_types)


def _drop_unknown_nulls(data: dict[str, Any], unset: set[str],
                        pe_types: Mapping[str, type[PEOptions]]) -> dict[str, Any]:
    """Leave out the ``pe`` keys an override set to null that the PE type does not have: a
    sweep's ``zip`` may switch ``pe.type`` with keys of one type (``pe.threads: [2, null]``
    beside ``pe.type: [sysmt, sparq]``) (docs/config-reference.md, "Overrides")."""
    pe = data.get("pe")
    if not unset or not isinstance(pe, Mapping):
        return data
    pe_type = pe.get("type", default_pe_type(pe_types))
    if not isinstance(pe_type, str) or not _usable(pe_type, pe_types):
        return data  # the unknown type is what gets reported
    known = {f.name for f in dataclasses.fields(pe_types[pe_type])}
    drop = {k for k in unset if k not in known and pe.get(k, 0) is None}
    return {**data, "pe": {k: v for k, v in pe.items() if k not in drop}} if drop else data


def load_arch(path: str | Path, overrides: Sequence[str],
              pe_types: Mapping[str, type[PEOptions]]) -> ArchConfig:
    """Load an arch YAML (or SCALE-Sim ``.cfg``), apply ``--set`` overrides, and validate.

    Parameters
    ----------
    path : path to a ``.yaml``/``.yml`` arch file or a SCALE-Sim ``.cfg``.
    overrides : ``"dotted.key=value"`` strings, applied in order and validated together
        (:func:`apply_arch_overrides`).
    pe_types : the PE registry's option schemas, by type name.
    """
    path = Path(path)
    return arch_from_mapping(read_arch_mapping(path), str(path), pe_types, overrides)


def read_arch_mapping(path: Path) -> dict[str, Any]:
    """The raw mapping of an arch YAML or SCALE-Sim ``.cfg`` (``name`` defaults to the stem)."""
    if path.suffix.lower() == ".cfg":
        data = scalesim_cfg_to_mapping(path)
    else:
        data = read_yaml_mapping(path)
    data.setdefault("name", path.stem)
    return data
