"""`benchmarks/zoo_table.py` (the generator of docs/zoo.md) runs end to end on one small row.

The full table takes minutes; this runs the generator's own pipeline (copy,
`flaxify migrate -o`, check, step timing, Markdown) on the smallest row of the
Flax guide and on the smallest hk.nets row, and checks the page it prints.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def zoo_table():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("_flaxify_zoo_table", ROOT / "benchmarks" / "zoo_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_source_has_a_row(zoo_table) -> None:  # type: ignore[no-untyped-def]
    names = [row.name for row in zoo_table.all_rows()]
    assert len(names) == len(set(names))
    for expected in ("hk.nets.MLP", "hk.nets.ResNet50 v1", "hk.nets.ResNet200 v1", "hk.nets.MobileNetV1",
                     "hk.nets.VectorQuantizerEMA", "guide: rnn_scan", "example project (make demo)",
                     "zoo: issue5_transformer"):
        assert expected in names


def test_green_row_is_measured(zoo_table) -> None:  # type: ignore[no-untyped-def]
    (row,) = [r for r in zoo_table.all_rows() if r.name == "guide: top_level_functions"]
    res = zoo_table.measure(row, repeats=2)
    assert res["equivalent"] and res["bitexact"] and res["todos"] == [], res
    assert res["max_abs_cpu"] == 0.0 and res["params"] == 1
    assert res["step"]["ratio"] > 0
    page = zoo_table.render([res], zoo_table.environment())
    assert "| guide: top_level_functions |" in page and "| green |" in page


def test_hk_nets_mlp_row_is_green(zoo_table) -> None:  # type: ignore[no-untyped-def]
    """hk.nets.MLP, reverse() included, migrates with no TODO and checks bit-exact."""
    (row,) = [r for r in zoo_table.all_rows() if r.name == "hk.nets.MLP"]
    res = zoo_table.measure(row, repeats=2)
    assert zoo_table._status(res) == "green", res
    page = zoo_table.render([res], zoo_table.environment())
    assert "Every row is green." in page


def test_a_row_with_a_todo_says_why(zoo_table) -> None:  # type: ignore[no-untyped-def]
    """The page lists a non-green row's TODOs (a measured row given one TODO)."""
    (row,) = [r for r in zoo_table.all_rows() if r.name == "guide: top_level_functions"]
    res = zoo_table.measure(row, repeats=2)
    res["todos"] = [{"line": 3, "construct": "hk.example", "reason": "why it stays"}]
    assert zoo_table._status(res) != "green"
    page = zoo_table.render([res], zoo_table.environment())
    assert "### guide: top_level_functions" in page and "migrated line 3: hk.example: why it stays" in page
    assert "Every row is green." not in page
