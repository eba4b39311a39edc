#!/usr/bin/env python3
"""Independent re-derivation of SCALE-Sim v3.0.0's COMPUTE_REPORT (CALC bandwidth mode).

Written from reading the scalesim 3.0.0 source, not from sasim. It reproduces every
COMPUTE_REPORT column bit for bit (and the DETAILED_ACCESS_REPORT's IFMAP/filter DRAM start,
OFMAP DRAM stop and OFMAP DRAM writes) on all fixtures in tests/data/scalesim/ and on the three
reference ResNet-18 runs, so it can serve as an oracle for shapes SCALE-Sim has not been run on.
stdlib + numpy only; runs in about a second for all of ResNet-18.

    python3 benchmarks/scalesim_oracle.py tests/data/scalesim/conv_os_4x8 ...
    python3 benchmarks/scalesim_oracle.py \
        tests/data/scalesim/reference_resnet18/resnet18_os_32x32::tests/data/scalesim/reference_resnet18/Resnet18.csv

A DIR argument holds scalesim.cfg, topology.csv (GEMM format if case.json says so) and
COMPUTE_REPORT.csv; DIR::TOPOLOGY names a conv topology elsewhere. Library use:
layer_report(layer_dict, cfg_dict) -> ([incl_prefetch, total, stall, overall, mapping, compute], extra).
"""
from __future__ import annotations

import configparser
import json
import math
import sys
from pathlib import Path

import numpy as np


# ------------------------------------------------------------------ topology parsing (as scalesim)
def parse_topology(path, gemm=False):
    """Returns list of dicts: name, H, W, R, S, C, F, sh, sw (SCALE-Sim semantics)."""
    layers = []
    with open(path) as f:
        first = True
        for row in f:
            row = row.strip()
            if first:
                first = False
                continue
            if row == "":
                continue
            elems = row.split(",")[:-1]             # trailing comma is REQUIRED
            if gemm:
                name, m, n, k = elems[0].strip(), int(elems[1]), int(elems[2]), int(elems[3])
                # entries = [name, m, k, 1, k, 1, n, 1, 1]: ifmap MxK, filter 1xK, C=1, F=N
                layers.append(dict(name=name, H=m, W=k, R=1, S=k, C=1, F=n, sh=1, sw=1))
            else:
                name = elems[0].strip()
                v = [int(x) for x in elems[1:8]]
                d = dict(name=name, H=v[0], W=v[1], R=v[2], S=v[3], C=v[4], F=v[5], sh=v[6],
                         sw=v[6])
                if "DP" in name:
                    for ch in range(d["C"]):
                        layers.append(dict(d, C=1, name=f"{name}Channel_{ch}"))
                else:
                    layers.append(d)
    return layers


def gemm_dims(l):
    p = math.ceil((l["H"] - l["R"] + l["sh"]) / l["sh"])
    q = math.ceil((l["W"] - l["S"] + l["sw"]) / l["sw"])
    return p, q, p * q, l["R"] * l["S"] * l["C"], l["F"]


def unique_ifmap_addrs(l, p, q):
    rows = set()
    for i in range(p):
        for r in range(l["R"]):
            if i * l["sh"] + r < l["H"]:
                rows.add(i * l["sh"] + r)
    cols = set()
    for j in range(q):
        for s in range(l["S"]):
            if j * l["sw"] + s < l["W"]:
                cols.add(j * l["sw"] + s)
    return len(rows) * len(cols) * l["C"]


# ------------------------------------------------------------------ compute side
def spatio_temporal(df, m, kd, fg):
    if df == "os":
        return m, fg, kd            # Sr, Sc, T
    if df == "ws":
        return kd, fg, m
    if df == "is":
        return kd, m, fg
    raise ValueError(df)


def fold_len(df, R, C, T):
    return T + R + C - 2 if df == "os" else T + 2 * R + C - 2


def util_fold_len(df, R, C, T):
    return T + R + C - 2 if df == "os" else T + 2 * R + 2 * C - 3


def compute_metrics(df, R, C, m, kd, fg):
    sr, sc, t = spatio_temporal(df, m, kd, fg)
    rf, cf = math.ceil(sr / R), math.ceil(sc / C)
    me, cu = [], []
    ucyc = util_fold_len(df, R, C, t)
    for fc in range(cf):                    # column folds outer, row folds inner (all dataflows)
        for fr in range(rf):
            ru = min(R, sr - fr * R)
            cuu = min(C, sc - fc * C)
            used = ru * cuu
            me.append(used / (R * C))
            cu.append(used * t / (R * C * ucyc))
    nfolds = rf * cf
    lines = nfolds * fold_len(df, R, C, t)
    total_cycles = lines - 1
    return dict(folds=nfolds, rf=rf, cf=cf, Sr=sr, Sc=sc, T=t, lines=lines,
                total_cycles=total_cycles,
                mapping_eff=sum(me) / len(me) * 100, compute_util=sum(cu) / len(cu) * 100)


# ------------------------------------------------------------------ CALC-mode memory side
def read_prefetch_start(sram_kb, unique, first_req):
    """DRAM start cycle of ReadBufferEstimateBw (word 1 B, active frac .5, default bw 10)."""
    total = sram_kb * 1024
    n = total // 100                     # items per set
    sets_pf = 100 - int(0.5 * 100)       # 50
    if unique >= sets_pf * n:            # 50 sets filled during the run -> first prefetch is
        c = math.ceil(sets_pf * n / 10)  # issued relative to the first request cycle
        return first_req - c
    nsets = math.ceil(unique / n)        # complete_all_prefetches() at the end
    return -math.ceil(nsets * n / 10)


def ofmap_line_counts(df, R, C, sr, sc, t, m, fg):
    """Valid OFMAP writes per demand line (cycle), concatenated over folds."""
    flen = fold_len(df, R, C, t)
    rf, cf = math.ceil(sr / R), math.ceil(sc / C)
    out = []
    for fc in range(cf):
        cu = min(C, sc - fc * C)
        for fr in range(rf):
            cnt = np.zeros(flen, dtype=np.int64)
            if df == "os":
                ru = min(R, sr - fr * R)
                conv = np.convolve(np.ones(ru, np.int64), np.ones(cu, np.int64))
                off = t - 1 + R - ru
            elif df == "ws":          # ofmap[:, cols] -> M rows, prefix 2R-1
                conv = np.convolve(np.ones(m, np.int64), np.ones(cu, np.int64))
                off = 2 * R - 1
            else:                     # is: ofmap[pix cols, :]^T -> Fg rows, prefix 2R-1
                conv = np.convolve(np.ones(fg, np.int64), np.ones(cu, np.int64))
                off = 2 * R - 1
            cnt[off:off + len(conv)] += conv
            out.append(cnt)
    return np.concatenate(out)


def ofmap_dram(counts, ofmap_kb, bw):
    """write_buffer (word 1 B, active .5) with write_port latency 0, stall-free assumption.
    Returns (dram_start, dram_stop, dram_writes)."""
    total = ofmap_kb * 1024
    active = int(math.ceil(total * 0.5))
    drain_size = total - active
    free = total
    line_idx = 0
    rows = 0
    partial = {}                 # row index -> valid count for force-flushed partial rows
    start_id = 0
    drain_end = 0
    accesses = 0
    cyc_min, cyc_max = None, None

    def drain(cycle):
        nonlocal start_id, free, accesses, cyc_min, cyc_max
        lines = math.ceil(drain_size / bw)
        end = min(start_id + lines, rows)
        n = end - start_id
        assert n > 0
        last_valid = partial.get(end - 1, bw)
        data = n * bw - (bw - last_valid)
        accesses += data
        free += data
        start_id = end
        cyc_min = cycle if cyc_min is None else min(cyc_min, cycle)
        cyc_max = cycle + n - 1 if cyc_max is None else max(cyc_max, cycle + n - 1)
        return cycle + n - 1

    def force():
        nonlocal line_idx, rows
        if line_idx:
            partial[rows] = line_idx
            rows += 1
            line_idx = 0

    def store(j):
        nonlocal line_idx, rows, free
        free -= j
        tot = line_idx + j
        rows += tot // bw
        line_idx = tot % bw

    for cyc, k in enumerate(counts.tolist()):
        while k > 0:
            if cyc < drain_end:
                if free - k <= 0:
                    raise NotImplementedError("ofmap write stall: not modelled here")
                store(k)
                k = 0
            else:
                j = free - active + 1 if free >= active else 1
                if j > k:
                    store(k)
                    k = 0
                else:
                    store(j)
                    k -= j
                    force()
                    drain_end = drain(cyc)
    last = len(counts) - 1
    force()
    cycle = last
    while start_id < rows:
        drain_end = drain(cycle)
        cycle = drain_end + 1
    return cyc_min, cyc_max, accesses


def layer_report(l, cfg):
    df, R, C = cfg["df"], cfg["R"], cfg["C"]
    p, q, m, kd, fg = gemm_dims(l)
    cm = compute_metrics(df, R, C, m, kd, fg)
    macs = m * fg * kd
    overall = (macs * 100) / (cm["total_cycles"] * R * C)
    # first request cycles of the ifmap / filter demand streams
    if df == "os":
        fr_if, fr_f = 0, 0
    elif df == "ws":
        fr_if, fr_f = R, max(0, R - kd)
    else:
        fr_if, fr_f = max(0, R - kd), R
    u_if = unique_ifmap_addrs(l, p, q)
    u_f = kd * fg
    s_if = read_prefetch_start(cfg["ifmap_kb"], u_if, fr_if)
    s_f = read_prefetch_start(cfg["filter_kb"], u_f, fr_f)
    counts = ofmap_line_counts(df, R, C, cm["Sr"], cm["Sc"], cm["T"], m, fg)
    assert len(counts) == cm["lines"]
    o_start, o_stop, o_writes = ofmap_dram(counts, cfg["ofmap_kb"], C)
    incl = int(o_stop - min(s_if, s_f))
    return [incl, cm["total_cycles"], 0, overall, cm["mapping_eff"], cm["compute_util"]], \
        dict(ifmap_dram_start=s_if, filter_dram_start=s_f, ofmap_dram_stop=o_stop,
             ofmap_dram_writes=o_writes)


def read_cfg(path):
    cp = configparser.ConfigParser()
    cp.read(path)
    a = cp["architecture_presets"]
    assert cp["run_presets"]["InterfaceBandwidth"].strip() == "CALC"
    return dict(df=a["Dataflow"].strip(), R=int(a["ArrayHeight"]), C=int(a["ArrayWidth"]),
                ifmap_kb=int(a["IfmapSramSzkB"]), filter_kb=int(a["FilterSramSzkB"]),
                ofmap_kb=int(a["OfmapSramSzkB"]))


def read_report(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            v = [x.strip() for x in line.strip().split(",")[:-1]]
            rows.append([int(v[1]), int(v[2]), int(v[3]), float(v[4]), float(v[5]), float(v[6])])
    return rows


def read_detail(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            v = [x.strip() for x in line.strip().split(",")[:-1]]
            rows.append([float(x) for x in v[1:]])
    return rows


def check_dir(d, topo=None, gemm=None):
    d = Path(d)
    cfg = read_cfg(d / "scalesim.cfg")
    if topo is None:
        topo = d / "topology.csv"
    if gemm is None:
        cj = d / "case.json"
        gemm = cj.exists() and json.loads(cj.read_text())["input_type"] == "gemm"
    layers = parse_topology(topo, gemm)
    ref = read_report(d / "COMPUTE_REPORT.csv")
    det = read_detail(d / "DETAILED_ACCESS_REPORT.csv") if (d / "DETAILED_ACCESS_REPORT.csv").exists() else None
    assert len(ref) == len(layers), (len(ref), len(layers))
    bad = 0
    for i, (l, r) in enumerate(zip(layers, ref)):
        mine, extra = layer_report(l, cfg)
        exact = mine[1:3] == r[1:3] and all(a == b for a, b in zip(mine[3:], r[3:]))
        incl_ok = mine[0] == r[0]
        dram_ok = True
        if det is not None:
            dr = det[i]
            dram_ok = (extra["ifmap_dram_start"] == dr[9] and extra["filter_dram_start"] == dr[12]
                       and extra["ofmap_dram_stop"] == dr[16] and extra["ofmap_dram_writes"] == dr[17])
        if not (exact and incl_ok and dram_ok):
            bad += 1
            print(f"  MISMATCH {d.name} layer {i} {l['name']}: mine={mine} {extra}\n"
                  f"                       ref ={r} {det[i] if det else ''}")
    print(f"{d}: {len(layers)} layers, {bad} mismatching")
    return bad


if __name__ == "__main__":
    total_bad = 0
    for arg in sys.argv[1:]:
        if "::" in arg:
            d, topo = arg.split("::")
            total_bad += check_dir(d, topo, gemm=False)
        elif (Path(arg) / "scalesim.cfg").exists():
            total_bad += check_dir(arg)
        else:
            print(f"{arg}: no scalesim.cfg, skipped")
    sys.exit(1 if total_bad else 0)
