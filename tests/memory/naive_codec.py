"""A plain-Python twin of the transform codec (docs/hardware-spec.md §10): Huffman codes as
strings of '0' and '1', the transform and the quantiser on Python integers, pixel by pixel.

Nothing here imports the codec it checks; only the calibrated parameters (mean, basis, range,
code lengths) are shared.
"""

from __future__ import annotations


def huffman_cost(counts: list[int]) -> int:
    """Total code bits of an optimal prefix code: the sum of all merged weights (every
    merge adds one bit to each symbol below it)."""
    weights = sorted(max(1, c) for c in counts)
    if len(weights) == 1:
        return weights[0]
    cost = 0
    while len(weights) > 1:
        a, b = weights[0], weights[1]
        weights = sorted(weights[2:] + [a + b])
        cost += a + b
    return cost


def canonical_strings(lengths: list[int]) -> dict[int, str]:
    """Symbol -> code string: by (length, symbol), each code the previous plus one, shifted
    left to the new length."""
    code, previous, out = 0, None, {}
    for symbol in sorted(range(len(lengths)), key=lambda s: (lengths[s], s)):
        length = lengths[symbol]
        if previous is not None:
            code = (code + 1) << (length - previous)
        out[symbol] = format(code, f"0{length}b")
        previous = length
    return out


def encode_words(symbols: list[int], lengths: list[int], word_bits: int) -> list[int]:
    """The codes concatenated, cut into words, the last padded with zeros."""
    codes = canonical_strings(lengths)
    bits = "".join(codes[s] for s in symbols)
    bits += "0" * (-len(bits) % word_bits)
    return [int(bits[i:i + word_bits], 2) for i in range(0, len(bits), word_bits)]


def decode_words(words: list[int], count: int, lengths: list[int], word_bits: int) -> list[int]:
    """Read bit by bit; a symbol ends when the bits read so far are a code."""
    by_code = {c: s for s, c in canonical_strings(lengths).items()}
    bits = "".join(format(w, f"0{word_bits}b") for w in words)
    out, current = [], ""
    for bit in bits:
        if len(out) == count:
            break
        current += bit
        if current in by_code:
            out.append(by_code[current])
            current = ""
    return out


def code_pixels(pixels: list[list[int]], mean: list[int], basis: list[list[int]], shift: int,
                lo: int, hi: int, bits: int, low: int, high: int) -> list[list[int]]:
    """Project, quantise (round half up), dequantise and transform back, on integers:
    ``x' = mean + round(basis . (lo + s (hi - lo) / top) / 2**(2 shift))``, clipped."""
    top = (1 << bits) - 1
    span = hi - lo
    den = top << (2 * shift)
    channels, kept = len(basis), len(basis[0])
    out = []
    for x in pixels:
        centred = [x[c] - mean[c] for c in range(channels)]
        symbols = []
        for j in range(kept):
            y = sum(centred[c] * basis[c][j] for c in range(channels))
            s = ((y - lo) * 2 * top + span) // (2 * span)
            symbols.append(min(max(s, 0), top))
        numerators = [lo * top + s * span for s in symbols]
        row = []
        for c in range(channels):
            total = sum(basis[c][j] * numerators[j] for j in range(kept))
            row.append(min(max(mean[c] + (2 * total + den) // (2 * den), low), high))
        out.append(row)
    return out
