"""Every ``fixtures/migrate/<family>/<case>.before.py`` migrates to its ``.after.py``.

Each case is also checked to be a fixed point (migrating the output changes
nothing) and, when its ``.before.py`` carries a ``# flaxify-check:`` header,
executed: the Haiku original and the committed Flax output are initialised,
the Haiku parameters are mapped onto the Flax tree, and the outputs must be
bit-identical on CPU.

Header format (one line, anywhere in the before file)::

    # flaxify-check: NAME SPEC [SPEC ...] [kwargs=JSON]

NAME is the transformed variable (or module) in both files; SPECs are
``flaxify check`` input specs such as ``f32[4,8]``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from flaxify.migrate import migrate_source

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "migrate"
CASES = sorted(FIXTURES.glob("*/*.before.py"))
HEADER = re.compile(r"^# flaxify-check: (?P<name>\w+) (?P<specs>[^=]+?)(?: kwargs=(?P<kwargs>\{.*\}))?$", re.M)


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name.removesuffix('.before.py')}" for p in paths]


def _after(before: Path) -> Path:
    return before.with_name(before.name.replace(".before.py", ".after.py"))


@pytest.mark.parametrize("before", CASES, ids=_ids(CASES))
def test_migrates_to_expected(before: Path) -> None:
    expected = _after(before).read_bytes()
    result = migrate_source(before.read_bytes(), str(before))
    assert result.source.decode() == expected.decode()


@pytest.mark.parametrize("before", CASES, ids=_ids(CASES))
def test_output_is_fixed_point(before: Path) -> None:
    after = _after(before).read_bytes()
    again = migrate_source(after, str(before))
    assert not again.changed, again.source.decode()


def _haiku_imports(text: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "haiku"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "haiku":
            found.append(node.module or "")
    return found


@pytest.mark.parametrize("before", CASES, ids=_ids(CASES))
def test_output_has_no_unmarked_haiku(before: Path) -> None:
    """Haiku may only survive where a TODO says why (the import stays for it)."""
    text = _after(before).read_text()
    if "TODO(flaxify)" not in text:
        assert _haiku_imports(text) == []


CHECKED = [p for p in CASES if HEADER.search(p.read_text())]


def _load(path: Path, label: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"_flaxify_fixture_{label}_{path.stem.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("before", CHECKED, ids=_ids(CHECKED))
def test_migrated_model_is_bit_exact(before: Path) -> None:
    from flaxify.equivalence import compare, parse_spec

    header = HEADER.search(before.read_text())
    assert header is not None
    name = header["name"]
    inputs = [parse_spec(spec) for spec in header["specs"].split()]
    kwargs = json.loads(header["kwargs"]) if header["kwargs"] else None
    haiku_obj = getattr(_load(before, "hk"), name)
    flax_obj = getattr(_load(_after(before), "flax"), name)
    report = compare(haiku_obj, flax_obj, inputs, kwargs=kwargs, devices="cpu")
    assert report.equivalent, report.format_table()
    assert report.bitexact, report.format_table()
