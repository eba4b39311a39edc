"""Switching activity (simulator/rtl/activity.py, docs/rtl.md "Switching activity").

On a 1x1 dense array the register contents of every cycle are known from the operands alone
(PE (0, 0) holds step c in cycle c, then one drain cycle clears it), so a naive twin can
count every toggle by hand; the co-simulation's counts must equal it exactly.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.rtl.activity import NO_STEP, fold_toggles, model_energies
from simulator.rtl.cosim import ACTIVITY_GROUPS, run_gemms
from simulator.rtl.design import RtlDesign, exact_acc_bits
from simulator.rtl.pe.common import product_bits


def _bits(value: int, width: int) -> int:
    return value & ((1 << width) - 1)


def _naive_toggles(gemms, acc_bits: int, isolation: bool) -> tuple[dict, dict]:
    """Toggles of a 1x1 dense array per class, from the operands: (steps, toggles). With
    operand isolation the multiplier sees zeros unless both operands are non-zero."""
    p_bits = product_bits(1)
    steps = {"idle": 0, "single": 0, NO_STEP: 0}
    toggles = {c: dict.fromkeys(ACTIVITY_GROUPS, 0) for c in steps}
    # per cycle: (class, a, w, valid, product, acc after the cycle)
    cycles = []
    for a, b in gemms:
        for m in range(a.shape[0]):
            acc = 0
            for k in range(a.shape[1]):
                x, w = int(a[m, k]), int(b[k, 0])
                acc += x * w
                cycles.append(("single" if x and w else "idle", x, w, 1, x * w, acc))
            cycles.append((NO_STEP, 0, 0, 0, 0, 0))  # the drain shifts in zeros
    def seen(x: int, w: int) -> tuple[int, int]:
        return (x, w) if x and w or not isolation else (0, 0)

    before = (None, 0, 0, 0, 0, 0)
    for now in cycles:
        event, x, w, valid, prod, _ = now
        _, px, pw, pvalid, pprod, pacc = before
        steps[event] += 1
        operands = (_bits(x ^ px, 8) | _bits(w ^ pw, 8) << 8).bit_count()
        (mx, mw), (pmx, pmw) = seen(x, w), seen(px, pw)
        toggles[event]["multiplier_inputs"] += (_bits(mx ^ pmx, 8)
                                                | _bits(mw ^ pmw, 8) << 8).bit_count()
        toggles[event]["operand_registers"] += operands + 2 * (valid ^ pvalid)
        toggles[event]["partial_sum"] += _bits(prod ^ pprod, p_bits).bit_count()
        toggles[event]["accumulator"] += _bits(now[5] ^ pacc, acc_bits).bit_count()
        before = now
    return steps, toggles


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(0, 2**32 - 1)),
                min_size=1, max_size=3), st.booleans())
def test_toggles_equal_a_naive_twin(shapes, isolation):
    gemms = []
    for m, k, seed in shapes:
        rng = np.random.default_rng(seed)
        a = rng.integers(0, 256, (m, k)) * (rng.random((m, k)) < 0.6)
        b = rng.integers(-128, 128, (k, 1)) * (rng.random((k, 1)) < 0.7)
        gemms.append((a.astype(np.int64), b.astype(np.int64)))
    acc_bits = exact_acc_bits(max(a.shape[1] for a, _ in gemms))
    design = RtlDesign(name="t", pe_type="dense", threads=1, options={}, rows=1, cols=1,
                       act_signed=False, acc_bits=acc_bits, operand_isolation=isolation)
    runs = run_gemms(design, [(a, b, np.arange(a.shape[1])[None, :]) for a, b in gemms],
                     probe_activity=True)
    table = fold_toggles(("idle", "single"), runs)
    steps, toggles = _naive_toggles(gemms, acc_bits, isolation)
    assert table.steps == steps
    assert table.toggles == toggles


def test_model_energies_follow_the_composition():
    from simulator import api
    from simulator.hw.accumulator import pe_composition
    from simulator.hw.pe import get_pe_model

    arch = api.load_arch("sysmt_2t_16x16")
    tech = api.load_tech_table(arch.energy.tech)
    composition = pe_composition(get_pe_model(arch.pe, arch.array))
    energies = model_energies(composition, tech)
    assert set(energies) == set(composition.events)
    for event, parts in composition.events.items():
        total = sum(count * tech.energy_pj(c) for c, count in parts.items())
        assert abs(sum(energies[event].values()) - total) < 1e-12
