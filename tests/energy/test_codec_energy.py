"""The transform codec's logic priced (docs/energy-model.md, "Transform codec"): the lane's
composition by hand, a run's codec energy and area recomputed from the tech table."""

from __future__ import annotations

import pytest

from simulator import api
from simulator.energy.codec import coder_lane, max_code_bits


def test_lane_composition_by_hand():
    """b = 3 (L = 7), 16-bit words."""
    lane = coder_lane(3, 16)
    assert max_code_bits(3) == 7 and max_code_bits(8) == 32 and max_code_bits(1) == 1
    assert lane.encode == {"shifter_bit": 32, "logic_bit": 32, "adder_8": 1}
    assert lane.decode == {"comparator_bit": 28, "logic_bit": 7, "adder_16": 2,
                           "shifter_bit": 32, "adder_8": 1}
    assert lane.encode_table_bytes == 13 / 8 and lane.decode_table_bytes == 3 / 8
    assert lane.encode_table_kib == 8 * 13 / 8 / 1024
    assert lane.decode_table_kib == 8 * 3 / 8 / 1024
    assert lane.register_bits == 2 * (32 + 6) and lane.constant_bits == 7 * (14 + 3)


@pytest.mark.parametrize("inverse", ["array", "side_unit"])
def test_run_prices_the_coder_lanes(inverse):
    """Every coded layer's encoder and decoder energy is its symbols times one lane's
    per-symbol energy (components and table reads from the raw tech table), its register
    energy the lanes' clocked bits every cycle (plus the side unit's during the inverse);
    the run's area has the codec's class; the layer's energy holds it."""
    arch = api.load_arch("os_sa_16x16", ["memory.activation_codec.bits=4",
                                         "memory.activation_codec.lanes=8",
                                         f"memory.activation_codec.inverse={inverse}"])
    result = api.simulate(arch, api.load_workload("digits_int8"))
    tech = api.load_tech_table(arch.energy.tech)
    e = {name: c.energy_pj for name, c in tech.components.items()}
    a = {name: c.area_um2 for name, c in tech.components.items()}
    length, window = 15, 32
    sram = tech.sram.access_energy_pj_per_byte
    enc_kib, dec_kib = 16 * (length + 6) / 8 / 1024, 16 * 4 / 8 / 1024
    per_encode = (window * e["shifter_bit"] + window * e["logic_bit"] + e["adder_8"]
                  + (length + 6) / 8 * sram(enc_kib))
    per_decode = (length * (length + 1) / 2 * e["comparator_bit"] + length * e["logic_bit"]
                  + 2 * e["adder_16"] + window * e["shifter_bit"] + e["adder_8"]
                  + 4 / 8 * sram(dec_kib))
    coded = [l for l in result.layers if l.codec is not None]
    assert any(l.codec["decoded_symbols"] for l in coded)
    assert any(l.codec["encoded_symbols"] for l in coded)
    for lay in coded:
        c = lay.codec
        assert c["encoder_energy_pj"] == pytest.approx(c["encoded_symbols"] * per_encode)
        assert c["decoder_energy_pj"] == pytest.approx(c["decoded_symbols"] * per_decode)
        registers = 8 * 2 * (window + 6) * lay.total_cycles * e["register_bit"]
        if inverse == "side_unit":
            registers += 64 * 48 * c["inverse_cycles"] * e["register_bit"]
        assert c["codec_register_energy_pj"] == pytest.approx(registers)
        assert lay.energy_breakdown_pj["codec"] == pytest.approx(c["codec_energy_pj"])
    lane_area = (window * (2 * a["shifter_bit"] + a["logic_bit"]) + 2 * a["adder_8"]
                 + length * (length + 1) / 2 * a["comparator_bit"] + length * a["logic_bit"]
                 + 2 * a["adder_16"] + tech.sram.area_um2(enc_kib) + tech.sram.area_um2(dec_kib)
                 + (2 * (window + 6) + length * (2 * length + 4)) * a["register_bit"])
    side = 64 * (a["mult_8x8"] + a["adder_32"] + 48 * a["register_bit"])
    expected = 8 * lane_area + (side if inverse == "side_unit" else 0)
    summary = result.summary()
    assert summary["area_breakdown_um2"]["codec"] == pytest.approx(expected)
    assert summary["codec"]["codec_area_um2"] == pytest.approx(expected)
    assert summary["array_area_um2"] == pytest.approx(
        summary["area_um2"] - summary["area_breakdown_um2"]["buffers"] - expected)
    assert summary["energy_breakdown_pj"]["codec"] == pytest.approx(
        sum(l.codec["codec_energy_pj"] for l in coded))


def test_a_run_without_the_codec_has_no_codec_class():
    summary = api.simulate(api.load_arch("os_sa_16x16"),
                           api.load_workload("digits_int8")).summary()
    assert "codec" not in summary["area_breakdown_um2"]
    assert "codec" not in summary["energy_breakdown_pj"]
