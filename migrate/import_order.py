"""Puts the imports migrate adds where the file's own import layout says they belong.

LibCST's ``AddImportsVisitor`` appends every new import after the file's last
leading import, so a migrated file reads::

    import jax
    import jax.numpy as jnp
    import functools
    import flax.linen as nn
    from typing import Any

which every formatter (isort, ruff's ``I`` rules) and every Flax reviewer would
send back. Here each added statement moves into its section (standard library,
third party, local), and inside the section to its sorted place, when the
section is sorted (isort's default order, straight imports first, or Google's,
by module only); in an unsorted section it goes last. A section the file did
not have yet is started, in section order, one blank line from its neighbours::

    import functools
    from typing import Any

    import flax.linen as nn
    import jax
    import jax.numpy as jnp

The user's own imports never move or change. The layout is left exactly as
LibCST wrote it unless it is plain enough to read with certainty: one run of
import lines after the docstring and ``__future__`` imports, its sections in
order and separated by nothing but blank lines, no comments among them (a
comment may be about the line under it, or about the lines around it).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import IntEnum
from itertools import pairwise
from typing import NamedTuple

import libcst as cst

from flaxify.migrate.layers_common import dotted

ImportLine = cst.SimpleStatementLine


class Section(IntEnum):
    """isort's section order."""

    FUTURE = 0
    STDLIB = 1
    THIRD_PARTY = 2
    LOCAL = 3


class Layout(NamedTuple):
    """The file's import lines before migrate touches them."""

    keys: frozenset[str]  # what each line imports: `import a.b`, `from m`
    separated: bool  # sections set apart by blank lines


def leading_imports(module: cst.Module) -> Layout:
    """The file's own import lines, read before migrate adds or removes any.

    A line is known by what it imports: ``import a.b, c`` as ``import a.b`` and
    ``import c``, ``from m import x`` as ``from m``. LibCST merges an added
    ``from m import y`` into an existing ``from m import x``, and the Haiku import
    removal may drop names from a line: such a line is still the user's, because
    its module is. Whether sections are blank-separated is read here too, because
    removing ``import haiku as hk`` takes the blank line above it along.
    """
    run = _import_run(module.body)[1]
    return Layout(frozenset(key for statement in run for key in _keys(statement)), _separated(run))


def place_added_imports(module: cst.Module, before: Layout) -> cst.Module:
    """Moves the import lines whose modules are not in ``before`` into their sections."""
    start, run = _import_run(module.body)
    added = [statement for statement in run if not _keys(statement) & before.keys]
    if not added or not _plain(run):
        return module
    kept = [statement for statement in run if statement not in added]
    sections = _sections(kept)
    if sections is None:
        return module
    for statement in added:
        _insert(sections.setdefault(_section(statement), []), statement)
    lines = _layout(sections, first=run[0].leading_lines, separated=before.separated)
    return module.with_changes(body=(*module.body[:start], *lines, *module.body[start + len(run):]))


def _import_run(body: Sequence[cst.BaseStatement]) -> tuple[int, list[ImportLine]]:
    """Where the run of plain import lines after the docstring and ``__future__`` starts, and its lines."""
    start = 0
    if body and _is_docstring(body[0]):
        start = 1
    while start < len(body) and _is_import(body[start]) and _section(body[start]) is Section.FUTURE:
        start += 1
    end = start
    while end < len(body) and _is_import(body[end]):
        end += 1
    return start, [statement for statement in body[start:end] if isinstance(statement, ImportLine)]


def _is_docstring(statement: cst.BaseStatement) -> bool:
    return (
        isinstance(statement, ImportLine)
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_import(statement: cst.BaseStatement) -> bool:
    """One ``import`` or ``from ... import`` alone on its line (no ``;``)."""
    return (
        isinstance(statement, ImportLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], (cst.Import, cst.ImportFrom))
    )


def _keys(statement: ImportLine) -> set[str]:
    node = statement.body[0]
    if isinstance(node, cst.Import):
        return {f"import {dotted(alias.name)}" for alias in node.names}
    assert isinstance(node, cst.ImportFrom)
    return {f"from {'.' * len(node.relative)}{dotted(node.module) if node.module else ''}"}


def _module(statement: ImportLine) -> str:
    """The module a line imports from (the first one for ``import a, b``)."""
    return min(_keys(statement)).split(" ", 1)[1]


def _section(statement: cst.BaseStatement) -> Section:
    assert isinstance(statement, ImportLine)
    module = _module(statement)
    if module == "__future__":
        return Section.FUTURE
    if module.startswith("."):
        return Section.LOCAL
    return Section.STDLIB if module.split(".")[0] in sys.stdlib_module_names else Section.THIRD_PARTY


def _plain(run: list[ImportLine]) -> bool:
    """No comment among the lines (their first line's header aside), blank lines only between sections."""
    for previous, statement in pairwise(run):
        if any(line.comment is not None for line in statement.leading_lines):
            return False
        if statement.leading_lines and _section(previous) == _section(statement):
            return False
    return all(statement.trailing_whitespace.comment is None for statement in run)


def _sections(kept: list[ImportLine]) -> dict[Section, list[ImportLine]] | None:
    """The user's lines by section, or None when the sections are not in order."""
    sections: dict[Section, list[ImportLine]] = {}
    last = Section.FUTURE
    for statement in kept:
        section = _section(statement)
        if section < last:
            return None
        if section != last and section in sections:
            return None
        sections.setdefault(section, []).append(statement)
        last = section
    return sections


def _separated(run: list[ImportLine]) -> bool:
    """Whether sections are set apart by a blank line (PEP 8's advice, and the layout for a file with one section)."""
    boundaries = [b for a, b in pairwise(run) if _section(a) != _section(b)]
    return not boundaries or all(b.leading_lines for b in boundaries)


def _insert(section: list[ImportLine], statement: ImportLine) -> None:
    """Adds ``statement`` at its sorted place when the section is sorted, else last."""
    for key in (_isort_key, _google_key):
        keys = [key(line) for line in section]
        if keys == sorted(keys):
            position = sum(1 for k in keys if k <= key(statement))
            section.insert(position, statement)
            return
    section.append(statement)


def _isort_key(statement: ImportLine) -> tuple[bool, str]:
    return isinstance(statement.body[0], cst.ImportFrom), _module(statement).lower()


def _google_key(statement: ImportLine) -> tuple[str, bool]:
    return _module(statement).lower(), isinstance(statement.body[0], cst.ImportFrom)


def _layout(
    sections: dict[Section, list[ImportLine]], first: Sequence[cst.EmptyLine], separated: bool
) -> list[ImportLine]:
    """The lines in section order: the run's header lines on the first, a blank line between sections."""
    lines: list[ImportLine] = []
    for section in sorted(sections):
        for index, statement in enumerate(sections[section]):
            if not lines:
                leading: Sequence[cst.EmptyLine] = first
            elif index == 0 and separated:
                leading = (cst.EmptyLine(),)
            else:
                leading = ()
            lines.append(statement.with_changes(leading_lines=leading))
    return lines
