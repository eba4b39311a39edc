"""The standalone accumulators in RTL (simulator/rtl/accumulator.py, docs/accumulators.md
"Area against synthesis") simulated against the naive twin of docs/hardware-spec.md §8, bit
for bit, and the synthesised share of the binary32 second accumulator the area model uses."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from naive_accumulator import NaiveFormat, naive_accumulate
from simulator.config.accumulator import chunk_bias_offset
from simulator.rtl.accumulator import FloatAccumulator, IntAccumulator, float_value

MODES = ("nearest_even", "flush", "saturate")


def simulate(dut, sequences):
    """The register values after each sequence of products (cleared before each)."""
    out = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def bench(ctx):
        for seq in sequences:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            ctx.set(dut.step, 1)
            for p in seq:
                ctx.set(dut.product, p)
                await ctx.tick()
            ctx.set(dut.step, 0)
            out.append((ctx.get(dut.acc), ctx.get(getattr(dut, "acc2", dut.acc))))

    sim.add_testbench(bench)
    sim.run()
    return out


def products(rng: random.Random, n: int) -> list[int]:
    """Products of 8-bit operands: zeros, random ones and the extremes (saturating ones)."""
    return [rng.choice([0, rng.randint(-128, 127) * rng.randint(0, 255),
                        rng.choice([1, 2, 3, -1, 16384, -32640, 32640, 255 * 127])])
            for _ in range(n)]


@pytest.mark.parametrize("e, m, bias, chunk", [(4, 7, 1, 16), (4, 7, 1, 0), (5, 6, 15, 4),
                                               (3, 5, 1, 3), (4, 7, -2, 0), (3, 4, -3, 0)])
def test_float_accumulator_equals_the_naive_twin(e, m, bias, chunk):
    rng = random.Random(e * 1000 + m * 100 + bias + chunk)
    sequences = [products(rng, chunk * rng.randint(1, 3) if chunk else rng.randint(1, 30))
                 for _ in range(25)]
    offset = chunk_bias_offset(chunk) if chunk else 0
    dut = FloatAccumulator(e, m, bias, chunk, offset)
    prod = NaiveFormat("float", e, m, bias, *MODES)
    running = NaiveFormat("float", e, m, bias - offset, *MODES)
    outer = NaiveFormat("float", 8, 23, 127, *MODES)
    events = {"overflow": 0, "underflow": 0}
    for seq, (acc, acc2) in zip(sequences, simulate(dut, sequences)):
        want, ev = naive_accumulate(seq, prod, running, outer, chunk or None)
        got = float_value(dut.OUTER, acc2) if chunk else float_value(dut.acc_fmt, acc)
        assert got == want, seq
        for key in events:
            events[key] += ev[key]
    if (e, m, bias) in ((3, 5, 1), (3, 4, -3)):
        assert events["overflow"] > 0  # the small formats saturate
    if bias < 0:
        assert events["underflow"] > 0  # and the negative biases flush


def test_int_accumulator_is_the_exact_sum():
    rng = random.Random(3)
    sequences = [products(rng, rng.randint(1, 40)) for _ in range(20)]
    for seq, (acc, _) in zip(sequences, simulate(IntAccumulator(32), sequences)):
        assert acc == sum(seq)


def test_the_model_uses_the_synthesised_share():
    """OUTER_FLOAT_ADDER_SHARE (simulator/hw/accumulator.py) is the share of the tech
    table's fp_adder_32 that gives the binary32 second accumulator its synthesised size
    relative to the int32 accumulator (benchmarks/rtl_accumulator_area.py)."""
    from simulator import api
    from simulator.hw.accumulator import OUTER_FLOAT_ADDER_SHARE
    from simulator.rtl.accumulator import synthesize_accumulator

    t_int = synthesize_accumulator(IntAccumulator(32), "acc_int32").transistors
    t_fp = synthesize_accumulator(FloatAccumulator(4, 7, 1), "acc_fp12").transistors
    t_chunk = synthesize_accumulator(FloatAccumulator(4, 7, 1, 16, chunk_bias_offset(16)),
                                     "acc_fp12_chunk16").transistors
    tech = api.load_tech_table("generic_45nm")
    area = {name: c.area_um2 for name, c in tech.components.items()}
    int32 = area["adder_32"] + 32 * area["register_bit"]
    share = ((t_chunk - t_fp) / t_int * int32 - 32 * area["register_bit"]) / area["fp_adder_32"]
    assert share == pytest.approx(OUTER_FLOAT_ADDER_SHARE, abs=0.01)
    # and the 12-bit running sum's model is within 10 % of synthesis
    table = (0.75 * area["fp_adder_16"] + 12 * area["register_bit"]) / int32
    assert table == pytest.approx(t_fp / t_int, rel=0.10)
