"""Plain-Python twins of the compressed formats (docs/memory-model.md, "Compressed operands"):
each one writes the stored stream value by value (and the zero-run one reads it back), so its
size is counted, not computed. Nothing here imports the code it checks.
"""

from __future__ import annotations


def padded(bits: int, burst_bytes: int) -> int:
    """Bytes of a stream of ``bits`` bits, padded byte by byte to a whole burst."""
    nbytes = 0
    while nbytes * 8 < bits:
        nbytes += 1
    while nbytes % burst_bytes:
        nbytes += 1
    return nbytes


def bitmask_stream(values: list[int], value_bits: int) -> str:
    """The bitmask format as a string of bits: the mask, then the non-zero values."""
    mask = "".join("1" if v else "0" for v in values)
    payload = "".join(format(v & ((1 << value_bits) - 1), f"0{value_bits}b")
                      for v in values if v)
    return mask + payload


def rle_encode(values: list[int], run_bits: int) -> list[tuple[int, int]]:
    """(zeros, value) entries, one value at a time: a run of 2**run_bits zeros is written as
    (2**run_bits - 1, 0) at once; what zeros are left at the end become (z - 1, 0)."""
    top = (1 << run_bits) - 1
    entries, zeros = [], 0
    for v in values:
        if v == 0:
            zeros += 1
            if zeros == top + 1:
                entries.append((top, 0))
                zeros = 0
        else:
            entries.append((zeros, v))
            zeros = 0
    if zeros:
        entries.append((zeros - 1, 0))
    return entries


def rle_decode(entries: list[tuple[int, int]]) -> list[int]:
    out: list[int] = []
    for zeros, v in entries:
        out.extend([0] * zeros)
        out.append(v)
    return out


def rle_bytes(values: list[int], value_bits: int, run_bits: int, word_bits: int,
              burst_bytes: int) -> int:
    """Entries placed into words one by one (a new word when the next does not fit)."""
    entry = run_bits + value_bits
    words, used = 0, word_bits
    for _ in rle_encode(values, run_bits):
        if used + entry > word_bits:
            words += 1
            used = 0
        used += entry
    return padded(words * word_bits, burst_bytes)


def scan(x) -> list[int]:
    """A layer input in stored order: NCHW pixel by pixel, channels in order."""
    if x.ndim == 4:
        n, c, h, w = x.shape
        return [int(x[i, ch, r, col]) for i in range(n) for r in range(h) for col in range(w)
                for ch in range(c)]
    return [int(v) for v in x.reshape(-1)]


def swis_bits(masks, weights_per_group: list[int], max_shifts: int | None) -> int:
    """SWIS: per group, each weight's mask and sign, the group's positions (3 bits each) and,
    with variable N, the count N - 1 in enough bits for max_shifts - 1."""
    count_bits = 0
    if max_shifts is not None:
        while (1 << count_bits) < max_shifts:
            count_bits += 1
    bits = 0
    for q, size in enumerate(weights_per_group):
        for f in range(len(masks[q])):
            n = bin(int(masks[q][f])).count("1")
            bits += size * n + size + 3 * n + count_bits
    return bits


def stc_bits(weights, weight_bits: int) -> int:
    """2:4: per filter and group of four K elements (zero-padded), two (value, index)
    slots; ValueError when a group has more than two non-zero weights."""
    groups, kd, filters = weights.shape
    bits = 0
    for g in range(groups):
        for f in range(filters):
            for start in range(0, kd, 4):
                quad = [int(weights[g, k, f]) if k < kd else 0 for k in range(start, start + 4)]
                if sum(1 for v in quad if v) > 2:
                    raise ValueError("more than two non-zero weights in a group of four")
                bits += 2 * (weight_bits + 2)
    return bits
