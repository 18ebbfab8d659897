"""Recall: every pitfall of the reference catalogue is caught in its triggering form, silent on its near-miss."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from flaxify.lint.engine import SourceFile, lint_sources
from flaxify.lint.settings import LintSettings

CATALOGUE = Path(__file__).resolve().parent.parent / "fixtures" / "lint" / "catalogue.toml"
ENTRIES = tomllib.loads(CATALOGUE.read_text(encoding="utf-8"))["pitfall"]


def _codes(tmp_path: Path, source: str, entry: dict[str, str]) -> set[str]:
    path = tmp_path / "case.py"
    path.write_text(source, encoding="utf-8")
    # Off-by-default rules are checked with the rule selected (`extend_select` in the entry).
    settings = LintSettings(extend_select=tuple(entry.get("extend_select", ())))
    result = lint_sources([SourceFile(path, "case.py", source)], settings)
    return {f.code for f in result.findings}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["id"])
def test_trigger_is_caught(tmp_path: Path, entry: dict[str, str]) -> None:
    assert entry["code"] in _codes(tmp_path, entry["trigger"], entry)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["id"])
def test_near_miss_is_silent(tmp_path: Path, entry: dict[str, str]) -> None:
    assert _codes(tmp_path, entry["near_miss"], entry) == set()
