"""Value types shared by the engine, the rules and the output formats.

Everything here is immutable: the engine builds findings once and hands them
to the one function that prints them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.IntEnum):
    """How strongly a region is transformed; a rule fires from its ``MIN_KIND`` up.

    ``GRAD`` (grad, jacfwd...) still sees concrete values, so Python control flow
    works; ``BATCH`` (vmap) has abstract values but re-runs Python on every call;
    ``STAGE`` (jit, pmap, lax bodies, module methods) runs Python once, at trace time.
    """

    GRAD = 1
    BATCH = 2
    STAGE = 3


class Taint(enum.IntEnum):
    """What the linter knows about a value inside traced code.

    ``TREE`` may be a traced array or a container of them (a pytree argument);
    ``ARRAY`` is certainly an array (the result of an array operation). Only
    ``ARRAY`` values break Python truthiness: ``if params:`` on a dict is fine.
    """

    NONE = 0
    TREE = 1
    ARRAY = 2


class Applicability(str, enum.Enum):
    """Whether a fix keeps the program's meaning (ruff's safe/unsafe split)."""

    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True)
class Edit:
    """Replace the text between two 1-based (line, column) positions."""

    line: int
    column: int
    end_line: int
    end_column: int
    content: str


@dataclass(frozen=True)
class Fix:
    """A set of non-overlapping edits that repairs one finding."""

    message: str
    edits: tuple[Edit, ...]
    applicability: Applicability = Applicability.SAFE


@dataclass(frozen=True)
class Finding:
    """One problem at one place; positions are 1-based, end column exclusive."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    code: str
    message: str
    fix: Fix | None = None

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.column, self.code)
