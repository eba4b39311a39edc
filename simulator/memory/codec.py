"""Feature-map transform coding: a per-layer PCA, a uniform quantiser and a static Huffman
code on the activations that travel to and from DRAM (docs/hardware-spec.md §10,
docs/transform-coding.md).

One layer's coded tensor is its input, seen as pixels: a conv input (N, C, H, W) is N*H*W
channel vectors of C values, a linear input (rows, K) is rows vectors of K values.
:func:`calibrate` fits a :class:`Codec` on calibration pixels; :func:`code` runs the codec on
a tensor, encode then decode, bit for bit (:mod:`simulator.kernels.huffman`), and returns the
decoded activations with the real code lengths; :func:`coded_program` puts the coded bytes
into a layer's tile program.

Arithmetic (docs/hardware-spec.md §10): with an ``basis_bits``-bit basis every step is an
integer operation, so the decoded activations are exact and reproducible (float64 products
are used only where every partial sum stays below 2**53, which :func:`calibrate` checks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from simulator.config.arch import ActivationCodecConfig
from simulator.errors import SimulationError
from simulator.memory.plan import TileProgram
from simulator.operands import StoredSize
from simulator.records import record
from simulator.workloads.layers import Layer, LayerTensors

__all__ = ["CODED_OPS", "Codec", "CodedTensor", "InputCoding", "LayerCoding", "RunCoding",
           "activation_range", "calibrate", "calibrate_layer", "code", "code_input",
           "coded_layers",
           "coded_program", "codec_report", "from_pixels", "inverse_layer", "one_blas_thread",
           "pixels", "project", "quantise", "ratio", "reconstruct", "table_bytes"]

#: Largest magnitude a float64 holds every integer below exactly.
_EXACT = float(1 << 53)
#: Most channels a PCA is calibrated over (a C x C eigendecomposition per layer).
MAX_PCA_CHANNELS = 4096
#: Largest magnitude an int64 holds.
_INT64 = float((1 << 63) - 1)


def _integer_product(a: np.ndarray, b: np.ndarray, exact_float: bool) -> np.ndarray:
    """``a @ b`` of integer matrices, exactly: through float64 (BLAS) when every partial sum
    is below 2**53 (``exact_float``, from the bounds at calibration), else in int64."""
    if exact_float:
        return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a.astype(np.int64) @ b.astype(np.int64)


@record
class Codec:
    """One layer's calibrated codec.

    Attributes
    ----------
    bits : quantiser bits b (2**b symbols).
    mean : (C,) the calibration mean, int64 (integer basis) or float64.
    basis : (C, k) the kept components, as columns: int64 ``round(U * 2**shift)`` or float64;
        (C, 0) for ``transform: none`` (the identity, never formed: a wide layer's C x C
        matrix would take gigabytes).
    shift : fraction bits of an integer basis (``basis_bits - 1``; 0 for ``transform: none``),
        None for a float basis.
    lo, hi : the quantiser's calibrated range over the projected values (in the projection's
        own units: integers for an integer basis).
    lengths, codes : each symbol's Huffman code length and canonical code.
    counts : the calibration histogram of the symbols.
    low, high : the activation's integer range (decoded values are clipped to it).
    exact_float : an integer basis's products are exact in float64 (every partial sum below
        2**53); otherwise they are computed in int64 (slower).
    transform : ``"pca"`` or ``"none"``, the transform calibrated.
    """

    bits: int
    mean: np.ndarray
    basis: np.ndarray
    shift: int | None
    lo: float
    hi: float
    lengths: np.ndarray
    codes: np.ndarray
    counts: np.ndarray
    low: int
    high: int
    exact_float: bool = True
    transform: str = "pca"

    @property
    def channels(self) -> int:
        return int(self.basis.shape[0])

    @property
    def components(self) -> int:
        return self.channels if self.transform == "none" else int(self.basis.shape[1])

    def times_basis(self, a: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``a @ basis`` (``a @ basis.T`` with ``transpose``), exactly: ``a`` itself for the
        identity."""
        if self.transform == "none":
            return a
        basis = self.basis.T if transpose else self.basis
        if self.shift is None:
            return np.asarray(a, dtype=np.float64) @ basis  # no copy of a float matrix
        return _integer_product(a, basis, self.exact_float)


def pixels(x: np.ndarray) -> np.ndarray:
    """A layer input as (pixels, channels): NCHW -> (N*H*W, C); (rows, K) as it is."""
    x = np.asarray(x)
    if x.ndim == 4:
        return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])
    return x.reshape(-1, x.shape[-1])


def from_pixels(p: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`pixels` for a tensor of ``shape``."""
    if len(shape) == 4:
        n, c, h, w = shape
        return p.reshape(n, h, w, c).transpose(0, 3, 1, 2)
    return p.reshape(shape)


def _eigh(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linalg.eigh(cov)``; for a zero matrix (one calibration pixel, as an LLM's decode
    step has, or pixels all alike) what it returns there, zero values and the identity
    (tested), without its O(C^3) work: 45 s at 4,096 channels."""
    if cov.any():
        return np.linalg.eigh(cov)
    return np.zeros(len(cov)), np.eye(len(cov))


def _basis(x: np.ndarray, transform: str, energy_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and leading principal directions (columns, by decreasing variance) of ``x``."""
    channels = x.shape[1]
    if transform == "none":  # the identity (Codec.basis)
        return np.zeros(channels), np.zeros((channels, 0))
    xf = x.astype(np.float64)
    mean = xf.mean(axis=0)
    centred = xf - mean
    cov = centred.T @ centred / max(1, len(xf))
    values, vectors = _eigh(cov)
    order = np.argsort(values, kind="stable")[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    # a deterministic sign: the largest entry of each component is positive
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(channels)])
    vectors = vectors * np.where(signs == 0, 1.0, signs)
    kept = channels
    total = values.sum()
    if energy_fraction < 1.0 and total > 0:
        kept = int(np.searchsorted(np.cumsum(values) / total, energy_fraction) + 1)
        kept = min(max(kept, 1), channels)
    return mean, vectors[:, :kept]


def calibrate(x: np.ndarray, *, bits: int, transform: str = "pca", energy_fraction: float = 1.0,
              basis_bits: int | None = 8, low: int, high: int) -> Codec:
    """Fit a codec on calibration pixels ``x`` (P, C) of integers in [low, high].

    The mean and basis come from the pixels' covariance (``transform: pca``) or are the
    identity (``none``); the quantiser's range is the smallest and largest projected value
    of the calibration pixels; the Huffman code is built from the symbol counts of the
    calibration pixels (every symbol gets a code).

    Raises
    ------
    ValueError
        When an integer basis this wide would overflow 64-bit integers, or there are no
        calibration pixels.
    """
    from simulator.kernels.huffman import canonical_codes, code_lengths

    x = np.asarray(x, dtype=np.int64)
    if x.shape[0] == 0:
        raise ValueError("no calibration pixels")
    channels = x.shape[1]
    if transform == "pca" and channels > MAX_PCA_CHANNELS:
        raise ValueError(f"a PCA over {channels:,} channels is more than sasim calibrates "
                         f"({MAX_PCA_CHANNELS:,}); use wide_layers: untransformed or "
                         f"transform: none")
    exact_float = True
    if basis_bits is not None:
        top = (1 << (basis_bits - 1)) - 1 if transform == "pca" else 1
        # |x - mean| <= high - low; the projection, then the dequantised numerator times
        # the basis, summed over the channels
        bound = float(high - low) * top * channels * ((1 << bits) - 1) * top * channels * 2
        if bound >= _INT64:
            raise ValueError(f"{channels:,} channels at basis_bits {basis_bits} and bits {bits}"
                             f" exceed exact 64-bit integer arithmetic (use fewer basis_bits "
                             f"or bits, or basis_bits: null)")
        exact_float = bound < _EXACT
    mean_f, vectors = _basis(x, transform, energy_fraction)
    if basis_bits is None:
        mean, basis, shift = mean_f, vectors, None
    else:
        shift = 0 if transform == "none" else basis_bits - 1
        top = (1 << shift) - 1 if shift else 1
        basis = np.clip(np.rint(vectors * (1 << shift)), -top, top).astype(np.int64)
        mean = np.rint(mean_f).astype(np.int64)
    codec = Codec(bits=bits, mean=mean, basis=basis, shift=shift, lo=0, hi=1,
                  transform=transform,
                  exact_float=basis_bits is None or exact_float,
                  lengths=np.ones(1 << bits, dtype=np.int64),
                  codes=np.zeros(1 << bits, dtype=np.uint64),
                  counts=np.zeros(1 << bits, dtype=np.int64), low=low, high=high)
    y = project(codec, x)
    lo, hi = (y.min(), y.max()) if y.size else (0, 1)
    if basis_bits is not None:
        lo, hi = int(lo), int(hi)
        hi = hi if hi > lo else lo + 1
    else:
        lo, hi = float(lo), float(hi)
        hi = hi if hi > lo else lo + 1.0
    codec = dataclasses.replace(codec, lo=lo, hi=hi)
    counts = np.bincount(quantise(codec, y).ravel(), minlength=1 << bits)
    lengths = code_lengths(counts)
    return dataclasses.replace(codec, counts=counts, lengths=lengths,
                               codes=canonical_codes(lengths))


def calibrate_layer(x: np.ndarray, options: ActivationCodecConfig, *, low: int,
                    high: int) -> Codec:
    """:func:`calibrate` with an arch's ``memory.activation_codec`` options: a layer wider
    than :data:`MAX_PCA_CHANNELS` takes ``transform: none`` unless ``wide_layers: refuse``
    (docs/transform-coding.md, "Limits")."""
    transform = options.transform
    if (transform == "pca" and x.shape[1] > MAX_PCA_CHANNELS
            and options.wide_layers == "untransformed"):
        transform = "none"
    return calibrate(x, bits=options.bits, transform=transform,
                     energy_fraction=options.energy_fraction, basis_bits=options.basis_bits,
                     low=low, high=high)


def project(codec: Codec, x: np.ndarray) -> np.ndarray:
    """The forward transform of pixels ``x`` (P, C): (P, k) ``(x - mean) . basis``."""
    centred = np.asarray(x, dtype=np.int64) - codec.mean
    # integers below 2**53: the float64 product is exact whatever the summation order; a
    # float basis projects floats (its identity too)
    return codec.times_basis(centred.astype(np.float64) if codec.shift is None else centred)


def quantise(codec: Codec, y: np.ndarray) -> np.ndarray:
    """Symbols 0..2**b-1 of projected values: ``round((y - lo) / (hi - lo) * (2**b - 1))``,
    clipped; halves round up (integer basis) or to even (float basis)."""
    top = (1 << codec.bits) - 1
    if codec.shift is None:
        s = np.rint((y - codec.lo) / (codec.hi - codec.lo) * top)
        return np.clip(s, 0, top).astype(np.int64)
    span = codec.hi - codec.lo
    s = np.floor_divide((y - codec.lo) * (2 * top) + span, 2 * span)
    return np.clip(s, 0, top).astype(np.int64)


def reconstruct(codec: Codec, symbols: np.ndarray) -> np.ndarray:
    """Dequantise and transform back: pixels (P, C) rounded and clipped to [low, high]."""
    top = (1 << codec.bits) - 1
    span = codec.hi - codec.lo
    if codec.shift is None:
        y = codec.lo + symbols.astype(np.float64) * (span / top)
        x = np.rint(codec.times_basis(y, transpose=True) + codec.mean)
        return np.clip(x, codec.low, codec.high).astype(np.int64)
    numerator = codec.lo * top + symbols.astype(np.int64) * span  # y * top, exactly
    product = codec.times_basis(numerator, transpose=True)
    den = top << (2 * codec.shift)
    x = np.floor_divide(2 * product + den, 2 * den) + codec.mean
    return np.clip(x, codec.low, codec.high)


@record
class CodedTensor:
    """What coding one tensor gave.

    Attributes
    ----------
    decoded : the decoded activations, int64, the tensor's shape.
    values : activation values of the tensor (pixels x channels).
    symbols : coded symbols (pixels x kept components).
    code_bits : Huffman bits of all symbols, before padding.
    stream_bytes : the lanes' streams, each padded to whole words, the total to whole
        bursts.
    histogram : the symbols' own histogram (its entropy is the ideal code).
    """

    decoded: np.ndarray
    values: int
    symbols: int
    code_bits: int
    stream_bytes: int
    histogram: np.ndarray


def code(codec: Codec, x: np.ndarray, *, lanes: int, word_bits: int,
         burst_bytes: int) -> CodedTensor:
    """Encode ``x`` (a layer input) and decode it again, bit for bit.

    Component j goes to lane ``j % lanes``; a lane codes its components pixel by pixel and
    packs the codes into ``word_bits``-bit words; the stream of all lanes is padded to whole
    bursts. The decoded symbols (not the encoder's) are dequantised and transformed back.
    """
    from simulator.kernels.huffman import decode, encode

    p = pixels(x)
    symbols = quantise(codec, project(codec, p))
    k = symbols.shape[1]
    decoded = np.empty_like(symbols)
    code_bits = words = 0
    for lane in range(min(lanes, k)):
        stream = symbols[:, lane::lanes]
        packed, nbits = encode(stream.ravel(), codec.codes, codec.lengths, word_bits)
        decoded[:, lane::lanes] = decode(packed, stream.size, codec.lengths,
                                         word_bits).reshape(stream.shape)
        code_bits += nbits
        words += len(packed)
    stream_bytes = -(-words * word_bits // 8)
    stream_bytes = -(-stream_bytes // burst_bytes) * burst_bytes
    out = from_pixels(reconstruct(codec, decoded), np.shape(x))
    return CodedTensor(decoded=out, values=int(p.size), symbols=int(symbols.size),
                       code_bits=int(code_bits), stream_bytes=int(stream_bytes),
                       histogram=np.bincount(decoded.ravel(), minlength=1 << codec.bits))


def table_bytes(codec: Codec, basis_bits: int | None) -> int:
    """Bytes loaded once per layer: one byte per code length (the canonical code is rebuilt
    from them), the basis (``basis_bits`` per entry, 32 for a float basis; none for the
    identity), the mean (16 bits per channel) and the quantiser's range (two 32-bit words)."""
    entry_bits = 32 if basis_bits is None else basis_bits
    identity = codec.shift == 0
    basis = 0 if identity else -(-codec.channels * codec.components * entry_bits // 8)
    mean = 0 if identity else 2 * codec.channels
    return (1 << codec.bits) + basis + mean + 8


@record
class LayerCoding:
    """How one layer's DRAM traffic is coded (docs/memory-model.md, "Coded activations").

    Attributes
    ----------
    read_ratio : coded over raw bytes of the layer's input (None: its input is not coded).
    table_bytes : code table, basis, mean and range, loaded once with the first unit.
    write_ratio : coded over raw bytes of what the layer writes back (the ratio its
        consumer's input measured; None: written raw).
    """

    read_ratio: float | None
    table_bytes: int
    write_ratio: float | None


def coded_program(program: TileProgram, coding: LayerCoding) -> TileProgram:
    """``program`` with coded activations on the DRAM channel: the ifmap loads move the read
    ratio of their bytes, the first unit's loads also the tables; the final-output
    write-backs move the write ratio of theirs. The buffers hold the array's words, as
    without the codec: the decoder sits between the channel and the ifmap buffer, the
    encoder between the output buffer and the channel, and the tables live in the codec's
    own table memory (docs/memory-model.md, "Coded activations"); the one channel rule of
    every compressed operand whose buffer holds words (:func:`channel_program`)."""
    from simulator.memory.compression import channel_program

    return channel_program(program, coding.read_ratio, coding.table_bytes, coding.write_ratio)


def ratio(coded_bytes: int, elements: int, bits: int) -> float:
    """Coded over raw bytes of ``elements`` words of ``bits`` bits."""
    raw = math.ceil(elements * bits / 8)
    return coded_bytes / raw if raw else 1.0


def activation_range(bits: int, signed: bool) -> tuple[int, int]:
    """The integer range of a ``bits``-bit activation."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def coded_layers(layers: Sequence[Layer]) -> list[str]:
    """The layers whose input is coded: every conv2d and linear layer but the first array
    layer (its input is the network's input, not a feature map)."""
    gemm = [layer for layer in layers if layer.is_gemm]
    return [layer.name for layer in gemm[1:] if layer.op in CODED_OPS]


#: Ops whose input the codec codes.
CODED_OPS = ("conv2d", "linear")


@record
class InputCoding:
    """One coded layer input: its codec and what coding its data gave."""

    codec: Codec
    coded: CodedTensor
    table_bytes: int
    raw_bytes: int
    calibration_images: int
    sqnr_db: float | None
    value_bits: int = 8

    @property
    def stored(self) -> StoredSize:
        """The coded input's stored size (docs/memory-model.md, "Compressed operands"): the
        padded stream, the tables once per layer, decoded before the ifmap buffer."""
        return StoredSize(scheme="transform_coding", values=self.coded.values,
                          value_bits=self.value_bits, stored_bytes=self.coded.stream_bytes,
                          in_buffers=False, once_bytes=self.table_bytes)

    @property
    def stored_bits_per_value(self) -> float:
        """DRAM bits per activation value: the padded stream (no tables)."""
        return self.stored.bits_per_value

    def report(self) -> dict[str, float | int | None]:
        """The per-layer figures of docs/transform-coding.md ("Reports")."""
        from simulator.kernels.huffman import entropy_bits

        coded, values = self.coded, self.coded.values
        per_symbol = coded.symbols / values if values else 0.0
        return {
            "bits": self.codec.bits, "transform": self.codec.transform,
            "components": self.codec.components,
            "channels": self.codec.channels, "values": values, "symbols": coded.symbols,
            "entropy_bits_per_value": entropy_bits(coded.histogram) * per_symbol,
            "calibration_entropy_bits_per_value": entropy_bits(self.codec.counts) * per_symbol,
            "code_bits_per_value": coded.code_bits / values if values else 0.0,
            "stored_bits_per_value": self.stored_bits_per_value,
            "stream_bytes": coded.stream_bytes, "table_bytes": self.table_bytes,
            "raw_bytes": self.raw_bytes, "calibration_images": self.calibration_images,
            "decoded_sqnr_db": self.sqnr_db}


def one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS on one thread while a layer is coded, when threadpoolctl is installed: the codec's
    products and its eigendecomposition are small, and a threaded BLAS that spins beside the
    PE's kernel threads on a shared machine made them several times slower
    (docs/performance.md, "Transform coding")."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: the codec is correct without it, only slower when loaded
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def code_input(x: np.ndarray, layer: Layer, options: ActivationCodecConfig) -> InputCoding:
    """Calibrate a codec on the leading ``calibration_fraction`` of the input's images (at
    least one) and code the whole input (docs/transform-coding.md, "Calibration")."""
    with one_blas_thread():
        return _code_input(x, layer, options)


def _code_input(x: np.ndarray, layer: Layer, options: ActivationCodecConfig) -> InputCoding:
    x = np.asarray(x).astype(np.int64, copy=False)
    images = x.shape[0]
    calibration = max(1, int(math.floor(images * options.calibration_fraction + 1e-9)))
    low, high = activation_range(layer.activation_bits, layer.activation_signed)
    codec = calibrate_layer(pixels(x[:calibration]), options, low=low, high=high)
    coded = code(codec, x, lanes=options.lanes, word_bits=options.word_bits,
                 burst_bytes=options.burst_bytes)
    noise = float(np.sum((coded.decoded - x).astype(np.float64) ** 2))
    signal = float(np.sum(x.astype(np.float64) ** 2))
    sqnr = None if noise == 0 else (10 * math.log10(signal / noise) if signal else -math.inf)
    return InputCoding(codec=codec, coded=coded,
                       table_bytes=table_bytes(codec, options.basis_bits),
                       raw_bytes=math.ceil(x.size * layer.activation_bits / 8),
                       calibration_images=calibration, sqnr_db=sqnr,
                       value_bits=layer.activation_bits)


class RunCoding:
    """The codec of every coded layer of a run, computed when first asked for (a layer's
    write-back is coded at its consumer's ratio, so layer L asks for L+1 too).

    Parameters
    ----------
    layers : the workload's layers in order.
    tensors : a layer's data by name.
    options : the arch's ``memory.activation_codec`` (``bits`` set).
    """

    def __init__(self, layers: Sequence[Layer], tensors: Callable[[str], LayerTensors],
                 options: ActivationCodecConfig) -> None:
        self.options = options
        self._tensors = tensors
        self._layers = {layer.name: layer for layer in layers}
        self._coded = set(coded_layers(layers))
        gemm = [layer.name for layer in layers if layer.is_gemm]
        self._consumer = dict(zip(gemm, gemm[1:]))
        self._done: dict[str, InputCoding] = {}

    def input(self, name: str) -> InputCoding | None:
        """The coding of layer ``name``'s input (None: not coded)."""
        if name not in self._coded:
            return None
        if name not in self._done:
            try:
                self._done[name] = code_input(self._tensors(name).input, self._layers[name],
                                              self.options)
            except ValueError as exc:
                raise SimulationError(f"layer '{name}': memory.activation_codec: {exc}") \
                    from None
            # only the consumer of the layer being run is needed later
            for old in [n for n in self._done if n != name]:
                if self._consumer.get(old) != name:
                    del self._done[old]
        return self._done[name]

    def consumer(self, name: str) -> InputCoding | None:
        """The coding of the input of the layer that consumes ``name``'s output."""
        nxt = self._consumer.get(name)
        return None if nxt is None else self.input(nxt)

    def layer(self, layer: Layer, output_bits: int) -> LayerCoding:
        """How ``layer``'s loads and write-backs are coded."""
        mine, theirs = self.input(layer.name), self.consumer(layer.name)
        mine_size = None if mine is None else mine.stored
        return LayerCoding(
            read_ratio=None if mine_size is None else mine_size.ratio,
            table_bytes=0 if mine_size is None else mine_size.once_bytes,
            write_ratio=None if theirs is None else theirs.stored.bits_per_value / output_bits)


def _decoded_passes(program: TileProgram, coding: InputCoding) -> float:
    """How many times the layer loads (and decodes) its coded input: the coded ifmap bytes
    it loads, without the tables, over the coded stream."""
    from simulator.memory.plan import LOAD_COLUMNS

    loaded = int(program.channel_load[:, LOAD_COLUMNS.index("ifmap")].sum()) - coding.table_bytes
    return loaded / coding.coded.stream_bytes if coding.coded.stream_bytes else 0.0


def inverse_layer(layer: Layer, coding: InputCoding | None,
                  program: TileProgram) -> Layer | None:
    """The inverse transform of the layer's decoded input as a 1x1 GEMM: every decoded pixel
    (each time it is loaded) times the C x k basis; None when nothing is decoded or the
    transform is the identity."""
    if coding is None or coding.codec.shift == 0:
        return None
    pixels_decoded = math.ceil(coding.coded.values / coding.codec.channels
                               * _decoded_passes(program, coding))
    if pixels_decoded == 0:
        return None
    return Layer(name=f"{layer.name}.codec_inverse", op="linear",
                 in_channels=coding.codec.components, out_channels=coding.codec.channels,
                 batch=pixels_decoded, activation_bits=8, weight_bits=8)


def codec_report(options: ActivationCodecConfig, layer: Layer, program: TileProgram,
                 coding: InputCoding | None, consumer: InputCoding | None, layer_cycles: int,
                 inverse: Layer | None, inverse_array_cycles: int, output_bits: int,
                 ) -> tuple[int, dict[str, float | int | bool | None]]:
    """Codec cycles and what the layer's coded traffic saved (docs/transform-coding.md,
    "Codec cycles").

    The decoder codes each symbol the layer loads, the encoder each symbol it writes back,
    ``lanes * symbols_per_cycle`` per cycle each; they stream beside the DRAM transfers, so
    the layer cannot end before they have: the excess over the layer's cycles is a stall.
    The inverse transform on the array runs before the layer (its cycles add); on the side
    unit it streams with the decoder.

    Returns
    -------
    (int, dict)
        The cycles the codec adds to the layer, and the layer's ``codec`` report.
    """
    from simulator.memory.plan import LOAD_COLUMNS, STORE_COLUMNS

    rate = options.lanes * options.symbols_per_cycle
    passes = 0.0 if coding is None else _decoded_passes(program, coding)
    decoded = 0 if coding is None else math.ceil(coding.coded.symbols * passes)
    written_values = 0
    encoded = 0
    writes = int(program.store[:, STORE_COLUMNS.index("ofmap")].sum())
    if consumer is not None:
        bpv = consumer.stored_bits_per_value
        written_values = math.ceil(8 * writes / bpv) if bpv else 0
        encoded = math.ceil(written_values * consumer.coded.symbols / consumer.coded.values)
    inverse_macs = 0 if inverse is None else inverse.gemm.macs
    side = (0 if inverse is None or options.inverse != "side_unit"
            else math.ceil(inverse_macs / options.side_unit_macs_per_cycle))
    stream = max(math.ceil(decoded / rate), math.ceil(encoded / rate), side)
    stall = max(0, stream - layer_cycles)
    loads = int(program.channel_load[:, LOAD_COLUMNS.index("ifmap")].sum())
    raw_reads = (0 if coding is None
                 else round(passes * coding.raw_bytes))
    raw_writes = 0 if consumer is None else math.ceil(written_values * output_bits / 8)
    saved = ((raw_reads - loads) if coding is not None else 0) + \
        ((raw_writes - writes) if consumer is not None else 0)
    report: dict[str, float | int | bool | None] = {}
    if coding is not None:
        report.update(coding.report())
    report.update({
        "decoded_symbols": decoded, "encoded_symbols": encoded,
        "decode_cycles": math.ceil(decoded / rate), "encode_cycles": math.ceil(encoded / rate),
        "inverse_macs": inverse_macs, "inverse_unit": options.inverse,
        "inverse_cycles": inverse_array_cycles if options.inverse == "array" else side,
        "codec_stall_cycles": stall, "stalls": stall > 0 or inverse_array_cycles > 0,
        "dram_raw_bytes": raw_reads + raw_writes, "dram_bytes_saved": saved})
    return stall + (inverse_array_cycles if options.inverse == "array" else 0), report
