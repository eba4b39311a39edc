"""Imported by the local executor's fork server, first of its preloaded modules
(:class:`simulator.sweep.executors.LocalExecutor`): the fork server then dies with the sweep
process that started it, even when that one is killed with SIGKILL, and its workers (which
die with their parent) with it. Importing it elsewhere does nothing."""

from __future__ import annotations

import os

from simulator.sweep.executors import PARENT_ENV, die_with_parent

__all__: list[str] = []

if os.environ.get(PARENT_ENV, "").isdigit() and int(os.environ[PARENT_ENV]) == os.getppid():
    die_with_parent(os.getppid())
