"""Multi-file lint fixtures: every expected finding is reported, and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flaxify.lint.api import lint_paths
from flaxify.lint.settings import LintSettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "lint"
PROJECTS = sorted(p for p in FIXTURES.iterdir() if (p / "expected.txt").is_file())


def _expected(project: Path) -> dict[str, str]:
    """``path:line:col: CODE`` -> text the message must contain ('' for none)."""
    table: dict[str, str] = {}
    for raw in (project / "expected.txt").read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        where, _, needle = raw.partition(" | ")
        table[where.strip()] = needle.strip()
    return table


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
def test_fixture_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)  # paths in findings and in expected.txt are relative to the project
    result = lint_paths([Path(".")], LintSettings())
    got = {f"{f.path}:{f.line}:{f.column}: {f.code}": f.message for f in result.findings}
    expected = _expected(project)
    assert sorted(got) == sorted(expected), "\n".join(f"{k} {v}" for k, v in got.items())
    for where, needle in expected.items():
        assert needle in got[where], f"{where}: {got[where]!r} lacks {needle!r}"


def test_fixture_projects_exist() -> None:
    assert len(PROJECTS) >= 3
    assert os.path.isfile(FIXTURES / "README.md")
