"""What moving a block of statements into a closure needs: the names it reads early and binds for sure.

A block moved into ``def block(scope, *inputs): ...; return outputs`` keeps its
meaning when

* every name the block binds becomes local to the closure, so a name it reads
  before binding it on every path (``x = f(x)``, a loop reading what the
  previous iteration bound) must be passed in: an *input*;
* the values visible after the block are those it binds on every path: the
  *outputs* (a name bound only in a branch or a loop body is not one, so the
  caller refuses a block whose conditional names are read after it);
* nothing in it leaves the block early or reaches another scope (``return``,
  ``yield``, ``global``, ``nonlocal``, ``del``, imports, nested functions and
  lambdas, ``:=``, ``try``/``match``, loop ``else``), which a closure would change.

This is plain definite-assignment analysis over ``if`` / ``for`` / ``while`` /
``with`` (Python's own rules: an ``if`` binds for sure what both branches bind,
a loop body may not run). A statement the caller turns into a closure of its
own (a nested scope block) is summarised by the caller as the names it reads
and binds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import libcst as cst

from flaxify.migrate.layers_common import walk

_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)
# Anywhere in a block, these change meaning once the block runs as a closure.
_NEVER = (cst.Lambda, cst.FunctionDef, cst.ClassDef, cst.NamedExpr, cst.Yield, cst.Await, cst.Global, cst.Nonlocal)
_SIMPLE_OK = (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Expr, cst.Pass, cst.Assert, cst.Raise)


@dataclass(frozen=True)
class Summary:
    """A statement the caller rewrites on its own: what it reads when it runs, and binds for sure."""

    reads: tuple[str, ...]
    binds: tuple[str, ...]


@dataclass
class Flow:
    """The names of a block, each list in first-occurrence order."""

    bound: list[str] = field(default_factory=list)  # bound anywhere in the block's own scope
    definite: list[str] = field(default_factory=list)  # bound on every path through it
    early: list[str] = field(default_factory=list)  # read where the block may not have bound them yet

    def inputs(self) -> list[str]:
        """Names the closure must be given: bound in the block, but read before that on some path."""
        return [name for name in self.early if name in self.bound]


# A caller's hook for a statement it rewrites itself: (statement, names bound for sure
# before it in the block, the statements after it) -> its summary, or None to refuse.
Nested = Callable[[cst.BaseStatement, frozenset[str], Sequence[cst.BaseStatement]], "Summary | None"]


class _Refused(Exception):
    """The block cannot become a closure."""


def block_flow(body: Sequence[cst.BaseStatement], nested: Nested, is_nested: Callable[[cst.BaseStatement], bool]) -> Flow | None:
    """The flow of ``body`` as a closure, or None when a closure would change its meaning.

    ``is_nested`` picks the statements ``nested`` summarises; one that is not
    directly in ``body`` (inside a branch or loop) refuses the block.
    """
    flow = Flow()
    try:
        for stmt in body:
            if not is_nested(stmt) and any(isinstance(n, _NEVER) or _calls_super(n) for n in walk(stmt)):
                raise _Refused
        definite = _Walker(flow, nested, is_nested).block(body, frozenset(), top=True, loop=False)
    except _Refused:
        return None
    flow.definite = [name for name in flow.bound if name in definite]
    return flow


def definite_after(body: Sequence[cst.BaseStatement], before: frozenset[str]) -> frozenset[str]:
    """Names surely bound after ``body`` runs from ``before``; a statement it cannot read binds nothing (never more)."""
    bound = set(before)
    for stmt in body:
        try:
            flow = Flow()
            bound |= _Walker(flow, lambda *_: None, lambda _: False).block([stmt], frozenset(bound), top=True, loop=True)
        except _Refused:
            if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                bound.add(stmt.name.value)
    return frozenset(bound)


def reads(node: cst.CSTNode) -> list[str]:
    """Names an expression reads, in order (attribute names, keywords and comprehension variables are not reads)."""
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, cst.Attribute):
        return reads(node.value)
    if isinstance(node, cst.Arg):
        return reads(node.value)
    if isinstance(node, _COMPREHENSIONS):
        # The first iterable runs in the enclosing scope; the rest in the comprehension's own.
        local: set[str] = set()
        clause: cst.CompFor | None = node.for_in
        while clause is not None:
            local.update(_target_names(clause.target))
            clause = clause.inner_for_in
        first = reads(node.for_in.iter)
        inner = [n for child in node.children if child is not node.for_in for n in reads(child)]
        inner += [n for n in _comp_tail(node.for_in) if n not in local]
        return first + [n for n in inner if n not in local]
    names: list[str] = []
    for child in node.children:
        names += reads(child)
    return names


def _comp_tail(clause: cst.CompFor) -> list[str]:
    """Reads of a comprehension's clauses after the first iterable (conditions, inner loops)."""
    names: list[str] = []
    for cond in clause.ifs:
        names += reads(cond.test)
    if clause.inner_for_in is not None:
        names += reads(clause.inner_for_in.iter) + _comp_tail(clause.inner_for_in)
    return names


def _target_names(node: cst.CSTNode) -> list[str]:
    if isinstance(node, cst.Name):
        return [node.value]
    if isinstance(node, (cst.Tuple, cst.List)):
        return [n for element in node.elements for n in _target_names(element.value)]
    if isinstance(node, cst.StarredElement):
        return _target_names(node.value)
    return []


def _calls_super(node: cst.CSTNode) -> bool:
    # Zero-argument super() needs the method's __class__ cell: it fails in a nested function.
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "super"


class _Walker:
    """Definite-assignment walk of one block, recording into a :class:`Flow`."""

    def __init__(self, flow: Flow, nested: Nested, is_nested: Callable[[cst.BaseStatement], bool]) -> None:
        self.flow = flow
        self.nested = nested
        self.is_nested = is_nested

    def block(self, body: Sequence[cst.CSTNode], definite: frozenset[str], *, top: bool, loop: bool) -> frozenset[str]:
        for index, stmt in enumerate(body):
            definite = self.statement(stmt, definite, body[index + 1 :], top=top, loop=loop)
        return definite

    def statement(self, stmt: cst.CSTNode, definite: frozenset[str], rest: Sequence[cst.CSTNode], *, top: bool, loop: bool) -> frozenset[str]:
        if isinstance(stmt, cst.BaseStatement) and self.is_nested(stmt):
            summary = self.nested(stmt, definite, rest) if top else None  # type: ignore[arg-type]
            if summary is None:
                raise _Refused
            self.read(summary.reads, definite)
            return definite | self.bind(summary.binds)
        if isinstance(stmt, cst.SimpleStatementLine):
            return self.block(stmt.body, definite, top=top, loop=loop)
        if isinstance(stmt, (cst.Break, cst.Continue)):
            if not loop:
                raise _Refused
            return definite
        if isinstance(stmt, cst.BaseSmallStatement):
            return self.small(stmt, definite)
        if isinstance(stmt, cst.If):
            self.read(reads(stmt.test), definite)
            then = self.suite(stmt.body, definite, loop=loop)
            orelse = definite
            if isinstance(stmt.orelse, cst.If):
                orelse = self.statement(stmt.orelse, definite, (), top=False, loop=loop)
            elif isinstance(stmt.orelse, cst.Else):
                orelse = self.suite(stmt.orelse.body, definite, loop=loop)
            return then & orelse
        if isinstance(stmt, cst.For) and stmt.orelse is None and stmt.asynchronous is None:
            self.read(reads(stmt.iter), definite)
            self.target(stmt.target, definite)
            self.suite(stmt.body, definite | set(_target_names(stmt.target)), loop=True)
            return definite  # the body may not run
        if isinstance(stmt, cst.While) and stmt.orelse is None:
            self.read(reads(stmt.test), definite)
            self.suite(stmt.body, definite, loop=True)
            return definite
        if isinstance(stmt, cst.With) and stmt.asynchronous is None:
            for item in stmt.items:
                self.read(reads(item.item), definite)
                if item.asname is not None:
                    definite |= self.target(item.asname.name, definite)
            return self.suite(stmt.body, definite, loop=loop)
        raise _Refused  # try, match, def, class, import, ...

    def suite(self, body: cst.BaseSuite, definite: frozenset[str], *, loop: bool) -> frozenset[str]:
        return self.block(body.body, definite, top=False, loop=loop)

    def small(self, small: cst.BaseSmallStatement, definite: frozenset[str]) -> frozenset[str]:
        if not isinstance(small, _SIMPLE_OK):
            raise _Refused  # return, del, import, global, ...
        if isinstance(small, cst.Assign):
            self.read(reads(small.value), definite)
            bound = frozenset()
            for target in small.targets:
                bound |= self.target(target.target, definite)
            return definite | bound
        if isinstance(small, cst.AnnAssign):
            if small.value is None:
                raise _Refused  # `x: T` alone makes x local to the closure without binding it
            self.read(reads(small.value), definite)
            return definite | self.target(small.target, definite)
        if isinstance(small, cst.AugAssign):
            self.read(reads(small.value), definite)
            self.read(reads(small.target), definite)  # `x += 1` reads x first
            return definite | self.target(small.target, definite)
        self.read(reads(small), definite)
        return definite

    def target(self, node: cst.CSTNode, definite: frozenset[str]) -> frozenset[str]:
        """Binds the names of an assignment target; attribute and subscript targets read their object."""
        if isinstance(node, cst.Name):
            return self.bind([node.value])
        if isinstance(node, (cst.Tuple, cst.List)):
            bound = frozenset()
            for element in node.elements:
                bound |= self.target(element.value, definite)
            return bound
        if isinstance(node, cst.StarredElement):
            return self.target(node.value, definite)
        if isinstance(node, (cst.Attribute, cst.Subscript)):
            self.read(reads(node), definite)
            return frozenset()
        raise _Refused

    def bind(self, names: Sequence[str]) -> frozenset[str]:
        for name in names:
            if name not in self.flow.bound:
                self.flow.bound.append(name)
        return frozenset(names)

    def read(self, names: Sequence[str], definite: frozenset[str]) -> None:
        for name in names:
            if name not in definite and name not in self.flow.early:
                self.flow.early.append(name)
