"""Readable text tables of a run summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulator.config.arch import prefetch_mode

__all__ = ["format_table", "format_run"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 align: str | None = None) -> str:
    """Format rows as a fixed-width table; ``align`` has one 'l' or 'r' per column."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)
    lines = []
    for n, row in enumerate(cells):
        parts = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_run(summary: Mapping[str, Any]) -> str:
    """The per-layer table and the totals of one run, as printed by ``sasim run``."""
    cfg = summary["arch_config"]
    array = cfg["array"]
    head = (f"arch {summary['arch']}: {array['rows']}x{array['cols']} {array['dataflow'].upper()}"
            f" array, PE {cfg['pe']['type']}, {array['clock_mhz']:g} MHz, "
            f"{summary['convention']} cycle convention\n"
            f"workload {summary['workload']} ({summary['workload_format']}, "
            f"{len(summary['layers'])} layers, data: {summary['data']})")
    functional = summary.get("functional", False)
    counter_names = list(summary["counters"]) if functional else []
    headers = ["layer", "M", "K", "N", "g", "folds", "cycles", "stalls", "roofline", "bound",
               "DRAM KiB", "MACs", "G bit-ops", "util %", "map eff %"]
    priced = summary.get("energy_pj") is not None
    transformer = "array_cycles" in summary
    if transformer:
        headers[1:1] = ["unit", "role"]
    if functional:
        headers += [f"{name} %" for name in counter_names] + ["SQNR dB"]
    if priced:  # both scopes, named (docs/energy-model.md, "Two scopes")
        headers += ["array energy uJ", "chip energy uJ"]
    rows = []
    for lay in summary["layers"]:
        row = [lay["name"], lay["m"], lay["k"], lay["n"], lay["groups"], lay["folds"],
               lay["total_cycles"], lay["stall_cycles"], lay["roofline_cycles"], lay["bound"],
               _kib(_dram_bytes(lay)), lay["macs"], f"{lay['hcm_bit_ops'] / 1e9:.2f}",
               100 * lay["utilization"], 100 * lay["mapping_efficiency"]]
        if transformer:
            row[1:1] = [lay.get("unit", "array"), lay.get("role", "") or "-"]
        if functional and lay.get("counters") is None:  # a vector layer has no PE counters
            integer = lay.get("vector_sqnr_db")
            row += [""] * len(counter_names) + ["" if integer is None else f"{integer:.1f}"]
        elif functional:
            steps = sum(lay["counters"].values()) or 1
            row += [100 * lay["counters"][c] / steps for c in counter_names]
            row.append(_sqnr(lay["sqnr_db"]))
        if priced:
            row += [_uj(lay.get("array_energy_pj")), _uj(lay.get("chip_energy_pj"))]
        rows.append(row)
    total = ["total", "", "", "", "", sum(lay["folds"] for lay in summary["layers"]),
             summary["total_cycles"], summary["stall_cycles"], summary["roofline_cycles"],
             f"{summary['memory_bound_layers']} mem", _kib(_dram_bytes(summary)),
             summary["macs"], f"{summary['hcm_bit_ops'] / 1e9:.2f}",
             100 * summary["utilization"], ""]
    if transformer:
        total[1:1] = ["", ""]
    if functional:
        steps = sum(summary["counters"].values()) or 1
        total += [100 * summary["counters"][c] / steps for c in counter_names]
        total.append(_sqnr(summary["sqnr_db"]))
    if priced:
        total += [summary["array_energy_pj"] / 1e6, summary["energy_pj"] / 1e6]
    rows.append(total)
    foot = [f"total: {summary['total_cycles']:,} cycles = {summary['time_us']:,.1f} us at "
            f"{array['clock_mhz']:g} MHz{_throughput(summary)}; {summary['macs']:,} MACs; "
            f"utilization {100 * summary['utilization']:.2f} %", _memory_line(summary),
            *_sizing_lines(summary),
            "roofline: max(compute cycles, DRAM bytes / bandwidth), bound: its larger term; "
            "bit-ops: HCM's MACs x (ba*bw + ba + bw + log2 K)"]
    if functional:
        error = ("none (outputs are exact)" if summary["sqnr_db"] is None else
                 f"SQNR {summary['sqnr_db']:.1f} dB, max |error| {summary['max_abs_error']:,}")
        foot.append(f"numeric error vs the exact GEMM: {error}; counters are % of PE-steps")
        if summary.get("outputs_match_trace") is not None:
            verdict = "match" if summary["outputs_match_trace"] else "differ from"
            foot.append(f"simulated outputs {verdict} the trace's recorded outputs")
    foot.extend(summary.get("notes", ()))
    if summary.get("alternative_cycles"):
        alternatives = ", ".join(f"{name} {cycles:,}"
                                 for name, cycles in summary["alternative_cycles"].items())
        foot.append(f"compute cycles under the PE's alternatives: {alternatives} "
                    f"(this run: {summary['compute_cycles']:,})")
    if priced:
        parts = ", ".join(f"{name} {100 * value / summary['energy_pj']:.1f} %"
                          for name, value in summary["energy_breakdown_pj"].items() if value)
        foot.append(f"energy ({summary['tech']}): array scope "
                    f"{summary['array_energy_pj'] / 1e6:,.2f} uJ (the PEs, their registers "
                    f"and their leakage: what the papers report), chip scope "
                    f"{summary['energy_pj'] / 1e6:,.2f} uJ (+ buffers, DRAM, all leakage), "
                    + ("no MACs" if summary["energy_per_mac_pj"] is None else
                       f"{summary['energy_per_mac_pj']:.3f} pJ/MAC at chip scope")
                    + f" ({parts}); area "
                    f"{summary['area_mm2']:.3f} mm2 (array "
                    f"{summary['array_area_um2'] / 1e6:.3f})")
    if any(lay.get("vector_sqnr_db") is not None for lay in summary["layers"]):
        foot.append("vector layers' SQNR: their integer-only variant vs float64 on the layer's "
                    "data (docs/transformers.md)")
    if transformer:
        foot.extend(_transformer_lines(summary))
    if summary.get("codec"):
        foot.append(_codec_line(summary))
    if summary.get("dram"):
        foot.append(_dram_line(summary["dram"]))
    if summary.get("compression"):
        foot.append(_compression_line(summary))
    if summary.get("multicore"):
        foot.extend(_multicore_lines(summary["multicore"]))
    if summary.get("zap"):
        from simulator.reports.zap import zap_lines

        foot.extend(zap_lines(summary))
    if summary["data"] == "synthetic":
        foot.append("data: SYNTHETIC (generated for this shape-only workload; see "
                    "docs/synthetic-data.md)")
    return "\n".join([head, "", format_table(headers, rows), "", *foot])


def _transformer_lines(summary: Mapping[str, Any]) -> list[str]:
    """Array vs vector time, time by role, the KV cache and the phase's latency
    (docs/transformers.md, "Reports")."""
    total = summary["total_cycles"] or 1
    shares = ", ".join(f"{name} {100 * cycles / total:.1f} %"
                       for name, cycles in summary["role_cycles"].items() if cycles)
    lines = [f"array {summary['array_cycles']:,} cycles, vector unit "
             f"{summary['vector_cycles']:,} cycles"
             + (f" ({summary['overlap_cycles']:,} more hidden under array layers)"
                if summary["overlap_cycles"] else "")
             + f"; time by role: {shares or 'none'}"]
    if summary["kv_cache_bytes"]:
        lines.append(f"KV cache: {summary['kv_cache_bytes'] / 2**20:,.2f} MiB, read from DRAM "
                     f"{summary['kv_cache_read_bytes'] / 2**20:,.2f} MiB this run")
    if summary.get("phase") == "prefill":
        lines.append(f"prefill: time to first token {summary['time_to_first_token_us']:,.1f} us "
                     f"({summary['sequences']:,} sequences)")
    elif summary.get("phase") == "decode":
        lines.append(f"decode: time per output token {summary['time_per_output_token_us']:,.1f}"
                     f" us, {summary['tokens_per_s']:,.0f} tokens/s "
                     f"({summary['sequences']:,} sequences per step)")
    return lines


def _dram_bytes(record: Mapping[str, Any]) -> int:
    return sum(record[key] for key in ("dram_ifmap_read_bytes", "dram_filter_read_bytes",
                                       "dram_psum_read_bytes", "dram_ofmap_write_bytes",
                                       "dram_psum_write_bytes"))


def _kib(nbytes: int) -> str:
    return f"{nbytes / 1024:,.1f}"


def _memory_line(summary: Mapping[str, Any]) -> str:
    """One line describing the memory system and its totals."""
    memory = summary["arch_config"]["memory"]
    sizes = "/".join("unbounded" if memory[f"{b}_kib"] is None else f"{memory[f'{b}_kib']:g}"
                     for b in ("ifmap", "filter", "ofmap"))
    bandwidth = memory["dram_bandwidth_bytes_per_cycle"]
    dram = ("unbounded DRAM bandwidth" if bandwidth is None
            else f"DRAM {bandwidth:g} B/cycle, latency {memory['dram_latency_cycles']}")
    if summary.get("dram"):
        dram = f"DRAM {summary['dram']['preset']}"
    buffering = "double" if memory["double_buffering"] else "single"
    prefetch = prefetch_mode(memory.get("prefetch"),
                             summary["arch_config"]["timing"]["convention"],
                             memory["double_buffering"])
    banks = memory.get("buffer_banks", 1)
    banked = f" in {banks} banks each" if banks > 1 else ""
    reads = sum(summary[k] for k in ("dram_ifmap_read_bytes", "dram_filter_read_bytes",
                                     "dram_psum_read_bytes"))
    writes = summary["dram_ofmap_write_bytes"] + summary["dram_psum_write_bytes"]
    return (f"memory: buffers ifmap/filter/ofmap {sizes} KiB{banked}, {buffering}-buffered, "
            f"cross-layer prefetch {prefetch}, {dram}; "
            f"DRAM read {reads / 2**20:,.2f} MiB, written {writes / 2**20:,.2f} MiB; "
            f"peak buffers {summary['peak_ifmap_bytes']:,}/{summary['peak_filter_bytes']:,}/"
            f"{summary['peak_ofmap_bytes']:,} B; stalls {summary['stall_cycles']:,} cycles "
            f"(prefetch {summary['prefetch_cycles']:,}, final write-back "
            f"{summary['drain_cycles']:,})")


def _uj(value: float | None) -> float | str:
    return "" if value is None else value / 1e6


def _sizing_lines(summary: Mapping[str, Any]) -> list[str]:
    """A line naming unbounded buffers and the SRAM they were priced at (docs/memory-model.md,
    "Ideal memory"); none when every buffer has a size."""
    sizing = summary.get("buffer_sizing")
    if not sizing or not sizing["unbounded"]:
        return []
    priced = "/".join(f"{sizing['priced_kib'].get(b, 0.0):,.1f}" for b in sizing["unbounded"])
    per_pe = sizing["sram_kib_per_pe"]
    return [f"unbounded buffers ({'/'.join(sizing['unbounded'])}): priced as SRAMs of the "
            f"run's peak occupancy, {priced} KiB ({sizing['sram_kib']:,.1f} KiB of SRAM in "
            f"all" + ("" if per_pe is None else f", {per_pe:,.2f} KiB per PE") + ")"]


def _dram_line(dram: Mapping[str, Any]) -> str:
    """A DRAM preset's totals (docs/memory-model.md, "DRAM timing and energy")."""
    hits = "-" if dram["row_hit_rate"] is None else f"{100 * dram['row_hit_rate']:.2f} %"
    split = ", ".join(f"{name} {dram[f'{name}_pj'] / 1e6:,.2f}"
                      for name in ("activate", "burst", "background", "refresh"))
    return (f"DRAM {dram['preset']}: {dram['activates']:,} activates, "
            f"{dram['read_bursts']:,} read / {dram['write_bursts']:,} write bursts, row hits "
            f"{hits}, {dram['refreshes']:,} refreshes; bandwidth "
            f"{dram['achieved_bandwidth_gb_s']:,.2f} of {dram['peak_bandwidth_gb_s']:,.2f} "
            f"GB/s peak; energy {dram['energy_pj'] / 1e6:,.2f} uJ ({split} uJ)")


def _multicore_lines(multicore: Mapping[str, Any]) -> list[str]:
    """A multi-core run's cores (docs/memory-model.md, "Multi-core"): one line per core."""
    energy = multicore.get("energy_per_inference_uj")
    link = multicore["interconnect_bytes_per_cycle"]
    lines = [f"cores: {multicore['cores']}, partition {multicore['partition']}, "
             f"interconnect {'as fast as the DRAM' if link is None else f'{link:g} B/cycle'}; "
             f"utilization of all cores {100 * multicore['utilization']:.2f} %"
             + ("" if energy is None else f"; energy per inference {energy:,.2f} uJ")]
    for core in multicore["per_core"]:
        lines.append(f"  core {core['core']}: {core['busy_cycles']:,} cycles busy "
                     f"({core['compute_cycles']:,} compute, {core['stall_cycles']:,} stalls), "
                     f"{core['idle_cycles']:,} idle; {core['layers']} layers, "
                     f"{core['macs']:,} MACs; utilization {100 * core['utilization']:.2f} %")
    return lines


def _sqnr(value: float | None) -> str:
    return "exact" if value is None else f"{value:.1f}"


def _throughput(summary: Mapping[str, Any]) -> str:
    """Throughput beside the latency (docs/memory-model.md, "Batches"); nothing for a summary
    saved before it was reported."""
    rate = summary.get("inferences_per_s")
    if rate is None:
        return ""
    count = summary["inferences"]
    return (f" for {count:,} inference{'s' if count != 1 else ''} "
            f"({rate:,.1f} inferences/s)")


def _compression_line(summary: dict) -> str:
    """Compressed operands' totals (docs/memory-model.md, "Compressed operands")."""
    totals = summary["compression"]
    parts = []
    for operand, label in (("filter", "weights"), ("ifmap", "inputs")):
        size = totals[operand]
        if size is not None:
            parts.append(f"{label} {'/'.join(size['schemes'])} "
                         f"{size['stored_bits_per_value']:.3f} bits/value in "
                         f"{size['layers']} layers ({size['source']} data)")
    saved = (f"DRAM {totals['dram_compressed_bytes']:,} B of these operands' transfers vs "
             f"{totals['dram_raw_bytes']:,} B as words: {totals['dram_bytes_saved']:,} B saved")
    energy = totals.get("dram_energy_saved_pj")
    if energy is not None:
        saved += f" ({energy / 1e6:,.2f} uJ)"
    return (f"compressed operands (docs/memory-model.md): "
            f"{'; '.join(parts) or 'no layer input shrinks'}; {saved}")


def _codec_line(summary: dict) -> str:
    """The transform codec's totals (docs/transform-coding.md, "Reports")."""
    codec = summary["codec"]
    options = summary["arch_config"]["memory"]["activation_codec"]
    bpv = ("" if codec["stored_bits_per_value"] is None else
           f"bits/value entropy {codec['entropy_bits_per_value']:.3f}, Huffman "
           f"{codec['code_bits_per_value']:.3f}, stored {codec['stored_bits_per_value']:.3f} "
           f"(+ {codec['table_bytes']:,} table bytes); ")
    energy = codec.get("dram_energy_saved_pj")
    saved = f"{codec['dram_bytes_saved']:,} DRAM bytes saved of {codec['dram_raw_bytes']:,}"
    if energy is not None:
        saved += f" ({energy / 1e6:,.2f} uJ)"
    if codec.get("codec_energy_pj") is not None:  # docs/energy-model.md, "Transform codec"
        saved += (f"; coder lanes {codec['codec_energy_pj'] / 1e6:,.2f} uJ (encode "
                  f"{codec['encoder_energy_pj'] / 1e6:,.2f}, decode "
                  f"{codec['decoder_energy_pj'] / 1e6:,.2f}, registers "
                  f"{codec['codec_register_energy_pj'] / 1e6:,.2f}), area "
                  f"{codec.get('codec_area_um2', 0.0) / 1e6:.3f} mm2")
    return (f"activation codec ({options['transform']}, b = {options['bits']}, "
            f"{'synthetic data, ' if summary['data'] == 'synthetic' else ''}"
            f"docs/transform-coding.md): {bpv}{saved}; inverse transform "
            f"{codec['inverse_macs']:,} MACs, {codec['inverse_cycles']:,} cycles on the "
            f"{options['inverse'].replace('_', ' ')}; codec stalls "
            f"{codec['codec_stall_cycles']:,} cycles")
