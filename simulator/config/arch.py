"""The architecture schema: array, processing element, timing convention and memory system."""

from __future__ import annotations

import configparser
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from simulator.config.files import apply_override, parse_override, read_yaml_mapping
from simulator.config.schema import build, did_you_mean, non_negative, option, positive
from simulator.errors import ConfigError

__all__ = [
    "SCHEMA_VERSION",
    "ArrayConfig",
    "TimingConfig",
    "EnergyConfig",
    "MemoryConfig",
    "PEOptions",
    "ArchConfig",
    "load_arch",
    "arch_from_mapping",
    "scalesim_cfg_to_mapping",
]

SCHEMA_VERSION = 1


def _supported_version(value: int) -> str | None:
    return None if value == SCHEMA_VERSION else f"schema_version {SCHEMA_VERSION}"


@dataclasses.dataclass(frozen=True)
class ArrayConfig:
    """The systolic array: its shape, dataflow and clock."""

    rows: int = option(16, doc="PE rows of the array (rows map GEMM M in the OS dataflow).",
                       check=positive)
    cols: int = option(16, doc="PE columns of the array (columns map output channels).",
                       check=positive)
    dataflow: Literal["os", "ws", "is"] = option(
        "os", doc="Dataflow: output-, weight- or input-stationary.")
    clock_mhz: float = option(1000.0, doc="Clock frequency in MHz (turns cycles into time).",
                              check=positive)


@dataclasses.dataclass(frozen=True)
class TimingConfig:
    """How cycles are counted."""

    convention: Literal["native", "scalesim"] = option(
        "native",
        doc="'scalesim' reproduces SCALE-Sim v3's COMPUTE_REPORT exactly (OS folds charge "
            "T+rows+cols-2, total minus one); 'native' is what the register-level array does "
            "(OS folds also drain their outputs: T+2*rows+cols-2).")


LoopOrder = Literal["column_folds_outer", "row_folds_outer", "auto"]


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    """On-chip buffers and the DRAM channel (docs/memory-model.md).

    The defaults are unbounded buffers and bandwidth: the memory never stalls the array, so
    the cycles are the array's alone.
    """

    ifmap_kib: float | None = option(
        None, doc="Input-activation buffer size in KiB (1024 bytes); null = unbounded.",
        check=positive)
    filter_kib: float | None = option(
        None, doc="Weight buffer size in KiB; null = unbounded.", check=positive)
    ofmap_kib: float | None = option(
        None, doc="Output buffer size in KiB (outputs and partial sums); null = unbounded.",
        check=positive)
    double_buffering: bool = option(
        True, doc="Load the next fold's (or chunk's) operands while the current one computes; "
                  "false: loads and write-backs wait for the array to finish with a buffer.")
    dram_bandwidth_bytes_per_cycle: float | None = option(
        None, doc="Bytes per cycle of the one DRAM channel shared by loads and write-backs; "
                  "null = unbounded (transfers take no time).", check=positive)
    dram_latency_cycles: int = option(
        0, doc="Cycles from the end of a load's transfer until its data is usable.",
        check=non_negative)
    loop_order: LoopOrder = option(
        "column_folds_outer",
        doc="Fold loop order: column_folds_outer (SCALE-Sim's order: the column fold's tile "
            "stays while the row folds stream past it), row_folds_outer, or auto (per layer, "
            "the order that moves fewer DRAM bytes).")
    output_bits: int | None = option(
        None, doc="Bits of one output word written to DRAM; null = the layer's activation_bits "
                  "(outputs are requantised on their way out).", check=positive)
    partial_sum_bits: int = option(
        32, doc="Bits of one partial sum held in the output buffer or spilled to DRAM "
                "(WS/IS accumulate over row folds).", check=positive)


@dataclasses.dataclass(frozen=True)
class EnergyConfig:
    """How energy and area are priced (docs/energy-model.md)."""

    tech: str = option("generic_45nm", doc="Technology table: a table shipped in "
                                           "arch_configs/tech/ by name, or a path to a YAML "
                                           "table.")


@dataclasses.dataclass(frozen=True)
class PEOptions:
    """Base class of every PE type's options; each PE module subclasses it."""

    #: The schema's one default PE type (an arch without ``pe.type``, a SCALE-Sim ``.cfg``).
    type: str = option("dense", doc="PE type (see `sasim list`).")


@dataclasses.dataclass(frozen=True)
class ArchConfig:
    """A whole accelerator configuration (one arch YAML file)."""

    schema_version: int = option(SCHEMA_VERSION, doc="Version of this file format.",
                                 check=_supported_version)
    name: str = option("", doc="A short name used in reports (defaults to the file name).")
    description: str = option("", doc="Free text.")
    array: ArrayConfig = option(default_factory=ArrayConfig, doc="The array.")
    timing: TimingConfig = option(default_factory=TimingConfig, doc="Cycle counting.")
    memory: MemoryConfig = option(default_factory=MemoryConfig,
                                  doc="On-chip buffers and DRAM.")
    pe: PEOptions = option(default_factory=PEOptions, doc="The processing element.")
    energy: EnergyConfig = option(default_factory=EnergyConfig, doc="Energy and area pricing.")


def arch_from_mapping(data: Mapping[str, Any], where: str,
                      pe_types: Mapping[str, type[PEOptions]]) -> ArchConfig:
    """Validate a raw arch mapping; the ``pe`` section is checked against ``pe_types``."""
    data = dict(data)
    if "schema_version" not in data:
        raise ConfigError(f"{where}.schema_version: required key is missing "
                          f"(this version of sasim reads schema_version {SCHEMA_VERSION})")
    raw_pe = data.pop("pe", None)
    arch = build(ArchConfig, data, where)
    if raw_pe is None:
        raw_pe = {"type": PEOptions.type}
    if not isinstance(raw_pe, Mapping):
        raise ConfigError(f"{where}.pe: expected a mapping, got {raw_pe!r}")
    pe_type = raw_pe.get("type", PEOptions.type)
    if pe_type not in pe_types:
        raise ConfigError(f"{where}.pe.type: unknown PE type {pe_type!r}"
                          f"{did_you_mean(str(pe_type), pe_types)}")
    pe = build(pe_types[pe_type], raw_pe, f"{where}.pe")
    return dataclasses.replace(arch, pe=pe)


_CFG_KEYS = {
    "arrayheight": ("array", "rows"), "arraywidth": ("array", "cols"),
    "dataflow": ("array", "dataflow"),
    "ifmapsramszkb": ("memory", "ifmap_kib"), "filtersramszkb": ("memory", "filter_kib"),
    "ofmapsramszkb": ("memory", "ofmap_kib"), "bandwidth": ("memory", "bandwidth"),
    "ifmapoffset": None, "filteroffset": None, "ofmapoffset": None,
    "memorybanks": None, "readrequestbuffer": None, "writerequestbuffer": None,
}


def _cfg_number(value: str, where: str, *, positive_int: bool) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if positive_int and (not number.is_integer() or number <= 0):
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    if number < 0:
        raise ConfigError(f"{where}: expected a non-negative number, got {value!r}")
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
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keep SCALE-Sim's key spelling for messages
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path}: malformed SCALE-Sim config: {exc.message.splitlines()[0]}") from None
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
                raise ConfigError(f"{where}: expected one of os, ws, is, got {value!r}")
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
                          f"got {mode!r}")
    if mode == "USER":
        if not bandwidth:
            raise ConfigError(f"{path}: [{section}] Bandwidth: required in USER bandwidth mode")
        out["memory"]["dram_bandwidth_bytes_per_cycle"] = bandwidth[0]
    # SCALE-Sim's words are one byte, outputs and partial sums included.
    out["memory"].update(double_buffering=True, output_bits=8, partial_sum_bits=8)
    name = parser.get("general", "run_name", fallback=path.stem).strip()
    return {"schema_version": SCHEMA_VERSION, "name": name, "array": out["array"],
            "timing": {"convention": "scalesim"}, "memory": out["memory"],
            "pe": {"type": PEOptions.type}}


def load_arch(path: str | Path, overrides: Sequence[str],
              pe_types: Mapping[str, type[PEOptions]]) -> ArchConfig:
    """Load an arch YAML (or SCALE-Sim ``.cfg``), apply ``--set`` overrides, and validate.

    Parameters
    ----------
    path : path to a ``.yaml``/``.yml`` arch file or a SCALE-Sim ``.cfg``.
    overrides : ``"dotted.key=value"`` strings, applied in order.
    pe_types : the PE registry's option schemas, by type name.
    """
    path = Path(path)
    if path.suffix.lower() == ".cfg":
        data = scalesim_cfg_to_mapping(path)
    else:
        data = read_yaml_mapping(path)
    data.setdefault("name", path.stem)
    where = f"{path}: arch"
    arch = arch_from_mapping(data, where, pe_types)
    for text in overrides:
        key, value = parse_override(text)
        data = apply_override(data, key, value)
        try:
            arch = arch_from_mapping(data, "arch", pe_types)
        except ConfigError as exc:
            raise ConfigError(f"--set {text}: {exc}") from None
    return arch
