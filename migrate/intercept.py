"""``with hk.intercept_methods(i):`` -> ``with nn.intercept_methods(i):`` when ``i`` means the same in both.

Both libraries run an interceptor ``i(next_fun, args, kwargs, context)`` around
every module method called while the context is active
(``haiku/_src/module.py::intercept_methods``, ``flax/linen/module.py``), and
both contexts carry ``module``, ``method_name`` and ``orig_method`` (Haiku's
``MethodContext`` also has ``orig_class``). What differs is *which* calls they
see: Haiku's own layers (``hk.Linear``) versus Linen's (``nn.Dense``, with
other arguments), Linen's ``setup()`` and the helper modules flaxify emits
(``NameScope``, ...), and ``context.module``, whose attributes and names
(``module_name`` is a path in Haiku) are not Linen's. So the rewrite is exact
only for an interceptor that passes every call straight on except the methods
of this file's own module classes it names, which the migration keeps (same
class, same method names, same arguments)::

    def fp32_blocks(next_fun, args, kwargs, context):
        if not isinstance(context.module, Block) or context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        args = jax.tree.map(lambda a: a.astype(jnp.float32), args)
        return next_fun(*args, **kwargs)

    with hk.intercept_methods(fp32_blocks):   ->   with nn.intercept_methods(fp32_blocks):

Recognised: a module-level ``def i(next_fun, args, kwargs, context)`` whose
first statement is ``if <guard>: return next_fun(*args, **kwargs)`` with a guard
that is an ``or`` of ``not isinstance(context.module, C)`` / ``type(context.module)
is not C`` (``C`` a module class of this file, or a tuple of them) and
``context.method_name != "m"`` (one of each at least; ``m`` not ``__init__``,
which Haiku intercepts and Linen does not: it constructs modules without a
method call); or ``if <the positive
guard, with and>: ...`` followed by ``return next_fun(*args, **kwargs)``;
each named method is defined by each named class and not ``@nn.nowrap`` after
the module pass (a factory method Haiku intercepts and Linen does not). The
code run for the named methods may read ``args``, ``kwargs``, call ``next_fun``,
``context.orig_method`` and read ``context.method_name``, but not
``context.module`` or anything else of ``context``. An interceptor that only
returns ``next_fun(*args, **kwargs)`` (a ``lambda`` too) changes nothing in
either library and is rewritten as well. Anything else keeps the TODO
``leftovers.py`` writes (``unsupported.py`` names the difference).
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.base import FlaxifyCommand, MigrationState, has_todo
from flaxify.migrate.layers_common import code, literal, walk

INTERCEPTS = frozenset({"haiku.intercept_methods"})
# What the code run for the named methods may read of the context: the same in both libraries.
_SHARED_CONTEXT = frozenset({"method_name", "orig_method"})


class InterceptMethodsCommand(FlaxifyCommand):
    """Rewrites ``hk.intercept_methods(i)`` in ``with`` statements when ``i`` sees the same calls in Linen."""

    DESCRIPTION = "Turns hk.intercept_methods over this file's own module classes into nn.intercept_methods."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"intercept_methods" in source

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._exact: set[str] = set()  # module-level interceptor defs that mean the same in Linen
        self._items: set[int] = set()  # ids of the calls to rewrite
        self._wrapped: dict[str, set[str]] = {}  # module class of this file -> its methods Linen intercepts

    def visit_Module(self, node: cst.Module) -> None:
        for stmt in node.body:
            if isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
                # An @nn.nowrap method (a factory method after the module pass) is not intercepted by Linen.
                methods = [m for m in stmt.body.body if isinstance(m, cst.FunctionDef)]
                wrapped = {m.name.value for m in methods if not any(code(d.decorator).endswith("nowrap") for d in m.decorators)}
                self._wrapped[stmt.name.value] = wrapped
        for stmt in node.body:
            if isinstance(stmt, cst.FunctionDef) and not stmt.decorators and self._exact_def(stmt):
                self._exact.add(stmt.name.value)

    def visit_With(self, node: cst.With) -> None:
        if has_todo(node):
            return
        for item in node.items:
            call = item.item
            if not isinstance(call, cst.Call) or self.haiku_name(call.func) not in INTERCEPTS or len(call.args) != 1:
                continue
            arg = call.args[0]
            if arg.keyword is not None or arg.star:
                continue
            value = arg.value
            named = isinstance(value, cst.Name) and value.value in self._exact
            if named or isinstance(value, cst.Lambda) and _four_plain(value.params) and _passes_on(value.body, value.params):
                self._items.add(id(call))

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if id(original_node) not in self._items:
            return updated_node
        return updated_node.with_changes(func=self.nn_attr("intercept_methods"))

    # -- analysis -------------------------------------------------------------------
    def _exact_def(self, node: cst.FunctionDef) -> bool:
        if not _four_plain(node.params) or not isinstance(node.body, cst.IndentedBlock):
            return False
        body = list(node.body.body)
        if len(body) == 1 and _is_return_pass_on(body[0], node.params):
            return True  # changes nothing in either library
        first = body[0] if body else None
        if not isinstance(first, cst.If) or first.orelse is not None:
            return False
        context = node.params.params[3].name.value
        passes = len(first.body.body) == 1 and _is_return_pass_on(first.body.body[0], node.params)
        if passes and self._guard(first.test, context, negated=True):
            targeted = body[1:]  # runs for the named methods only
        elif len(body) == 2 and _is_return_pass_on(body[1], node.params) and self._guard(first.test, context, negated=False):
            targeted = list(first.body.body)
        else:
            return False
        return bool(targeted) and all(_reads_shared_context(stmt, context) for stmt in targeted)

    def _guard(self, test: cst.BaseExpression, context: str, *, negated: bool) -> bool:
        """``not isinstance(context.module, C) or context.method_name != "m"`` (negated) or its positive twin."""
        joiner = cst.Or if negated else cst.And
        clauses: list[cst.BaseExpression] = []
        stack = [test]
        while stack:
            node = stack.pop()
            if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, joiner) and not node.lpar:
                stack += [node.right, node.left]
            else:
                clauses.append(node)
        named: dict[str, set[str]] = {"class": set(), "method": set()}
        for clause in clauses:
            found = self._clause(clause, context, negated)
            if found is None:
                return False
            named[found[0]].update(found[1])
        # Each named method is defined (not inherited) by each named class, and Linen wraps it.
        classes, methods = named["class"], named["method"]
        return bool(classes and methods) and all(methods <= self._wrapped.get(c, set()) for c in classes)

    def _clause(self, node: cst.BaseExpression, context: str, negated: bool) -> tuple[str, tuple[str, ...]] | None:
        """``("class", names)`` / ``("method", (name,))`` for a clause naming this file's module classes / a method."""
        module = f"{context}.module"
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not) and negated:
            node, negated = node.expression, False  # not isinstance(...)
        if isinstance(node, cst.Call) and not negated and code(node.func) == "isinstance" and len(node.args) == 2:
            if code(node.args[0].value) == module and self._own_classes(node.args[1].value):
                return "class", _class_names(node.args[1].value)
            return None
        if not isinstance(node, cst.Comparison) or len(node.comparisons) != 1:
            return None
        target = node.comparisons[0]
        operator = target.operator
        if code(node.left) == f"type({module})" and self._own_classes(target.comparator):
            wanted = cst.IsNot if negated else cst.Is
            right = isinstance(operator, wanted) and isinstance(target.comparator, cst.Name)
            return ("class", _class_names(target.comparator)) if right else None
        # Haiku also intercepts __init__ (construction), which Linen never does.
        method = literal(target.comparator)
        if code(node.left) == f"{context}.method_name" and isinstance(method, str) and method != "__init__":
            wanted = cst.NotEqual if negated else cst.Equal
            return ("method", (method,)) if isinstance(operator, wanted) else None
        return None

    def _own_classes(self, node: cst.BaseExpression) -> bool:
        """A module class of this file (or a tuple of them), which the migration keeps by name."""
        if isinstance(node, cst.Tuple):
            return bool(node.elements) and all(self._own_classes(e.value) for e in node.elements)
        return isinstance(node, cst.Name) and node.value in self.state.module_classes


def _class_names(node: cst.BaseExpression) -> tuple[str, ...]:
    if isinstance(node, cst.Tuple):
        return tuple(n for e in node.elements for n in _class_names(e.value))
    return (node.value,) if isinstance(node, cst.Name) else ()


def _four_plain(params: cst.Parameters) -> bool:
    """``(next_fun, args, kwargs, context)``: four plain positional parameters."""
    extra = isinstance(params.star_arg, cst.Param) or params.kwonly_params or params.star_kwarg or params.posonly_params
    return len(params.params) == 4 and not extra and all(p.default is None for p in params.params)


def _passes_on(node: cst.BaseExpression, params: cst.Parameters) -> bool:
    """``next_fun(*args, **kwargs)`` with the interceptor's own parameters."""
    nxt, args, kwargs = (p.name.value for p in params.params[:3])
    return code(node) == f"{nxt}(*{args}, **{kwargs})"


def _is_return_pass_on(stmt: cst.CSTNode, params: cst.Parameters) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    ret = stmt.body[0]
    return isinstance(ret, cst.Return) and ret.value is not None and _passes_on(ret.value, params)


def _reads_shared_context(stmt: cst.CSTNode, context: str) -> bool:
    """Every use of ``context`` in ``stmt`` is ``context.method_name`` or ``context.orig_method``."""
    shared = 0
    for node in walk(stmt):
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == context:
            if node.attr.value not in _SHARED_CONTEXT:
                return False
            shared += 1
    uses = sum(1 for node in walk(stmt) if isinstance(node, cst.Name) and node.value == context)
    return uses == shared  # no bare `context` (passed on, stored, ...)
