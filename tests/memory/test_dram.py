"""The DRAM model (docs/memory-model.md, "DRAM timing and energy").

- the closed form of sequential streams equals the per-request FR-FCFS controller on random
  streams, presets, mappings, page policies, start times and refresh points;
- per preset, against the equations: the peak bandwidth is the datasheet's, a long
  sequential read reaches at least 90 % of it, a random 64 B read stream is bound by
  tRC / tRRD / tFAW, and refresh takes its tRFC / tREFI share;
- the engine with a device agrees with its plain-loop twin; energy is counts x IDD costs;
- impossible timings are one-line configuration errors.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
import simpy
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from memory_cases import cases
from naive_memory import naive_timeline

from simulator.config.dram import DramConfig, dram_spec
from simulator.errors import ConfigError, SimulationError
from simulator.memory import Dram, plan_layer, run_layer
from simulator.memory.dram import DramCounts, DramDevice, dram_energy_pj, stream
from simulator.memory.dram_requests import simulate_requests

PRESETS = ("ddr4_3200", "lpddr5_6400", "hbm2e")
#: Datasheet peak bandwidths (bytes/s): DDR4-3200 x64 (JESD79-4: 3200 MT/s x 8 B); LPDDR5-6400
#: four x16 channels (JESD209-5: 6400 MT/s x 2 B x 4); HBM2E 3.2 Gb/s x 1024 pins (JESD235C).
PEAK = {"ddr4_3200": 25.6e9, "lpddr5_6400": 51.2e9, "hbm2e": 409.6e9}


@st.composite
def streams(draw):
    """A DRAM (a preset, possibly with small rows and a short refresh interval so that
    refresh and row changes come often) and one channel's sequential stream on it."""
    over = {"preset": draw(st.sampled_from(PRESETS)),
            "mapping": draw(st.sampled_from(["row_bank_col", "row_col_bank"])),
            "page_policy": draw(st.sampled_from(["open", "closed"]))}
    if draw(st.booleans()):
        over["row_bytes"] = draw(st.sampled_from([256, 512, 1024]))
        over["tREFI"] = draw(st.sampled_from([1200, 2000, 4000]))
    spec = dram_spec(DramConfig(**over))
    bursts = draw(st.integers(1, 260))
    start = draw(st.integers(0, 5000))
    refresh = draw(st.one_of(st.none(), st.integers(start + 1, start + 3000)))
    return (spec, bursts, draw(st.booleans()), start, draw(st.integers(0, 4000)),
            draw(st.booleans()), refresh)


@settings(max_examples=120, deadline=None)
@given(streams())
def test_closed_form_equals_the_per_request_controller(case):
    spec, bursts, write, start, offset, foreign, refresh = case
    fast = stream(spec, bursts, write, start, offset=offset, foreign=foreign,
                  next_refresh=refresh)
    slow = simulate_requests(spec, [(offset + j, write) for j in range(bursts)], start=start,
                             foreign=foreign, next_refresh=refresh)
    assert fast.end == slow.end
    assert fast.last_column == max(slow.column)
    assert (fast.activates, fast.misses, fast.refreshes) == (
        slow.activates, slow.misses, slow.refreshes)


def test_ddr4_streams_take_the_closed_form():
    """DDR4's default mapping is served in order (no fall-back), refresh or not."""
    spec = dram_spec("ddr4_3200")
    for bursts in (1, 7, 200, 5000):
        for refresh in (None, 3000):
            assert stream(spec, bursts, False, 100, next_refresh=refresh).in_order


def _sequential(spec, bursts, refresh=None):
    """Seconds a channel takes for a sequential read of ``bursts`` bursts from cycle 0."""
    result = stream(spec, bursts, False, 0, next_refresh=refresh)
    return result.end * 1e-6 / spec.clock_mhz, result


@pytest.mark.parametrize("name", PRESETS)
def test_peak_is_the_datasheet_figure(name):
    spec = dram_spec(name)
    print(f"{name}: peak {spec.peak_bytes_per_s / 1e9:.1f} GB/s")
    assert spec.peak_bytes_per_s == PEAK[name]


@pytest.mark.parametrize("name", PRESETS)
def test_long_sequential_read_reaches_90_percent_of_peak(name):
    spec = dram_spec(name)
    bursts = 2 * spec.banks * spec.column_bursts  # two rows of every bank
    seconds, _ = _sequential(spec, bursts)
    achieved = bursts * spec.burst_bytes * spec.channels / seconds
    # the closed form's floor: one burst per max(tCCD_S, tBURST) after the first ACT and RD
    step = max(spec.tCCD_S, spec.burst_cycles)
    floor = (spec.tRCD + (bursts - 1) * step + spec.tCL + spec.burst_cycles) / (
        spec.clock_mhz * 1e6)
    print(f"{name}: sequential read {achieved / 1e9:.2f} GB/s = "
          f"{100 * achieved / spec.peak_bytes_per_s:.1f} % of peak")
    assert seconds >= floor * (1 - 1e-12)
    assert achieved >= 0.9 * spec.peak_bytes_per_s


@pytest.mark.parametrize("name", PRESETS)
def test_random_reads_are_bound_by_activates(name):
    """Every 64 B of a random read needs its own ACT: at most one per tRRD_S, four per tFAW
    and one per tRC in each bank, so a request takes at least
    ``max(tRRD_S, tFAW / 4, tRC / banks, tBURST)`` cycles on average."""
    spec = dram_spec(name)
    rng = random.Random(7)
    count = 400
    per_row = spec.column_bursts
    requests = [(rng.randrange(1 << 22) * per_row * spec.banks + rng.randrange(per_row
                                                                            * spec.banks),
                 False) for _ in range(count)]
    slow = simulate_requests(spec, requests)
    bound = max(spec.tRRD_S, spec.tFAW / 4, spec.tRC / spec.banks,
                max(spec.tCCD_S, spec.burst_cycles))
    per_request = (slow.end - spec.tRCD - spec.tCL - spec.burst_cycles) / count
    print(f"{name}: random 64 B reads {per_request:.2f} cycles each (bound {bound:.2f}): "
          f"{100 * max(spec.tCCD_S, spec.burst_cycles) / per_request:.1f} % of peak")
    assert slow.activates >= 0.95 * count  # nearly every request opens a row
    assert per_request >= bound * 0.98
    assert per_request <= bound * 1.35


@pytest.mark.parametrize("name", PRESETS)
def test_refresh_takes_its_share(name):
    """A long sequential read with refresh loses tRFC (plus closing and reopening the rows:
    at most tRAS + tRP + tRCD + tCL) per tREFI."""
    spec = dram_spec(name)
    step = max(spec.tCCD_S, spec.burst_cycles)
    bursts = 4 * spec.tREFI // step
    plain, _ = _sequential(spec, bursts)
    refreshed, result = _sequential(spec, bursts, refresh=spec.tREFI)
    lost = (refreshed - plain) * spec.clock_mhz * 1e6 / result.refreshes
    share = (refreshed - plain) / refreshed
    print(f"{name}: refresh {result.refreshes} times, {lost:.0f} cycles each "
          f"(tRFC {spec.tRFC}); share {100 * share:.2f} % (tRFC/tREFI "
          f"{100 * spec.tRFC / spec.tREFI:.2f} %)")
    assert result.refreshes == int(refreshed * spec.clock_mhz * 1e6) // spec.tREFI
    assert spec.tRFC + spec.tRP <= lost <= (spec.tRFC + spec.tRAS + spec.tRP + spec.tRCD
                                            + spec.tCL)


def _program(case):
    try:
        return plan_layer(case.layer, case.rows, case.cols, case.dataflow, case.fold_cycles,
                          case.memory)
    except SimulationError:
        assume(False)


@settings(max_examples=40, deadline=None)
@given(cases(), st.sampled_from(PRESETS), st.sampled_from([1000.0, 700.0]))
def test_engine_with_a_device_matches_the_naive_twin(case, name, clock):
    program = _program(case)
    spec = dram_spec(name)
    env = simpy.Environment()
    engine = run_layer(env, program, Dram(None, 3, DramDevice(spec, clock)))
    twin = naive_timeline(program, DramDevice(spec, clock), 3)
    for key in ("start", "end", "load_start", "load_end", "store_start", "store_end"):
        assert getattr(engine, key).tolist() == twin[key], key
    assert engine.elapsed == twin["elapsed"]
    assert engine.dram is not None and engine.dram["preset"] == name


def test_energy_is_counts_times_idd_costs():
    spec = dram_spec("ddr4_3200")
    counts = DramCounts(activates=10, read_bursts=100, write_bursts=30, busy_cycles=5000)
    energy = dram_energy_pj(spec, counts, window_cycles=20000, refreshes=2)
    tck = 1e3 / spec.clock_mhz  # ns
    devices = 8  # 64-bit channel of x8 devices
    # DRAMPower's equations, by hand: (mA x V x ns = pJ)
    act = 60.75 * 74 - (44.0 * 52 + 38.25 * 22)
    assert energy["activate_pj"] == pytest.approx(10 * act * 1.2 * tck * devices)
    burst = 100 * (184.5 - 44.0) * 4 + 30 * (168.75 - 44.0) * 4
    assert energy["burst_pj"] == pytest.approx(burst * 1.2 * tck * devices)
    background = 44.0 * 5000 + 44.0 * 15000  # open page: active standby throughout
    assert energy["background_pj"] == pytest.approx(background * 1.2 * tck * devices)
    assert energy["refresh_pj"] == pytest.approx(2 * (118.0 - 44.0) * 560 * 1.2 * tck
                                                 * devices)
    closed = dram_energy_pj(dram_spec(DramConfig(preset="ddr4_3200", page_policy="closed")),
                            counts, window_cycles=20000, refreshes=2)
    assert closed["background_pj"] == pytest.approx((44.0 * 5000 + 38.25 * 15000) * 1.2 * tck
                                                    * devices)
    assert energy["energy_pj"] == pytest.approx(sum(v for k, v in energy.items()
                                                    if k != "energy_pj"))


@pytest.mark.parametrize("override, key", [
    ({"tRC": 30}, "dram.tRC"), ({"bank_groups": 0}, "dram.bank_groups"),
    ({"tCCD_L": 2}, "dram.tCCD_L"), ({"queue_depth": 4}, "dram.queue_depth"),
    ({"tRFC": 10}, "dram.tRFC"), ({"row_bytes": 100}, "dram.row_bytes"),
])
def test_impossible_values_are_one_line_errors(override, key):
    from simulator.api import load_arch

    with pytest.raises(ConfigError) as error:
        load_arch("os_sa_16x16", [f"memory.dram={{preset: ddr4_3200, "
                                  f"{', '.join(f'{k}: {v}' for k, v in override.items())}}}"])
    message = str(error.value)
    assert "\n" not in message and key in message, message


def test_ideal_stays_the_fixed_bandwidth_channel():
    from simulator.api import load_arch

    arch = load_arch("os_sa_16x16", ["memory.dram=ideal"])
    assert dram_spec(arch.memory.dram) is None
    with pytest.raises(ConfigError, match="null"):
        load_arch("os_sa_16x16", ["memory.dram=ddr4_3200",
                                  "memory.dram_bandwidth_bytes_per_cycle=8"])
    assert dataclasses.replace(arch.memory).dram == "ideal"


def test_a_preset_is_a_sweep_axis(cli, tmp_path):
    spec = tmp_path / "dram.yaml"
    spec.write_text("schema_version: 1\nname: dram\nbase: os_sa_16x16\nworkloads: [digits_int8]\n"
                    "grid:\n  memory.dram: [ideal, ddr4_3200, hbm2e]\n  memory.ifmap_kib: [4]\n"
                    "timing_only: true\n")
    result = cli("sweep", spec, "--out", tmp_path / "out", "--workers", "1")
    assert result.status == 0, result.err
    import csv

    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["memory.dram"] for r in rows] == ["ideal", "ddr4_3200", "hbm2e"]
    assert all(r["error"] == "" for r in rows)
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("hbm2e", "hbm3"))
    result = cli("sweep", bad, "--out", tmp_path / "bad", "--dry-run")
    assert result.status == 2 and result.err.count("\n") == 1 and "hbm3" in result.err


def test_run_reports_the_dram(cli, tmp_path):
    """`sasim run` with a preset: the DRAM line, the run totals and the energy split."""
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--set",
                 "memory.dram=ddr4_3200", "--set", "memory.ifmap_kib=4", "--out", tmp_path)
    assert result.status == 0, result.err
    assert "DRAM ddr4_3200:" in result.out
    import json

    summary = json.loads((tmp_path / "summary.json").read_text())
    dram = summary["dram"]
    split = sum(dram[f"{k}_pj"] for k in ("activate", "burst", "background", "refresh"))
    assert dram["energy_pj"] == pytest.approx(split)
    assert summary["energy_breakdown_pj"]["dram"] == pytest.approx(dram["energy_pj"])
    assert 0 < dram["row_hit_rate"] <= 1
    assert dram["achieved_bandwidth_gb_s"] <= dram["peak_bandwidth_gb_s"]
    bad = cli("run", "--arch", "os_sa_16x16", "--workload", "digits_int8", "--set",
              "memory.dram={preset: ddr4_3200, tRC: 30}", "--out", tmp_path / "bad")
    assert bad.status == 2 and bad.err.count("\n") == 1 and "tRC" in bad.err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("refresh", [57, 60, 100])
def test_closed_page_precharges_a_foreign_bank_at_once(refresh):
    """Found by the random campaign: with a closed page, a bank holding another transfer's
    row is precharged at the stream's start (no queued request hits it), not when its
    first request enters the queue; the activate that follows can then go before a refresh
    point, which the closed form must count."""
    spec = dataclasses.replace(dram_spec("ddr4_3200"), page_policy="closed")
    fast = stream(spec, 33, False, 0, offset=480, foreign=True, next_refresh=refresh)
    slow = simulate_requests(spec, [(480 + j, False) for j in range(33)], start=0,
                             foreign=True, next_refresh=refresh)
    assert (fast.end, fast.activates) == (slow.end, slow.activates)


def _cycles_by_stream(spec, nbytes, write, start, num, den):
    """A transfer's array cycles and counts straight from :func:`stream` per channel group
    (the device's rule without its cache of refresh-free transfers)."""
    t0 = -(-start * num // den)
    last = (t0 // spec.tREFI) * spec.tREFI
    begin, refresh = t0, last + spec.tREFI
    if last > 0 and t0 < last + spec.tRP + spec.tRFC:
        begin = last + spec.tRP + spec.tRFC
    foreign = spec.page_policy == "open" and begin == t0
    bursts = -(-nbytes // spec.burst_bytes)
    fewer, extra = divmod(bursts, spec.channels)
    end, activates, misses = begin, 0, 0
    for count, channels in ((fewer + 1, extra), (fewer, spec.channels - extra)):
        if count and channels:
            result = stream(spec, count, write, begin, foreign=foreign, next_refresh=refresh)
            end = max(end, result.end)
            activates += result.activates * channels
            misses += result.misses * channels
    return -(-end * den // num) - start, activates, misses


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PRESETS), st.sampled_from([None, 1200, 3000]),
       st.lists(st.tuples(st.integers(1, 20000), st.booleans(), st.integers(0, 3000)),
                min_size=1, max_size=12))
def test_device_transfers_equal_their_streams(name, refresh_interval, transfers):
    """The device reuses a refresh-free transfer's schedule (shifted) wherever no refresh
    point reaches it: every transfer's cycles and commands equal :func:`stream`'s."""
    over = {"preset": name} if refresh_interval is None else {"preset": name,
                                                               "tREFI": refresh_interval}
    spec = dram_spec(DramConfig(**over))
    device = DramDevice(spec, 1000.0)
    start = 0
    for nbytes, write, gap in transfers:
        start += gap
        before = (device.counts.activates, device.counts.misses)
        cycles = device.cycles_at(nbytes, write, start)
        expected = _cycles_by_stream(spec, nbytes, write, start, device.num, device.den)
        assert (cycles, device.counts.activates - before[0],
                device.counts.misses - before[1]) == expected
        start += cycles
