"""Apply fixes to source text (non-overlapping edits, applied back to front)."""

from __future__ import annotations

from collections.abc import Sequence

from flaxify.lint.model import Applicability, Edit, Finding


def fixable(finding: Finding, unsafe: bool) -> bool:
    return finding.fix is not None and (unsafe or finding.fix.applicability == Applicability.SAFE)


def apply_fixes(source: str, findings: Sequence[Finding], unsafe: bool) -> tuple[str, int]:
    """Returns the fixed source and how many fixes were applied; overlapping fixes are skipped."""
    starts = _line_starts(source)
    chosen: list[tuple[int, int, str]] = []
    applied = 0
    for finding in findings:
        if not fixable(finding, unsafe):
            continue
        assert finding.fix is not None
        spans = [(_offset(starts, e.line, e.column), _offset(starts, e.end_line, e.end_column), e.content)
                 for e in finding.fix.edits]
        if any(_overlaps(span, taken) for span in spans for taken in chosen):
            continue
        chosen.extend(spans)
        applied += 1
    for start, end, content in sorted(chosen, reverse=True):
        source = source[:start] + content + source[end:]
    return source, applied


def _line_starts(source: str) -> list[int]:
    starts = [0]
    for index, char in enumerate(source):
        if char == "\n":
            starts.append(index + 1)
    return starts


def _offset(starts: list[int], line: int, column: int) -> int:
    """Character offset of a 1-based (line, column); columns count characters, not bytes."""
    return starts[line - 1] + column - 1


def _overlaps(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


__all__ = ["Edit", "apply_fixes", "fixable"]
