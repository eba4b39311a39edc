"""The output-stationary systolic array in RTL (docs/rtl.md, docs/hardware-spec.md §2).

Activations enter at the left edge and move one PE right per cycle, weights enter at the top
and move one PE down, each through registers that carry a valid bit with the operands (the
reference array's step tag, docs/reference-array.md). The edges are skewed by delay chains:
row i's activations pass i registers, column j's weights j registers, before they reach the
array, so that PE (i, j) holds operand step s in cycle s + i + j of the fold while the
feeder presents step s to every row and column at once. A PE type may have a row edge unit
(SPARQ's windows, A4W8's quantiser; docs/rtl.md, "Edge units"): combinational, between the
source and the row's skew chain, so that the row's registers carry what it sends. Each PE
adds its datapath's partial sum to its accumulator when it holds a step. When the last PE
has done its last step, the accumulators shift down their columns, one PE per cycle, and
leave at the bottom edge (zeros shift in at the top, which clears them for the next fold):
``rows`` drain cycles, so a fold takes ``S + 2*rows + cols - 2`` cycles
(docs/timing-model.md, ``native``).

A small controller sequences a fold: ``start`` (with ``steps`` = S) in an idle cycle feeds
step 0; ``busy`` is high in every cycle of the fold; ``feed`` and ``feed_step`` tell the
source which step to present (it is captured at the end of that cycle); ``out_valid`` is
high in the drain cycles, when ``out[j]`` holds the output of row ``out_row`` of column j.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Elaboratable, Module, Signal, signed, unsigned

__all__ = ["OSArray", "ProcessingElement", "STEP_BITS"]

#: Width of the step counter: folds of up to 65535 steps (plus fill).
STEP_BITS = 16


class ProcessingElement(Elaboratable):
    """One PE: T activation and T weight registers with their valid bits, the datapath, the
    accumulator.

    Parameters
    ----------
    datapath : Elaboratable
        The PE type's datapath (``simulator.rtl.pe``): ``a``, ``w``, ``product``, ``event``.
    acc_bits : int
        Accumulator width (two's complement).
    """

    def __init__(self, datapath, acc_bits: int) -> None:
        self.datapath = datapath
        threads = datapath.threads
        self.a_in = [Signal(a.shape(), name=f"a_in{t}") for t, a in enumerate(datapath.a)]
        self.w_in = [Signal(w.shape(), name=f"w_in{t}") for t, w in enumerate(datapath.w)]
        self.a_valid_in, self.w_valid_in = Signal(), Signal()
        self.a_reg = [Signal(a.shape(), name=f"a_reg{t}") for t, a in enumerate(datapath.a)]
        self.w_reg = [Signal(w.shape(), name=f"w_reg{t}") for t, w in enumerate(datapath.w)]
        self.a_valid, self.w_valid = Signal(), Signal()
        self.threads = threads
        #: high while the PE holds a step (both operand tags valid)
        self.valid = Signal()
        self.event = Signal(datapath.event.shape())
        self.product = Signal(datapath.product.shape())
        self.drain = Signal()
        self.acc_in = Signal(signed(acc_bits))
        self.acc = Signal(signed(acc_bits))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.datapath = dp = self.datapath
        # the registers hold whatever fields the datapath takes (T operands, an edge unit's
        # preprocessed fields, docs/rtl.md "Edge units"; a bit-serial datapath has more
        # weight than activation ports, or the other way)
        for port, reg, wire in [*zip(self.a_in, self.a_reg, dp.a),
                                *zip(self.w_in, self.w_reg, dp.w)]:
            m.d.sync += reg.eq(port)
            m.d.comb += wire.eq(reg)
        m.d.sync += [self.a_valid.eq(self.a_valid_in), self.w_valid.eq(self.w_valid_in)]
        m.d.comb += [self.valid.eq(self.a_valid & self.w_valid), self.event.eq(dp.event),
                     self.product.eq(dp.product)]
        with m.If(self.drain):
            m.d.sync += self.acc.eq(self.acc_in)
        with m.Elif(self.valid):
            m.d.sync += self.acc.eq(self.acc + self.product)
        return m


class OSArray(Elaboratable):
    """An R x C output-stationary systolic array of one PE type.

    Parameters
    ----------
    rows, cols : int
        Array size in PEs.
    make_datapath : callable
        Returns a fresh datapath of the PE type (one per PE).
    acc_bits : int
        Accumulator width.
    make_row_edge : callable, optional
        Returns a fresh edge unit (one per row) that sits between the source and the row's
        first register: combinational, with ``inputs`` (the T activations the source
        presents) and ``outputs`` (the fields the PEs' activation registers carry). None:
        the activations enter as they are.
    """

    def __init__(self, rows: int, cols: int, make_datapath: Callable[[], Elaboratable],
                 acc_bits: int, make_row_edge: Callable[[], Elaboratable] | None = None
                 ) -> None:
        self.rows, self.cols, self.acc_bits = rows, cols, acc_bits
        self.pes = [[ProcessingElement(make_datapath(), acc_bits) for _ in range(cols)]
                    for _ in range(rows)]
        pe0 = self.pes[0][0]
        self.threads = pe0.threads
        self.start = Signal()
        self.steps = Signal(unsigned(STEP_BITS))
        self.row_edges = [make_row_edge() for _ in range(rows)] if make_row_edge else None
        source = self.row_edges[0].inputs if self.row_edges else pe0.a_in
        #: A configuration input the edge units take (A4W8 ``scale: per_layer``: the grid
        #: step exponent s); the outputs leave the array shifted left by it. None: no scale.
        edge_scale = getattr(self.row_edges[0], "scale", None) if self.row_edges else None
        self.scale = None if edge_scale is None else Signal(edge_scale.shape(), name="scale")
        self.act_in = [[Signal(s.shape(), name=f"act_in_r{i}_t{t}") for t, s in
                        enumerate(source)] for i in range(rows)]
        self.wgt_in = [[Signal(s.shape(), name=f"wgt_in_c{j}_t{t}") for t, s in
                        enumerate(pe0.w_in)] for j in range(cols)]
        self.feed = Signal()
        self.feed_step = Signal(unsigned(STEP_BITS))
        self.busy = Signal()
        self.out_valid = Signal()
        self.out_row = Signal(range(max(rows, 2)))
        self.out = [Signal(signed(acc_bits), name=f"out_c{j}") for j in range(cols)]

    def ports(self) -> list[Signal]:
        """The top-level ports, inputs first."""
        flat = [s for row in self.act_in for s in row] + [s for col in self.wgt_in for s in col]
        scale = [] if self.scale is None else [self.scale]
        return [self.start, self.steps, *scale, *flat, self.feed, self.feed_step, self.busy,
                self.out_valid, self.out_row, *self.out]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        drain = self._controller(m)
        for i, row in enumerate(self.pes):
            for j, pe in enumerate(row):
                m.submodules[f"pe_{i}_{j}"] = pe
                m.d.comb += pe.drain.eq(drain)
                m.d.comb += pe.acc_in.eq(self.pes[i - 1][j].acc if i > 0 else 0)
        for i in range(self.rows):
            row_data = self.act_in[i]
            if self.row_edges:
                edge = m.submodules[f"edge_{i}"] = self.row_edges[i]
                m.d.comb += [x.eq(v) for x, v in zip(edge.inputs, row_data)]
                if self.scale is not None:
                    m.d.comb += edge.scale.eq(self.scale)
                row_data = edge.outputs
            self._edge(m, f"row{i}", row_data, i,
                       [(pe.a_in, pe.a_valid_in, pe.a_reg, pe.a_valid) for pe in self.pes[i]])
        for j in range(self.cols):
            column = [self.pes[i][j] for i in range(self.rows)]
            self._edge(m, f"col{j}", self.wgt_in[j], j,
                       [(pe.w_in, pe.w_valid_in, pe.w_reg, pe.w_valid) for pe in column])
        if self.scale is None:
            m.d.comb += [self.out[j].eq(self.pes[-1][j].acc) for j in range(self.cols)]
        else:  # the scale applied after accumulation (docs/hardware-spec.md §6)
            m.d.comb += [self.out[j].eq(self.pes[-1][j].acc << self.scale)
                         for j in range(self.cols)]
        return m

    def _edge(self, m: Module, name: str, data: list[Signal], delay: int, chain: list) -> None:
        """The skew chain (``delay`` registers) of one row or column, then the PE-to-PE links."""
        values, valid = list(data), self.feed
        for d in range(delay):
            regs = [Signal(v.shape(), name=f"skew_{name}_{d}_t{t}") for t, v in enumerate(values)]
            reg_valid = Signal(name=f"skew_{name}_{d}_valid")
            m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
            m.d.sync += reg_valid.eq(valid)
            values, valid = regs, reg_valid
        for inputs, valid_in, regs, reg_valid in chain:
            m.d.comb += [x.eq(v) for x, v in zip(inputs, values)]
            m.d.comb += valid_in.eq(valid)
            values, valid = regs, reg_valid

    def _controller(self, m: Module) -> Signal:
        """The fold sequencer; returns the drain signal."""
        steps = Signal(unsigned(STEP_BITS))
        cycle = Signal(unsigned(STEP_BITS + 1))
        compute_last = steps + self.rows + self.cols - 3
        drain = Signal()
        with m.FSM(name="fold"):
            with m.State("IDLE"):
                m.d.comb += [self.feed.eq(self.start), self.feed_step.eq(0)]
                with m.If(self.start):
                    m.d.sync += [steps.eq(self.steps), cycle.eq(0)]
                    m.next = "COMPUTE"
            with m.State("COMPUTE"):
                m.d.comb += [self.busy.eq(1), self.feed.eq(cycle + 1 < steps),
                             self.feed_step.eq(cycle + 1)]
                m.d.sync += cycle.eq(cycle + 1)
                with m.If(cycle == compute_last):
                    m.d.sync += cycle.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += [self.busy.eq(1), drain.eq(1), self.out_valid.eq(1),
                             self.out_row.eq(self.rows - 1 - cycle)]
                m.d.sync += cycle.eq(cycle + 1)
                with m.If(cycle == self.rows - 1):
                    m.next = "IDLE"
        return drain
