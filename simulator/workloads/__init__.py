"""Workloads: layer specs, their lowering to GEMMs and onto the array, and the readers of
workload YAML, SCALE-Sim topology CSVs and traces (docs/workloads.md)."""
