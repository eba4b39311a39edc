"""Narrow accumulators on any PE type: ``pe.accumulator`` (docs/accumulators.md).

A PE's functional model gives its outputs as if its running sum were exact. When a layer has
an accumulator format (``pe.accumulator``, or ``pe.accumulator_layers`` for the layer),
:func:`accumulate` recomputes its outputs with every running sum in that format, PE-step by
PE-step in the order the array feeds the PE (the PE's :meth:`PEModel.accumulation_feed`), and
counts overflow, underflow and swamping events (docs/hardware-spec.md §8). The accumulator
also changes the PE's adder and registers (:func:`pe_composition`) and, when chunk flushes
cost a cycle, its steps (:func:`layer_steps`).

Nothing here is imported by a run without an accumulator beyond this module, and the numba
kernel (:mod:`simulator.kernels.accumulator`) only when a sum has to be recomputed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from simulator.config.accumulator import AccumulatorConfig
from simulator.hw.pe.dense import ACCUMULATOR_BITS, OUTPUT_BITS
from simulator.hw.pe.registry import AccumulationFeed, Composition, GemmRun, PEModel
from simulator.workloads.layers import Layer

__all__ = ["ACCUMULATOR_STATS", "layer_accumulator", "has_accumulator", "check_accumulator",
           "formats", "accumulate", "accumulate_direct", "exact_bound", "pe_composition",
           "layer_steps", "OUTER_INT_BITS", "OUTER_FLOAT", "OUTER_FLOAT_ADDER_SHARE",
           "INF_OUTPUT"]

#: The stats an accumulator adds to a layer's PE stats.
ACCUMULATOR_STATS = ("accumulator_overflow", "accumulator_underflow", "accumulator_swamping")
#: The second accumulator of chunked accumulation: int64 for int formats ...
OUTER_INT_BITS = 64
#: ... and binary32 (exponent bits, mantissa bits, bias) for float formats.
OUTER_FLOAT = (8, 23, 127)
#: The binary32 second accumulator's adder as a share of the tech table's ``fp_adder_32``
#: (a full IEEE adder): synthesised, the second accumulator of docs/hardware-spec.md §8
#: (integer values, no subnormals, saturating) is 8.3x the 32-bit integer accumulator, not
#: the table's 13.3x (docs/accumulators.md, "Area against synthesis";
#: benchmarks/rtl_accumulator_area.py prints the derivation).
OUTER_FLOAT_ADDER_SHARE = 0.61
#: What an infinite sum leaves the array as (NaN leaves as 0).
INF_OUTPUT = 1 << 62
_EXACT = AccumulatorConfig()
#: Largest magnitude of one thread's product of any rule (|activation| <= 255 after a PE's
#: rounding, |weight| <= 128): bounds the partial sums when a PE approximates.
_MAX_PRODUCT = 255 * 128


def layer_accumulator(pe: PEModel, layer: Layer | str) -> AccumulatorConfig:
    """The accumulator of ``layer``: its ``accumulator_layers`` entry, else ``accumulator``."""
    name = layer if isinstance(layer, str) else layer.name
    options = pe.options
    default = getattr(options, "accumulator", None) or _EXACT
    return getattr(options, "accumulator_layers", {}).get(name, default)


def _configs(pe: PEModel) -> Iterable[AccumulatorConfig]:
    yield getattr(pe.options, "accumulator", None) or _EXACT
    yield from getattr(pe.options, "accumulator_layers", {}).values()


def has_accumulator(pe: PEModel) -> bool:
    """Whether any layer of the design accumulates in a narrow format."""
    return any(c.type != "exact" for c in _configs(pe))


def check_accumulator(pe: PEModel, names: set[str]) -> None:
    """Raise ValueError when ``accumulator_layers`` names unknown layers or the PE type has
    no accumulation order to run a narrow format in."""
    unknown = sorted(set(getattr(pe.options, "accumulator_layers", {})) - names)
    if unknown:
        raise ValueError(f"pe.accumulator_layers names layers the workload does not have: "
                         f"{', '.join(unknown)}")
    if has_accumulator(pe) and not pe.accumulates_in_steps:
        raise ValueError(f"pe.accumulator: PE type '{pe.options.type}' has no PE-step order "
                         f"for a narrow accumulator (supported: dense, sysmt, sparq, a4w8)")


def _float_fmt(kernel, e: int, m: int, bias: int, config: AccumulatorConfig) -> np.ndarray:
    return np.array([kernel.KIND_FLOAT, 0,
                     kernel.OVERFLOW_INF if config.overflow_mode == "inf"
                     else kernel.OVERFLOW_SATURATE,
                     m, 1 - bias, (1 << e) - 2 - bias,
                     kernel.ROUND_FLOOR if config.rounding == "floor"
                     else kernel.ROUND_NEAREST_EVEN,
                     kernel.UNDERFLOW_KEEP if config.underflow == "keep"
                     else kernel.UNDERFLOW_FLUSH], dtype=np.int64)


def _int_fmt(kernel, bits: int, config: AccumulatorConfig) -> np.ndarray:
    mode = kernel.OVERFLOW_WRAP if config.overflow_mode == "wrap" else kernel.OVERFLOW_SATURATE
    return np.array([kernel.KIND_INT, bits, mode, 0, 0, 0, 0, 0], dtype=np.int64)


def formats(config: AccumulatorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's (product, running sum, second accumulator) format arrays
    (:data:`simulator.kernels.accumulator.FMT_FIELDS`); an int format's product format has
    kind -1 (products enter exactly)."""
    from simulator.kernels import accumulator as kernel

    if config.type == "int":
        none = np.full(8, -1, dtype=np.int64)
        return none, _int_fmt(kernel, config.bits, config), _int_fmt(kernel, OUTER_INT_BITS,
                                                                      config)
    e, m, bias = config.exponent_bits, config.mantissa_bits, config.float_bias
    return (_float_fmt(kernel, e, m, bias, config),
            _float_fmt(kernel, e, m, bias - config.chunk_offset, config),
            _float_fmt(kernel, *OUTER_FLOAT, config))


def exact_bound(pe: PEModel, a: np.ndarray, b: np.ndarray, threads: int, steps: int) -> int:
    """An upper bound on the sum of |partial sums| of any output: Kd * max|a| * max|b| for a
    PE whose products are exact, else threads * steps * (255 * 128)."""
    if type(pe).exact:
        return a.shape[1] * _magnitude(a) * _magnitude(b)
    return threads * steps * _MAX_PRODUCT


def accumulate(pe: PEModel, layer: Layer, a: np.ndarray, b: np.ndarray,
               run: GemmRun) -> GemmRun:
    """``run`` (the PE's GEMM with exact sums) with its outputs recomputed in the layer's
    accumulator format, and the format's event counts added to its stats.

    Fast path: an int accumulator whose every partial sum provably fits (the sum of
    |partial sums| is below 2^(bits-1), :func:`exact_bound`), or of 63 bits or more, keeps
    the PE's outputs.
    """
    config = layer_accumulator(pe, layer)
    exact = run.exact if run.exact is not None else (run.outputs if type(pe).exact else None)
    feed = None
    if config.type == "int" and config.bits < 63:
        if not type(pe).exact:  # the bound needs the PE's threads and steps
            feed = pe.accumulation_feed(layer, a)
        threads, steps = (1, 1) if feed is None else feed.sched.shape
        fits = exact_bound(pe, a, b, threads, steps) < 1 << (config.bits - 1)
    else:
        fits = config.type == "int"
    if fits:
        outputs = run.outputs
        events = np.zeros(3, dtype=np.int64)
    else:
        feed = pe.accumulation_feed(layer, a) if feed is None else feed
        outputs, events = _run_kernel(feed, config, a, b)
    stats = {**run.stats, **{name: int(v) for name, v in zip(ACCUMULATOR_STATS, events)}}
    return dataclasses.replace(run, outputs=outputs, stats=stats, exact=exact)


def _row_blocks(rows: int) -> tuple[int, list[tuple[int, int]]]:
    """(threads, row blocks): four blocks per thread, so a thread slowed by other jobs does
    not hold the others up."""
    from simulator.kernels.jit import kernel_threads

    workers = min(kernel_threads(), max(1, rows))
    size = -(-rows // (4 * workers)) if rows else 1
    return workers, [(lo, min(rows, lo + size)) for lo in range(0, rows, size)]


def _magnitude(x: np.ndarray) -> int:
    return max(abs(int(x.min())), abs(int(x.max()))) if x.size else 0


def accumulate_direct(pe: PEModel, layer: Layer, a: np.ndarray, b: np.ndarray
                      ) -> GemmRun | None:
    """The PE's GEMM with its running sums in the layer's float format, in one kernel pass
    that also gives the exact sums, or ``None`` when this path does not apply (then
    :func:`accumulate` runs after the PE's own GEMM).

    It applies to an exact PE in the dense order that counts its steps without the product
    (``gemm_counters``: the dense PE, from non-zero counts) and a float format that the
    float32 lanes hold, rounding to nearest even, whose products cannot underflow
    (docs/performance.md, "Narrow accumulators"): the PE's exact product is then
    not computed at all; the kernel's exact sums serve the error metrics."""
    counters = getattr(pe, "gemm_counters", None)
    config = layer_accumulator(pe, layer)
    if (counters is None or not type(pe).exact or config.type != "float"
            or config.rounding == "floor" or config.overflow_mode == "inf"):
        return None
    feed = pe.accumulation_feed(layer, a)
    if not (feed.sched.shape[0] == 1 and np.array_equal(feed.sched[0], np.arange(a.shape[1]))):
        return None
    prod, acc, outer = formats(config)
    largest = _magnitude(a) * _magnitude(b)
    if (int(prod[4]) > 0 or a.shape[1] * largest >= 1 << 62
            or not _fits_float32(prod, acc, a, b, 1, True)):
        return None
    from simulator.kernels import accumulator as kernel
    from simulator.kernels.jit import parallel_map

    a64 = np.ascontiguousarray(a, dtype=np.int64)
    b32 = np.ascontiguousarray(b, dtype=np.float32)
    outputs = np.empty((a.shape[0], b.shape[1]), dtype=np.int64)
    exact = np.empty_like(outputs)
    workers, blocks = _row_blocks(a.shape[0])
    events = np.zeros((len(blocks), 3), dtype=np.int64)
    period = max(1, ((1 << 24) - 1) // max(1, largest))  # float32 partial sums stay exact

    def task(i: int) -> None:
        lo, hi = blocks[i]
        kernel.accumulate_dense_f32_exact(a64, b32, prod, acc, outer, config.chunk or 0,
                                          period, outputs, exact, events[i], lo, hi)

    parallel_map(workers, len(blocks), task)
    stats = {name: int(v) for name, v in zip(ACCUMULATOR_STATS, events.sum(axis=0))}
    return GemmRun(outputs, counters(a, b), stats=stats, exact=exact)


def _run_kernel(feed: AccumulationFeed, config: AccumulatorConfig, a: np.ndarray,
                b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernel on blocks of rows, one thread each (:func:`parallel_map`)."""
    from simulator.kernels import accumulator as kernel
    from simulator.kernels.jit import parallel_map
    from simulator.kernels.reference_array import POLICY_SPARSITY_AWARE, RULE_DENSE, RULE_SYSMT

    prod, acc, outer = formats(config)
    a64 = np.ascontiguousarray(a, dtype=np.int64)
    outputs = np.empty((a.shape[0], b.shape[1]), dtype=np.int64)
    workers, blocks = _row_blocks(a.shape[0])
    events = np.zeros((len(blocks), 3), dtype=np.int64)

    in_order = (feed.rule == RULE_DENSE and feed.sched.shape[0] == 1
                and np.array_equal(feed.sched[0], np.arange(a.shape[1])))
    # int registers below 63 bits, and floats that saturate, have no infinities (and a
    # float of at most 23 mantissa bits enters its binary32 second accumulator exactly)
    flat = config.overflow_mode != "inf" and (
        config.bits < 63 if config.type == "int" else config.mantissa_bits <= OUTER_FLOAT[1])
    sysmt = flat and feed.rule == RULE_SYSMT
    # float values that fit in int32 (a partial sum of T threads: T products)
    lanes32 = ((in_order or sysmt) and config.type == "float" and flat
               and _fits_int32(prod, acc, a, b, feed.sched.shape[0], feed.rule == RULE_DENSE))
    # ... and that float32 holds exactly, rounded on its bits
    lanes_f = lanes32 and _fits_float32(prod, acc, a, b, feed.sched.shape[0],
                                        feed.rule == RULE_DENSE)
    rows_of_b = in_order or sysmt
    dtype = (np.float32 if lanes_f and in_order else np.int32 if lanes32 else np.int64)
    b64 = np.ascontiguousarray(b, dtype=dtype) if rows_of_b else None
    bt = None if rows_of_b else np.ascontiguousarray(b.T, dtype=np.int64)

    def task(i: int) -> None:
        lo, hi = blocks[i]
        if sysmt and lanes32:  # SySMT's rule as selects, 16 float32 or int32 lanes
            kernel.accumulate_sysmt_lanes(
                a64, b64, feed.sched, bool(feed.params[0] == POLICY_SPARSITY_AWARE),
                int(feed.params[1]), prod, acc, outer, config.chunk or 0, outputs, events[i],
                lo, hi, np.zeros(b.shape[1], np.float32 if lanes_f else np.int32))
        elif sysmt:  # SySMT's rule as selects, the N sums side by side
            kernel.accumulate_sysmt_flat(
                a64, b64, feed.sched, bool(feed.params[0] == POLICY_SPARSITY_AWARE),
                int(feed.params[1]), prod, acc, outer, config.chunk or 0, outputs, events[i],
                lo, hi)
        elif lanes32:  # values that fit in int32 (or float32 holds): 16 lanes
            kernel.accumulate_dense_lanes(a64, b64, prod, acc, outer, config.chunk or 0,
                                          outputs, events[i], lo, hi,
                                          np.zeros((8, b.shape[1]), b64.dtype))
        elif in_order and flat:  # no infinities: a loop without data-dependent branches
            kernel.accumulate_dense_flat(a64, b64, prod, acc, outer, config.chunk or 0,
                                         outputs, events[i], lo, hi)
        elif in_order:  # the dense PE: the N sums of a row side by side (same order)
            kernel.accumulate_dense(a64, b64, prod, acc, outer, config.chunk or 0, outputs,
                                    events[i], lo, hi)
        else:
            kernel.accumulate_gemm(a64, bt, feed.sched, feed.rule, feed.params, prod, acc,
                                   outer, config.chunk or 0, outputs, events[i], lo, hi)

    parallel_map(workers, len(blocks), task)
    outputs[outputs == kernel.NAN] = 0
    return outputs, events.sum(axis=0)


def _largest(fmt: np.ndarray) -> int:
    """The largest finite value of a float format array, in product units."""
    m, emax = int(fmt[3]), int(fmt[5])
    return ((1 << (m + 1)) - 1) << max(emax - m, 0) if emax >= m else (1 << 62)


def _fits_int32(prod: np.ndarray, acc: np.ndarray, a: np.ndarray, b: np.ndarray,
                threads: int, exact: bool, limit: int = 1 << 29) -> bool:
    """Whether the int32 kernels can run a float format: every partial sum (``threads``
    products, each at most max|a|·max|b| for an ``exact`` PE, else 255·128: a PE's rounding
    may round an operand up) and the running sum's largest value plus the products' stay
    below ``limit`` (2^29: no int32 operation of
    :func:`simulator.kernels.accumulator.accumulate_dense_lanes` can overflow)."""
    if int(prod[5]) > 29 or int(acc[5]) > 29 or int(acc[4]) < -64 or int(prod[4]) < -64:
        return False
    amax = max(abs(int(a.min())), abs(int(a.max()))) if a.size else 0
    bmax = max(abs(int(b.min())), abs(int(b.max()))) if b.size else 0
    product = amax * bmax if exact else max(amax * bmax, _MAX_PRODUCT)
    return threads * product < limit and _largest(acc) + _largest(prod) < limit


def _fits_float32(prod: np.ndarray, acc: np.ndarray, a: np.ndarray, b: np.ndarray,
                  threads: int, exact: bool) -> bool:
    """Whether the float32 kernels can run a float format: at most 22 mantissa bits, emin
    between mantissa - 126 and the mantissa bits (integers below the smallest normal value
    are exact), and every value and sum below 2^24 (exact in binary32), as
    :func:`_fits_int32` bounds them."""
    for fmt in (prod, acc):
        m, emin = int(fmt[3]), int(fmt[4])
        if not (m <= 22 and m - 126 <= emin <= m):
            return False
    return _fits_int32(prod, acc, a, b, threads, exact, limit=1 << 24)


def _float_adder(width: int) -> dict[str, float]:
    """A float adder of ``width`` bits in the tech table's float adders (docs/energy-model.md):
    a share of the 16-bit one up to 16 bits, between the 16- and 32-bit ones above."""
    if width <= 16:
        return {"fp_adder_16": width / 16}
    return {"fp_adder_16": (32 - width) / 16, "fp_adder_32": (width - 16) / 16}


def _widths(config: AccumulatorConfig) -> tuple[dict[str, float], int, dict[str, float], int]:
    """(running-sum adder, its register bits, second adder, its register bits)."""
    if config.type == "int":
        return ({"adder_32": config.bits / 32}, config.bits,
                {"adder_32": OUTER_INT_BITS / 32}, OUTER_INT_BITS)
    width = 1 + config.exponent_bits + config.mantissa_bits
    outer = {name: share * OUTER_FLOAT_ADDER_SHARE for name, share in _float_adder(32).items()}
    return _float_adder(width), width, outer, 32


def pe_composition(pe: PEModel, layer: Layer | None = None) -> Composition:
    """The PE's composition with its accumulator (docs/energy-model.md, "Accumulators").

    The 32-bit accumulate adder becomes the format's adder (int: ``bits/32`` of a 32-bit
    one; float: the float adders), the 32-bit accumulator and output registers become the
    format's width; with chunks, a second adder and register are added, and each PE-step
    pays ``1/chunk`` of a second addition. Parts follow the design's ``accumulator`` (a
    layer override changes only that layer's events)."""
    base = pe.composition(layer)
    part_config = getattr(pe.options, "accumulator", None) or _EXACT
    config = part_config if layer is None else layer_accumulator(pe, layer)
    if part_config.type == "exact" and config.type == "exact":
        return base
    parts = _with_format(dict(base.parts), part_config, parts=True)
    events = {name: _with_format(dict(actions), config, parts=False)
              for name, actions in base.events.items()}
    return Composition(parts=parts, events=events)


def _with_format(actions: dict[str, float], config: AccumulatorConfig,
                 parts: bool) -> dict[str, float]:
    if config.type == "exact":
        return actions
    adder, bits, outer_adder, outer_bits = _widths(config)
    count = actions.pop("adder_32", 0.0)
    for name, share in adder.items():
        actions[name] = actions.get(name, 0.0) + count * share
    if config.chunk:
        scale = 1.0 if parts else 1.0 / config.chunk
        for name, share in outer_adder.items():
            actions[name] = actions.get(name, 0.0) + scale * share
    if parts:
        out_bits = outer_bits if config.chunk else bits
        extra = (bits - ACCUMULATOR_BITS) + (out_bits - OUTPUT_BITS)
        extra += outer_bits if config.chunk else 0
        actions["register_bit"] = actions.get("register_bit", 0.0) + extra
    return {k: v for k, v in actions.items() if v}


def layer_steps(pe: PEModel, layer: Layer) -> int:
    """The PE's steps for ``layer``, plus one per chunk flush when flushes cost a cycle
    (``flush_cycle``): ``S + ceil(S / chunk)``."""
    steps = pe.reduction_steps(layer)
    config = layer_accumulator(pe, layer)
    if config.type != "exact" and config.chunk and config.flush_cycle:
        return steps + -(-steps // config.chunk)
    return steps
