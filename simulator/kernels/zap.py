"""ZAP kernels: mask patterns, the depthwise predictor, gating, accounting and the array's
fold counts under each schedule (docs/hardware-spec.md §9, docs/zap.md).

Arrays in, arrays out (numpy): nothing here knows about layers or configs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MASK_TYPES", "mask_pattern", "depthwise3x3", "predictor_scores", "gate",
           "zap_counts", "phase_folds", "conv_exact_float32"]

#: Mask pattern types (docs/hardware-spec.md §9): 0..10.
MASK_TYPES = range(11)


def _base_pattern(kind: int, rows: int, cols: int) -> np.ndarray:
    """The computed positions of pattern ``kind`` in 5..10 (True: computed exactly)."""
    mask = np.ones((rows, cols), dtype=bool)
    if kind == 5:  # checkerboard: (row + col) even is computed, 50 %
        mask[0::2, 1::2] = False
        mask[1::2, 0::2] = False
    elif kind == 6:  # a 5x5 tile with 15 of 25 computed, 60 %
        for r, c in ((0, 2), (0, 4), (1, 1), (1, 3), (2, 0), (2, 2), (3, 1), (3, 4),
                     (4, 0), (4, 3)):
            mask[r::5, c::5] = False
    elif kind == 7:  # 3x3 tile, one anti-diagonal predicted: 6 of 9, 67 %
        mask[0::3, 2::3] = False
        mask[1::3, 1::3] = False
        mask[2::3, 0::3] = False
    elif kind == 8:  # 2x2 tile, one predicted: 75 %
        mask[1::2, 1::2] = False
    elif kind == 9:  # 3x3 tile, two predicted: 7 of 9, 78 %
        mask[1::3, 1::3] = False
        mask[2::3, 0::3] = False
    elif kind == 10:  # 3x3 tile, the centre predicted: 8 of 9, 89 %
        mask[1::3, 1::3] = False
    else:
        raise ValueError(f"mask type {kind} is not one of 5..10")
    return mask


def mask_pattern(kind: int, rows: int, cols: int) -> np.ndarray:
    """The (rows, cols) bool map of the output positions computed exactly in phase one.

    Types 5..10 are drawn above; a type t < 5 is the complement of type 10 - t. The pattern
    is anchored at output position (0, 0) and is the same for every channel and image.
    """
    if kind not in MASK_TYPES:
        raise ValueError(f"mask type {kind} is not one of 0..10")
    if kind < 5:
        return ~_base_pattern(10 - kind, rows, cols)
    return _base_pattern(kind, rows, cols)


def depthwise3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A depthwise 3x3 convolution, stride 1, zero padding 1, float64.

    Parameters
    ----------
    x : (N, C, H, W) float
    weight : (C, 3, 3) float
    bias : (C,) float
    """
    n, c, h, w = x.shape
    padded = np.zeros((n, c, h + 2, w + 2), dtype=np.float64)
    padded[:, :, 1:-1, 1:-1] = x
    out = np.empty((n, c, h, w), dtype=np.float64)
    out[...] = bias.reshape(1, c, 1, 1)
    for dy in range(3):
        for dx in range(3):
            out += padded[:, :, dy:dy + h, dx:dx + w] * weight[:, dy, dx].reshape(1, c, 1, 1)
    return out


def predictor_scores(activations: np.ndarray, mask: np.ndarray, weights1: np.ndarray,
                     bias1: np.ndarray, weights2: np.ndarray, bias2: np.ndarray) -> np.ndarray:
    """The predictor's score of every output (docs/hardware-spec.md §9): depthwise 3x3 ->
    ReLU -> depthwise 3x3 (BatchNorms folded) on the post-ReLU map with the predicted
    positions zeroed.

    Parameters
    ----------
    activations : (N, C, H, W) float, the post-ReLU output map in real units.
    mask : (H, W) bool, the computed positions.
    """
    masked = np.where(mask[None, None], activations, 0.0)
    hidden = np.maximum(depthwise3x3(masked, weights1, bias1), 0.0)
    return depthwise3x3(hidden, weights2, bias2)


def gate(scores: np.ndarray, mask: np.ndarray, threshold: np.ndarray | float) -> np.ndarray:
    """The outputs that are computed: the mask's positions, and elsewhere those whose score
    exceeds the threshold (a scalar, or one per channel)."""
    limit = np.asarray(threshold, dtype=np.float64)
    if limit.ndim == 1:
        limit = limit.reshape(1, -1, 1, 1)
    return mask[None, None] | (scores > limit)


def zap_counts(outputs: np.ndarray, activations: np.ndarray, mask: np.ndarray,
               kept: np.ndarray) -> dict[str, float]:
    """What ZAP did to one layer's outputs (docs/zap.md, "Reports").

    Parameters
    ----------
    outputs : (N, C, H, W) int, the layer's pre-ReLU integer outputs (accumulator + bias).
    activations : (N, C, H, W) float, the post-ReLU map in real units.
    mask : (H, W) bool, the computed positions.
    kept : (N, C, H, W) bool, the outputs computed (:func:`gate`).

    Returns
    -------
    dict
        ``outputs`` (all output positions), ``masked`` (computed in phase one),
        ``predicted`` (outside the mask), ``predicted_zero`` (outside the mask and gated
        off), ``true_zero_predicted`` (outside the mask and truly zero after ReLU),
        ``mispredicted_nonzero`` (truly non-zero, gated off), ``falsely_computed``
        (truly zero, computed in phase two), ``mass`` and ``mass_lost`` (sums of the
        post-ReLU activations, all and gated off).
    """
    full = np.broadcast_to(mask[None, None], outputs.shape)
    outside = ~full
    nonzero = outputs > 0
    gated = ~kept
    return {
        "outputs": int(outputs.size),
        "masked": int(np.count_nonzero(full)),
        "predicted": int(np.count_nonzero(outside)),
        "predicted_zero": int(np.count_nonzero(gated)),
        "true_zero_predicted": int(np.count_nonzero(outside & ~nonzero)),
        "mispredicted_nonzero": int(np.count_nonzero(gated & nonzero)),
        "falsely_computed": int(np.count_nonzero(outside & kept & ~nonzero)),
        "mass": float(activations.sum()),
        "mass_lost": float(activations[gated].sum()),
    }


def phase_folds(kept: np.ndarray, mask: np.ndarray, groups: int, rows: int, cols: int,
                schedule: str) -> tuple[int, int]:
    """Folds of the two phases of a conv layer on an output-stationary array.

    The GEMM's rows are output pixels (image, y, x) and its columns the output channels of
    each group, as in docs/hardware-spec.md §1. Phase one computes the mask's pixels of
    every image (known in advance: they are packed into full row folds). Phase two, under
    ``none``, walks the predicted pixels in their natural order in row tiles of ``rows``
    and skips a fold (row tile x column tile) only when every output in it is gated off;
    under ``compact``, each column tile's pixels that at least one of its channels computes
    are packed into full row tiles (docs/hardware-spec.md §9).

    Parameters
    ----------
    kept : (N, C, H, W) bool, the outputs computed.
    mask : (H, W) bool, the computed positions.
    groups : int, the conv's groups (C divisible by it).
    rows, cols : int, the array's shape.
    schedule : {'none', 'compact'}

    Returns
    -------
    (int, int)
        Folds of phase one and of phase two, all groups together.
    """
    n, channels, h, w = kept.shape
    per_group = channels // groups
    col_tiles = -(-per_group // cols)
    phase1 = groups * -(-(n * int(mask.sum())) // rows) * col_tiles
    # (pixels, C): the predicted pixels in GEMM row order, their kept flags per channel
    flat = kept.transpose(0, 2, 3, 1).reshape(n * h * w, channels)
    predicted = flat[np.tile(~mask.ravel(), n)]
    pixels = predicted.shape[0]
    phase2 = 0
    if pixels == 0:
        return phase1, 0
    row_tiles = -(-pixels // rows)
    for g in range(groups):
        for ct in range(col_tiles):
            lo = g * per_group + ct * cols
            hi = g * per_group + min(per_group, (ct + 1) * cols)
            tile = predicted[:, lo:hi]
            if schedule == "compact":  # each channel's own pixels, packed into full rows
                phase2 += -(-int(tile.sum(axis=0).max()) // rows)
            else:
                needed = tile.any(axis=1)  # a pixel some channel of the tile computes
                padded = np.zeros(row_tiles * rows, dtype=bool)
                padded[:pixels] = needed
                phase2 += int(padded.reshape(row_tiles, rows).any(axis=1).sum())
    return phase1, phase2


#: float32 holds every integer up to 2**24 exactly.
_FLOAT32_EXACT = 1 << 24


def conv_exact_float32(x: np.ndarray, w: np.ndarray, stride: tuple[int, int],
                       dilation: tuple[int, int], padding: tuple[int, int],
                       padded: tuple[int, int], out_size: tuple[int, int],
                       groups: int) -> np.ndarray | None:
    """The exact int64 outputs (N, F, P, Q) of an integer conv2d (no bias), by float32 BLAS
    products where float32 is exact, or None when float64 could not be exact either (the
    caller then uses int64).

    Each image is one product per group, weights (F/g, C/g * R * S) times columns
    (C/g * R * S, P * Q): the weights need no lowering (their own (c, r, s) order is the
    reduction order), the columns are built once in float32, and the product is already in
    the output layout. An output's partial sums, in any order, are bounded by
    sum_k |a_k| * max|w| over its input window: below 2**24 they are integers float32 holds
    exactly. The output pixels whose bound reaches 2**24 are computed again in float64,
    exact below 2**53; operands float32 cannot hold take float64 throughout
    (docs/performance.md, "ZAP").

    Parameters
    ----------
    x : (N, C, H, W) integer input.
    w : (F, C/g, R, S) integer weights.
    stride, dilation, padding : (int, int) each, the conv's.
    padded : (int, int), the zero-padded input's height and width (every tap of every output
        inside it).
    out_size : (P, Q).
    groups : int.
    """
    n, c, h, wd = x.shape
    f, cg, r_taps, s_taps = w.shape
    (sh, sw), (dh, dw), (ph, pw) = stride, dilation, padding
    p, q = out_size
    k = cg * r_taps * s_taps
    if x.size == 0 or w.size == 0 or k == 0:
        return None
    amax = max(abs(int(x.min())), abs(int(x.max())))
    bmax = max(abs(int(w.min())), abs(int(w.max())))
    if amax * bmax * k >= 1 << 53:
        return None
    # float32 when it holds every operand; else float64, exact for the whole product
    single = max(amax, bmax) < _FLOAT32_EXACT
    dtype = np.float32 if single else np.float64
    fg = f // groups
    weights = w.reshape(groups, fg, k)
    wf = weights.astype(dtype)
    xp = np.zeros((n, c, *padded), dtype=dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    cols = np.empty((c, r_taps, s_taps, p, q), dtype=dtype)
    out = np.empty((n, groups, fg, p * q), dtype=np.int64)
    checked = single and amax * bmax * k >= _FLOAT32_EXACT
    if checked:  # sum_k |a_k| per output pixel and group, exact in float64
        sums = np.zeros((n, groups, *padded), dtype=np.float64)
        sums[:, :, ph:ph + h, pw:pw + wd] = np.abs(x.astype(np.float64)).reshape(
            n, groups, cg, h, wd).sum(axis=2)

    def window(a: np.ndarray, r: int, s: int) -> np.ndarray:
        return a[..., r * dh:r * dh + (p - 1) * sh + 1:sh, s * dw:s * dw + (q - 1) * sw + 1:sw]

    for image in range(n):
        for r in range(r_taps):
            for s in range(s_taps):
                cols[:, r, s] = window(xp[image], r, s)
        grouped = cols.reshape(groups, k, p * q)
        np.matmul(wf, grouped, out=out[image], casting="unsafe")
        if not checked:
            continue
        bound = np.zeros((groups, p, q), dtype=np.float64)
        for r in range(r_taps):
            for s in range(s_taps):
                bound += window(sums[image], r, s)
        bound = bound.reshape(groups, p * q) * bmax
        for group in range(groups):
            pixels = np.flatnonzero(bound[group] >= _FLOAT32_EXACT)
            if pixels.size:
                out[image, group][:, pixels] = np.matmul(
                    weights[group].astype(np.float64),
                    grouped[group][:, pixels].astype(np.float64)).astype(np.int64)
    return out.reshape(n, f, p, q)
