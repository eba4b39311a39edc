"""docs/transformers.md and docs/workloads.md say what the code does."""

from __future__ import annotations

import re

from simulator import api
from simulator.config.arch import DEFAULT_RECIPES, INTEGER_RECIPES, VectorPrimitives


def _recipe(text: str) -> dict[str, float]:
    """``exp 3, max 1`` -> {"exp": 3, "max": 1}."""
    return {name: float(count) for name, count in re.findall(r"(\w+) (\d+)", text)}


def _table_rows(text: str, heading: str) -> list[list[str]]:
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_recipe_tables_are_the_code_s(repo):
    text = (repo / "docs" / "transformers.md").read_text()
    rows = _table_rows(text, "### Default recipes and their sources")[1:]
    documented = {}
    for op, element, row, *_ in rows:
        ops = [o.strip() for o in re.split(r"[,/]", op)]
        elements = element.split("/")  # "add 1 / mul 1 / max 1": one recipe per op
        assert len(ops) == len(elements), op
        for name, part in zip(ops, elements):
            recipe = _recipe(part)
            recipe.update({f"row_{k}": v for k, v in _recipe(row).items()})
            documented[name] = recipe
    for op, recipe in documented.items():
        assert recipe == DEFAULT_RECIPES[op], op
    assert set(documented) == set(DEFAULT_RECIPES)
    integer = _table_rows(text, "Their recipes:")[1:]
    for op, element, row in integer:
        recipe = _recipe(element)
        recipe.update({f"row_{k}": v for k, v in _recipe(row).items()})
        assert recipe == INTEGER_RECIPES[op], op
    assert len(integer) == len(INTEGER_RECIPES)
    cycles = re.search(r"cycles: \{(.*?)\}", text).group(1)
    assert {k: int(v) for k, v in re.findall(r"(\w+): (\d+)", cycles)} == vars(
        VectorPrimitives())


def test_the_workload_example_loads(repo, tmp_path):
    text = (repo / "docs" / "workloads.md").read_text()
    example = text.split("## Transformer layers", 1)[1].split("```yaml", 1)[1].split("```")[0]
    path = tmp_path / "example.yaml"
    path.write_text(example)
    workload = api.load_workload(path)
    assert workload.phase == "decode" and workload.sequences == 4
    assert [layer.op for layer in workload.layers][:5] == ["rmsnorm", "linear", "rotary",
                                                           "matmul", "softmax"]
