"""The engine's last step: add the imports the rewrites need, drop the Haiku ones left unused.

The passes schedule imports through LibCST's own API
(``AddImportsVisitor.add_needed_import``, ``RemoveImportsVisitor.remove_unused_import``),
and the edits are LibCST's own: the hooks of those two visitors (``visit_Module`` /
``leave_Module`` / ``leave_ImportFrom`` / ``leave_Import``) decide and build every
changed statement. What this module changes is how much of the tree they cost.

Run as codemods, the two visitors deep-copy the module, and ``RemoveImportsVisitor``
runs a scope analysis plus three more walks over every node (exports, string
annotations, unused imports) to learn whether, say, ``hk`` is still read somewhere.
That was a third of ``flaxify migrate``'s time. Here:

- imports are statements, so the hooks run over statements only (expressions,
  the bulk of a tree, are skipped); ``AddImportsVisitor``'s own pre-walk reads only
  the leading imports, so it gets only the leading statements;
- an alias whose local name appears in no token outside import statements, and in
  no string except docstrings, cannot be read, exported or named in a string
  annotation: it is unused without any analysis;
- only when a scheduled alias's name does appear is LibCST's scope analysis run,
  and LibCST's ``GatherUnusedImportsVisitor.is_in_use`` decides, as it would have;
  a name inside a string (``__all__``, a string annotation) falls back to running
  ``RemoveImportsVisitor`` itself.
"""

from __future__ import annotations

import io
import tokenize
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import NamedTuple

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor, GatherUnusedImportsVisitor, RemoveImportsVisitor
from libcst.helpers import get_absolute_module_from_package_for_import
from libcst.metadata import MetadataWrapper, ScopeProvider

from flaxify.migrate.base import ANALYSED_KEY, shares_nodes, walk_statements
from flaxify.migrate.import_order import leading_imports, place_added_imports

ImportNode = cst.Import | cst.ImportFrom
# The text of a string literal (Python 3.12 splits f-strings into several tokens).
_STRING_TOKENS = frozenset({tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)})
Hook = Callable[..., object]
# LibCST's is_in_use reads the gatherer's exported and string-annotation names;
# it is only called here when no string can name the import (checked first).
_NO_STRING_NAMES = SimpleNamespace(_exported_names=frozenset(), _string_annotation_names=frozenset())


def tidy_imports(tree: cst.Module, context: CodemodContext) -> cst.Module:
    """Applies the scheduled additions, then the scheduled removals of unused imports, then
    moves the added lines into their sections (:mod:`~flaxify.migrate.import_order`)."""
    before = leading_imports(tree)
    return place_added_imports(remove_unused_imports(add_imports(tree, context), context), before)


def add_imports(tree: cst.Module, context: CodemodContext) -> cst.Module:
    """What ``AddImportsVisitor(context).transform_module(tree)`` returns, visiting statements only."""
    if not context.scratch.get(AddImportsVisitor.CONTEXT_KEY):
        return tree
    adder = AddImportsVisitor(context)
    hooks = _StatementHooks(
        visits={cst.Module: lambda module: adder.visit_Module(_leading_statements(module))},
        leaves={cst.Module: adder.leave_Module, cst.ImportFrom: adder.leave_ImportFrom},
    )
    return tree.visit(hooks)


def remove_unused_imports(tree: cst.Module, context: CodemodContext) -> cst.Module:
    """What ``RemoveImportsVisitor(context).transform_module(tree)`` returns, without its
    whole-tree analyses where the answer is already certain."""
    scheduled = context.scratch.get(RemoveImportsVisitor.CONTEXT_KEY)
    if not scheduled:
        return tree
    schedule = _Schedule.read(scheduled)
    candidates = _scheduled(tree, schedule, context)
    if not candidates:
        return tree  # nothing scheduled is imported here: LibCST would change nothing
    code = tree.code
    try:
        names, strings = _names_and_strings(code)
    except (tokenize.TokenError, SyntaxError):
        return RemoveImportsVisitor(context).transform_module(tree)
    heads = {_local_head(alias) for alias, _ in candidates}
    if _strings_may_use(heads, tree, code, strings):
        return RemoveImportsVisitor(context).transform_module(tree)
    if heads & names:
        # Some name is still spelled in the code: only the scope analysis can tell.
        tree, unused = _unused_by_scope(tree, schedule, context)
    else:
        unused = dict(candidates)
    if not unused:
        return tree
    # Built only now: a LibCST visitor's constructor inspects every method of its class.
    remover = RemoveImportsVisitor(context)
    remover._unused_imports = unused  # what its visit_Module would have computed
    hooks = _StatementHooks(leaves={cst.Import: remover.leave_Import, cst.ImportFrom: remover.leave_ImportFrom})
    return tree.visit(hooks)


def _unused_by_scope(
    tree: cst.Module, schedule: _Schedule, context: CodemodContext
) -> tuple[cst.Module, dict[cst.ImportAlias, ImportNode]]:
    """The scheduled aliases LibCST's ``is_in_use`` finds unused, and the tree they are in.

    That is ``tree`` itself, or a private copy when ``tree`` holds one node object
    twice (metadata is keyed by node), or the tree the last pass analysed and left
    unchanged, whose analysis is reused.
    """
    wrapper = context.scratch.get(ANALYSED_KEY)
    if wrapper is None or wrapper.module is not tree:
        wrapper = MetadataWrapper(tree, unsafe_skip_copy=not shares_nodes(tree))
    scopes = wrapper.resolve(ScopeProvider)
    in_use = GatherUnusedImportsVisitor.is_in_use
    unused = {}
    for alias, parent in _scheduled(wrapper.module, schedule, context):
        scope = scopes.get(parent)
        if scope is not None and not in_use(_NO_STRING_NAMES, scope, alias):  # type: ignore[arg-type]
            unused[alias] = parent
    return wrapper.module, unused


def _strings_may_use(heads: set[str], tree: cst.Module, code: str, strings: list[str]) -> bool:
    """True when a string could keep an import alive: LibCST counts the names in
    ``__all__`` and those in string annotations (in annotations and ``TypeVar(...)``)."""
    if ("__all__" in code or "TypeVar" in code) and any(head in text for head in heads for text in strings):
        return True
    return any(head in text for head in heads for text in _annotation_strings(tree))


class _StatementHooks(cst.CSTTransformer):
    """Calls the given visit/leave hooks on statement-level nodes; never enters expressions.

    Import statements never sit inside an expression (a lambda's body is one), so
    skipping expressions cannot hide one from the import visitors' hooks.
    """

    def __init__(self, visits: dict[type, Hook] | None = None, leaves: dict[type, Hook] | None = None) -> None:
        super().__init__()
        self._visits = visits or {}
        self._leaves = leaves or {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        hook = self._visits.get(type(node))
        if hook is not None:
            hook(node)
        return not isinstance(node, (cst.BaseExpression, cst.Import, cst.ImportFrom))

    def on_leave(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        hook = self._leaves.get(type(original_node))
        return updated_node if hook is None else hook(original_node, updated_node)


def _leading_statements(module: cst.Module) -> cst.Module:
    """The module cut to what ``AddImportsVisitor``'s pre-walk reads.

    ``AddImportsVisitor.visit_Module`` walks the whole module with a gatherer that
    reads, in ``leave_Module``, only the first statement (a docstring or
    ``__strict__`` is skipped) and the import lines after it, up to the first
    other statement. The statement nodes are shared, so it records the same
    imports. A compound first statement is neither docstring nor import: then the
    gatherer records nothing, as with no statement at all.
    """
    body = module.body
    if not body or not isinstance(body[0], cst.SimpleStatementLine):
        return module.with_changes(body=())
    end = 1
    while end < len(body) and _is_import_line(body[end]):
        end += 1
    return module.with_changes(body=body[:end])


def _is_import_line(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and isinstance(
        statement.body[0], (cst.Import, cst.ImportFrom)
    )


class _Schedule(NamedTuple):
    """The scheduled removals, keyed as ``RemoveImportsVisitor.__init__`` keys them."""

    modules: dict[str, str | None]  # module -> alias, for ``import module [as alias]``
    objects: dict[str, set[tuple[str, str | None]]]  # module -> {(name, alias)}, for ``from module import``

    @classmethod
    def read(cls, scheduled: list[tuple[str, str | None, str | None]]) -> _Schedule:
        objects: dict[str, set[tuple[str, str | None]]] = {}
        for module, obj, alias in scheduled:
            if obj is not None:
                objects.setdefault(module, set()).add((obj, alias))
        return cls({module: alias for module, obj, alias in scheduled if obj is None}, objects)


def _scheduled(
    tree: cst.Module, schedule: _Schedule, context: CodemodContext
) -> list[tuple[cst.ImportAlias, ImportNode]]:
    """The import aliases RemoveImportsVisitor would drop if unused (its own matching rules)."""
    found: list[tuple[cst.ImportAlias, ImportNode]] = []
    for node in _import_statements(tree):
        if isinstance(node, cst.Import):
            for alias in node.names:
                name = alias.evaluated_name
                if name in schedule.modules and schedule.modules[name] == alias.evaluated_alias:
                    found.append((alias, node))
        elif not isinstance(node.names, cst.ImportStar):
            module = get_absolute_module_from_package_for_import(context.full_package_name, node)
            wanted = schedule.objects.get(module or "", set())
            found.extend(
                (alias, node) for alias in node.names if (alias.evaluated_name, alias.evaluated_alias) in wanted
            )
    return found


def _import_statements(tree: cst.Module) -> Iterator[ImportNode]:
    """Every ``import`` / ``from ... import`` in the tree, at any depth, in source order."""
    return (node for node in walk_statements(tree) if isinstance(node, (cst.Import, cst.ImportFrom)))


def _annotation_strings(tree: cst.Module) -> list[str]:
    """The source of every string literal inside a parameter, return or variable annotation."""
    annotations: list[cst.CSTNode] = []
    for node in walk_statements(tree):
        if isinstance(node, cst.AnnAssign):
            annotations.append(node.annotation)
        elif isinstance(node, cst.FunctionDef):
            annotations.extend(p.annotation for p in _params(node.params) if p.annotation is not None)
            if node.returns is not None:
                annotations.append(node.returns)
    found: list[str] = []
    stack = annotations
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            found.append(cst.Module([]).code_for_node(node))
        else:
            stack.extend(node.children)
    return found


def _params(params: cst.Parameters) -> list[cst.Param]:
    stars = [p for p in (params.star_arg, params.star_kwarg) if isinstance(p, cst.Param)]
    return [*params.posonly_params, *params.params, *stars, *params.kwonly_params]


def _local_head(alias: cst.ImportAlias) -> str:
    """The name an alias binds: ``hk`` for ``haiku as hk``, ``haiku`` for ``haiku.nets``."""
    return alias.evaluated_alias or alias.evaluated_name.split(".")[0]


def _names_and_strings(code: str) -> tuple[set[str], list[str]]:
    """Identifier tokens outside import statements, and string tokens outside docstrings.

    A statement is an import when its first token is ``import`` or ``from`` (one after
    ``if x:`` on the same line counts as outside, which only makes the answer more
    careful). A statement made of string tokens alone is a docstring or a no-op
    expression: never an export nor an annotation.
    """
    names: set[str] = set()
    strings: list[str] = []
    statement: list[tokenize.TokenInfo] = []

    def flush() -> None:
        significant = [tok for tok in statement if tok.type not in (tokenize.NL, tokenize.COMMENT)]
        if significant and significant[0].type == tokenize.NAME and significant[0].string in ("import", "from"):
            pass
        elif significant and all(tok.type == tokenize.STRING for tok in significant):
            pass
        else:
            for tok in significant:
                if tok.type == tokenize.NAME:
                    names.add(tok.string)
                elif tok.type in _STRING_TOKENS:
                    strings.append(tok.string)
        statement.clear()

    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER) or (
            tok.type == tokenize.OP and tok.string == ";"
        ):
            flush()
        else:
            statement.append(tok)
    flush()
    return names, strings
