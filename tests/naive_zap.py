"""Obviously-correct ZAP in plain Python loops: the naive twin of simulator/kernels/zap.py
(docs/hardware-spec.md §9)."""

from __future__ import annotations

#: Predicted (not computed) cells of each base pattern's tile, (tile, cells) by type.
_PREDICTED = {
    5: (2, {(0, 1), (1, 0)}),
    6: (5, {(0, 2), (0, 4), (1, 1), (1, 3), (2, 0), (2, 2), (3, 1), (3, 4), (4, 0), (4, 3)}),
    7: (3, {(0, 2), (1, 1), (2, 0)}),
    8: (2, {(1, 1)}),
    9: (3, {(1, 1), (2, 0)}),
    10: (3, {(1, 1)}),
}


def computed(kind, y, x):
    """Whether output position (y, x) is computed exactly under mask type ``kind``."""
    if kind < 5:
        return not computed(10 - kind, y, x)
    tile, predicted = _PREDICTED[kind]
    return (y % tile, x % tile) not in predicted


def depthwise(x, w, b):
    """x[n][c][y][x] lists; 3x3, stride 1, zero padding 1."""
    n, c, h, wd = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    out = [[[[0.0] * wd for _ in range(h)] for _ in range(c)] for _ in range(n)]
    for i in range(n):
        for ch in range(c):
            for y in range(h):
                for xx in range(wd):
                    total = float(b[ch])
                    for dy in range(3):
                        for dx in range(3):
                            yy, xs = y + dy - 1, xx + dx - 1
                            if 0 <= yy < h and 0 <= xs < wd:
                                total += x[i][ch][yy][xs] * w[ch][dy][dx]
                    out[i][ch][y][xx] = total
    return out


def gate(outputs, scale, kind, w1, b1, w2, b2, threshold):
    """The kept flags of every output (n, c, y, x nested lists) and the gated outputs."""
    n, c, h, wd = len(outputs), len(outputs[0]), len(outputs[0][0]), len(outputs[0][0][0])
    act = [[[[max(outputs[i][ch][y][xx], 0) * scale[ch] for xx in range(wd)]
             for y in range(h)] for ch in range(c)] for i in range(n)]
    masked = [[[[act[i][ch][y][xx] if computed(kind, y, xx) else 0.0 for xx in range(wd)]
                for y in range(h)] for ch in range(c)] for i in range(n)]
    hidden = depthwise(masked, w1, b1)
    hidden = [[[[max(v, 0.0) for v in row] for row in plane] for plane in img] for img in hidden]
    scores = depthwise(hidden, w2, b2)
    kept = [[[[computed(kind, y, xx) or scores[i][ch][y][xx] > threshold for xx in range(wd)]
              for y in range(h)] for ch in range(c)] for i in range(n)]
    gated = [[[[outputs[i][ch][y][xx] if kept[i][ch][y][xx] else 0 for xx in range(wd)]
               for y in range(h)] for ch in range(c)] for i in range(n)]
    return kept, gated, act


def counts(outputs, act, kind, kept):
    """The accounting of docs/zap.md, by counting one output at a time."""
    out = dict(outputs=0, masked=0, predicted=0, predicted_zero=0, true_zero_predicted=0,
               mispredicted_nonzero=0, falsely_computed=0, mass=0.0, mass_lost=0.0)
    for i, img in enumerate(outputs):
        for ch, plane in enumerate(img):
            for y, row in enumerate(plane):
                for xx, v in enumerate(row):
                    k = kept[i][ch][y][xx]
                    out["outputs"] += 1
                    out["mass"] += act[i][ch][y][xx]
                    if computed(kind, y, xx):
                        out["masked"] += 1
                        continue
                    out["predicted"] += 1
                    out["true_zero_predicted"] += v <= 0
                    if not k:
                        out["predicted_zero"] += 1
                        out["mispredicted_nonzero"] += v > 0
                        out["mass_lost"] += act[i][ch][y][xx]
                    elif v <= 0:
                        out["falsely_computed"] += 1
    return out


def folds(kept, kind, groups, rows, cols, schedule):
    """Phase one and phase two folds on the OS array, fold by fold."""
    n, c, h, wd = len(kept), len(kept[0]), len(kept[0][0]), len(kept[0][0][0])
    per_group = c // groups
    col_tiles = -(-per_group // cols)
    masked_pixels = [(i, y, xx) for i in range(n) for y in range(h) for xx in range(wd)
                     if computed(kind, y, xx)]
    pixels = [(i, y, xx) for i in range(n) for y in range(h) for xx in range(wd)
              if not computed(kind, y, xx)]
    phase1 = groups * col_tiles * -(-len(masked_pixels) // rows)
    phase2 = 0
    for g in range(groups):
        for t in range(col_tiles):
            channels = [g * per_group + j for j in range(t * cols, min(per_group, (t + 1) * cols))]
            if schedule == "compact":
                busiest = max(sum(1 for (i, y, xx) in pixels if kept[i][ch][y][xx])
                              for ch in channels)
                phase2 += -(-busiest // rows)
                continue
            for start in range(0, len(pixels), rows):
                tile = pixels[start:start + rows]
                if any(kept[i][ch][y][xx] for (i, y, xx) in tile for ch in channels):
                    phase2 += 1
    return phase1, phase2
