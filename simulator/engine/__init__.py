"""The discrete-event engine: SimPy with integer cycles, one environment per run (passed in)."""

from simulator.engine.core import ChannelLink, Milestones, SequencedChannel, Space, SpaceClaim

__all__ = ["ChannelLink", "Milestones", "SequencedChannel", "Space", "SpaceClaim"]
