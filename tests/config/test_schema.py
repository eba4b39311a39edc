"""The typed config loader: key paths in errors, did-you-mean, overrides through validation."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from simulator import api
from simulator.config.arch import ArchConfig
from simulator.config.schema import build, describe_fields, option
from simulator.errors import ConfigError


def write(tmp_path, text, name="arch.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = "schema_version: 1\narray: {rows: 4, cols: 8, dataflow: os}\npe: {type: dense}\n"


def test_loads_typed_frozen_config(tmp_path):
    arch = api.load_arch(write(tmp_path, BASE))
    assert (arch.array.rows, arch.array.cols, arch.array.dataflow) == (4, 8, "os")
    assert arch.name == "arch"  # defaults to the file name
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.array.rows = 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema_version: 1\narray: {rows: sixteen}\n",
         "arch.array.rows: expected an integer, got 'sixteen'"),
        ("schema_version: 1\narray: {rows: -4}\n",
         "arch.array.rows: expected a number from 1 to 65,536, got -4"),
        ("schema_version: 1\narray: {rwos: 4}\n",
         "arch.array: unknown key 'rwos' (did you mean 'rows'?)"),
        ("schema_version: 1\narray: {dataflow: xs}\n",
         "arch.array.dataflow: expected one of 'os', 'ws', 'is', got 'xs'"),
        ("schema_version: 1\npe: {type: densse}\n",
         "arch.pe.type: unknown PE type 'densse' (did you mean 'dense'?)"),
        ("schema_version: 1\narray: [1, 2]\n", "arch.array: expected a mapping"),
        ("schema_version: 2\n", "arch.schema_version: expected schema_version 1, got 2"),
        ("array: {rows: 4}\n", "arch.schema_version: required key is missing"),
        ("schema_version: 1\narray: {rows: true}\n", "arch.array.rows: expected an integer, got True"),
        ("schema_version: 1\narray: {clock_mhz: .nan}\n", "arch.array.clock_mhz: expected a finite"),
    ],
)
def test_errors_name_file_and_key_path(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        api.load_arch(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_malformed_yaml_names_line(tmp_path):
    path = write(tmp_path, "schema_version: 1\narray: {rows: 4\n")
    with pytest.raises(ConfigError, match=r"malformed YAML: line \d+"):
        api.load_arch(path)


def test_yaml_float_without_dot_is_accepted(tmp_path):
    # PyYAML reads 1e3 as the string '1e3'; a number field accepts it.
    arch = api.load_arch(write(tmp_path, BASE + "timing: {convention: native}\n"),
                         ["array.clock_mhz=1e3"])
    assert arch.array.clock_mhz == 1000.0


def test_overrides_go_through_validation(tmp_path):
    path = write(tmp_path, BASE)
    assert api.load_arch(path, ["array.rows=32"]).array.rows == 32
    with pytest.raises(ConfigError, match=r"--set array.rows=abc: arch.array.rows: expected an integer"):
        api.load_arch(path, ["array.rows=abc"])
    with pytest.raises(ConfigError, match=r"unknown key 'colz' \(did you mean 'cols'\?\)"):
        api.load_arch(path, ["array.colz=3"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        api.load_arch(path, ["array.rows"])


def test_every_schema_field_is_documented():
    docs = list(describe_fields(ArchConfig, ""))
    assert {d.key for d in docs} >= {"array.rows", "array.cols", "array.dataflow",
                                     "timing.convention", "pe.type"}
    assert all(d.doc for d in docs)


def test_build_rejects_non_mapping():
    with pytest.raises(ConfigError, match="where: expected a mapping, got 3"):
        build(ArchConfig, 3, "where")


def test_shipped_configs_load():
    paths = api.shipped_archs()
    assert any(p.stem == "os_sa_16x16" for p in paths)
    for path in paths:
        api.load_arch(path)


def test_a_yaml_boolean_where_a_word_goes_says_to_quote_it(tmp_path):
    """YAML 1.1 reads off/on/yes/no as booleans: the error says so (a plug-in option
    ``skip: off`` or ``--set pe.skip=off`` otherwise reads "got False" with no reason)."""
    @dataclasses.dataclass(frozen=True)
    class Options:
        skip: Literal["off", "weights"] = option("weights", doc="")
        label: str = option("x", doc="")

    with pytest.raises(ConfigError, match=r"pe.skip: expected one of 'off', 'weights', got "
                                          r"False \(YAML reads off as a boolean: quote it, "
                                          r"'off'\)$"):
        build(Options, {"skip": False}, "pe")
    with pytest.raises(ConfigError, match=r"pe.label: expected a string, got True \(YAML reads "
                                          r"on, off, yes and no as booleans"):
        build(Options, {"label": True}, "pe")
    assert build(Options, {"skip": "off"}, "pe").skip == "off"
    with pytest.raises(ConfigError) as info:  # a choice that is no YAML word: no hint
        api.load_arch(write(tmp_path, BASE + "memory: {prefetch: false}\n"))
    assert "quote" not in str(info.value)
    with pytest.raises(ConfigError, match="arch.name: expected a string, got True \\(YAML"):
        api.load_arch(write(tmp_path, BASE + "name: yes\n"))


def test_an_override_of_a_dram_presets_value_extends_the_preset(tmp_path):
    """``memory.dram: lpddr5_6400`` (a name) with ``--set memory.dram.channels=4``: the
    name stands for ``{preset: lpddr5_6400}``, which the override extends; an override
    under a value that is no mapping names the file, the key and the value."""
    base = BASE + "memory: {dram: lpddr5_6400}\n"
    arch = api.load_arch(write(tmp_path, base), ["memory.dram.channels=4"])
    assert arch.memory.dram.preset == "lpddr5_6400" and arch.memory.dram.channels == 4
    assert api.load_arch(write(tmp_path, base)).memory.dram == "lpddr5_6400"
    path = write(tmp_path, BASE)
    with pytest.raises(ConfigError, match=r"arch.yaml: --set memory.dram.channels: "
                                          r"'memory.dram' is 'ideal', not a mapping"):
        api.load_arch(path, ["memory.dram=ideal", "memory.dram.channels=2"])
    with pytest.raises(ConfigError, match=r"arch.yaml: --set array.rows.x: 'array.rows' is "
                                          r"4, not a mapping"):
        api.load_arch(path, ["array.rows.x=2"])
