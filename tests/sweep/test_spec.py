"""Sweep specs: schema checks, expansion into points, fail-fast validation, stable ids."""

from __future__ import annotations

import itertools

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import api
from simulator.config.schema import describe_fields
from simulator.errors import ConfigError
from simulator.sweep.spec import (SweepSpec, load_sweep, override_text, plan_sweep,
                                  sweep_from_mapping)


def plan(path):
    return plan_sweep(load_sweep(path), path)


def test_grid_is_the_cartesian_product_and_zip_moves_together(write_spec):
    path = write_spec({"base": ["os_sa_16x16", "sysmt_2t_16x16"],
                       "workloads": ["tiny.yaml", "small.yaml"],
                       "grid": {"array.rows": [8, 16, 32], "memory.loop_order":
                                ["column_folds_outer", "auto"]},
                       "zip": {"array.cols": [8, 16], "array.clock_mhz": [500, 1000]}})
    p = plan(path)
    assert p.axes == ("base", "array.rows", "memory.loop_order", "array.cols",
                      "array.clock_mhz")
    assert p.designs == 2 * 3 * 2 * 2 and len(p.points) == 2 * p.designs
    designs = [dict(pt.axes) for pt in p.points[::2]]
    # naive expansion: base, then grid (last key fastest), then zip rows
    expected = [{"base": b, "array.rows": r, "memory.loop_order": o, "array.cols": c,
                 "array.clock_mhz": m}
                for b, r, o, (c, m) in itertools.product(
                    ["os_sa_16x16", "sysmt_2t_16x16"], [8, 16, 32],
                    ["column_folds_outer", "auto"], [(8, 500), (16, 1000)])]
    assert designs == expected
    assert [pt.workload for pt in p.points[:2]] == ["tiny.yaml", "small.yaml"]
    # every point is the base with its axis values set, exactly as --set would
    point = p.points[5]
    arch = api.load_arch(point.base_path, point.overrides)
    assert (arch.array.rows, arch.array.cols) == (point.axes[1][1], point.axes[3][1])


def test_paths_are_relative_to_the_spec_file(write_spec, workloads, tmp_path, monkeypatch):
    (workloads / "mine.yaml").write_text(yaml.safe_dump(
        {"schema_version": 1, "array": {"rows": 4, "cols": 4}}))
    path = write_spec({"base": "mine.yaml", "workloads": ["tiny.yaml"]})
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    (point,) = plan(path).points
    assert api.load_arch(point.base_path).array.rows == 4
    assert point.base == "mine.yaml" and point.workload == "tiny.yaml"


@pytest.mark.parametrize("spec, message", [
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "grdi": {}}, "unknown key 'grdi'"),
    ({"workloads": ["tiny.yaml"]}, "sweep.base: required key is missing"),
    ({"base": "os_sa_16x16", "workloads": []}, "sweep.workloads: expected a non-empty list"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "grid": {"array.rows": 16}},
     "sweep.grid.array.rows: expected a list"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "grid": {"array.rows": []}},
     "sweep.grid.array.rows: expected a non-empty list"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "grid": {"array.rows": [8, 8]}},
     "sweep.grid.array.rows: 8 is listed twice"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "grid": {"array..rows": [8]}},
     "is not a dotted arch key"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"],
      "zip": {"array.rows": [8, 16], "array.cols": [8]}},
     "zip: lists must have equal lengths (array.rows has 2, array.cols has 1)"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "grid": {"array.rows": [8]},
      "zip": {"array.rows": [16]}}, "zip.array.rows: already an axis of grid"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "grid": {"array.rows": [8]},
      "baseline": {"array.cols": 8}}, "baseline.array.cols: not an axis of this sweep"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "timing_only": "yes"},
     "sweep.timing_only: expected true or false"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"],
      "grid": {"array.rows": list(range(1, 400)), "array.cols": list(range(1, 400))}},
     "sweep.grid: 159,201 designs, more than the 100,000 points"),
    ({"base": "os_sa_16x16", "workloads": ["tiny.yaml"],
      "zip": {"array.rows": list(range(100_001))}},
     "sweep.zip.array.rows: 100,001 values, more than the 100,000 points"),
])
def test_bad_specs_name_the_key(write_spec, spec, message):
    path = write_spec(spec)
    with pytest.raises(ConfigError) as info:
        plan(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_schema_version_is_required():
    with pytest.raises(ConfigError, match="sweep.schema_version: required key is missing"):
        sweep_from_mapping({"base": "os_sa_16x16", "workloads": ["resnet18"]}, "s.yaml: sweep")
    with pytest.raises(ConfigError, match="expected schema_version 1"):
        sweep_from_mapping({"schema_version": 2, "base": "x", "workloads": ["y"]}, "sweep")


@pytest.mark.parametrize("axes, message", [
    ({"grid": {"array.rows": [16, 0]}},
     "sweep.grid.array.rows: value 0 on base os_sa_16x16: arch.array.rows: expected a "
     "number from 1 to 65,536, got 0"),
    ({"grid": {"array.rows": [16], "pe.threads": [2, 3]}},
     "sweep.grid.pe.threads: value 3 on base sysmt_2t_16x16 (with array.rows=16): "
     "arch.pe.threads: expected one of 1, 2, 4, got 3"),
    ({"zip": {"array.dataflow": ["os", "xs"], "array.rows": [8, 16]}},
     "sweep.zip.array.dataflow: value 'xs' on base os_sa_16x16"),
    ({"grid": {"array.colls": [16]}}, "sweep.grid.array.colls: value 16 on base os_sa_16x16"
                                      ": arch.array: unknown key 'colls' (did you mean 'cols'?)"),
])
def test_an_invalid_value_fails_before_any_point_runs(write_spec, cli, tmp_path, axes,
                                                      message):
    base = "sysmt_2t_16x16" if "pe.threads" in axes.get("grid", {}) else "os_sa_16x16"
    path = write_spec({"base": base, "workloads": ["tiny.yaml"], **axes})
    out = tmp_path / "out"
    result = cli("sweep", path, "--out", out)
    assert result.status == 2
    assert result.err.count("\n") == 1 and message in result.err
    assert not out.exists()  # nothing ran, nothing was written


def test_a_missing_workload_fails_fast(write_spec):
    with pytest.raises(Exception, match=r"sweep.workloads: nope.yaml: .*file not found"):
        plan(write_spec({"base": "os_sa_16x16", "workloads": ["nope.yaml"]}))


def test_baseline_by_axis_values_picks_one_design(write_spec):
    path = write_spec({"base": ["os_sa_16x16", "sysmt_2t_16x16"], "workloads": ["tiny.yaml"],
                       "grid": {"array.rows": [8, 16]},
                       "baseline": {"base": "os_sa_16x16", "array.rows": 16}})
    marked = [dict(p.axes) for p in plan(path).points if p.baseline]
    assert marked == [{"base": "os_sa_16x16", "array.rows": 16}]
    ambiguous = write_spec({"base": ["os_sa_16x16", "sysmt_2t_16x16"],
                            "workloads": ["tiny.yaml"], "grid": {"array.rows": [8, 16]},
                            "baseline": {"array.rows": 16}}, "ambiguous.yaml")
    with pytest.raises(ConfigError, match="matches 2 designs, expected exactly one; give "
                                          "values for base too"):
        plan(ambiguous)


def test_baseline_arch_outside_the_grid_is_an_extra_design(write_spec):
    path = write_spec({"base": "sysmt_2t_16x16", "workloads": ["tiny.yaml", "small.yaml"],
                       "grid": {"array.rows": [8, 16]}, "baseline": "os_sa_16x16"})
    points = plan(path).points
    assert len(points) == 6
    assert [(p.base, p.baseline, p.overrides) for p in points[:2]] == [
        ("os_sa_16x16", True, ()), ("os_sa_16x16", True, ())]
    assert dict(points[0].axes) == {"base": "os_sa_16x16", "array.rows": None}
    # a baseline that is one of the designs is not run twice
    same = write_spec({"base": ["os_sa_16x16", "sysmt_2t_16x16"], "workloads": ["tiny.yaml"],
                       "baseline": "os_sa_16x16"}, "same.yaml")
    assert [(p.base, p.baseline) for p in plan(same).points] == [
        ("os_sa_16x16", True), ("sysmt_2t_16x16", False)]


def test_point_ids_are_stable_and_follow_what_determines_the_result(write_spec, workloads):
    spec = {"base": "os_sa_16x16", "workloads": ["tiny.yaml"], "grid": {"array.rows": [8, 16]}}
    first = [p.id for p in plan(write_spec(spec)).points]
    assert first == [p.id for p in plan(write_spec(spec, "again.yaml")).points]
    assert len(set(first)) == 2
    timing = [p.id for p in plan(write_spec({**spec, "timing_only": True}, "t.yaml")).points]
    assert not set(timing) & set(first)
    # editing the workload file changes the ids of the points that use it
    (workloads / "tiny.yaml").write_text((workloads / "tiny.yaml").read_text()
                                         .replace("out_features: 10", "out_features: 11"))
    assert not set(p.id for p in plan(write_spec(spec, "edited.yaml")).points) & set(first)


scalars = st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.none(),
                    st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.text(st.characters(codec="ascii", exclude_characters="\r\n\x00"),
                            max_size=12))


@settings(max_examples=200, deadline=None)
@given(scalars)
def test_override_text_reads_back_as_the_same_value(value):
    key, _, text = override_text("pe.x", value).partition("=")
    back = yaml.safe_load(text) if text.strip() else ""
    assert key == "pe.x"
    assert back == value and type(back) is type(value)


def test_every_spec_key_is_documented(repo):
    page = (repo / "docs" / "sweeps.md").read_text()
    for field in describe_fields(SweepSpec, ""):
        assert f"| `{field.key}` |" in page, f"docs/sweeps.md does not list {field.key}"

