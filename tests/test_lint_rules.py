"""Every rule's VALID and INVALID examples are its tests (Fixit style), plus the rule table's shape."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flaxify.lint.engine import SourceFile, lint_sources
from flaxify.lint.fixes import apply_fixes
from flaxify.lint.model import Finding
from flaxify.lint.rule import Invalid, Rule
from flaxify.lint.rules import RULES
from flaxify.lint.settings import LintSettings

SECTIONS = ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix safety")


def _lint(tmp_path: Path, source: str, code: str) -> list[Finding]:
    path = tmp_path / "example.py"
    path.write_text(source, encoding="utf-8")
    result = lint_sources([SourceFile(path, "example.py", source)], LintSettings(select=(code,)))
    return [f for f in result.findings if f.code == code]


def _cases(kind: str) -> list[tuple[type[Rule], int, Invalid | str]]:
    return [(rule, i, case) for rule in RULES for i, case in enumerate(getattr(rule, kind))]


@pytest.mark.parametrize(("rule", "index", "case"), _cases("VALID"),
                         ids=lambda v: v.CODE if isinstance(v, type) else str(v) if isinstance(v, int) else "")
def test_valid_examples_are_silent(tmp_path: Path, rule: type[Rule], index: int, case: str) -> None:
    found = _lint(tmp_path, case, rule.CODE)
    assert found == [], f"{rule.CODE} VALID[{index}] flagged:\n{case}\n{found}"


@pytest.mark.parametrize(("rule", "index", "case"), _cases("INVALID"),
                         ids=lambda v: v.CODE if isinstance(v, type) else str(v) if isinstance(v, int) else "")
def test_invalid_examples_are_flagged(tmp_path: Path, rule: type[Rule], index: int, case: Invalid | str) -> None:
    example = case if isinstance(case, Invalid) else Invalid(case)
    found = _lint(tmp_path, example.code, rule.CODE)
    assert found, f"{rule.CODE} INVALID[{index}] not flagged:\n{example.code}"
    for finding in found:
        assert finding.message and "{" not in finding.message.split("`")[0], finding.message
    if example.fixed is not None:
        fixed, applied = apply_fixes(example.code, found, unsafe=True)
        assert applied >= 1
        assert fixed == example.fixed


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.CODE)
def test_rule_is_documented(rule: type[Rule]) -> None:
    assert re.fullmatch(r"JX\d{3}", rule.CODE)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", rule.NAME)
    doc = rule.__doc__ or ""
    positions = [doc.find(section) for section in SECTIONS]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), f"{rule.CODE} docstring sections"
    assert len(rule.VALID) >= 2 and len(rule.INVALID) >= 2


def test_codes_are_unique_and_sorted() -> None:
    codes = [rule.CODE for rule in RULES]
    assert codes == sorted(set(codes))
    names = [rule.NAME for rule in RULES]
    assert len(names) == len(set(names))


def test_docs_are_generated_from_the_rules() -> None:
    from flaxify.lint.docs import render

    docs = Path(__file__).resolve().parent.parent / "docs" / "lint.md"
    assert docs.read_text(encoding="utf-8") == render(), "run: python -m flaxify.lint.docs > docs/lint.md"
    for rule in RULES:
        assert f"### {rule.CODE}" in render()


def test_jx405_examples_agree_with_flax() -> None:
    """JX405's examples run on real Flax: every INVALID one raises ModifyScopeVariableError, no VALID one does."""
    import flax.errors
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from flaxify.lint.rules.linen_apply_without_mutable import LinenApplyWithoutMutable

    x = jnp.ones((4, 3))

    def run(source: str) -> None:
        namespace: dict[str, object] = {}
        exec(compile(source, "<example>", "exec"), namespace)  # noqa: S102 - the rule's own examples
        module = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, nn.Module)
                  and v is not nn.Module][-1]  # the outermost module is defined last
        variables = module().init(jax.random.key(0), x)
        runner = namespace["run"]
        extra = (["counter"],) if runner.__code__.co_argcount == 3 else ()  # type: ignore[attr-defined]
        runner(variables, x, *extra)  # type: ignore[operator]

    for source in LinenApplyWithoutMutable.VALID:
        run(source)
    for case in LinenApplyWithoutMutable.INVALID:
        with pytest.raises(flax.errors.ModifyScopeVariableError):
            run(case if isinstance(case, str) else case.code)
