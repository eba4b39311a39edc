"""Small workloads and spec files for the sweep tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY = """schema_version: 1
name: tiny
batch: 1
layers:
  - {name: conv1, op: conv2d, in_channels: 3, out_channels: 8, input_size: [12, 12], kernel_size: 3, stride: 1, padding: 1, activation_signed: true}
  - {name: conv2, op: conv2d, in_channels: 8, out_channels: 16, input_size: [12, 12], kernel_size: 3, stride: 2, padding: 1}
  - {name: fc, op: linear, in_features: 576, out_features: 10}
"""

SMALL = """schema_version: 1
name: small
batch: 1
layers:
  - {name: a, op: conv2d, in_channels: 4, out_channels: 12, input_size: [8, 8], kernel_size: 3, stride: 1, padding: 1}
  - {name: b, op: linear, in_features: 768, out_features: 20}
"""


@pytest.fixture
def workloads(tmp_path: Path) -> Path:
    """A folder with tiny.yaml and small.yaml (a few layers each: points take milliseconds)."""
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(TINY)
    (folder / "small.yaml").write_text(SMALL)
    return folder


@pytest.fixture
def write_spec(workloads: Path):
    """Write a sweep spec (a mapping) beside the tiny workloads; returns its path."""

    def write(spec: dict, name: str = "sweep.yaml") -> Path:
        path = workloads / name
        path.write_text(yaml.safe_dump({"schema_version": 1, **spec}, sort_keys=False))
        return path

    return write
