"""Helpers of the sweep tests: reading results.csv."""

from __future__ import annotations

import csv
from pathlib import Path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def without(rows: list[dict[str, str]], *columns: str) -> list[tuple]:
    """Rows as sorted tuples without some columns (row order and timing aside)."""
    return sorted(tuple((k, v) for k, v in row.items() if k not in columns) for row in rows)
