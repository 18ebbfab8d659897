"""What a lint rule is, and what it sees.

A rule is one class in one file (Fixit/ruff style): ``CODE``, ``NAME``, a
docstring in ruff's sections, ``MESSAGE``, ``VALID`` and ``INVALID`` examples
that are its tests, then a few ``visit_<Node>`` methods. Traced rules
(``SCOPE = "traced"``) run on every function JAX traces or that traced code
reaches; module rules (``SCOPE = "module"``) see the whole file.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from flaxify.lint.model import Applicability, Edit, Finding, Fix, Kind, Taint

if TYPE_CHECKING:
    from flaxify.lint.analysis import Analysis, Context
    from flaxify.lint.project import FunctionInfo, ModuleInfo


@dataclass(frozen=True)
class Invalid:
    """An example the rule must flag; ``fixed`` is the source after ``--fix --unsafe-fixes``."""

    code: str
    fixed: str | None = None


class Rule:
    """Base class of every rule; subclasses set the class attributes and visitors."""

    CODE: ClassVar[str]
    NAME: ClassVar[str]
    MESSAGE: ClassVar[str]
    SCOPE: ClassVar[str] = "traced"
    MIN_KIND: ClassVar[Kind] = Kind.GRAD
    DEFAULT: ClassVar[bool] = True
    VALID: ClassVar[list[str]] = []
    INVALID: ClassVar[list[Invalid | str]] = []

    def check_module(self, ctx: ModuleContext) -> None:
        """Module rules override this; traced rules use ``visit_<Node>`` methods."""

    def check(self, ctx: TracedContext) -> None:
        """Traced rules that need statement order (not a node visit) override this."""


class ModuleContext:
    """What a rule can ask about the file being linted; collects its findings."""

    def __init__(self, module: ModuleInfo, analysis: Analysis, sink: list[Finding]) -> None:
        self.module = module
        self.analysis = analysis
        self.sink = sink
        self.rule: Rule | None = None

    @property
    def tree(self) -> ast.Module:
        return self.module.tree

    def qualname(self, node: ast.expr, scope: FunctionInfo | None = None) -> str | None:
        """``jnp.sum`` -> ``jax.numpy.sum``; None when not rooted in an import or shadowed."""
        return self.analysis.qualify(scope, self.module, node)

    def traced(self, fn: FunctionInfo) -> Context | None:
        return self.analysis.contexts.get(fn)

    def report(self, node: ast.AST, message: str | None = None, fix: Fix | None = None) -> None:
        assert self.rule is not None
        line, column, end_line, end_column = self.span(node)
        self.sink.append(Finding(self.module.display, line, column, end_line, end_column, self.rule.CODE,
                                 message or self.rule.MESSAGE, fix))

    def span(self, node: ast.AST) -> tuple[int, int, int, int]:
        """1-based (line, column, end_line, end_column) of ``node``, in characters."""
        line: int = node.lineno  # type: ignore[attr-defined]
        end_line: int = node.end_lineno or line  # type: ignore[attr-defined]
        start = self.module.char_column(line, node.col_offset)  # type: ignore[attr-defined]
        end = self.module.char_column(end_line, node.end_col_offset or 0)  # type: ignore[attr-defined]
        return line, start + 1, end_line, end + 1

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.module.source, node) or ast.unparse(node)

    def replace(self, node: ast.AST, content: str, message: str,
                applicability: Applicability = Applicability.SAFE) -> Fix:
        """A fix that replaces ``node``'s source text with ``content``."""
        line, column, end_line, end_column = self.span(node)
        return Fix(message, (Edit(line, column, end_line, end_column, content),), applicability)


class TracedContext(ModuleContext):
    """A ModuleContext focused on one traced function."""

    def __init__(self, module: ModuleInfo, analysis: Analysis, sink: list[Finding], context: Context) -> None:
        super().__init__(module, analysis, sink)
        self.context = context
        self.fn: FunctionInfo = context.fn
        self.env = analysis.env(context)
        self._suffix = _chain_suffix(context)

    @property
    def kind(self) -> Kind:
        return self.context.kind

    @property
    def flavors(self) -> set[str]:
        return self.context.flavors

    def taint(self, node: ast.expr | None) -> Taint:
        return self.env.of(node)

    def qualname(self, node: ast.expr, scope: FunctionInfo | None = None) -> str | None:
        return self.analysis.qualify(scope or self.fn, self.module, node)

    def builtin(self, func: ast.expr) -> str | None:
        """The builtin a call target names (``print``), unless shadowed or imported."""
        if not isinstance(func, ast.Name) or self.module.imports.qualname(func) is not None:
            return None
        scope: FunctionInfo | None = self.fn
        while scope is not None:
            if func.id in scope.locals:
                return None
            scope = scope.parent
        if func.id in self.module.module_assigned:
            return None
        return func.id

    def is_outer(self, name: str) -> bool:
        """True when ``name`` is state that lives outside the traced region (global or closed over)."""
        fn = self.fn
        if name in fn.declared_global:
            return True
        if name in fn.locals and name not in fn.declared_nonlocal:
            return False
        if name in self.context.inner:
            return False
        scope = fn.parent
        while scope is not None:
            if name in scope.locals:
                return True
            scope = scope.parent
        return name in self.module.module_assigned and name not in self.module.imports.bound

    def linen_class(self) -> bool:
        cls = self.fn.cls
        return cls is not None and self.analysis.framework(cls) == "linen"

    def report(self, node: ast.AST, message: str | None = None, fix: Fix | None = None) -> None:
        super().report(node, (message or self.rule.MESSAGE) + self._suffix, fix)  # type: ignore[union-attr]


def _chain_suffix(context: Context) -> str:
    if not context.chain:
        return ""
    root = context.chain[0]
    via = [hop.fn.name for hop in context.chain[1:]] + [context.fn.name]
    return f" (reached from {root.fn.name} ({root.fn.module.display}:{root.line}) via {' -> '.join(via)})"


Visitor = Callable[[ast.AST, TracedContext], None]
