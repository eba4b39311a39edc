"""Static canonical Huffman codes: build, encode into packed words, decode (docs/hardware-spec.md
§10, "Coding").

A code is built once per layer from calibration symbol counts (:func:`code_lengths`,
:func:`canonical_codes`); :func:`encode` packs a symbol stream into ``word_bits``-bit words,
most significant bit first, and :func:`decode` reads it back with the canonical decoder (per
code length: the first code, how many codes, where their symbols start). numpy and numba only;
tests/memory/naive_codec.py is the bit-by-bit twin.
"""

from __future__ import annotations

import heapq

import numpy as np

from simulator.kernels.jit import njit

__all__ = ["MAX_CODE_BITS", "code_lengths", "canonical_codes", "entropy_bits", "encode",
           "decode"]

#: Longest code the coder emits (a code and a partial word fit one 64-bit register).
MAX_CODE_BITS = 32


def _huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code lengths of positive ``counts`` (ties broken by the lowest symbol)."""
    n = len(counts)
    if n == 1:
        return np.ones(1, dtype=np.int64)
    # each heap entry: (weight, smallest symbol below it, node id)
    heap = [(int(c), s, s) for s, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = list(range(n))  # leaves 0..n-1, inner nodes n..
    next_id = n
    while len(heap) > 1:
        w1, s1, a = heapq.heappop(heap)
        w2, s2, b = heapq.heappop(heap)
        parent.append(next_id)
        parent[a] = parent[b] = next_id
        heapq.heappush(heap, (w1 + w2, min(s1, s2), next_id))
        next_id += 1
    root = next_id - 1
    depth = np.zeros(next_id, dtype=np.int64)
    for node in range(root - 1, -1, -1):  # parents have larger ids than their children
        depth[node] = depth[parent[node]] + 1
    return depth[:n]


def code_lengths(counts: np.ndarray, max_bits: int = MAX_CODE_BITS) -> np.ndarray:
    """Code length of every symbol of a Huffman code for ``counts``, at most ``max_bits``.

    Every symbol gets a code (a zero count is counted as one: a symbol the calibration never
    saw can still be coded). When the optimal code is longer than ``max_bits`` the counts
    are halved (rounding up) until it is not.
    """
    weights = np.maximum(np.asarray(counts, dtype=np.int64), 1)
    if len(weights) > 1 << max_bits:
        raise ValueError(f"{len(weights)} symbols do not fit {max_bits}-bit codes")
    while True:
        lengths = _huffman_lengths(weights)
        if lengths.max() <= max_bits:
            return lengths
        weights = (weights + 1) // 2


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code of each symbol (uint64): codes of one length are consecutive in
    symbol order, shorter codes first."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.lexsort((np.arange(len(lengths)), lengths))
    codes = np.zeros(len(lengths), dtype=np.uint64)
    code, previous = 0, int(lengths[order[0]])
    for symbol in order:
        length = int(lengths[symbol])
        code <<= length - previous
        codes[symbol] = code
        code += 1
        previous = length
    return codes


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy of a histogram, bits per symbol (0 for an empty one)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


@njit
def _encode(symbols, codes, lengths, word_bits):
    total = 0
    for s in symbols:
        total += lengths[s]
    words = np.zeros((total + word_bits - 1) // word_bits, dtype=np.uint64)
    acc = np.uint64(0)  # bits not yet written, right-aligned
    held = 0
    w = 0
    mask = (np.uint64(1) << np.uint64(word_bits)) - np.uint64(1)
    for s in symbols:
        n = lengths[s]
        acc = (acc << np.uint64(n)) | codes[s]
        held += n
        while held >= word_bits:
            held -= word_bits
            words[w] = (acc >> np.uint64(held)) & mask
            w += 1
        acc &= (np.uint64(1) << np.uint64(held)) - np.uint64(1)
    if held:
        words[w] = (acc << np.uint64(word_bits - held)) & mask
    return words, total


def encode(symbols: np.ndarray, codes: np.ndarray, lengths: np.ndarray,
           word_bits: int) -> tuple[np.ndarray, int]:
    """Pack the codes of ``symbols`` into ``word_bits``-bit words, MSB first; the last word
    is padded with zeros.

    Returns
    -------
    (uint64 array of words, int)
        The words and the code bits before padding.
    """
    words, total = _encode(np.ascontiguousarray(symbols, dtype=np.int64),
                           np.asarray(codes, dtype=np.uint64),
                           np.asarray(lengths, dtype=np.int64), int(word_bits))
    return words, int(total)


@njit
def _decode(words, count, word_bits, first_code, first_index, per_length, sorted_symbols):
    out = np.empty(count, dtype=np.int64)
    w = 0
    bit = word_bits - 1
    for i in range(count):
        code = 0
        length = 0
        while True:
            b = (words[w] >> np.uint64(bit)) & np.uint64(1)
            if bit == 0:
                bit = word_bits - 1
                w += 1
            else:
                bit -= 1
            code = (code << 1) | np.int64(b)
            length += 1
            offset = code - first_code[length]
            if offset < per_length[length]:
                out[i] = sorted_symbols[first_index[length] + offset]
                break
    return out


def decode(words: np.ndarray, count: int, lengths: np.ndarray, word_bits: int) -> np.ndarray:
    """The ``count`` symbols coded in ``words`` by the canonical code of ``lengths``."""
    lengths = np.asarray(lengths, dtype=np.int64)
    longest = int(lengths.max())
    per_length = np.bincount(lengths, minlength=longest + 1).astype(np.int64)
    per_length[0] = 0
    sorted_symbols = np.lexsort((np.arange(len(lengths)), lengths)).astype(np.int64)
    first_code = np.zeros(longest + 1, dtype=np.int64)
    first_index = np.zeros(longest + 1, dtype=np.int64)
    code = index = 0
    for length in range(1, longest + 1):
        code <<= 1
        first_code[length] = code
        first_index[length] = index
        code += per_length[length]
        index += per_length[length]
    return _decode(np.asarray(words, dtype=np.uint64), int(count), int(word_bits), first_code,
                   first_index, per_length, sorted_symbols)
