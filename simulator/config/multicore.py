"""The ``multicore:`` section of an arch: several identical arrays on one DRAM
(docs/memory-model.md, "Multi-core"; docs/hardware-spec.md, "Multi-core")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from simulator.config.schema import MIN_BANDWIDTH, at_least, in_range, option
from simulator.records import record

__all__ = ["MulticoreConfig", "Partition", "PARTITIONS", "MAX_CORES"]

#: Most cores of one chip (docs/memory-model.md, "Multi-core").
MAX_CORES = 1024

Partition = Literal["batch", "output_channels", "spatial", "pipeline"]
#: How a layer's work is shared among the cores.
PARTITIONS = ("batch", "output_channels", "spatial", "pipeline")


@record
class MulticoreConfig:
    """``cores`` identical arrays, each with its own buffers (the ``memory`` sizes are per
    core), sharing the DRAM; 1 core is the single-array model."""

    cores: int = option(1, doc="Identical arrays, each with its own ifmap/filter/ofmap "
                               "buffers of the memory.* sizes, sharing the one DRAM.",
                        check=in_range(1, MAX_CORES))
    partition: Partition = option(
        "batch", doc="How each array layer is shared: batch (each core takes batch/cores "
                     "images), output_channels (out_channels/groups/cores output channels of "
                     "each group; each core loads all inputs), spatial (each core takes a "
                     "band of output rows, near-equal, with its input rows and halo; each "
                     "loads all weights), pipeline (layers in contiguous stages balanced by "
                     "MACs, one core each; the batch streams through image by image).")
    layers: Mapping[str, Literal["batch", "output_channels", "spatial"]] = option(
        default_factory=dict, doc="Per-layer partition overrides by layer name (batch, "
                                  "output_channels or spatial; not with pipeline).")
    interconnect_bytes_per_cycle: float | None = option(
        None, doc="Bytes per cycle of the on-chip interconnect between the DRAM and the "
                  "cores, shared by all of them; null = as fast as the DRAM.",
        check=at_least(MIN_BANDWIDTH))
