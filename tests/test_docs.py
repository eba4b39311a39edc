"""Docs that are generated from the code must be current."""

from simulator.docgen import config_reference


def test_config_reference_is_current(repo):
    committed = (repo / "docs" / "config-reference.md").read_text()
    assert committed == config_reference(), "run `make docs` to regenerate docs/config-reference.md"


def test_derived_tech_tables_are_current(repo):
    from simulator.docgen import derived_tech_tables

    for name, text in derived_tech_tables().items():
        committed = (repo / "arch_configs" / "tech" / name).read_text()
        assert committed == text, f"run `make docs` to regenerate arch_configs/tech/{name}"
