"""Constructor arguments that only ever feed a layer's initializer slot.

Haiku modules commonly take ``w_init=None`` / ``b_init=None`` and hand them to
their layers, where ``None`` means "the layer's default"::

    def __init__(self, sizes, w_init: hk.initializers.Initializer | None = None, ...):
      ...
      hk.Linear(size, w_init=w_init, b_init=b_init)

After migration such an argument is a dataclass field that takes a *Flax*
initializer (or None), so the layer keeps Haiku's default explicitly::

    w_init: nn.initializers.Initializer | None = None
    ...
    nn.Dense(size, kernel_init=self.w_init if self.w_init is not None else <Haiku's default>, ...)

An argument qualifies only when that reading is certain: it defaults to
``None`` (or has no default), ``__init__`` never rebinds it, and every use of
it in the class -- as the argument in ``__init__`` or as the attribute it is
stored in -- is one of

* an ``*_init=`` keyword of a Haiku layer construction (at least one such use);
* a keyword argument of a module class defined in the same file (which
  migrates the same way);
* an ``is None`` / ``is not None`` test;
* the ``self.attr = arg`` statement that stores it.

Anything else (calling it, passing it to a function, ``hk.get_parameter(init=...)``)
could need a Haiku-style initializer at run time, so the layer keeps its TODO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from flaxify.migrate.initializers import FIELD_INITIALIZER

#: Says whether a call builds a Haiku layer (True), a module class of this file
#: ("local"), or neither (False).
CallKind = Callable[[cst.Call], "bool | str"]

_SELF_ATTR = m.Attribute(m.Name("self"), m.Name())


@dataclass(frozen=True)
class InitializerFields:
    """The qualifying fields of one class and how they are spelled where."""

    names: frozenset[str] = frozenset()

    def spellings(self, in_init: bool) -> frozenset[str]:
        """Source spellings that read a qualifying field: ``self.f`` anywhere, bare ``f`` in ``__init__``."""
        attributes = {f"self.{name}" for name in self.names}
        return frozenset(attributes | self.names) if in_init else frozenset(attributes)

    def resolver(self, base: Callable[[cst.CSTNode], str | None], in_init: bool) -> Callable[[cst.CSTNode], str | None]:
        """``base``, except that a qualifying field resolves to :data:`FIELD_INITIALIZER`."""
        spelled = self.spellings(in_init)
        if not spelled:
            return base

        def resolve(node: cst.CSTNode) -> str | None:
            return FIELD_INITIALIZER if _spelling(node) in spelled else base(node)

        return resolve


def find_initializer_fields(
    klass: cst.ClassDef,
    fields: list[tuple[str, cst.BaseExpression | None]],
    renames: dict[str, str],
    call_kind: CallKind,
) -> InitializerFields:
    """The fields of ``klass`` that only feed initializer slots (see the module docstring).

    ``fields`` are ``(name, default)`` pairs of the constructor arguments;
    ``renames`` maps stored attributes to the field they hold (``self._w`` -> ``w``).
    """
    candidates = {name for name, default in fields if default is None or m.matches(default, m.Name("None"))}
    init = next((s for s in klass.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "__init__"), None)
    if init is not None:
        candidates -= _rebound(init)
    attributes = {name: name for name in candidates} | {old: new for old, new in renames.items() if new in candidates}
    uses = _Uses(candidates, attributes, call_kind)
    for statement in klass.body.body:
        if isinstance(statement, cst.FunctionDef):
            uses.in_init = statement.name.value == "__init__"
            statement.body.visit(uses)
    return InitializerFields(frozenset(name for name in candidates if name in uses.fed and name not in uses.other))


def _spelling(node: cst.CSTNode) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if m.matches(node, _SELF_ATTR):
        return f"self.{node.attr.value}"  # type: ignore[attr-defined]
    return None


def _rebound(init: cst.FunctionDef) -> set[str]:
    """Names ``__init__``'s body binds (assignments, loops, ``with``, walrus, imports, nested parameters)."""
    binder = _Binder()
    init.body.visit(binder)
    return binder.bound


class _Binder(cst.CSTVisitor):
    """Collects every name a statement binds."""

    def __init__(self) -> None:
        super().__init__()
        self.bound: set[str] = set()

    def _target(self, target: cst.CSTNode) -> None:
        if isinstance(target, cst.Name):
            self.bound.add(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._target(element.value)
        elif isinstance(target, cst.StarredElement):
            self._target(target.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._target(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._target(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._target(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._target(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._target(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._target(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._target(node.name)

    def visit_Param(self, node: cst.Param) -> None:
        self.bound.add(node.name.value)  # a nested def or lambda shadowing the argument


class _Uses(cst.CSTVisitor):
    """Sorts each read of a candidate into "feeds an initializer slot", "harmless" or "other"."""

    def __init__(self, candidates: set[str], attributes: dict[str, str], call_kind: CallKind) -> None:
        super().__init__()
        self.candidates = candidates
        self.attributes = attributes  # self.<attr> -> field
        self.call_kind = call_kind
        self.in_init = False
        self.fed: set[str] = set()
        self.other: set[str] = set()
        self._allowed: dict[int, str] = {}  # id(expression) -> "fed" / "ok" / "other"
        self._ignored: set[int] = set()  # names that are not reads: keywords, attributes, parameters

    def _field_of(self, node: cst.BaseExpression) -> str | None:
        if m.matches(node, _SELF_ATTR):
            return self.attributes.get(node.attr.value)  # type: ignore[attr-defined]
        if self.in_init and isinstance(node, cst.Name) and node.value in self.candidates:
            return node.value
        return None

    def visit_Call(self, node: cst.Call) -> None:
        kind = self.call_kind(node)
        if kind is False:
            return
        for arg in node.args:
            if arg.keyword is None or self._field_of(arg.value) is None:
                continue
            slot = kind is True and arg.keyword.value.endswith("_init")
            self._allowed[id(arg.value)] = "fed" if slot else "ok" if kind == "local" else "other"

    def visit_Comparison(self, node: cst.Comparison) -> None:
        if len(node.comparisons) != 1 or not m.matches(node.comparisons[0].comparator, m.Name("None")):
            return
        if isinstance(node.comparisons[0].operator, (cst.Is, cst.IsNot)):
            self._allowed[id(node.left)] = "ok"

    def visit_Assign(self, node: cst.Assign) -> None:
        # `self.attr = arg` in __init__: the store itself (the migration removes it).
        if not (self.in_init and len(node.targets) == 1 and isinstance(node.value, cst.Name)):
            return
        if m.matches(node.targets[0].target, _SELF_ATTR) and node.value.value in self.candidates:
            self._allowed[id(node.value)] = "ok"
            self._allowed[id(node.targets[0].target)] = "ok"

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        self._ignored.add(id(node.attr))
        if m.matches(node, _SELF_ATTR):
            self._record(node)
            return False
        return True  # `w_init.x` / `self.w_init.x`: the inner read is recorded, and is not allowed

    def visit_Name(self, node: cst.Name) -> None:
        if id(node) not in self._ignored:
            self._record(node)

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._ignored.add(id(node.keyword))

    def visit_Param(self, node: cst.Param) -> None:
        self._ignored.add(id(node.name))

    def _record(self, node: cst.BaseExpression) -> None:
        field = self._field_of(node)
        if field is None:
            return
        verdict = self._allowed.get(id(node), "other")
        if verdict == "fed":
            self.fed.add(field)
        elif verdict == "other":
            self.other.add(field)


__all__ = ["InitializerFields", "find_initializer_fields"]
