"""The ``lanes`` PE: ``lanes`` 8b x 8b multipliers consume ``lanes`` K elements per step.

Each activation may first lose its ``truncate_bits`` low bits (on its magnitude, keeping its
sign), so the PE is exact only with ``truncate_bits: 0``. A PE-step is ``busy`` when at least
one of its lanes multiplies two non-zero operands, else ``idle``; the stat ``products``
counts the non-zero products.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from simulator.config.schema import option
from simulator.hw.pe import Composition, GemmRun, PEModel, PEOptions, ReferenceRule, Rtl
from simulator.workloads.layers import Layer

__all__ = ["LanesOptions", "LanesPE", "truncate", "reference_step"]

COUNTERS = ("idle", "busy")


@dataclasses.dataclass(frozen=True)
class LanesOptions(PEOptions):
    """``pe: {type: lanes, lanes: 2, truncate_bits: 0}``."""

    type: Literal["lanes"] = option("lanes", doc="PE type.")
    lanes: Literal[1, 2, 3, 4] = option(2, doc="Multipliers, and K elements per step.")
    truncate_bits: Literal[0, 1, 2, 3, 4] = option(
        0, doc="Low bits each activation magnitude loses before its multiply.")


def truncate(a: np.ndarray, bits: int) -> np.ndarray:
    """Activations without their ``bits`` low magnitude bits, keeping their sign."""
    a = np.asarray(a, dtype=np.int64)
    return np.sign(a) * ((np.abs(a) >> bits) << bits)


def reference_step(acts: np.ndarray, wgts: np.ndarray, params: dict) -> tuple[int, int]:
    """One PE-step in the reference array (plain Python, T = lanes): the partial sum and
    the counter index (0 idle, 1 busy)."""
    bits = int(params["truncate_bits"])
    total, busy = 0, 0
    for a, w in zip(acts, wgts):
        a = int(a)
        a = (abs(a) >> bits << bits) * (1 if a >= 0 else -1)
        total += a * int(w)
        if a != 0 and w != 0:
            busy = 1
    return total, busy


class LanesPE(PEModel):
    type_name = "lanes"
    summary = "example plug-in: N multipliers on N K elements per step, optional truncation"
    Options = LanesOptions
    dataflows = ("os",)
    counter_names = COUNTERS
    stat_names = ("products",)
    #: Which steps are busy depends on the zeros of the data.
    data_dependent = True
    #: Compared with the exact word-parallel baseline (the default, said for the example).
    baseline_family = None

    options: LanesOptions

    #: Its datapath for ``sasim rtl`` (emit, verify, synth), in this package.
    rtl = Rtl("sasim_example_pe.lanes_rtl")

    @classmethod
    def rtl_design(cls, options: LanesOptions) -> tuple[int, dict]:
        """One operand slot per lane; the datapath depends on the truncation."""
        return options.lanes, {"truncate_bits": options.truncate_bits}

    @classmethod
    def rtl_label(cls, threads: int, options: dict) -> str:
        return f"lanes x{threads} (truncate {options['truncate_bits']} bits)"

    def reduction_steps(self, layer: Layer) -> int:
        return -(-layer.gemm.k // self.options.lanes)

    def peak_macs_per_step(self, layer: Layer) -> int:
        return self.options.lanes

    def composition(self, layer: Layer | None = None) -> Composition:
        lanes = self.options.lanes
        work = {"mult_8x8": lanes, "adder_32": lanes}
        return Composition(parts={**work, "register_bit": lanes * 16 + 32 + 32},
                           events={"idle": {}, "busy": work})

    def schedule(self, kd: int) -> np.ndarray:
        """K index of each lane and step, (lanes, steps): ``k = step * lanes + lane``; -1
        where K runs out."""
        lanes = self.options.lanes
        steps = -(-kd // lanes)
        k = np.arange(steps * lanes).reshape(steps, lanes).T
        return np.where(k < kd, k, -1).astype(np.int64)

    def simulate_gemm(self, layer: Layer, a: np.ndarray, b: np.ndarray) -> GemmRun:
        lanes, kd = self.options.lanes, a.shape[1]
        approx = truncate(a, self.options.truncate_bits)
        outputs = approx @ b.astype(np.int64)
        steps = -(-kd // lanes)
        pad = steps * lanes - kd
        nz_a = np.pad(approx != 0, ((0, 0), (0, pad))).reshape(a.shape[0], steps, lanes)
        nz_b = np.pad(b != 0, ((0, pad), (0, 0))).reshape(steps, lanes, b.shape[1])
        per_step = np.einsum("msl,sln->msn", nz_a.astype(np.int64), nz_b.astype(np.int64))
        busy = int(np.count_nonzero(per_step))
        return GemmRun(outputs.astype(np.int64),
                       {"idle": per_step.size - busy, "busy": busy},
                       {"products": int(per_step.sum())})

    @classmethod
    def reference_rule(cls) -> ReferenceRule:
        return ReferenceRule(reference_step, threads=(1, 2, 3, 4),
                             options={"truncate_bits": {str(b): 0 for b in range(5)}},
                             counter_names=COUNTERS)
