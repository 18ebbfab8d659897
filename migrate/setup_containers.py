"""A container ``__init__`` fills in place is built as a local of ``setup()``, then stored.

Linen freezes what ``setup()`` assigns to ``self`` (a list becomes a tuple, a
dict a ``FrozenDict``), so Haiku's ``self.blocks = []`` followed by
``self.blocks.append(...)`` fails in Linen with ``'tuple' object has no
attribute 'append'``. The container is filled under a local name instead and
stored once it is complete::

    self.blocks = []                        blocks = []
    for i in range(n):                      for i in range(n):
      self.blocks.append(Block(...))   ->     blocks.append(Block(...))
                                            self.blocks = blocks

Submodules keep their explicit ``name=``; Linen registers them when the
finished container is assigned. Nothing is done when the statements that fill
the container also call a method of ``self`` or hold a nested function or
lambda mentioning it (they could see the container before it is stored).
"""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from flaxify.migrate.layers_common import walk

_EMPTY = m.List(elements=[]) | m.Dict(elements=[]) | m.Call(func=m.Name("list") | m.Name("dict"), args=[])
#: Methods of list and dict that leave the container as it was.
_READ_ONLY = frozenset({"get", "keys", "values", "items", "copy", "count", "index"})


def build_then_store(statements: list[cst.BaseStatement]) -> list[cst.BaseStatement]:
    """Rewrites every ``self.x = []`` (or ``{}``) that later statements fill in place."""
    index = 0
    while index < len(statements):
        attribute = _empty_container(statements[index])
        last = _last_filling(statements, index, attribute) if attribute else None
        if attribute is not None and last is not None:
            statements = _localise(statements, index, last, attribute)
        index += 1
    return statements


def _empty_container(statement: cst.BaseStatement) -> str | None:
    pattern = m.SimpleStatementLine([m.Assign(targets=[m.AssignTarget(m.Attribute(m.Name("self"), m.Name()))], value=_EMPTY)])
    if not m.matches(statement, pattern):
        return None
    return statement.body[0].targets[0].target.attr.value  # type: ignore[attr-defined,no-any-return]


def _last_filling(statements: list[cst.BaseStatement], start: int, attribute: str) -> int | None:
    """The index of the last statement after ``start`` that changes ``self.<attribute>`` in place."""
    last = None
    for index in range(start + 1, len(statements)):
        if _fills(statements[index], attribute):
            last = index
    if last is None:
        return None
    for statement in statements[start + 1 : last + 1]:
        if _unsafe(statement, attribute):
            return None
    return last


def _is_attr(node: cst.CSTNode, attribute: str) -> bool:
    return m.matches(node, m.Attribute(m.Name("self"), m.Name(attribute)))


def _fills(statement: cst.BaseStatement, attribute: str) -> bool:
    for node in walk(statement):
        method = node.func if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) else None
        if method is not None and _is_attr(method.value, attribute) and method.attr.value not in _READ_ONLY:
            return True
        item = node.target if isinstance(node, (cst.AssignTarget, cst.Del)) else None
        if isinstance(item, cst.Subscript) and _is_attr(item.value, attribute):
            return True
        if isinstance(node, (cst.AugAssign, cst.AssignTarget)) and _is_attr(node.target, attribute):
            return True  # `+=` changes it; a plain assignment rebinds it, and the local must follow
    return False


def _unsafe(statement: cst.BaseStatement, attribute: str) -> bool:
    for node in walk(statement):
        if isinstance(node, cst.Call) and m.matches(node.func, m.Attribute(m.Name("self"), m.Name())):
            return True  # a method of self could read the attribute before it exists
        nested = isinstance(node, (cst.Lambda, cst.FunctionDef, cst.ClassDef))
        if nested and any(_is_attr(sub, attribute) for sub in walk(node)):
            return True
    return False


def _localise(statements: list[cst.BaseStatement], start: int, last: int, attribute: str) -> list[cst.BaseStatement]:
    local = _free_name(attribute, statements)
    renamed = [s.visit(_AttributeToLocal(attribute, local)) for s in statements[start : last + 1]]
    store = cst.SimpleStatementLine(
        [cst.Assign(targets=[cst.AssignTarget(cst.Attribute(cst.Name("self"), cst.Name(attribute)))], value=cst.Name(local))]
    )
    return [*statements[:start], *renamed, store, *statements[last + 1 :]]  # type: ignore[list-item]


class _AttributeToLocal(cst.CSTTransformer):
    def __init__(self, attribute: str, local: str) -> None:
        super().__init__()
        self.attribute, self.local = attribute, local

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        return cst.Name(self.local) if _is_attr(updated_node, self.attribute) else updated_node


def _free_name(preferred: str, statements: list[cst.BaseStatement]) -> str:
    nodes = [n for s in statements for n in walk(s)]
    attrs = {id(n.attr) for n in nodes if isinstance(n, cst.Attribute)}
    used = {n.value for n in nodes if isinstance(n, cst.Name) and id(n) not in attrs}
    name = preferred
    while name in used:
        name += "_"
    return name
