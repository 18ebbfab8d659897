"""The migrate API: one source file in, its Flax Linen version and its TODOs out.

This module is static: it parses and rewrites code and never imports or runs it.
The file-level driver (discovery, atomic writes, --diff/--check/-o) lives in
``runner.py``; the rewrites themselves live one family per module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flaxify.migrate.project import ProjectIndex


@dataclass(frozen=True)
class Todo:
    """A construct left as it was, marked ``# TODO(flaxify): <reason>`` above ``line``."""

    line: int  # 1-based line of the marked statement in the migrated output
    construct: str  # e.g. "hk.GRU" or "net.apply (not called directly)"
    reason: str


@dataclass(frozen=True)
class Migrated:
    """The result of migrating one file's source."""

    source: bytes  # the new file contents, same encoding and line endings as the input
    changed: bool
    todos: tuple[Todo, ...] = ()


TODO_PREFIX = "# TODO(flaxify): "


class SourceError(Exception):
    """The file cannot be migrated at all (does not parse, undecodable bytes).

    ``line`` and ``column`` are 1-based; the runner prints ``path:line:col: error: message``.
    """

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.line = line
        self.column = column
        self.message = message


def migrate_source(source: bytes, path: str = "<string>", project: ProjectIndex | None = None) -> Migrated:
    """Migrates one file. Raises :class:`SourceError` when it cannot be parsed.

    ``project`` (from :func:`flaxify.migrate.project.index_sources`) tells the
    call-site pass which names imported from other files are transformed models.

    Files that mention neither ``haiku`` nor a module of ``project`` holding a
    transformed model are returned unchanged without parsing, so a large
    non-Haiku tree costs a few substring searches per file.
    """
    if b"haiku" not in source and not (project and project.imported_by(source)):
        return Migrated(source=source, changed=False)
    from flaxify.migrate.engine import run_codemods  # heavy (libcst): only for files that need it

    return run_codemods(source, path, project)
