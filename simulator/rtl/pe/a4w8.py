"""The A4W8 PE in RTL: a 4-bit quantiser per row at the array edge, two 4b x 8b multipliers
in the PE (docs/hardware-spec.md §6; docs/rtl.md, "The A4W8 datapath").

The **row edge unit** (:class:`A4W8Edge`) quantises each activation magnitude x on the grid
of step 2**s, ``q = min(round(x / 2**s), 15)`` (half to even, or truncated with
``rounding: raw``), and sends q (4 bits) with the activation's sign. With ``scale: fixed``
s = 4, so the quantiser is the high nibble, rounded on the low nibble and saturated at 15.

The **PE** (:class:`A4W8Datapath`) multiplies each q by its weight's 8-bit magnitude and adds
the two products with their signs; the scale 2**s is a wire shift of the sum (no shifter: s
is fixed).

Its ``event`` is ``class0 * 3 + class1`` over the product classes zero (x = 0), exact
(q * 2**s = x) and approximated, numbered as the reference array numbers them
(docs/reference-array.md). Two 1-bit counter probes per activation travel with q: *non-zero*
(x != 0; a small x can quantise to q = 0) and *lossy* (q * 2**s != x).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned

from simulator.rtl.pe.common import operand_signals, product_bits, sign_magnitude

__all__ = ["COUNTERS", "A4W8Datapath", "A4W8Edge", "build", "row_edge", "decoder"]

#: Product classes, numbered as in docs/reference-array.md.
PRODUCTS = ("zero", "exact", "approximated")
#: Event names by index: the classes of the step's two products.
COUNTERS = tuple(f"{a}+{b}" for a in PRODUCTS for b in PRODUCTS)
#: The grid step exponent of ``scale: fixed`` (docs/hardware-spec.md §6).
FIXED_SHIFT = 4
#: The largest grid step exponent of ``scale: per_layer`` (8-bit magnitudes into 4 bits).
MAX_SHIFT = 4


def _slot_signals(name: str) -> list[Signal]:
    """One activation's register fields: sign, q, non-zero, lossy."""
    return [Signal(name=f"{name}_sign"), Signal(unsigned(4), name=f"{name}_q"),
            Signal(name=f"{name}_nonzero"), Signal(name=f"{name}_lossy")]


class A4W8Edge(Elaboratable):
    """The row edge unit: one 4-bit quantiser per activation of the pair.

    With ``scale: per_layer`` the grid step exponent is the input ``scale`` (0 .. 4), set
    for each GEMM group like a configuration register; the array also shifts its outputs
    by it (:class:`simulator.rtl.array.OSArray`). Otherwise ``scale`` is None and s = 4.
    """

    def __init__(self, design) -> None:
        self.rounding = design.options["rounding"]
        self.per_layer = design.options["scale"] == "per_layer"
        self.scale = Signal(range(MAX_SHIFT + 1), name="scale") if self.per_layer else None
        self.inputs, _ = operand_signals(2, design.act_signed, design.act_bits)
        self.outputs = [s for t in range(2) for s in _slot_signals(f"e{t}")]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        for t, a in enumerate(self.inputs):
            sign, x = sign_magnitude(m, a, f"a{t}")
            out_sign, q, nonzero, lossy = self.outputs[4 * t:4 * t + 4]
            m.d.comb += [out_sign.eq(sign), nonzero.eq(x != 0)]
            if not self.per_layer:
                value, exact = self._quantise(m, x, FIXED_SHIFT, f"a{t}")
                m.d.comb += [q.eq(value), lossy.eq(~exact)]
                continue
            # one quantiser per grid step, chosen by the scale register
            with m.Switch(self.scale):
                for s in range(MAX_SHIFT + 1):
                    with m.Case(s):
                        value, exact = self._quantise(m, x, s, f"a{t}_s{s}")
                        m.d.comb += [q.eq(value), lossy.eq(~exact)]
        return m

    def _quantise(self, m: Module, x: Signal, s: int, name: str) -> tuple:
        """(q, exact) of magnitude x on the grid of step 2**s: q = min(round(x / 2**s), 15);
        exact when q * 2**s == x (no dropped bit set, no saturation)."""
        kept = x[s:8]
        dropped = (x[0:s] != 0) if s else Const(0, 1)
        if self.rounding == "raw":
            rounded = kept
        else:
            # half to even on the dropped bits
            up = x[s - 1] & (x[s] | ((x[0:s - 1] != 0) if s > 1 else 0)) if s else 0
            rounded = Signal(unsigned(len(kept) + 1), name=f"{name}_rounded")
            m.d.comb += rounded.eq(kept + up)
        if s == FIXED_SHIFT:
            # a 4-bit kept value saturates only by rounding up, which drops set bits
            return Mux(rounded >= 16, 15, rounded), ~dropped
        saturated = rounded >= 16
        return Mux(saturated, 15, rounded), ~(dropped | saturated)


class A4W8Datapath(Elaboratable):
    """The A4W8 PE's combinational datapath: ``a`` are the edge unit's fields, ``w`` the two
    signed 8-bit weights."""

    def __init__(self, design) -> None:
        self.threads = 2
        # scale: per_layer scales after accumulation, at the array's output (no shifter here)
        self.shift = FIXED_SHIFT if design.options["scale"] == "fixed" else 0
        self.a = [s for t in range(2) for s in _slot_signals(f"s{t}")]
        _, self.w = operand_signals(2, False)
        self.product = Signal(signed(product_bits(2)))
        self.event = Signal(range(len(COUNTERS)))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        terms, classes = [], []
        for t in range(2):
            sign, q, nonzero, lossy = self.a[4 * t:4 * t + 4]
            w_sign, w_mag = sign_magnitude(m, self.w[t], f"mul{t}_w")
            p = Signal(unsigned(12), name=f"mul{t}_p")
            s = Signal(name=f"mul{t}_sign")
            term = Signal(signed(14), name=f"mul{t}_term")
            m.d.comb += [p.eq(q * w_mag), s.eq(sign ^ w_sign),
                         term.eq(Cat(p, Const(0, 2)) ^ s.replicate(14))]
            terms.append((term, s))
            cls = Signal(range(3), name=f"class{t}")
            m.d.comb += cls.eq(Mux(nonzero, Mux(lossy, 2, 1), 0))
            classes.append(cls)
        total = Signal(signed(15), name="sum")
        # one's complements where negative: the signs enter as carries
        m.d.comb += total.eq(terms[0][0] + terms[1][0] + terms[0][1] + terms[1][1])
        m.d.comb += self.product.eq(total << self.shift)
        m.d.comb += self.event.eq((classes[0] << 1) + classes[0] + classes[1])
        return m


def build(design) -> A4W8Datapath:
    """The datapath of ``design`` (a :class:`simulator.rtl.design.RtlDesign`)."""
    return A4W8Datapath(design)


def row_edge(design) -> A4W8Edge:
    """The row edge unit of ``design``."""
    return A4W8Edge(design)


def scale_of(design, a) -> int:
    """The value of the ``scale`` register for a GEMM group's activations ``a`` (the
    software's choice, docs/hardware-spec.md §6): ``scale: per_layer``, the fewest dropped
    bits that fit the largest magnitude in 4 bits; None for ``scale: fixed``."""
    if design.options["scale"] == "fixed":
        return None
    peak = max((abs(int(v)) for v in a.ravel()), default=0)
    s = 0
    while peak >> s > 15:
        s += 1
    return s


def decoder(design):
    """Event counts -> (step counters ``idle``/``single``/``double``, product stats)
    (docs/hardware-spec.md §6)."""

    def decode(counts: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
        counters = dict.fromkeys(("idle", "single", "double"), 0)
        stats = dict.fromkeys(("exact_products", "approximated_products"), 0)
        for name, count in counts.items():
            used = [c for c in name.split("+") if c != "zero"]
            counters[("idle", "single", "double")[len(used)]] += count
            stats["exact_products"] += used.count("exact") * count
            stats["approximated_products"] += used.count("approximated") * count
        return counters, stats

    return decode
