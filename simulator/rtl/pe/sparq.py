"""The SPARQ PE in RTL: windows chosen at the row edge, two n x 8 multipliers with shifters
in the PE (docs/hardware-spec.md §4; docs/rtl.md, "The SPARQ datapath").

The **row edge unit** (:class:`SparqEdge`, one per array row, between the source and the
row's first register) splits each activation into sign and magnitude, finds the magnitude's
leading one, places the n-bit window at the smallest allowed position that holds it, and
rounds (half to even, saturating inside the window) or truncates the dropped bits. It also
computes the wider zero-partner window. With adjacent pairs it resolves the zero-partner
merge itself, so that what moves PE to PE along the row is, per multiplier, the window's
mantissa, its shift position and its sign, plus the merge flag (both multipliers work on one
activation, the *borrower*, with its weight). In 2:4 mode (``pairing: stc``) the pair depends
on each column's weights, so the edge sends both windows of all four activations and each
PE selects its pair by its weights' non-zero positions and resolves the merge.

The **PE** (:class:`SparqDatapath`) steers the weights (a merged step gives both multipliers
the borrower's weight), multiplies each n-bit mantissa by the weight's 8-bit magnitude,
shifts each product by its position, and adds the two terms with their signs.

Its ``event`` is the pair of its two products' classes, ``class0 * 10 + class1``, numbered
as the reference array numbers them (docs/reference-array.md): zero, zero_partner,
zero_partner_trimmed, window_exact, trim_shift_1 .. trim_shift_6. It is computed from what
the PE holds (merge flag, mantissas, positions) and one *lossy* bit per activation (the
dropped bits were not all zero), a counter probe the edge sends beside the windows.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed, unsigned

from simulator.rtl.pe.common import operand_signals, product_bits, sign_magnitude

__all__ = ["COUNTERS", "WINDOWS", "ZERO_PARTNER", "SparqDatapath", "SparqEdge", "build",
           "row_edge", "decoder"]

#: (window_bits, options) -> allowed window positions p (docs/hardware-spec.md §4 table).
WINDOWS = {(4, 5): (0, 1, 2, 3, 4), (4, 3): (0, 2, 4), (4, 2): (0, 4), (6, 3): (0, 1, 2),
           (3, 6): (0, 1, 2, 3, 4, 5), (2, 7): (0, 1, 2, 3, 4, 5, 6)}
#: window_bits -> (bits, positions) of the window an activation gets when its partner is 0.
ZERO_PARTNER = {4: (8, (0,)), 6: (8, (0,)), 3: (6, (0, 1, 2)), 2: (4, (0, 1, 2, 3, 4))}

#: Product classes, numbered as in docs/reference-array.md.
PRODUCTS = ("zero", "zero_partner", "zero_partner_trimmed", "window_exact",
            *(f"trim_shift_{p}" for p in range(1, 7)))
_ZERO_PARTNER, _WINDOW_EXACT = 1, 3
#: Event names by index: the classes of the step's two products.
COUNTERS = tuple(f"{a}+{b}" for a in PRODUCTS for b in PRODUCTS)
#: Width of a shift position field.
POS_BITS = 3


class _Window:
    """A window of one magnitude: mantissa, position p, and whether bits were dropped."""

    def __init__(self, m: Module, x: Signal, bits: int, positions: tuple[int, ...],
                 rounding: str, name: str) -> None:
        self.mant = Signal(unsigned(bits), name=f"{name}_mant")
        self.pos = Signal(unsigned(POS_BITS), name=f"{name}_pos")
        self.lossy = Signal(name=f"{name}_lossy")
        # leading-one detection: L = index of x's highest set bit (0 for x = 0)
        lead = Signal(range(8), name=f"{name}_lead")
        for b in range(8):
            with m.If(x[b]):
                m.d.comb += lead.eq(b)
        # the smallest allowed p with p + bits - 1 >= L
        with m.Switch(lead):
            for L in range(8):
                with m.Case(L):
                    m.d.comb += self.pos.eq(min(p for p in positions if p + bits - 1 >= L))
        # the window multiplexer: one input per allowed position
        kept = Signal(unsigned(bits), name=f"{name}_kept")
        half, sticky = Signal(name=f"{name}_half"), Signal(name=f"{name}_sticky")
        with m.Switch(self.pos):
            for p in positions:
                with m.Case(p):
                    top = min(8, p + bits)
                    m.d.comb += [kept.eq(x[p:top]), self.lossy.eq(x[0:p] != 0 if p else 0),
                                 half.eq(x[p - 1] if p else 0),
                                 sticky.eq(x[0:p - 1] != 0 if p > 1 else 0)]
        if rounding == "raw":
            m.d.comb += self.mant.eq(kept)
            return
        # round half to even: up iff the first dropped bit is set and the kept LSB or a
        # lower dropped bit is; a carry out of the window saturates to all ones
        rounded = Signal(unsigned(bits + 1), name=f"{name}_rounded")
        m.d.comb += rounded.eq(kept + (half & (kept[0] | sticky)))
        m.d.comb += self.mant.eq(Mux(rounded[bits], (1 << bits) - 1, rounded[0:bits]))


class _Slot:
    """One activation at the edge: its sign and both of its windows (docs/hardware-spec.md
    §4)."""

    def __init__(self, m: Module, a: Signal, cfg: tuple, rounding: str, name: str) -> None:
        n, positions, wide_bits, wide_positions = cfg
        self.sign, x = sign_magnitude(m, a, name)
        self.narrow = _Window(m, x, n, positions, rounding, f"{name}_n")
        self.wide = _Window(m, x, wide_bits, wide_positions, rounding, f"{name}_w")


class _Fields:
    """What a SPARQ PE multiplies: per multiplier k the window mantissa, its position and
    the activation's sign; the merge flag and the borrower; and per activation the lossy
    probe. ``signals()`` lists them in register order."""

    NAMES = ("mant0", "pos0", "sign0", "mant1", "pos1", "sign1", "merge", "borrower",
             "lossy0", "lossy1")

    def __init__(self, n: int, name: str) -> None:
        shapes = {"mant0": n, "mant1": n, "pos0": POS_BITS, "pos1": POS_BITS}
        for field in self.NAMES:
            setattr(self, field, Signal(unsigned(shapes.get(field, 1)), name=f"{name}_{field}"))

    def signals(self) -> list[Signal]:
        return [getattr(self, f) for f in self.NAMES]


def _merge(m: Module, n: int, wide_bits: int, slots: list, out: _Fields) -> None:
    """The zero-partner merge of a pair (docs/hardware-spec.md §4, vSPARQ).

    ``slots`` are two (sign, narrow, wide) triples of windows. When exactly one activation is
    zero, the other (the borrower) gets its wide window, split over both multipliers: its
    low n bits at position p, the rest at p + n; otherwise each multiplier gets its own
    activation's narrow window (a zero activation's window is 0).
    """
    (s0, n0, w0), (s1, n1, w1) = slots
    zero0, zero1 = n0.mant == 0, n1.mant == 0
    borrower = Signal(name="borrower_sel")
    m.d.comb += [out.merge.eq(zero0 ^ zero1), borrower.eq(zero0), out.borrower.eq(zero0)]
    wide_mant = Signal(unsigned(wide_bits), name="borrowed_mant")
    wide_pos = Signal(unsigned(POS_BITS), name="borrowed_pos")
    sign = Signal(name="borrowed_sign")
    m.d.comb += [wide_mant.eq(Mux(borrower, w1.mant, w0.mant)),
                 wide_pos.eq(Mux(borrower, w1.pos, w0.pos)),
                 sign.eq(Mux(borrower, s1, s0))]
    with m.If(out.merge):
        m.d.comb += [out.mant0.eq(wide_mant[0:n]), out.pos0.eq(wide_pos),
                     out.mant1.eq(wide_mant[n:wide_bits]), out.pos1.eq(wide_pos + n),
                     out.sign0.eq(sign), out.sign1.eq(sign),
                     out.lossy0.eq(~borrower & w0.lossy), out.lossy1.eq(borrower & w1.lossy)]
    with m.Else():
        m.d.comb += [out.mant0.eq(n0.mant), out.pos0.eq(n0.pos), out.sign0.eq(s0),
                     out.mant1.eq(n1.mant), out.pos1.eq(n1.pos), out.sign1.eq(s1),
                     out.lossy0.eq(n0.lossy), out.lossy1.eq(n1.lossy)]


def _config(design) -> tuple[int, tuple[int, ...], int, tuple[int, ...]]:
    """(n, positions, zero-partner bits, zero-partner positions) of the design."""
    n, opts = design.options["window_bits"], design.options["options"]
    wide_bits, wide_positions = ZERO_PARTNER[n]
    return n, WINDOWS[(n, opts)], wide_bits, wide_positions


class SparqEdge(Elaboratable):
    """The row edge unit: leading-one detection, window choice and rounding, once per row.

    ``inputs`` are the T activations the source presents (T = 2 adjacent, 4 in 2:4 mode);
    ``outputs`` the fields the row's registers carry: adjacent, the merged pair
    (:class:`_Fields`); 2:4, per activation its sign and both windows (mantissa, position,
    lossy), since each column's weights choose the pair.
    """

    def __init__(self, design) -> None:
        self.cfg = _config(design)
        self.rounding = design.options["rounding"]
        self.stc = design.options["pairing"] == "stc"
        self.inputs, _ = operand_signals(4 if self.stc else 2, design.act_signed,
                                         design.act_bits)
        n = self.cfg[0]
        if self.stc:
            self.outputs = [s for t in range(4) for s in _slot_signals(self.cfg, f"e{t}")]
        else:
            self.fields = _Fields(n, "edge")
            self.outputs = self.fields.signals()

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rounding = "raw" if self.rounding == "raw" else "round"
        slots = [_Slot(m, a, self.cfg, rounding, f"a{t}") for t, a in enumerate(self.inputs)]
        if self.stc:
            for t, slot in enumerate(slots):
                outs = self.outputs[7 * t:7 * t + 7]
                m.d.comb += [o.eq(v) for o, v in zip(outs, _slot_values(slot))]
            return m
        _merge(m, self.cfg[0], self.cfg[2],
               [(s.sign, s.narrow, s.wide) for s in slots], self.fields)
        return m


def _slot_signals(cfg: tuple, name: str) -> list[Signal]:
    """A 2:4 slot's register fields: sign, narrow (mantissa, position, lossy), wide (same).
    A wide window with one position (all 8 bits at p = 0) has no position and is never
    lossy: those two fields are then 0 bits wide (no register)."""
    n, _, wide_bits, wide_positions = cfg
    fixed = len(wide_positions) == 1
    return [Signal(name=f"{name}_sign"), Signal(unsigned(n), name=f"{name}_nmant"),
            Signal(unsigned(POS_BITS), name=f"{name}_npos"), Signal(name=f"{name}_nlossy"),
            Signal(unsigned(wide_bits), name=f"{name}_wmant"),
            Signal(unsigned(0 if fixed else POS_BITS), name=f"{name}_wpos"),
            Signal(unsigned(0 if fixed else 1), name=f"{name}_wlossy")]


def _slot_values(slot: _Slot) -> list:
    return [slot.sign, slot.narrow.mant, slot.narrow.pos, slot.narrow.lossy,
            slot.wide.mant, slot.wide.pos, slot.wide.lossy]


class _Held:
    """A window as the PE holds it (mantissa, position, lossy) from register fields."""

    def __init__(self, mant, pos, lossy) -> None:
        self.mant, self.pos, self.lossy = mant, pos, lossy


class SparqDatapath(Elaboratable):
    """The SPARQ PE's combinational datapath.

    ``a`` are the fields of the row edge unit's ``outputs``; ``w`` the T signed 8-bit weights
    of the step (T = 2 adjacent, 4 in 2:4 mode).
    """

    def __init__(self, design) -> None:
        self.cfg = _config(design)
        self.stc = design.options["pairing"] == "stc"
        self.threads = 4 if self.stc else 2
        n = self.cfg[0]
        if self.stc:
            self.a = [s for t in range(4) for s in _slot_signals(self.cfg, f"s{t}")]
        else:
            self.fields = _Fields(n, "pe")
            self.a = self.fields.signals()
        _, self.w = operand_signals(self.threads, False)
        self.product = Signal(signed(product_bits(2)))
        self.event = Signal(range(len(COUNTERS)))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n, positions, wide_bits, wide_positions = self.cfg
        if self.stc:
            fields, weights = self._select_pair(m)
        else:
            fields, weights = self.fields, self.w
        # the merge multiplexer on the weights: a merged step feeds the borrower's weight
        # to both multipliers
        steered = [Signal(signed(8), name=f"mul{k}_w") for k in range(2)]
        chosen = Mux(fields.borrower, weights[1], weights[0])
        m.d.comb += [steered[0].eq(Mux(fields.merge, chosen, weights[0])),
                     steered[1].eq(Mux(fields.merge, chosen, weights[1]))]
        shifts = [sorted(set(positions) | set(wide_positions)),
                  sorted(set(positions) | {p + n for p in wide_positions})]
        terms = [_term(m, k, getattr(fields, f"mant{k}"), getattr(fields, f"pos{k}"),
                       getattr(fields, f"sign{k}"), steered[k], shifts[k]) for k in range(2)]
        # the terms are one's complements where negative: the signs enter as carries
        m.d.comb += self.product.eq(terms[0][0] + terms[1][0] + terms[0][1] + terms[1][1])
        self._event(m, fields)
        return m

    def _select_pair(self, m: Module) -> tuple[_Fields, list]:
        """2:4 mode: the pair is the slots of the first two non-zero weights (in order); a
        missing member is an empty slot (activation 0, weight 0). Then the merge."""
        n, _, wide_bits, _ = self.cfg
        nonzero = [w != 0 for w in self.w]
        slots = [self.a[7 * t:7 * t + 7] for t in range(4)]
        picked = []
        for rank in range(2):
            # one-hot selection: slot t is the rank-th non-zero weight
            hot = []
            for t in range(4):
                h = Signal(name=f"pick{rank}_slot{t}")
                if t:
                    before = sum(Cat(z).as_unsigned() for z in nonzero[:t])
                    m.d.comb += h.eq(nonzero[t] & (before == rank))
                elif rank == 0:
                    m.d.comb += h.eq(nonzero[0])
                hot.append(h)
            fields = [Signal(s.shape(), name=f"pair{rank}_f{f}")
                      for f, s in enumerate(slots[0])]
            weight = Signal(signed(8), name=f"pair{rank}_w")
            m.d.comb += [f.eq(_and_or(hot, [slot[i] for slot in slots]))
                         for i, f in enumerate(fields)]
            m.d.comb += weight.eq(_and_or(hot, self.w))
            picked.append((fields, weight))
        merged = _Fields(n, "pair")
        _merge(m, n, wide_bits,
               [(f[0], _Held(f[1], f[2], f[3]), _Held(f[4], f[5], f[6])) for f, _ in picked],
               merged)
        return merged, [w for _, w in picked]

    def _event(self, m: Module, fields: _Fields) -> None:
        """``class0 * 10 + class1`` from the held fields (docs/reference-array.md)."""
        classes = []
        for k in range(2):
            mant, pos = getattr(fields, f"mant{k}"), getattr(fields, f"pos{k}")
            lossy = getattr(fields, f"lossy{k}")
            is_borrower = fields.borrower if k else ~fields.borrower
            cls = Signal(range(len(PRODUCTS)), name=f"class{k}")
            m.d.comb += cls.eq(Mux(fields.merge,
                                   Mux(is_borrower, _ZERO_PARTNER + lossy, 0),
                                   Mux(mant == 0, 0,
                                       Mux(lossy, _WINDOW_EXACT + pos, _WINDOW_EXACT))))
            classes.append(cls)
        m.d.comb += self.event.eq((classes[0] << 3) + (classes[0] << 1) + classes[1])


def _and_or(hot: list[Signal], values: list) -> object:
    """The value whose one-hot select bit is set (0 when none is)."""
    width = len(Cat(values[0]))
    result = 0
    for h, v in zip(hot, values):
        result = result | (Cat(v) & h.replicate(width))
    return result


def _term(m: Module, k: int, mant, pos, sign, weight, shifts: list[int]
          ) -> tuple[Signal, Signal]:
    """Multiplier k: an unsigned n x 8 product of the window mantissa and the weight's
    magnitude, its shifter (one input per position that can occur) and its conditional
    inversion; returns the term (one's complement when negative) and its sign (the carry
    that completes the negation)."""
    w_sign, w_mag = sign_magnitude(m, weight, f"mul{k}_w")
    p = Signal(unsigned(len(mant) + 8), name=f"mul{k}_p")
    shifted = Signal(unsigned(16), name=f"mul{k}_shifted")
    term = Signal(signed(product_bits(2)), name=f"mul{k}_term")
    s = Signal(name=f"mul{k}_sign")
    m.d.comb += [p.eq(mant * w_mag), s.eq(sign ^ w_sign)]
    with m.Switch(pos):
        for q in shifts:
            with m.Case(q):
                m.d.comb += shifted.eq(p << q)
    m.d.comb += term.eq(Cat(shifted, Const(0, 2)) ^ s.replicate(len(term)))
    return term, s


def build(design) -> SparqDatapath:
    """The datapath of ``design`` (a :class:`simulator.rtl.design.RtlDesign`)."""
    return SparqDatapath(design)


def row_edge(design) -> SparqEdge:
    """The row edge unit of ``design``."""
    return SparqEdge(design)


def decoder(design):
    """Event counts (by :data:`COUNTERS` name) -> (step counters, product stats) of the
    design's configuration (docs/hardware-spec.md §4, "Counters"), decoded independently of
    sasim's model."""
    n, positions, wide_bits, _ = _config(design)
    steps = ["idle", "zero_partner", "zero_partner_trimmed", "pair_exact",
             "pair_one_trimmed", "pair_both_trimmed"]
    if wide_bits == 8:
        steps.remove("zero_partner_trimmed")
    stat_names = ["exact_products", "approximated_products",
                  *(f"trim_shift_{p}" for p in positions if p > 0)]

    def decode(counts: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
        counters, stats = dict.fromkeys(steps, 0), dict.fromkeys(stat_names, 0)
        for name, count in counts.items():
            if not count:
                continue
            used = [c for c in name.split("+") if c != "zero"]
            lossy = [c for c in used if c == "zero_partner_trimmed" or c.startswith("trim")]
            if not used:
                step = "idle"
            elif len(used) == 1:
                step = "zero_partner_trimmed" if lossy else "zero_partner"
            else:
                step = ("pair_exact", "pair_one_trimmed", "pair_both_trimmed")[len(lossy)]
            counters[step] = counters.get(step, 0) + count
            stats["exact_products"] += (len(used) - len(lossy)) * count
            stats["approximated_products"] += len(lossy) * count
            for c in lossy:
                if c.startswith("trim_shift_"):
                    stats[c] = stats.get(c, 0) + count
        return counters, stats

    return decode
