"""SCALE-Sim .cfg files as arch configs."""

from __future__ import annotations

import pytest

from simulator import api
from simulator.errors import ConfigError

CFG = """[general]
run_name = test_run

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     7
IfmapSramSzkB:   64
FilterSramSzkB:  64
OfmapSramSzkB:   64
Bandwidth : 10
Dataflow : {flow}
"""


def test_cfg_maps_to_scalesim_convention(tmp_path):
    path = tmp_path / "a.cfg"
    path.write_text(CFG.format(rows=5, flow="ws"))
    arch = api.load_arch(path)
    assert (arch.array.rows, arch.array.cols, arch.array.dataflow) == (5, 7, "ws")
    assert arch.timing.convention == "scalesim"
    assert arch.name == "test_run"


@pytest.mark.parametrize(("rows", "flow", "message"), [
    ("five", "os", "ArrayHeight"),   # wrong type
    ("-5", "os", "ArrayHeight"),     # negative
    ("5", "xs", "Dataflow"),         # unknown dataflow
])
def test_bad_cfg_values(tmp_path, rows, flow, message):
    path = tmp_path / "a.cfg"
    path.write_text(CFG.format(rows=rows, flow=flow))
    with pytest.raises(ConfigError, match=message) as info:
        api.load_arch(path)
    assert str(path) in str(info.value)


def test_cfg_without_section(tmp_path):
    path = tmp_path / "a.cfg"
    path.write_text("[general]\nrun_name = x\n")
    with pytest.raises(ConfigError, match=r"missing section \[architecture_presets\]"):
        api.load_arch(path)
