#!/usr/bin/env python3
"""Generate SCALE-Sim v3 reference fixtures for sasim's bit-exact compatibility tests.

How to run (SCALE-Sim must NOT be installed into the project venv; use a throw-away venv):

    python3.11 -m venv /tmp/ss-venv
    /tmp/ss-venv/bin/pip install scalesim 'numpy<2.4'      # scalesim 3.0.0 crashes on numpy>=2.4
    python3 benchmarks/make_scalesim_fixtures.py --scalesim-python /tmp/ss-venv/bin/python
    #   (or run this script directly with /tmp/ss-venv/bin/python; --scalesim-python then
    #    defaults to the interpreter running it)

Options: --out DIR (default <repo>/tests/data/scalesim), --only NAME[,NAME...], --seed N,
--jobs N (parallel SCALE-Sim processes), --keep-tmp.

For every case it writes, into <out>/<case>/:
    scalesim.cfg            the exact config SCALE-Sim was run with
    topology.csv            the topology (conv format, or GEMM "M, N, K" format when
                            case.json says input_type == "gemm"; SCALE-Sim was then run with -i gemm)
    layout.csv              the layout CSV handed to SCALE-Sim's -l (ignored: custom layouts off)
    COMPUTE_REPORT.csv      as SCALE-Sim wrote it (byte for byte)
    BANDWIDTH_REPORT.csv    as SCALE-Sim wrote it
    DETAILED_ACCESS_REPORT.csv  as SCALE-Sim wrote it
    case.json               metadata: dataflow, array dims, SRAM sizes, input type, the command line,
                            SCALE-Sim/numpy versions, and per layer the derived GEMM shape
                            (M = ofmap pixels, Kd = reduction, Fg = filters, P, Q with SCALE-Sim's
                            ceil rule) so tests do not have to re-derive them.

The layer shapes are drawn from a seeded random.Random, so the fixtures are reproducible.
Only the standard library is used here; SCALE-Sim runs in a child process.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "scalesim"

CONV_HEADER = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
               "Num Filter, Strides, \n")
GEMM_HEADER = "Layer, M, N, K, \n"
LAYOUT_HEADER = (
    "Layer name, IFMAP Height Intraline Factor, IFMAP Width Intraline Factor, Filter Height "
    "Intraline Factor, Filter Width Intraline Factor, Channel Intraline Factor, Num Filter "
    "Intraline Factor, IFMAP Height Intraline Order, IFMAP Width Intraline Order, Channel "
    "Intraline Order, IFMAP Height Interline Order, IFMAP Width Interline Order, Channel "
    "Interline Order, Num Filter Intraline Order, Channel Intraline Order, Filter Height "
    "Intraline Order, Filter Width Intraline Order, Num Filter Interline Order, Channel "
    "Interline Order, Filter Height Interline Order, Filter Width Interline Order, \n")

CFG_TEMPLATE = """[general]
run_name = {run_name}

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:   {ifmap_kb}
FilterSramSzkB:  {filter_kb}
OfmapSramSzkB:   {ofmap_kb}
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : {bandwidth}
Dataflow : {dataflow}
MemoryBanks:   1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: {bw_mode}
UseRamulatorTrace: False
"""

# ----------------------------------------------------------------------------- shapes


def ofmap_dim(inp: int, filt: int, stride: int) -> int:
    """SCALE-Sim's rule (topology_utils.topo_calc_hyperparams): ceil((H - R + s) / s)."""
    return int(math.ceil((inp - filt + stride) / stride))


def conv_gemm(layer: dict) -> dict:
    p = ofmap_dim(layer["H"], layer["R"], layer["stride"])
    q = ofmap_dim(layer["W"], layer["S"], layer["stride"])
    return {"P": p, "Q": q, "M": p * q, "Kd": layer["R"] * layer["S"] * layer["C"],
            "Fg": layer["F"]}


def est_cost(m: int, kd: int, fg: int, df: str, rows: int, cols: int) -> int:
    """Rough SCALE-Sim cost: demand-matrix elements it loops over in Python."""
    if df == "os":
        sr, sc, t, extra = m, fg, kd, rows + cols - 2
    elif df == "ws":
        sr, sc, t, extra = kd, fg, m, 2 * rows + cols - 2
    else:
        sr, sc, t, extra = kd, m, fg, 2 * rows + cols - 2
    folds = math.ceil(sr / rows) * math.ceil(sc / cols)
    return folds * (t + extra) * (2 * rows + 2 * cols)


def rand_conv(rng: random.Random, kind: str, rows: int, cols: int) -> dict:
    """One random conv layer of a given flavour (see CASES)."""
    r = rng.choice([1, 3, 5, 7])
    s = r if rng.random() < 0.7 else rng.choice([1, 3, 5, 7])
    stride = rng.choice([1, 2, 3])
    if kind == "stride2":
        stride = 2
    elif kind == "stride3":
        stride = 3
    h = r + rng.randint(0, 14)
    w = s + rng.randint(0, 14)
    c = rng.randint(1, 24)
    f = rng.randint(1, 40)
    if kind == "small_m":          # fewer output pixels than array rows (os) / cols (is)
        h = r + rng.randint(0, 1) * stride
        w = s
    elif kind == "small_f":        # fewer filters than array columns
        f = rng.randint(1, max(1, cols - 1))
    elif kind == "small_k":        # reduction shorter than the array rows (ws/is) 
        r = s = 1
        c = rng.randint(1, max(1, rows - 1))
        h = rng.randint(2, 12)
        w = rng.randint(2, 12)
    elif kind == "ceil_quirk":     # (H - R) % stride != 0: SCALE-Sim's ceil adds a partial window
        stride = rng.choice([2, 3])
        h = r + stride * rng.randint(1, 5) + rng.randint(1, stride - 1)
        w = s + stride * rng.randint(1, 5) + rng.randint(1, stride - 1)
    elif kind == "depthwise":      # name contains 'DP': SCALE-Sim splits it into C layers, C=1
        c = rng.randint(2, 4)
        f = c
    elif kind == "big_k":
        r = s = rng.choice([5, 7])
        c = rng.randint(8, 24)
        h = r + rng.randint(0, 4)
        w = s + rng.randint(0, 4)
    return {"R": r, "S": s, "stride": stride, "H": h, "W": w, "C": c, "F": f}


def rand_gemm(rng: random.Random, kind: str, rows: int, cols: int) -> dict:
    m = rng.randint(1, 120)
    n = rng.randint(1, 70)
    k = rng.randint(1, 150)
    if kind == "small_m":
        m = rng.randint(1, max(1, min(rows, cols) - 1))
    elif kind == "small_n":
        n = rng.randint(1, max(1, cols - 1))
    elif kind == "small_k":
        k = rng.randint(1, max(1, rows - 1))
    elif kind == "exact":          # divisible by the array in every dimension
        m = rows * rng.randint(1, 4)
        n = cols * rng.randint(1, 3)
        k = rows * rng.randint(1, 4)
    return {"M": m, "N": n, "K": k}


# case name -> spec. kinds are drawn in order; 'ragged' = unconstrained random layer.
CASES = [
    dict(name="conv_os_4x8", dataflow="os", rows=4, cols=8, sram=(64, 64, 64), input="conv",
         kinds=["ragged", "small_m", "small_f", "stride2", "stride3", "ceil_quirk", "big_k"]),
    dict(name="conv_ws_8x4", dataflow="ws", rows=8, cols=4, sram=(64, 64, 64), input="conv",
         kinds=["ragged", "small_k", "small_f", "stride2", "stride3", "ceil_quirk", "small_m"]),
    dict(name="conv_is_5x7", dataflow="is", rows=5, cols=7, sram=(64, 64, 64), input="conv",
         kinds=["ragged", "small_k", "small_m", "stride2", "stride3", "ceil_quirk", "small_f"]),
    dict(name="conv_os_3x16_smallsram", dataflow="os", rows=3, cols=16, sram=(1, 2, 1),
         input="conv", kinds=["ragged", "ragged", "stride2", "big_k", "ceil_quirk", "small_f"]),
    dict(name="conv_ws_16x16", dataflow="ws", rows=16, cols=16, sram=(64, 64, 64), input="conv",
         kinds=["ragged", "big_k", "small_k", "stride3", "ceil_quirk", "small_f"]),
    dict(name="conv_is_16x16_smallsram", dataflow="is", rows=16, cols=16, sram=(2, 1, 2),
         input="conv", kinds=["ragged", "big_k", "small_m", "stride2", "ceil_quirk"]),
    dict(name="conv_ws_5x7_smallsram", dataflow="ws", rows=5, cols=7, sram=(1, 1, 1),
         input="conv", kinds=["ragged", "stride2", "big_k", "small_k", "ceil_quirk"]),
    dict(name="conv_os_8x8_depthwise", dataflow="os", rows=8, cols=8, sram=(64, 64, 64),
         input="conv", kinds=["ragged", "depthwise", "stride2"]),
    dict(name="gemm_os_5x7", dataflow="os", rows=5, cols=7, sram=(64, 64, 64), input="gemm",
         kinds=["ragged", "small_m", "small_n", "small_k", "exact", "ragged"]),
    dict(name="gemm_ws_8x4_smallsram", dataflow="ws", rows=8, cols=4, sram=(1, 1, 2),
         input="gemm", kinds=["ragged", "small_m", "small_n", "small_k", "exact", "ragged"]),
    dict(name="gemm_is_4x8", dataflow="is", rows=4, cols=8, sram=(64, 64, 64), input="gemm",
         kinds=["ragged", "small_m", "small_n", "small_k", "exact", "ragged"]),
]

MAX_COST = 1_500_000   # per layer, keeps each SCALE-Sim run at a few seconds
MAX_MACS = 2_000_000


def draw_layers(case: dict, seed: int) -> list[dict]:
    rng = random.Random(f"{seed}:{case['name']}")
    out = []
    for i, kind in enumerate(case["kinds"]):
        for _attempt in range(1000):
            if case["input"] == "conv":
                lay = rand_conv(rng, kind, case["rows"], case["cols"])
                g = conv_gemm(lay)
                lay["name"] = f"L{i}_{kind}" if kind != "depthwise" else f"L{i}_DPdepthwise"
                lay.update(g)
            else:
                lay = rand_gemm(rng, kind, case["rows"], case["cols"])
                lay["name"] = f"G{i}_{kind}"
                g = {"M": lay["M"], "Kd": lay["K"], "Fg": lay["N"], "P": lay["M"], "Q": 1}
            macs = g["M"] * g["Kd"] * g["Fg"]
            cost = est_cost(g["M"], g["Kd"], g["Fg"], case["dataflow"], case["rows"], case["cols"])
            if macs <= MAX_MACS and cost <= MAX_COST:
                break
        else:
            raise RuntimeError(f"could not draw a cheap layer for {case['name']}/{kind}")
        if case["input"] == "gemm":
            lay.update({"Kd": lay["K"], "Fg": lay["N"], "P": lay["M"], "Q": 1})
        out.append(lay)
    return out


def expand_report_rows(case: dict, layers: list[dict]) -> list[dict]:
    """One entry per COMPUTE_REPORT row: SCALE-Sim splits a conv layer whose name contains
    'DP' into C layers named <name>Channel_<i>, each with Channels = 1 (Num Filter unchanged)."""
    rows = []
    for l in layers:
        if case["input"] == "conv" and "DP" in l["name"]:
            for ch in range(l["C"]):
                one = dict(l, C=1, name=f"{l['name']}Channel_{ch}")
                one.update(conv_gemm(one))
                rows.append({k: one[k] for k in ("name", "M", "Kd", "Fg")})
        else:
            rows.append({k: l[k] for k in ("name", "M", "Kd", "Fg")})
    return rows


def topology_text(case: dict, layers: list[dict]) -> str:
    if case["input"] == "gemm":
        lines = [GEMM_HEADER] + [f"{l['name']}, {l['M']}, {l['N']}, {l['K']},\n" for l in layers]
    else:
        lines = [CONV_HEADER] + [
            f"{l['name']}, {l['H']}, {l['W']}, {l['R']}, {l['S']}, {l['C']}, {l['F']}, "
            f"{l['stride']},\n" for l in layers]
    return "".join(lines)


def layout_text(layers: list[dict]) -> str:
    # Same row as the reference layout_resnet18.csv uses; one row per topology layer.
    row = "1,1,1,1,1,1,1,2,0,4,5,3,3,0,1,2,7,4,5,6,"
    return LAYOUT_HEADER + "".join(f"{l['name']},{row}\n" for l in layers)


def scalesim_versions(py: str) -> dict:
    code = ("import importlib.metadata as m, json;"
            "print(json.dumps({'scalesim': m.version('scalesim'), 'numpy': m.version('numpy')}))")
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def run_case(case: dict, seed: int, py: str, out_root: Path, keep_tmp: bool,
             versions: dict) -> tuple[str, float]:
    layers = draw_layers(case, seed)
    dest = out_root / case["name"]
    dest.mkdir(parents=True, exist_ok=True)
    ifk, flk, ofk = case["sram"]
    bw_mode = case.get("bw_mode", "CALC")
    cfg = CFG_TEMPLATE.format(run_name=case["name"], rows=case["rows"], cols=case["cols"],
                              ifmap_kb=ifk, filter_kb=flk, ofmap_kb=ofk,
                              bandwidth=case.get("bandwidth", 10), dataflow=case["dataflow"],
                              bw_mode=bw_mode)
    (dest / "scalesim.cfg").write_text(cfg)
    (dest / "topology.csv").write_text(topology_text(case, layers))
    (dest / "layout.csv").write_text(layout_text(layers))

    tmp = Path(tempfile.mkdtemp(prefix=f"ss_{case['name']}_"))
    cmd = [py, "-m", "scalesim.scale", "-c", str(dest / "scalesim.cfg"),
           "-t", str(dest / "topology.csv"), "-l", str(dest / "layout.csv"), "-p", str(tmp)]
    if case["input"] == "gemm":
        cmd += ["-i", "gemm"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"SCALE-Sim failed on {case['name']}:\n{res.stdout[-3000:]}\n"
                           f"{res.stderr[-3000:]}")
    rep_dir = tmp / case["name"]
    for fname in ("COMPUTE_REPORT.csv", "BANDWIDTH_REPORT.csv", "DETAILED_ACCESS_REPORT.csv"):
        shutil.copyfile(rep_dir / fname, dest / fname)
    meta = {
        "case": case["name"],
        "dataflow": case["dataflow"],
        "array_rows": case["rows"],
        "array_cols": case["cols"],
        "sram_kb": {"ifmap": ifk, "filter": flk, "ofmap": ofk},
        "interface_bandwidth": bw_mode,
        "input_type": case["input"],
        "seed": seed,
        "scalesim_cmd": ("python -m scalesim.scale -c scalesim.cfg -t topology.csv "
                         "-l layout.csv -p OUT" + (" -i gemm" if case["input"] == "gemm" else "")),
        "versions": versions,
        "scalesim_wall_s": round(wall, 2),
        "layers": [{k: l[k] for k in l} for l in layers],
        "report_rows": expand_report_rows(case, layers),
    }
    (dest / "case.json").write_text(json.dumps(meta, indent=1) + "\n")
    if not keep_tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return case["name"], wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scalesim-python", default=sys.executable,
                    help="python interpreter with scalesim installed (default: this one)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--jobs", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)))
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--list", action="store_true", help="print the drawn layers and exit")
    args = ap.parse_args(argv)

    cases = CASES
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in CASES if c["name"] in wanted]
    if args.list:
        for c in cases:
            print(c["name"], c["dataflow"], f"{c['rows']}x{c['cols']}", c["sram"])
            for l in draw_layers(c, args.seed):
                print("   ", l, "cost~", est_cost(l["M"], l["Kd"], l["Fg"], c["dataflow"],
                                                 c["rows"], c["cols"]))
        return 0
    versions = scalesim_versions(args.scalesim_python)
    args.out.mkdir(parents=True, exist_ok=True)
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        futs = [ex.submit(run_case, c, args.seed, args.scalesim_python, args.out, args.keep_tmp,
                          versions) for c in cases]
        for f in cf.as_completed(futs):
            name, wall = f.result()
            print(f"{name}: SCALE-Sim {wall:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
