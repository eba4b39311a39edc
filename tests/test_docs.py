"""Docs that are generated from the code must be current."""

from simulator.docgen import config_reference


def test_config_reference_is_current(repo):
    committed = (repo / "docs" / "config-reference.md").read_text()
    assert committed == config_reference(), "run `make docs` to regenerate docs/config-reference.md"
