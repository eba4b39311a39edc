"""The memory system: operand tiles, on-chip buffers and the DRAM channel, run on the engine.

:func:`plan_layer` turns a layer's folds into a :class:`TileProgram` (what moves when, what
stays), :func:`run_layer` runs it on a SimPy environment, and :mod:`.analysis` gives the
roofline and HCM cross-checks. See docs/memory-model.md.

The engine's names (:mod:`.run`: SimPy and its processes) load on first use: planning a
layer does not import SimPy (docs/performance.md, "Start-up").
"""

from typing import Any

from simulator.memory.analysis import hcm_bit_ops, hcm_bits_moved, hcm_cycles, roofline
from simulator.memory.footprint import Footprint
from simulator.memory.plan import TileProgram, buffer_bytes, plan_layer
from simulator.memory.vector import plan_vector_layer, vector_bytes

__all__ = ["Footprint", "TileProgram", "plan_layer", "buffer_bytes", "Dram", "LayerSchedule",
           "run_layer", "start_layer", "StartedLayer", "plan_vector_layer", "vector_bytes",
           "unbounded_schedule", "peak_occupancy", "roofline", "hcm_bit_ops",
           "hcm_bits_moved", "hcm_cycles"]

#: the names :mod:`simulator.memory.run` gives this package
_RUN = frozenset({"Dram", "LayerSchedule", "StartedLayer", "peak_occupancy", "run_layer",
                  "start_layer", "unbounded_schedule"})


def __getattr__(name: str) -> Any:
    if name in _RUN:
        from simulator.memory import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
