"""The zoo's Haiku models, migrated by `flaxify migrate`, pass `flaxify check` against their originals.

This is the product promise end to end: migrate, then prove the result is the
same model (parameters one to one, outputs bit-exact on CPU, initializers
drawn from the same distributions).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flaxify.cli import main
from flaxify.equivalence import compare, parse_spec
from flaxify.equivalence.refs import resolve_ref

ZOO = Path(__file__).resolve().parent.parent / "fixtures" / "zoo"
CASES = sorted(p.parent.name for p in ZOO.glob("*/case.json"))


def _inputs(spec):
    if isinstance(spec, dict):
        return {m: [parse_spec(s, salt=i) for i, s in enumerate(specs)] for m, specs in spec.items()}
    return [parse_spec(s, salt=i) for i, s in enumerate(spec)]


def _migrate_and_compare(name: str, tmp_path: Path, capsys, **options):
    case = json.loads((ZOO / name / "case.json").read_text())
    haiku_file, ref_name = case["haiku"].split(":")
    (tmp_path / "haiku").mkdir()
    shutil.copy(ZOO / name / haiku_file, tmp_path / "haiku" / "model.py")
    assert main(["migrate", str(tmp_path / "haiku"), "-o", str(tmp_path / "flax")]) == 0, capsys.readouterr().err
    haiku = resolve_ref(f"{tmp_path}/haiku/model.py:{ref_name}")
    flax = resolve_ref(f"{tmp_path}/flax/model.py:{ref_name}")
    return compare(haiku, flax, _inputs(case["inputs"]), kwargs=case["kwargs"], devices="cpu", **options)


@pytest.mark.parametrize("name", CASES)
def test_migrated_zoo_model_is_equivalent(name, tmp_path, capsys):
    # Initializer statistics compile a vmapped init per model: measured on two cases below.
    report = _migrate_and_compare(name, tmp_path, capsys, init_seeds=0)
    assert report.equivalent, report.format_table()
    assert report.bitexact, report.format_table()


@pytest.mark.parametrize("name", ["mlp", "lstm"])
def test_migration_carries_haiku_initializers(name, tmp_path, capsys):
    report = _migrate_and_compare(name, tmp_path, capsys, run_probes=False)
    assert report.init and report.init_equivalent, report.format_table()
