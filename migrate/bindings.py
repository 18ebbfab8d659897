"""Names bound to initializers: ``init = hk.initializers.X(...)`` then ``w_init=init``.

Haiku code often builds an initializer once and passes it by name::

    W_INIT = hk.initializers.VarianceScaling(2.0)        # module level
    initializer = hk.initializers.TruncatedNormal(0.02)  # or inside a module

    hk.Linear(4, w_init=W_INIT)  ->  nn.Dense(4, kernel_init=W_INIT, ...)

The binding itself is rewritten where it stands (to
``nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")``), so
the use site may pass the name through unchanged -- but only when that is
certain. A name qualifies when every binding of it anywhere in the file is a
plain ``name = <initializer>`` whose rewrite succeeds (a Haiku initializer
flaxify translates, or one already in Flax's ``(key, shape, dtype)`` form).
Any other binding of the same name -- a parameter, a loop or ``with`` target,
an import, an augmented or tuple assignment, ``global`` -- disqualifies it:
then the use site keeps its TODO, because the name might hold a Haiku
initializer at run time. Scopes are not told apart on purpose; the file-wide
rule is stricter than Python's and never wrong in the direction that matters.
"""

from __future__ import annotations

from collections import defaultdict

import libcst as cst

from flaxify.migrate.initializers import rewrite_initializer
from flaxify.migrate.rewrite import Rewrite

#: What ``resolve_spelling`` reports for a qualifying name: a Flax initializer
#: (the rewritten binding), so initializer rewrites pass the name through.
BOUND_INITIALIZER = "flax.linen.initializers.<bound by name>"


def initializer_names(tree: cst.Module, imports: dict[str, str], *, nn: str, jnp: str) -> frozenset[str]:
    """The names in ``tree`` that certainly hold an initializer flaxify rewrites exactly."""
    collector = _Bindings()
    tree.visit(collector)

    def resolve(node: cst.CSTNode) -> str | None:
        dotted = _dotted(node)
        head, _, rest = dotted.partition(".")
        bound = imports.get(head)
        if not dotted or bound is None:
            return None
        return f"{bound}.{rest}" if rest else bound

    names = set()
    for name, values in collector.values.items():
        if name in collector.other or not values:
            continue
        if all(_rewrites(value, resolve, nn=nn, jnp=jnp) for value in values):
            names.add(name)
    return frozenset(names)


def _rewrites(value: cst.BaseExpression, resolve, *, nn: str, jnp: str) -> bool:  # type: ignore[no-untyped-def]
    target = value.func if isinstance(value, cst.Call) else value
    qualname = resolve(target)
    if qualname is None or not qualname.startswith(("haiku.initializers.", "flax.", "jax.nn.initializers.")):
        return False  # a lambda or a user function: its meaning depends on more than its spelling
    return isinstance(rewrite_initializer(value, qualname, nn=nn, jnp=jnp, resolver=resolve), Rewrite)


def _dotted(node: cst.CSTNode) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr.value}" if inner else ""
    return ""


class _Bindings(cst.CSTVisitor):
    """Every ``name = value`` in the file, and every name bound any other way."""

    def __init__(self) -> None:
        self.values: dict[str, list[cst.BaseExpression]] = defaultdict(list)
        self.other: set[str] = set()

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Name) and len(node.targets) == 1:
                self.values[target.target.value].append(node.value)
            else:
                self._other(target.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name) and node.value is not None:
            self.values[node.target.value].append(node.value)
        else:
            self._other(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._other(node.target)

    def visit_Param(self, node: cst.Param) -> None:
        self.other.add(node.name.value)

    def visit_For(self, node: cst.For) -> None:
        self._other(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._other(node.target)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._other(node.asname.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._other(node.target)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        self._other(node.asname.name if node.asname else node.name)

    def visit_Global(self, node: cst.Global) -> None:
        self.other.update(item.name.value for item in node.names)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.other.update(item.name.value for item in node.names)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.other.add(node.name.value)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.other.add(node.name.value)

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.name is not None:
            self._other(node.name.name)

    def _other(self, target: cst.BaseExpression) -> None:
        for node in _names_in(target):
            self.other.add(node)


def _names_in(target: cst.CSTNode) -> list[str]:
    """The names a target expression binds (tuple and starred targets included)."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [name for element in target.elements for name in _names_in(element.value)]
    if isinstance(target, cst.StarredElement):
        return _names_in(target.value)
    if isinstance(target, cst.Attribute):
        return [_dotted(target)] if _dotted(target) else []
    return []
