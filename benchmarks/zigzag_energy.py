"""sasim's dense OS array against ZigZag on ResNet-18: energy by component
(docs/validation.md, "Energy against ZigZag").

    make bench-zigzag        # creates .venv-zigzag (zigzag-dse==3.9.1) and runs this script
    .venv/bin/python benchmarks/zigzag_energy.py --zigzag-python .venv-zigzag/bin/python

Builds ZigZag's three inputs (workload, accelerator, mapping) from sasim's own arch, tech
table and workload, runs ZigZag in its own virtual environment (a subprocess: sasim does not
depend on ZigZag's onnx, sympy, networkx, seaborn), runs sasim on the same arch and
workload, and prints per layer and in total the energy of both by component (MAC,
registers, buffers per operand, DRAM; sasim's leakage apart, ZigZag has none), their
ratios, the buffer and DRAM bytes side by side and, for information, the latency.

The same script is ZigZag's side of the subprocess (``--zigzag-side DIR``): it imports
zigzag only there and sasim only on sasim's side.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: The comparison's design point: sasim's baseline array, its workload, and buffer sizes a
#: 16x16 array would have (64 KiB each; sasim's shipped archs leave them unbounded).
ARCH = "os_sa_16x16"
WORKLOAD = "resnet18"
BUFFER_KIB = 64
#: Buffer name in sasim -> (ZigZag memory operand, the layer operand it serves).
BUFFERS = {"ifmap": ("I1", "I"), "filter": ("I2", "W"), "ofmap": ("O", "O")}
#: Bits a buffer port moves per access at most (one value per array edge row or column;
#: 32-bit partial sums on the output side). Only latency depends on these: every access
#: energy below is the per-bit energy times the port width, and ``bandwidth_min`` = 8 bits
#: makes ZigZag round its accesses to bytes, as sasim counts bytes.
SRAM_PORT_BITS = {"ifmap": 128, "filter": 128, "ofmap": 512}
DRAM_PORT_BITS = 1024
MIN_PORT_BITS = 8


class ComparisonError(Exception):
    """A reason the comparison cannot be made, reported as one line (exit status 2)."""


def arch_overrides(kib: int = BUFFER_KIB) -> list[str]:
    """The ``--set`` overrides giving sasim's arch the comparison's buffer sizes: the ideal
    memory (one bank per buffer, DRAM at the table's energy per bit) with ``kib`` KiB per
    buffer (docs/memory-model.md, "Ideal memory")."""
    return ["memory=ideal", *(f"memory.{name}_kib={kib}" for name in BUFFERS)]


# ---------------------------------------------------------------- per-access energies


def energies(arch: Any, tech: Any) -> dict[str, float]:
    """The per-access energies ZigZag is given, all from sasim's own PE composition and
    tech table (docs/energy-model.md): the MAC is the dense PE's ``single`` step, a register
    access is its width times ``register_bit``, a buffer byte is the SRAM law at the
    configured capacity, a DRAM byte the table's DRAM energy."""
    from simulator.hw.accumulator import pe_composition
    from simulator.hw.pe import get_pe_model

    composition = pe_composition(get_pe_model(arch.pe, arch.array))
    out = {"mac_pj": sum(n * tech.energy_pj(c) for c, n in composition.events["single"].items()),
           "register_bit_pj": tech.energy_pj("register_bit"),
           "register_bits": composition.parts["register_bit"],
           "dram_pj_per_byte": tech.dram.energy_pj_per_byte}
    kib = {"ifmap": arch.memory.ifmap_kib, "filter": arch.memory.filter_kib,
           "ofmap": arch.memory.ofmap_kib}
    for name, size in kib.items():
        if size is None:
            raise ValueError(f"arch {arch.name}: memory.{name}_kib must be set for ZigZag "
                             "(a buffer of unbounded size has no access energy)")
        out[f"{name}_kib"] = float(size)
        out[f"{name}_read_pj_per_byte"] = tech.sram.access_energy_pj_per_byte(size)
        out[f"{name}_write_pj_per_byte"] = tech.sram.access_energy_pj_per_byte(size, write=True)
    return out


# ---------------------------------------------------------------- ZigZag's inputs


def conv_loops(layer: Any) -> dict[str, int]:
    """ZigZag's loop sizes of a sasim conv2d or linear layer (batch B, output channels K,
    input channels C, output rows and columns OY OX, filter rows and columns FY FX)."""
    gemm = layer.gemm
    if layer.op == "linear":
        return {"B": layer.batch, "K": gemm.n, "C": gemm.k, "OY": gemm.m // layer.batch,
                "OX": 1, "FY": 1, "FX": 1}
    if layer.groups != 1 or layer.op != "conv2d":
        raise ValueError(f"layer {layer.name}: only dense conv2d and linear layers are mapped "
                         f"to ZigZag (op {layer.op}, groups {layer.groups})")
    oy, ox = layer.output_size
    fy, fx = layer.kernel_size
    return {"B": layer.batch, "K": layer.out_channels, "C": layer.in_channels,
            "OY": oy, "OX": ox, "FY": fy, "FX": fx}


def workload_layer(layer: Any, index: int) -> dict[str, Any]:
    """One layer of ZigZag's workload YAML: sasim's shape, stride, padding and precisions
    (8-bit operands, 32-bit partial sums, outputs of the layer's activation width)."""
    loops = conv_loops(layer)
    entry: dict[str, Any] = {
        "id": index, "name": layer.name, "operator_type": "Conv",
        "equation": "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]",
        "loop_dims": list(loops), "loop_sizes": list(loops.values()),
        "operand_precision": {"W": layer.weight_bits, "I": layer.activation_bits,
                              "O": 32, "O_final": layer.activation_bits},
        "operand_source": {"I": max(index - 1, 0), "W": index},
    }
    if layer.op == "linear":
        entry["dimension_relations"] = ["ix=1*ox+1*fx", "iy=1*oy+1*fy"]
        return entry
    (sy, sx), (py, px), (dy, dx) = layer.stride, layer.padding, layer.dilation
    entry["dimension_relations"] = [f"ix={sx}*ox+{dx}*fx", f"iy={sy}*oy+{dy}*fy"]
    entry["pr_loop_dims"] = ["IX", "IY"]
    entry["pr_loop_sizes"] = [layer.input_size[1], layer.input_size[0]]
    entry["padding"] = [[px, px], [py, py]]
    return entry


def spatial_unrolling(loops: dict[str, int], rows: int, cols: int) -> dict[str, list]:
    """Output-stationary, as sasim maps M x N: output pixels on the array's rows (D1, an
    OX x OY patch of at most ``rows`` pixels), output channels on its columns (D2: K, up to
    ``cols``). The patch is the one with the fewest pixel tiles (ZigZag's uneven mapping pads
    the last), then the least padding, then the widest OX: as close as a rectangular patch
    comes to sasim's row folds of ``rows`` consecutive pixels (7 x 7: 7 x 2, 4 tiles, as
    sasim's 4 row folds of 16)."""
    def key(ox: int, oy: int) -> tuple[int, int, int]:
        tiles = math.ceil(loops["OX"] / ox) * math.ceil(loops["OY"] / oy)
        return tiles, tiles * ox * oy, -ox

    ox, oy = min(((a, b) for a in range(1, min(rows, loops["OX"]) + 1)
                  for b in range(1, min(rows // a, loops["OY"]) + 1)), key=lambda p: key(*p))
    d1 = [f"OX, {ox}"] + ([f"OY, {oy}"] if oy > 1 else [])
    return {"D1": d1, "D2": [f"K, {min(cols, loops['K'])}"]}


def mapping(workload_layers: list[dict[str, Any]], rows: int, cols: int) -> list[dict[str, Any]]:
    """ZigZag's mapping YAML: one entry per layer (by name) with its spatial unrolling; the
    temporal mapping is left to ZigZag's search (LOMA)."""
    links = {"O": "O", "W": "I2", "I": "I1"}
    out = []
    for entry in workload_layers:
        loops = dict(zip(entry["loop_dims"], entry["loop_sizes"]))
        out.append({"name": entry["name"], "spatial_mapping": spatial_unrolling(loops, rows, cols),
                    "memory_operand_links": dict(links)})
    out.append({"name": "default", "spatial_mapping": {"D1": [f"OX, {rows}"], "D2": [f"K, {cols}"]},
                "memory_operand_links": dict(links)})
    return out


def _port(name: str, kind: str, bits_min: int, bits_max: int, allocation: list[str]) -> dict:
    return {"name": name, "type": kind, "bandwidth_min": bits_min, "bandwidth_max": bits_max,
            "allocation": allocation}


def _single_operand_ports(operand: str, bits_min: int, bits_max: int) -> list[dict]:
    """A read and a write port for one memory operand (outputs also flow back up)."""
    if operand == "O":
        return [_port("r_port_1", "read", bits_min, bits_max, ["O, tl", "O, th"]),
                _port("w_port_1", "write", bits_min, bits_max, ["O, fh", "O, fl"])]
    return [_port("r_port_1", "read", bits_min, bits_max, [f"{operand}, tl"]),
            _port("w_port_1", "write", bits_min, bits_max, [f"{operand}, fh"])]


def _memory(size_bits: int, read_pj: float, write_pj: float, operand: str | list[str],
            ports: list[dict], served: list[str]) -> dict[str, Any]:
    return {"size": size_bits, "r_cost": read_pj, "w_cost": write_pj, "area": 0, "latency": 1,
            "operands": [operand] if isinstance(operand, str) else operand, "ports": ports,
            "served_dimensions": served}


def accelerator(arch: Any, e: dict[str, float], activation_bits: int = 8,
                weight_bits: int = 8, accumulator_bits: int = 32) -> dict[str, Any]:
    """ZigZag's accelerator YAML: a rows x cols array of MAC units; per PE an activation,
    a weight and an accumulator register; one global buffer per operand with sasim's
    capacity and per-byte energies; DRAM. Each ``r_cost``/``w_cost`` is the energy of one
    access of the port's ``bandwidth_max`` bits (ZigZag's convention)."""
    reg = e["register_bit_pj"]
    memories: dict[str, Any] = {
        "reg_I": _memory(activation_bits, activation_bits * reg, activation_bits * reg, "I1",
                         _single_operand_ports("I1", activation_bits, activation_bits), []),
        "reg_W": _memory(weight_bits, weight_bits * reg, weight_bits * reg, "I2",
                         _single_operand_ports("I2", weight_bits, weight_bits), []),
        "reg_O": _memory(accumulator_bits, accumulator_bits * reg, accumulator_bits * reg, "O",
                         _single_operand_ports("O", accumulator_bits, accumulator_bits), []),
    }
    for name, (operand, _) in BUFFERS.items():
        bits = SRAM_PORT_BITS[name]
        memories[f"{name}_buffer"] = _memory(
            int(e[f"{name}_kib"] * 1024 * 8), e[f"{name}_read_pj_per_byte"] * bits / 8,
            e[f"{name}_write_pj_per_byte"] * bits / 8, operand,
            _single_operand_ports(operand, MIN_PORT_BITS, bits), ["D1", "D2"])
    dram_access = e["dram_pj_per_byte"] * DRAM_PORT_BITS / 8
    memories["dram"] = _memory(
        10 ** 12, dram_access, dram_access, ["I1", "I2", "O"],
        [_port("rw_port_1", "read_write", MIN_PORT_BITS, DRAM_PORT_BITS,
               ["I1, fh", "I1, tl", "I2, fh", "I2, tl", "O, fh", "O, tl", "O, fl", "O, th"])],
        ["D1", "D2"])
    return {"name": f"{arch.name}_zigzag", "memories": memories,
            "operational_array": {"unit_energy": e["mac_pj"], "unit_area": 1,
                                  "dimensions": ["D1", "D2"],
                                  "sizes": [arch.array.rows, arch.array.cols]}}


def build_inputs(arch: Any, workload: Any, tech: Any) -> dict[str, Any]:
    """ZigZag's workload, accelerator and mapping (as YAML-ready data) and the energies
    they were built from, for sasim's ``arch`` (buffer sizes set) on ``workload``."""
    from simulator.hw.pe.dense import ACCUMULATOR_BITS

    if arch.pe.type != "dense" or arch.array.dataflow != "os":
        raise ValueError(f"arch {arch.name}: the ZigZag comparison models the dense OS array "
                         f"(pe.type dense, array.dataflow os)")
    e = energies(arch, tech)
    layers = [workload_layer(layer, i) for i, layer in enumerate(workload.layers)]
    return {"workload": layers,
            "accelerator": accelerator(arch, e, accumulator_bits=ACCUMULATOR_BITS),
            "mapping": mapping(layers, arch.array.rows, arch.array.cols),
            "energies": e}


def write_inputs(inputs: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write the three YAML files (and the energies as JSON) into ``folder``."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key in ("workload", "accelerator", "mapping"):
        paths[key] = folder / f"{key}.yaml"
        paths[key].write_text(yaml.safe_dump(inputs[key], sort_keys=False), encoding="utf-8")
    (folder / "energies.json").write_text(json.dumps(inputs["energies"], indent=1),
                                          encoding="utf-8")
    return paths


# ---------------------------------------------------------------- ZigZag's side


def _zigzag_layer(cme: Any) -> dict[str, Any]:
    """Energy (pJ) and bytes per operand and memory level of one of ZigZag's layer
    evaluations; levels are 0 register, 1 buffer, 2 DRAM."""
    hierarchy = cme.accelerator.memory_hierarchy
    operands = {}
    for layer_op, accesses in cme.memory_word_access.items():
        mem_op = cme.memory_operand_links.layer_to_mem_op(layer_op)
        levels = hierarchy.get_memory_levels(mem_op=mem_op)
        per_level = []
        for energy, access, level in zip(cme.mem_energy_breakdown[layer_op], accesses, levels):
            directions = {}
            for direction in ("rd_out_to_low", "wr_in_by_low", "rd_out_to_high", "wr_in_by_high"):
                count = access.get(_direction(direction))
                bits = level.get_max_bandwidth(mem_op, _direction(direction)) or 0
                directions[direction] = count * bits / 8
            per_level.append({"memory": level.name, "energy_pj": float(energy),
                              "bytes": directions})
        operands[str(layer_op)] = per_level
    return {"name": cme.layer.name, "macs": int(cme.layer.total_mac_count),
            "mac_pj": float(cme.mac_energy), "energy_pj": float(cme.energy_total),
            "latency_cycles": float(cme.latency_total2),
            "temporal_mapping": str(cme.temporal_mapping), "operands": operands}


def _direction(name: str) -> Any:
    from zigzag.mapping.data_movement import DataDirection

    return {"rd_out_to_low": DataDirection.RD_OUT_TO_LOW,
            "wr_in_by_low": DataDirection.WR_IN_BY_LOW,
            "rd_out_to_high": DataDirection.RD_OUT_TO_HIGH,
            "wr_in_by_high": DataDirection.WR_IN_BY_HIGH}[name]


def zigzag_side(folder: Path, lpf_limit: int, opt: str) -> int:
    """Run ZigZag (in its own environment) on the inputs in ``folder``; write result.json."""
    import logging

    from zigzag.api import get_hardware_performance_zigzag

    logging.disable(logging.WARNING)
    start = time.perf_counter()
    _, _, cmes = get_hardware_performance_zigzag(
        workload=str(folder / "workload.yaml"), accelerator=str(folder / "accelerator.yaml"),
        mapping=str(folder / "mapping.yaml"), opt=opt, dump_folder=str(folder / "zigzag_out"),
        lpf_limit=lpf_limit, loma_show_progress_bar=False)
    layers = [_zigzag_layer(cme) for cme, _ in cmes[0][1]]
    result = {"seconds": time.perf_counter() - start, "lpf_limit": lpf_limit, "opt": opt,
              "layers": layers}
    (folder / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


def run_zigzag(python: str, folder: Path, lpf_limit: int, opt: str) -> dict[str, Any]:
    """Run this script's ZigZag side with ``python`` (ZigZag's environment)."""
    cmd = [python, __file__, "--zigzag-side", str(folder), "--lpf-limit", str(lpf_limit),
           "--opt", opt]
    if not Path(python).is_file():
        raise ComparisonError(f"--zigzag-python {python}: no such interpreter (`make "
                              "bench-zigzag` creates .venv-zigzag with zigzag-dse==3.9.1)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = [line for line in proc.stderr.splitlines() if line.strip()] or ["no message"]
        raise ComparisonError(f"ZigZag ({python}) failed with exit status {proc.returncode}: "
                              f"{last[-1].strip()}")
    return json.loads((folder / "result.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- sasim's side


def sasim_layers(arch: Any, workload: Any, tech: Any, e: dict[str, float]) -> list[dict]:
    """sasim's energy (pJ) per layer by the comparison's components, and its bytes.

    sasim reports all buffers as one class; the split by operand prices each buffer's bytes
    with the same law (docs/energy-model.md) and must add up to that class."""
    from simulator import api

    result = api.simulate(arch, workload)
    out = []
    for layer in result.layers:
        b = layer.energy_breakdown_pj
        buffers = {name: (getattr(layer, f"buffer_{name}_read_bytes")
                          * e[f"{name}_read_pj_per_byte"]
                          + getattr(layer, f"buffer_{name}_write_bytes")
                          * e[f"{name}_write_pj_per_byte"]) for name in BUFFERS}
        if not math.isclose(sum(buffers.values()), b["buffers"], rel_tol=1e-9, abs_tol=1e-6):
            raise AssertionError(f"layer {layer.name}: buffer split {sum(buffers.values())} "
                                 f"!= sasim's buffers {b['buffers']}")
        dram_bytes = {"ifmap": layer.dram_ifmap_read_bytes,
                      "filter": layer.dram_filter_read_bytes,
                      "ofmap": (layer.dram_ofmap_write_bytes + layer.dram_psum_write_bytes
                                + layer.dram_psum_read_bytes)}
        out.append({
            "name": layer.name, "macs": layer.macs, "cycles": layer.total_cycles,
            "mac": b["multipliers"] + b["adders"] + b["pe_logic"], "registers": b["registers"],
            "leakage": b["leakage"],
            **{f"buffer_{n}": v for n, v in buffers.items()},
            **{f"dram_{n}": v * e["dram_pj_per_byte"] for n, v in dram_bytes.items()},
            **{f"dram_{n}_bytes": v for n, v in dram_bytes.items()},
            **{f"buffer_{n}_bytes": (getattr(layer, f"buffer_{n}_read_bytes")
                                     + getattr(layer, f"buffer_{n}_write_bytes"))
               for n in BUFFERS}})
        total = sum(v for k, v in out[-1].items() if k in COMPONENTS) + b["leakage"]
        if not math.isclose(total, layer.energy_pj, rel_tol=1e-9):
            raise AssertionError(f"layer {layer.name}: components {total} != {layer.energy_pj}")
    return out


#: The compared components (pJ), in table order; leakage is sasim's alone.
COMPONENTS = ("mac", "registers", "buffer_ifmap", "buffer_filter", "buffer_ofmap",
              "dram_ifmap", "dram_filter", "dram_ofmap")


def zigzag_components(layer: dict[str, Any]) -> dict[str, float]:
    """ZigZag's layer (from result.json) by the same components and bytes as sasim's."""
    out: dict[str, float] = {"name": layer["name"], "macs": layer["macs"], "mac": layer["mac_pj"],
                             "cycles": layer["latency_cycles"], "leakage": 0.0}
    out["registers"] = sum(op[0]["energy_pj"] for op in layer["operands"].values())
    for name, (_, operand) in BUFFERS.items():
        reg, buf, dram = layer["operands"][operand]
        out[f"buffer_{name}"] = buf["energy_pj"]
        out[f"dram_{name}"] = dram["energy_pj"]
        out[f"buffer_{name}_bytes"] = sum(buf["bytes"].values())
        out[f"dram_{name}_bytes"] = sum(dram["bytes"].values())
    return out


# ---------------------------------------------------------------- the report


def _uj(pj: float) -> str:
    return f"{pj / 1e6:,.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else ("-" if not a else "inf")


def _kib(n: float) -> str:
    return f"{n / 1024:,.0f}"


def layer_table(ours: list[dict], theirs: list[dict]) -> str:
    """Per layer and in total: energy (uJ) of both by component group, and the ratio."""
    from simulator.reports.table import format_table

    def groups(row: dict) -> list[float]:
        return [row["mac"], row["registers"],
                sum(row[f"buffer_{n}"] for n in BUFFERS), sum(row[f"dram_{n}"] for n in BUFFERS)]

    rows = []
    for s, z in [*zip(ours, theirs), (_total(ours), _total(theirs))]:
        gs, gz = groups(s), groups(z)
        rows.append([s["name"], _uj(sum(gs)), _uj(z_total := sum(gz)), _ratio(sum(gs), z_total),
                     _uj(s["leakage"]), *[v for pair in zip(gs, gz) for v in map(_uj, pair)]])
    return format_table(["layer", "sasim", "ZigZag", "ratio", "sasim leak",
                         "MAC s", "MAC z", "reg s", "reg z", "buf s", "buf z",
                         "DRAM s", "DRAM z"], rows, "l" + "r" * 12)


def component_table(ours: list[dict], theirs: list[dict], e: dict[str, float]) -> str:
    """The whole network by component (uJ): sasim, ZigZag, sasim / ZigZag."""
    from simulator.reports.table import format_table

    s, z = _total(ours), _total(theirs)
    rows = [[c.replace("_", " "), _uj(s[c]), _uj(z[c]), _ratio(s[c], z[c])] for c in COMPONENTS]
    every_mac = s["macs"] * e["mac_pj"]
    rows.insert(1, ["mac, every MAC priced", _uj(every_mac), _uj(z["mac"]),
                    _ratio(every_mac, z["mac"])])
    ts, tz = sum(s[c] for c in COMPONENTS), sum(z[c] for c in COMPONENTS)
    rows += [["total without leakage", _uj(ts), _uj(tz), _ratio(ts, tz)],
             ["leakage (sasim only)", _uj(s["leakage"]), "-", "-"],
             ["total", _uj(ts + s["leakage"]), _uj(tz), _ratio(ts + s["leakage"], tz)]]
    return format_table(["component", "sasim uJ", "ZigZag uJ", "sasim/ZigZag"], rows, "lrrr")


def traffic_table(ours: list[dict], theirs: list[dict]) -> str:
    """Per layer: DRAM KiB per operand and the latency of both (cycles)."""
    from simulator.reports.table import format_table

    rows = []
    for s, z in [*zip(ours, theirs), (_total(ours), _total(theirs))]:
        rows.append([s["name"], *[v for n in BUFFERS
                                  for v in (_kib(s[f"dram_{n}_bytes"]), _kib(z[f"dram_{n}_bytes"]))],
                     *[v for n in BUFFERS
                       for v in (_kib(s[f"buffer_{n}_bytes"]), _kib(z[f"buffer_{n}_bytes"]))],
                     f"{s['cycles']:,.0f}", f"{z['cycles']:,.0f}"])
    return format_table(["layer", "DRAM I s", "z", "DRAM W s", "z", "DRAM O s", "z",
                         "buf I s", "z", "buf W s", "z", "buf O s", "z",
                         "cycles s", "cycles z"], rows, "l" + "r" * 14)


def _total(rows: list[dict]) -> dict[str, Any]:
    keys = [k for k in rows[0] if k != "name"]
    return {"name": "total", **{k: sum(r[k] for r in rows) for k in keys}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zigzag-python", default=".venv-zigzag/bin/python",
                        help="the Python of an environment with zigzag-dse==3.9.1")
    parser.add_argument("--lpf-limit", type=int, default=6,
                        help="ZigZag's LOMA bound on temporal loop prime factors (default 6)")
    parser.add_argument("--opt", default="energy", choices=("energy", "latency", "EDP"),
                        help="what ZigZag's mapping search minimises (default energy)")
    parser.add_argument("--layers", type=int, default=None, help="only the first N layers")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="a further override of sasim's arch, e.g. memory.loop_order=auto "
                             "(repeatable; ZigZag's inputs are built from the same arch)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write ZigZag's inputs and result here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: reuse the result.json there if its inputs are "
                             "exactly the ones built now (no ZigZag run)")
    args = parser.parse_args(argv)
    if args.reuse and args.keep is None:
        parser.error("--reuse needs --keep DIR")

    from simulator.errors import SasimError, one_line

    try:
        return compare(args)
    except (ComparisonError, ValueError, SasimError, OSError) as exc:
        print(f"zigzag_energy: {one_line(str(exc))}", file=sys.stderr)
        return 2


def compare(args: argparse.Namespace) -> int:
    """Build ZigZag's inputs, run (or reuse) ZigZag, run sasim, print the tables."""
    from simulator import api

    arch = api.load_arch(ARCH, [*arch_overrides(), *args.overrides])
    workload = api.load_workload(WORKLOAD)
    if args.layers:
        import dataclasses

        workload = dataclasses.replace(workload, layers=workload.layers[:args.layers])
    tech = api.load_tech_table(arch.energy.tech)
    inputs = build_inputs(arch, workload, tech)
    if args.reuse:
        zz = reuse_zigzag(inputs, args.keep, args.lpf_limit, args.opt)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.keep or Path(tmp)
            write_inputs(inputs, folder)
            zz = run_zigzag(args.zigzag_python, folder, args.lpf_limit, args.opt)
    e = inputs["energies"]
    ours = sasim_layers(arch, workload, tech, e)
    theirs = [zigzag_components(layer) for layer in zz["layers"]]
    if [r["name"] for r in ours] != [r["name"] for r in theirs]:
        raise ComparisonError("ZigZag's layers are not sasim's")
    if any(s["macs"] != z["macs"] for s, z in zip(ours, theirs)):
        raise ComparisonError("ZigZag's MACs differ from sasim's")
    print(f"{ARCH} ({arch.array.rows}x{arch.array.cols} OS, dense 8b) on {WORKLOAD}; buffers "
          f"ifmap/filter/ofmap {BUFFER_KIB}/{BUFFER_KIB}/{BUFFER_KIB} KiB; tech {tech.name}: "
          f"MAC {e['mac_pj']:.3f} pJ, register {e['register_bit_pj']} pJ/bit, buffer "
          f"{e['ifmap_read_pj_per_byte']:.3f}/{e['ifmap_write_pj_per_byte']:.3f} pJ per byte "
          f"read/written, DRAM {e['dram_pj_per_byte']:.0f} pJ/byte"
          + (f"; sasim --set {' '.join(args.overrides)}" if args.overrides else ""))
    print(f"ZigZag {ZIGZAG_VERSION}: LOMA, opt={args.opt}, lpf_limit={args.lpf_limit}, "
          f"{zz['seconds']:.0f} s\n")
    print("Energy per layer, uJ (s = sasim, z = ZigZag; ratio = sasim/ZigZag without leakage)")
    print(layer_table(ours, theirs))
    print("\nWhole network by component")
    print(component_table(ours, theirs, e))
    print("\nTraffic (KiB) and latency (cycles) per layer")
    print(traffic_table(ours, theirs))
    return 0


#: The ZigZag release the comparison was made with (Makefile: bench-zigzag pins it).
ZIGZAG_VERSION = "zigzag-dse 3.9.1"


def reuse_zigzag(inputs: dict[str, Any], folder: Path, lpf_limit: int, opt: str) -> dict:
    """The result.json in ``folder`` if it was made from exactly ``inputs`` with the same
    search settings; else stop with the reason."""
    import yaml

    result = folder / "result.json"
    if not result.is_file():
        raise ComparisonError(f"{result}: no ZigZag result to reuse (run without --reuse)")
    for key in ("workload", "accelerator", "mapping"):
        path = folder / f"{key}.yaml"
        if not path.is_file() or yaml.safe_load(path.read_text(encoding="utf-8")) != inputs[key]:
            raise ComparisonError(f"{path}: not the inputs built now (run without --reuse)")
    zz = json.loads(result.read_text(encoding="utf-8"))
    if (zz["lpf_limit"], zz["opt"]) != (lpf_limit, opt):
        raise ComparisonError(f"{result}: made with lpf_limit {zz['lpf_limit']}, opt {zz['opt']}")
    return zz


if __name__ == "__main__" and "--zigzag-side" in sys.argv:
    _p = argparse.ArgumentParser()
    _p.add_argument("--zigzag-side", type=Path)
    _p.add_argument("--lpf-limit", type=int)
    _p.add_argument("--opt")
    _a = _p.parse_args()
    raise SystemExit(zigzag_side(_a.zigzag_side, _a.lpf_limit, _a.opt))


if __name__ == "__main__":
    raise SystemExit(main())
