"""Docs that are generated from the code must be current; citations must resolve in the repo."""

import os
import re
from pathlib import Path

from simulator.docgen import config_reference


def test_config_reference_is_current(repo):
    committed = (repo / "docs" / "config-reference.md").read_text()
    assert committed == config_reference(), "run `make docs` to regenerate docs/config-reference.md"


def test_derived_tech_tables_are_current(repo):
    from simulator.docgen import derived_tech_tables

    for name, text in derived_tech_tables().items():
        committed = (repo / "arch_configs" / "tech" / name).read_text()
        assert committed == text, f"run `make docs` to regenerate arch_configs/tech/{name}"


# The hardware rules live in docs/hardware-spec.md; nothing may point outside the repository.
# The strings are assembled so that this file does not contain them itself.
_FORBIDDEN = ("MODELS" + ".md", ".." + "/shared", "/work" + "/shared")
_SKIP_DIRS = {".git", ".venv", ".venv-zigzag", ".hypothesis", ".numba_cache", ".pytest_cache", "__pycache__",
              "build", "dist", "out", "runs"}
#: "hardware-spec.md §3", "hardware-spec.md §5-6", "[hardware-spec.md §1](hardware-spec.md#..)".
_SPEC_CITATION = re.compile(
    r"hardware-spec\.md(?:\]\([^)]*\))?,? §(\d+)(?:\s*[-–]\s*§?(\d+))?")
_SPEC_ANCHOR = re.compile(r"hardware-spec\.md#([\w-]+)")


def _repo_files(repo: Path) -> list[Path]:
    """Every file of the checkout, without version-control, environment and output folders."""
    found = []
    for folder, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        found.extend(Path(folder) / name for name in files if name not in _SKIP_DIRS)
    return found


def _spec_sections(repo: Path) -> tuple[set[int], set[str]]:
    """Section numbers (``## N. Title``) and heading anchors of docs/hardware-spec.md."""
    numbers, anchors = set(), set()
    for line in (repo / "docs" / "hardware-spec.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading is None:
            continue
        title = heading.group(1)
        number = re.match(r"(\d+)\. ", title)
        if number and line.startswith("## "):
            numbers.add(int(number.group(1)))
        # GitHub's anchor: lower case, punctuation dropped, spaces to hyphens.
        anchors.add(re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-"))
    return numbers, anchors


def test_nothing_points_outside_the_repository(repo):
    files = _repo_files(repo)
    assert len(files) > 100
    offenders = [f"{path.relative_to(repo)}: {word}" for path in files
                 for word in _FORBIDDEN if word.encode() in path.read_bytes()]
    assert not offenders, "cite docs/hardware-spec.md instead:\n" + "\n".join(offenders)


def test_hardware_spec_sections_are_numbered_in_order(repo):
    numbers, _ = _spec_sections(repo)
    assert sorted(numbers) == list(range(1, 12)), sorted(numbers)


def test_every_cited_hardware_spec_section_exists(repo):
    numbers, anchors = _spec_sections(repo)
    cited, missing = 0, []
    spec = repo / "docs" / "hardware-spec.md"
    for path in _repo_files(repo):
        if path.suffix not in {".py", ".md", ".yaml", ".txt", ".cfg", ".toml", ""}:
            continue
        text = path.read_text(encoding="utf-8")
        refs = [int(n) for match in _SPEC_CITATION.finditer(text) for n in match.groups() if n]
        if path == spec:  # the page cites its own sections without its name
            refs += [int(n) for n in re.findall(r"§(\d+)", text)]
            missing += [f"docs/hardware-spec.md: #{a}"
                        for a in re.findall(r"\]\(#([\w-]+)\)", text) if a not in anchors]
        cited += len(refs)
        missing += [f"{path.relative_to(repo)}: §{n}" for n in refs if n not in numbers]
        missing += [f"{path.relative_to(repo)}: #{a}" for a in _SPEC_ANCHOR.findall(text)
                    if a not in anchors]
    assert cited > 40
    assert not missing, "no such section in docs/hardware-spec.md:\n" + "\n".join(missing)
