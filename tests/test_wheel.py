"""A wheel built from this checkout, installed into a fresh virtual environment, runs from a
directory outside the repository (docs/getting-started.md, "Installing").

Slow: a wheel build and an install of sasim's dependencies into a throw-away environment
(about 30-60 s, from pip's cache or index). Marked ``wheel``: ``pytest -m "not wheel"``
leaves it out while iterating; ``make test`` runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.wheel

#: The shipped data folders and the files of each that the wheel must carry.
SHIPPED = {"arch_configs": ("*.yaml",), "arch_configs/tech": ("*.yaml",),
           "arch_configs/comparisons": ("*.yaml",),
           "workloads": ("*.yaml", "*.npz", "*.pt"), "sweeps": ("*.yaml",)}
#: What a clean clone would not hold (build products, caches, local environments).
_NOT_IN_A_CLONE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                         "__pycache__", ".numba_cache", ".hypothesis",
                                         ".pytest_cache", "out", "runs")


def _run(argv, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(wheel path, the environment's bin directory, a working directory, process env)."""
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(NUMBA_CACHE_DIR=str(root / "numba_cache"), MPLBACKEND="Agg",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    # build from a copy: an in-tree build leaves build/ behind, whose stale files later
    # builds would ship
    source = root / "source"
    shutil.copytree(REPO, source, ignore=_NOT_IN_A_CLONE)
    dist = root / "dist"
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", dist, source],
                 root, env)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    warnings = [line for line in (build.stdout + build.stderr).splitlines()
                if "DeprecationWarning" in line or "BuildBackendWarning" in line]
    assert not warnings, "\n".join(warnings)
    (wheel,) = dist.glob("sasim-*.whl")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", venv], root, env)
    assert made.returncode == 0, made.stderr
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    # the dev environment's pip installs into the new one (no pip bootstrap: seconds saved)
    install = _run([sys.executable, "-m", "pip", "--python", bin_dir / "python", "install",
                    "--quiet", wheel], root, env)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return wheel, bin_dir, elsewhere, env


def _expected_files() -> list[str]:
    names = []
    for folder, patterns in SHIPPED.items():
        found = sorted(p.name for pattern in patterns for p in (REPO / folder).glob(pattern))
        assert found, f"nothing shipped in {folder}/"
        names += [f"simulator/_shipped/{folder}/{name}" for name in found]
    return names


def test_the_wheel_carries_every_shipped_file(wheel_env):
    wheel = wheel_env[0]
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
        metadata = archive.read(next(n for n in held if n.endswith(".dist-info/METADATA")))
    missing = [name for name in _expected_files() if name not in held]
    assert not missing, f"{wheel.name} lacks {missing}"
    assert b"\nLicense-Expression: MIT\n" in metadata


def test_the_environment_imports_the_installed_wheel(wheel_env):
    _, bin_dir, elsewhere, env = wheel_env
    code = ("import simulator, simulator.shipped as s; "
            "print(simulator.__file__); print(s.ARCH_DIR); print(s.WORKLOAD_DIR)")
    result = _run([bin_dir / "python", "-c", code], elsewhere, env)
    assert result.returncode == 0, result.stderr
    package, archs, workloads = map(Path, result.stdout.split("\n")[:3])
    venv = bin_dir.parent
    assert venv in package.parents, package
    assert archs == package.parent / "_shipped" / "arch_configs"
    assert workloads == package.parent / "_shipped" / "workloads"


def test_sasim_list_names_every_shipped_file(wheel_env):
    _, bin_dir, elsewhere, env = wheel_env
    result = _run([bin_dir / "sasim", "list"], elsewhere, env)
    assert result.returncode == 0, result.stderr
    assert "invalid" not in result.stdout
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    for name in _expected_files():
        path = Path(name)
        if (path.parent.name not in ("tech", "comparisons") and path.suffix != ".pt"
                and not path.name.endswith("_zap.npz")):  # ZAP predictors (docs/zap.md)
            assert path.stem in listed, name


def test_every_shipped_file_loads_in_the_installed_package(wheel_env):
    _, bin_dir, elsewhere, env = wheel_env
    code = """
from simulator import api, shipped
from simulator.sweep import load_sweep
archs = [api.load_arch(p.stem) for p in shipped.shipped_archs()]
for arch in archs:
    api.load_tech_table(arch.energy.tech)
for path in sorted(shipped.TECH_DIR.glob("*.yaml")):
    api.load_tech_table(path.stem)
workloads = [api.load_workload(p.stem) for p in shipped.shipped_workloads()]
sweeps = [load_sweep(p.stem) for p in shipped.shipped_sweeps()]
assert (shipped.WORKLOAD_DIR / "digits_resnet.pt").is_file()  # sasim accuracy/export
print(len(archs), len(workloads), len(sweeps))
"""
    result = _run([bin_dir / "python", "-c", code], elsewhere, env)
    assert result.returncode == 0, result.stderr
    counts = [len(list((REPO / folder).glob("*.yaml"))) for folder in ("arch_configs", "sweeps")]
    workloads = len([*(REPO / "workloads").glob("*.yaml"),
                     *(p for p in (REPO / "workloads").glob("*.npz")
                       if not p.name.endswith("_zap.npz"))])  # ZAP predictors: not workloads
    assert result.stdout.split() == [str(counts[0]), str(workloads), str(counts[1])]


def test_a_timing_run_and_a_functional_run_from_another_directory(wheel_env):
    _, bin_dir, elsewhere, env = wheel_env
    sasim = bin_dir / "sasim"
    result = _run([sasim, "run", "--arch", "os_sa_16x16", "--workload", "resnet18",
                   "--timing-only"], elsewhere, env)
    assert result.returncode == 0, result.stderr
    # the shipped chip (its DRAM preset file is package data): as in docs/getting-started.md
    assert "8,273,080 cycles" in result.stdout
    result = _run([sasim, "run", "--arch", "os_sa_16x16", "--workload", "digits_int8",
                   "--out", "digits"], elsewhere, env)
    assert result.returncode == 0, result.stderr
    assert "simulated outputs match the trace's recorded outputs" in result.stdout
    assert (elsewhere / "digits" / "summary.json").is_file()


def test_the_default_comparison_runs_from_the_installed_package(wheel_env):
    _, bin_dir, elsewhere, env = wheel_env
    # the ideal memory keeps this packaging check fast (the run above covers the chips)
    result = _run([bin_dir / "sasim", "compare", "--workload", "resnet18", "--timing-only",
                   "--set", "memory=ideal", "--out", "cmp"], elsewhere, env)
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "cmp" / "comparison.png").is_file()
