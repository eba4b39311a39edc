"""The import-layering contract of pyproject.toml ([tool.importlinter], docs/architecture.md).

Imports run downward only; reports and results never import the engine, the hardware or
the memory; kernels import nothing else from the package; config imports nothing from the
hardware. ``lint-imports`` checks the worktree's package, not an installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept():
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_report_that_imports_the_engine_breaks_the_contract(tmp_path):
    """The contract bites: the same package with one forbidden import fails the lint."""
    shutil.copytree(REPO / "simulator", tmp_path / "simulator",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    table = tmp_path / "simulator" / "reports" / "table.py"
    table.write_text(table.read_text() + "\nimport simulator.memory.run  # noqa: E402\n")
    done = _lint(tmp_path)
    assert done.returncode != 0
    assert "simulator.reports.table -> simulator.memory.run" in done.stdout
