"""The shipped data is found by name from any working directory (simulator/shipped.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import api, shipped
from simulator.sweep import load_sweep

FOLDERS = {"arch_configs": ("*.yaml",), "arch_configs/tech": ("*.yaml",),
           "workloads": ("*.yaml", "*.npz"), "sweeps": ("*.yaml",)}


def _names(folder: Path, patterns) -> list[str]:
    return sorted(p.stem for pattern in patterns for p in folder.glob(pattern))


def test_this_checkout_is_the_one_used(repo):
    # a source checkout (editable install, PYTHONPATH): the top-level folders themselves
    assert shipped.ARCH_DIR == repo / "arch_configs"
    assert shipped.TECH_DIR == repo / "arch_configs" / "tech"
    assert shipped.WORKLOAD_DIR == repo / "workloads"
    assert shipped.SWEEP_DIR == repo / "sweeps"


@pytest.mark.parametrize("name, patterns", FOLDERS.items())
def test_listings_hold_every_shipped_file(repo, name, patterns):
    listing = {"arch_configs": shipped.shipped_archs, "workloads": shipped.shipped_workloads,
               "sweeps": shipped.shipped_sweeps}.get(name)
    expected = _names(repo / name, patterns)
    assert expected, f"nothing shipped in {name}/"
    if name == "workloads":  # a trace's ZAP predictors (docs/zap.md) are not a workload
        expected = [stem for stem in expected if not stem.endswith("_zap")]
    if listing is not None:
        assert [p.stem for p in listing()] == expected


def test_installed_copy_wins_over_the_checkout(tmp_path, monkeypatch):
    # a wheel install: simulator/_shipped/<folder> inside the package
    package = tmp_path / "site-packages" / "simulator"
    (package / "_shipped" / "arch_configs" / "tech").mkdir(parents=True)
    monkeypatch.setattr(shipped, "files", lambda name: package)
    assert shipped.folder("arch_configs/tech") == package / "_shipped" / "arch_configs" / "tech"
    # a folder the install lacks falls back to the layout of a checkout (and then is absent)
    assert shipped.folder("sweeps") == tmp_path / "site-packages" / "sweeps"


def test_every_shipped_file_loads_by_name_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    archs = [p.stem for p in shipped.shipped_archs()]
    workloads = [p.stem for p in shipped.shipped_workloads()]
    for name in archs:
        arch = api.load_arch(name)
        assert arch.name, name
        api.load_tech_table(arch.energy.tech)
    for name in _names(shipped.TECH_DIR, ("*.yaml",)):
        assert api.load_tech_table(name).name == name
    for name in workloads:
        assert api.load_workload(name).layers, name
    for name in _names(shipped.SWEEP_DIR, ("*.yaml",)):
        spec = load_sweep(name)
        assert set(spec.workloads) <= set(workloads), name
    assert "resnet18" in workloads and "os_sa_16x16" in archs


def test_cli_list_and_run_by_name_from_another_directory(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("list")
    assert result.status == 0, result.err
    assert "invalid" not in result.out
    listed = {line.split()[0] for line in result.out.splitlines() if line.strip()}
    for path in [*shipped.shipped_archs(), *shipped.shipped_workloads(),
                 *shipped.shipped_sweeps()]:
        assert path.stem in listed, path.name
    result = cli("run", "--arch", "os_sa_16x16", "--workload", "resnet18", "--timing-only")
    assert result.status == 0, result.err
    assert "8,273,080 cycles" in result.out  # the same run as docs/getting-started.md
    result = cli("sweep", "designs_digits", "--out", tmp_path / "sweep", "--dry-run")
    assert result.status == 0, result.err
    assert "sweep designs_digits:" in result.out
