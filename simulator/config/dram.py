"""The DRAM device behind ``memory.dram`` (docs/memory-model.md, "DRAM timing and energy").

``memory.dram`` is a preset name (``ideal``, or one of :data:`PRESET_FILE`'s presets) or a
mapping with ``preset`` and overrides of its keys. :func:`dram_spec` resolves it into a
:class:`DramSpec` (every value set) and checks it: impossible timings (``tRC < tRAS + tRP``,
...) are configuration errors naming the key. ``ideal`` resolves to ``None``: the
fixed-bandwidth channel of ``memory.dram_bandwidth_bytes_per_cycle``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Literal

from simulator.config.files import read_yaml_mapping
from simulator.config.schema import build, did_you_mean, in_range, option
from simulator.errors import ConfigError, shorten
from simulator.records import record

__all__ = ["DramConfig", "DramSpec", "PRESET_FILE", "IDEAL", "preset_names", "dram_spec"]

#: The presets, each value with its source (docs/memory-model.md, "Presets").
PRESET_FILE = Path(__file__).with_name("dram_presets.yaml")
#: The fixed-bandwidth channel (no DRAM device): today's model.
IDEAL = "ideal"

Mapping_ = Literal["row_bank_col", "row_col_bank"]
_COUNT = in_range(1, 1 << 16)
_CYCLES = in_range(0, 1 << 24)
_CURRENT = in_range(0, 1e5)


@record
class DramConfig:
    """``memory.dram`` as a mapping: a preset and overrides of its values (null: the
    preset's). Timings are in DRAM clock cycles (tCK), currents in mA per device."""

    preset: str = option("ddr4_3200", doc="The preset the other keys override: "
                                          "ddr4_3200, lpddr5_6400 or hbm2e.")
    channels: int | None = option(None, doc="Independent channels; consecutive bursts go "
                                            "to consecutive channels.", check=_COUNT)
    ranks: int | None = option(None, doc="Ranks per channel (capacity, background and "
                                         "refresh power; a stream stays in one rank).",
                               check=_COUNT)
    bank_groups: int | None = option(None, doc="Bank groups per rank.", check=_COUNT)
    banks_per_group: int | None = option(None, doc="Banks per bank group.", check=_COUNT)
    row_bytes: int | None = option(None, doc="Bytes of one row (page) of a rank.",
                                   check=in_range(1, 1 << 24))
    burst_length: int | None = option(None, doc="Data beats per burst (BL).", check=_COUNT)
    data_width_bits: int | None = option(None, doc="Data bits of one channel.",
                                         check=in_range(1, 1 << 12))
    device_width_bits: int | None = option(None, doc="Data bits of one device (x4, x8, "
                                                     "x16); devices per rank = data width "
                                                     "/ device width.",
                                           check=in_range(1, 1 << 12))
    clock_mhz: float | None = option(None, doc="DRAM command clock (1 / tCK) in MHz.",
                                     check=in_range(1.0, 1e5))
    data_rate: int | None = option(None, doc="Data beats per clock (2: double data rate; "
                                             "LPDDR5's WCK: 8).", check=in_range(1, 64))
    tCL: int | None = option(None, doc="Read latency: RD to first data (tCK).", check=_CYCLES)
    tCWL: int | None = option(None, doc="Write latency: WR to first data (tCK).",
                              check=_CYCLES)
    tRCD: int | None = option(None, doc="ACT to RD/WR, same bank (tCK).", check=_CYCLES)
    tRP: int | None = option(None, doc="PRE to ACT, same bank (tCK).", check=_CYCLES)
    tRAS: int | None = option(None, doc="ACT to PRE, same bank (tCK).", check=_CYCLES)
    tRC: int | None = option(None, doc="ACT to ACT, same bank (tCK).", check=_CYCLES)
    tCCD_S: int | None = option(None, doc="Column command to column command, different "
                                          "bank group (tCK).", check=_CYCLES)
    tCCD_L: int | None = option(None, doc="Column command to column command, same bank "
                                          "group (tCK).", check=_CYCLES)
    tRRD_S: int | None = option(None, doc="ACT to ACT, different bank group (tCK).",
                                check=_CYCLES)
    tRRD_L: int | None = option(None, doc="ACT to ACT, same bank group (tCK).",
                                check=_CYCLES)
    tFAW: int | None = option(None, doc="Window holding at most four ACTs (tCK).",
                              check=_CYCLES)
    tWR: int | None = option(None, doc="Write recovery: end of write data to PRE (tCK).",
                             check=_CYCLES)
    tWTR: int | None = option(None, doc="End of write data to RD (tCK).", check=_CYCLES)
    tRTP: int | None = option(None, doc="RD to PRE (tCK).", check=_CYCLES)
    tREFI: int | None = option(None, doc="Refresh interval (tCK).", check=in_range(1, 1 << 30))
    tRFC: int | None = option(None, doc="Refresh cycle time: REF to the next command "
                                        "(tCK).", check=_CYCLES)
    mapping: Mapping_ | None = option(
        None, doc="Address interleaving, most significant first: row_bank_col (a bank's "
                  "row fills, bank groups interleaved per burst) or row_col_bank (bursts "
                  "rotate over every bank); channel bits lowest in both.")
    page_policy: Literal["open", "closed"] | None = option(
        None, doc="open: a row stays open until another row of its bank is needed; "
                  "closed: a bank precharges once no queued request hits its row.")
    scheduler: Literal["fr_fcfs"] | None = option(
        None, doc="Command scheduler: fr_fcfs (row hits first, then oldest first).")
    queue_depth: int | None = option(None, doc="Requests the controller sees at once, per "
                                               "channel (at least the banks per rank).",
                                     check=_COUNT)
    vdd: float | None = option(None, doc="Supply voltage (V) of the IDD currents.",
                               check=in_range(0.1, 10.0))
    idd0: float | None = option(None, doc="One-bank ACT-PRE current (mA per device).",
                                check=_CURRENT)
    idd2n: float | None = option(None, doc="Precharged standby current (mA).",
                                 check=_CURRENT)
    idd3n: float | None = option(None, doc="Active standby current (mA).", check=_CURRENT)
    idd4r: float | None = option(None, doc="Burst read current (mA).", check=_CURRENT)
    idd4w: float | None = option(None, doc="Burst write current (mA).", check=_CURRENT)
    idd5b: float | None = option(None, doc="Burst refresh current (mA).", check=_CURRENT)


#: Keys a preset must give (the defaults of the controller are in :data:`_CONTROLLER`).
_DEVICE_KEYS = tuple(f.name for f in dataclasses.fields(DramConfig)
                     if f.name not in ("preset", "mapping", "page_policy", "scheduler",
                                       "queue_depth"))
_CONTROLLER = {"mapping": "row_bank_col", "page_policy": "open", "scheduler": "fr_fcfs",
               "queue_depth": 32}


@record
class DramSpec:
    """A resolved DRAM device and controller: every value of :class:`DramConfig` set."""

    preset: str
    channels: int
    ranks: int
    bank_groups: int
    banks_per_group: int
    row_bytes: int
    burst_length: int
    data_width_bits: int
    device_width_bits: int
    clock_mhz: float
    data_rate: int
    tCL: int
    tCWL: int
    tRCD: int
    tRP: int
    tRAS: int
    tRC: int
    tCCD_S: int
    tCCD_L: int
    tRRD_S: int
    tRRD_L: int
    tFAW: int
    tWR: int
    tWTR: int
    tRTP: int
    tREFI: int
    tRFC: int
    mapping: str
    page_policy: str
    scheduler: str
    queue_depth: int
    vdd: float
    idd0: float
    idd2n: float
    idd3n: float
    idd4r: float
    idd4w: float
    idd5b: float

    def __hash__(self) -> int:  # cached: the DRAM model's caches key on the spec per transfer
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = hash(dataclasses.astuple(self))
            object.__setattr__(self, "_hash", value)
            return value

    @property
    def banks(self) -> int:
        """Banks per rank."""
        return self.bank_groups * self.banks_per_group

    @property
    def burst_bytes(self) -> int:
        """Bytes one burst moves on one channel."""
        return self.data_width_bits * self.burst_length // 8

    @property
    def burst_cycles(self) -> int:
        """Clock cycles one burst holds the data bus (BL / data rate)."""
        return self.burst_length // self.data_rate

    @property
    def column_bursts(self) -> int:
        """Bursts in one row."""
        return self.row_bytes // self.burst_bytes

    @property
    def devices(self) -> int:
        """Devices per rank."""
        return self.data_width_bits // self.device_width_bits

    @property
    def peak_bytes_per_s(self) -> float:
        """Peak bandwidth of all channels: clock x data rate x width."""
        return self.clock_mhz * 1e6 * self.data_rate * self.data_width_bits / 8 * self.channels


def _refresh_floor(s: DramSpec) -> int:
    """The longest constraint a refresh must outlast (every device's tRFC does): then no
    command before a refresh constrains one after it."""
    burst = s.burst_length // max(1, s.data_rate)
    return max(s.tRC, s.tFAW, s.tCCD_L, s.tCWL + burst + max(s.tWR, s.tWTR),
               s.tCL + burst + 2)


def _problem(spec: DramSpec) -> str | None:
    """The first impossible value of ``spec`` as ``key: reason``, or None."""
    s = spec
    checks = [
        ("tRC", s.tRC < s.tRAS + s.tRP, f"tRC = {s.tRC} is less than tRAS + tRP = "
                                        f"{s.tRAS} + {s.tRP} (a bank cannot open again "
                                        f"before it has closed)"),
        ("tRAS", s.tRAS < s.tRCD, f"tRAS = {s.tRAS} is less than tRCD = {s.tRCD}"),
        ("tCCD_L", s.tCCD_L < s.tCCD_S, f"tCCD_L = {s.tCCD_L} is less than tCCD_S = "
                                        f"{s.tCCD_S}"),
        ("tRRD_L", s.tRRD_L < s.tRRD_S, f"tRRD_L = {s.tRRD_L} is less than tRRD_S = "
                                        f"{s.tRRD_S}"),
        ("tRCD", min(s.tRCD, s.tRP, s.tCL, s.tCCD_S, s.tRRD_S, s.tRTP) < 1,
         "tRCD, tRP, tCL, tCCD_S, tRRD_S and tRTP must be at least one cycle"),
        ("tFAW", s.tFAW < s.tRRD_S, f"tFAW = {s.tFAW} is less than tRRD_S = {s.tRRD_S}"),
        ("tRFC", s.tRFC < _refresh_floor(s), f"tRFC = {s.tRFC} is less than "
                                             f"{_refresh_floor(s)}, the longest other "
                                             f"constraint (tRC, tFAW, a turnaround)"),
        ("tREFI", s.tREFI <= s.tRFC + s.tRP, f"tREFI = {s.tREFI} leaves no time between "
                                             f"refreshes (tRFC + tRP = {s.tRFC + s.tRP})"),
        ("burst_length", s.burst_length % s.data_rate != 0,
         f"burst_length = {s.burst_length} is not a whole number of clocks at data_rate "
         f"{s.data_rate}"),
        ("data_width_bits", (s.data_width_bits * s.burst_length) % 8 != 0,
         "a burst must be a whole number of bytes"),
        ("device_width_bits", s.data_width_bits % s.device_width_bits != 0,
         f"data_width_bits = {s.data_width_bits} is not a multiple of device_width_bits = "
         f"{s.device_width_bits}"),
        ("row_bytes", s.row_bytes % max(1, s.burst_bytes) != 0,
         f"row_bytes = {s.row_bytes} is not a whole number of {s.burst_bytes}-byte bursts"),
        ("queue_depth", s.queue_depth < s.banks,
         f"queue_depth = {s.queue_depth} is less than the {s.banks} banks per rank"),
        ("idd0", s.idd0 < s.idd3n, f"idd0 = {s.idd0} is less than idd3n = {s.idd3n}"),
        ("idd4r", min(s.idd4r, s.idd4w, s.idd5b) < s.idd3n,
         "idd4r, idd4w and idd5b must be at least idd3n"),
    ]
    for key, bad, reason in checks:
        if bad:
            return f"{key}: {reason}"
    return None


@functools.cache
def _presets() -> dict[str, dict[str, Any]]:
    data = read_yaml_mapping(PRESET_FILE)
    return {k: v for k, v in data.items() if k != "schema_version"}


def preset_names() -> tuple[str, ...]:
    """``ideal`` and the names of the shipped presets."""
    return (IDEAL, *_presets())


def dram_spec(value: str | DramConfig, where: str = "memory.dram") -> DramSpec | None:
    """Resolve ``memory.dram`` into a checked :class:`DramSpec` (``None`` for ``ideal``).

    Raises
    ------
    ConfigError : an unknown preset, or an impossible value (named by its key under
        ``where``).
    """
    return _resolved(value, where)


@functools.lru_cache(maxsize=64)
def _resolved(value: str | DramConfig, where: str) -> DramSpec | None:
    name = value if isinstance(value, str) else value.preset
    key = where if isinstance(value, str) else f"{where}.preset"
    if name == IDEAL:
        if isinstance(value, DramConfig) and any(
                getattr(value, f.name) is not None for f in dataclasses.fields(value)
                if f.name != "preset"):
            raise ConfigError(f"{key}: the ideal channel has no DRAM values to override "
                              f"(use memory.dram_bandwidth_bytes_per_cycle, or a preset)")
        return None
    presets = _presets()
    if name not in presets:
        raise ConfigError(f"{key}: unknown DRAM preset {shorten(name)}"
                          f"{did_you_mean(name, preset_names())}")
    raw = {k: v for k, v in presets[name].items() if k != "description"}
    base = build(DramConfig, {**raw, "preset": name}, f"{PRESET_FILE.name}: {name}")
    merged: dict[str, Any] = {"preset": name, **_CONTROLLER}
    for field in dataclasses.fields(DramConfig):
        if field.name == "preset":
            continue
        given = None if isinstance(value, str) else getattr(value, field.name)
        fallback = getattr(base, field.name)
        if fallback is None and field.name in _CONTROLLER:
            fallback = _CONTROLLER[field.name]
        if fallback is None and field.name in _DEVICE_KEYS:
            raise ConfigError(f"{PRESET_FILE.name}: {name}.{field.name}: required key is "
                              f"missing")
        merged[field.name] = given if given is not None else fallback
    spec = DramSpec(**merged)
    problem = _problem(spec)
    if problem is not None:
        raise ConfigError(f"{where}.{problem}")
    return spec
