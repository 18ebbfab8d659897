"""Methods that build and return a new module -> ``@nn.nowrap`` factories (``hk.nets.MLP.reverse``).

Haiku runs every module method in a name scope ``~method`` of its module, so a
method that only *returns* a new module builds it there: ``mlp.reverse()``
names the reversed MLP ``mlp/~reverse/mlp_reversed``, and the caller is the
one that calls it. Linen has no such scope; the twin is a method that Linen
does not wrap: under ``@nn.nowrap`` the module is built in the scope that is
running when the method is called, the caller's compact method, exactly as if
the caller had built it (``mlp_reversed`` next to ``mlp``; the checker and
``convert-params`` map Haiku's ``X/~method/child`` to the caller's ``child``)::

    def reverse(self, activate_final=None, name=None):        @nn.nowrap
      ...                                                      def reverse(self, activate_final=None, name=None):
      output_sizes = tuple(                                      ...
          layer.input_size                               ->      output_sizes = tuple(
          for layer in reversed(self.layers)                         (layer.get_variable("params", "kernel").shape[0]
          if layer.input_size is not None)                            if layer.has_variable("params", "kernel") else None)
      return MLP(output_sizes, ..., name=name)                       for layer in reversed(self.layers)
                                                                     if layer.has_variable("params", "kernel"))
                                                                 return MLP(output_sizes, ..., name=name)

``hk.Linear`` records ``input_size`` when it is called; ``nn.Dense`` records
nothing, but the kernel it creates on its first call is ``(input_size,
output_size)``, so a Dense that has a kernel has the input size Haiku recorded,
and one without (not called yet during ``init``) has ``None``, as in Haiku. The
one difference: during ``apply`` every kernel exists from the start, so a
program reading ``input_size`` before the layer's first call gets the size where
Haiku has ``None``; Haiku's own ``init`` of that program took the ``None`` path
first (for ``MLP.reverse``: raised), so no program that runs under Haiku changes.
The same read serves any method the engine converts, e.g. an
``nn.compact_name_scope`` method of a ``hk.multi_transform`` root that builds
``hk.Linear(self.first.input_size)`` (:func:`input_size_reason` decides).

Exact only when: the method's one module construction is the value of a
``return`` and passes ``name=`` (otherwise Haiku's name inside ``~method`` and
Linen's auto-name in the caller differ); the method makes no variable, RNG key,
dropout or lifted transform of its own (those need the module's own scope);
the class never calls the method itself (Linen would then build the module
inside this one, not in the caller); and every ``.input_size`` read is on a
layer the class provably built as an ``hk.Linear`` in ``__init__`` (the
attribute itself, an item of it, or a loop or comprehension variable over it).
Otherwise the method keeps a TODO saying which condition fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from flaxify.migrate import lifted, rng
from flaxify.migrate.base import VARIABLE_CALLS
from flaxify.migrate.layers_common import code, walk

#: Haiku calls that need the module's own scope (Haiku's ``~method``): a factory may not make any.
_NEEDS_OWN_SCOPE = (VARIABLE_CALLS | rng.KEY_CALLS | lifted.SELF_LIFTED | lifted.LAYER_STACK_CALLS) | {
    "haiku.running_init",
    "haiku.name_scope",
}
#: Builtins that keep a collection of layers a collection of the same layers.
_SAME_ITEMS = ("reversed", "tuple", "list")
#: Builtins that read a collection without changing it.
_READERS = (*_SAME_ITEMS, "len", "enumerate", "zip", "iter")
_MUTATORS = frozenset({"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "__setitem__"})
_SELF_ATTR = m.Attribute(m.Name("self"), m.Name())
_KERNEL = '"params", "kernel"'

QualName = Callable[[cst.CSTNode], "str | None"]
ConstructionBase = Callable[[cst.Call], "str | None | bool"]


@dataclass(frozen=True)
class FactoryMethod:
    """A method that builds and returns one module: ``@nn.nowrap`` in Linen."""

    name: str


def plan_factory(
    method: cst.FunctionDef, klass: cst.ClassDef, haiku_name: QualName, construction_base: ConstructionBase
) -> FactoryMethod | str | None:
    """``method`` as a :class:`FactoryMethod`; a reason when it returns a module but is not exact; None otherwise.

    ``haiku_name`` and ``construction_base`` resolve original nodes (the engine's metadata).
    """
    built = _returned_construction(method, construction_base)
    if built is None:
        return None  # not a factory: the generic reason for methods building modules inline
    reason = _scope_reason(built, method, klass, haiku_name) or input_size_reason(method, klass, haiku_name)
    return reason or FactoryMethod(method.name.value)


def rewrite_input_sizes(method: cst.FunctionDef) -> cst.FunctionDef:
    """Every ``<dense>.input_size`` read in ``method`` -> the size its kernel recorded (see the module docstring)."""
    return method.visit(_InputSizeReads())  # type: ignore[return-value]


# -- which methods -------------------------------------------------------------


def _returned_construction(method: cst.FunctionDef, construction_base: ConstructionBase) -> cst.Call | None:
    """The method's one module construction, when it is the value of a ``return``."""
    constructions = [n for n in walk(method) if isinstance(n, cst.Call) and construction_base(n) is not False]
    returned = {id(n.value) for n in walk(method) if isinstance(n, cst.Return) and n.value is not None}
    return constructions[0] if len(constructions) == 1 and id(constructions[0]) in returned else None


def _scope_reason(built: cst.Call, method: cst.FunctionDef, klass: cst.ClassDef, haiku_name: QualName) -> str | None:
    """Why Linen's caller scope would hold something else than Haiku's ``~method`` scope, if it would."""
    name = next((a.value for a in built.args if a.keyword is not None and a.keyword.value == "name"), None)
    if name is None or m.matches(name, m.Name("None")):
        return (
            f"returns `{code(built.func)}(...)` without name=: Haiku names it inside this method's scope and Linen "
            "would auto-name it in the caller's; pass name= to keep the parameter tree convertible"
        )
    for node in walk(method):
        if isinstance(node, cst.Call) and haiku_name(node.func) in _NEEDS_OWN_SCOPE:
            return (
                f"returns a new module but also calls `{code(node.func)}`, which needs this module's own scope "
                "(Haiku's ~method); split the factory from the code using it"
            )
    if _called_by_class(method.name.value, klass):
        return (
            f"the class calls self.{method.name.value}(...) itself: Linen would build the returned module inside this "
            "module, Haiku in its ~method scope; call it from outside the module"
        )
    return None


def input_size_reason(method: cst.FunctionDef, klass: cst.ClassDef, haiku_name: QualName) -> str | None:
    """Why an ``.input_size`` read of the method cannot be read back from a Dense kernel, if one cannot."""
    receivers = _LinearReceivers(klass, method, haiku_name)
    for node in walk(method):
        if _is_input_size(node) and not receivers.is_linear(node.value):  # type: ignore[attr-defined]
            return (
                f"reads `{code(node)}`, which a Haiku layer records when it is called; flaxify can read it back from "
                f"the kernel of an hk.Linear built in __init__, and `{code(node.value)}` is not provably one: "  # type: ignore[attr-defined]
                "build the new module from sizes you know (e.g. pass them to the constructor)"
            )
    return None


def _called_by_class(name: str, klass: cst.ClassDef) -> bool:
    """``self.<name>`` is read anywhere in the class (the method calls or hands on itself)."""
    return any(m.matches(n, m.Attribute(m.Name("self"), m.Name(name))) for n in walk(klass))


def _methods(klass: cst.ClassDef) -> list[cst.FunctionDef]:
    return [s for s in klass.body.body if isinstance(s, cst.FunctionDef)]


class _LinearReceivers:
    """Which expressions in a method are, provably, an ``hk.Linear`` the class built in ``__init__``.

    A layer is ``self.a`` with ``self.a = hk.Linear(...)`` in ``__init__``, an
    item ``self.c[i]`` of a collection of them, or a name every binding of which
    (loop or comprehension target, assignment) takes such a layer. A collection
    is ``self.c`` assigned once, in ``__init__``, from a list or tuple of
    ``hk.Linear`` constructions (literal, comprehension, ``tuple``/``list`` of
    one, or a local list only ever ``append``-ed / ``extend``-ed with them);
    ``reversed``, ``tuple``, ``list`` and slices of a collection are one too.
    """

    def __init__(self, klass: cst.ClassDef, method: cst.FunctionDef, haiku_name: QualName) -> None:
        self.haiku_name = haiku_name
        self.method = method
        init = next((f for f in _methods(klass) if f.name.value == "__init__"), None)
        self.init = init
        self.parents = {id(child): node for node in walk(init) for child in node.children} if init else {}
        self.attributes = _attribute_assignments(klass)
        self.klass = klass

    # -- in the method --
    def is_linear(self, node: cst.BaseExpression) -> bool:
        if m.matches(node, _SELF_ATTR):
            return self._attribute_kind(node.attr.value) == "linear"  # type: ignore[attr-defined]
        if isinstance(node, cst.Subscript) and _is_index(node):
            return m.matches(node.value, _SELF_ATTR) and self._attribute_kind(node.value.attr.value) == "collection"  # type: ignore[attr-defined]
        if isinstance(node, cst.Name):
            bindings = _bindings(self.method, node.value)
            return bool(bindings) and all(self._binds_linear(b) for b in bindings)
        return False

    def _binds_linear(self, binding: cst.CSTNode) -> bool:
        if isinstance(binding, (cst.For, cst.CompFor)):
            return self._is_collection(binding.iter)
        if isinstance(binding, cst.Assign):
            return self.is_linear(binding.value)
        return False

    def _is_collection(self, node: cst.BaseExpression) -> bool:
        if m.matches(node, _SELF_ATTR):
            return self._attribute_kind(node.attr.value) == "collection"  # type: ignore[attr-defined]
        if isinstance(node, cst.Subscript) and not _is_index(node):
            return all(isinstance(e.slice, cst.Slice) for e in node.slice) and self._is_collection(node.value)
        if _builtin_call(node, _SAME_ITEMS):
            return self._is_collection(node.args[0].value)  # type: ignore[attr-defined]
        return False

    # -- in __init__ --
    def _attribute_kind(self, attribute: str) -> str | None:
        """``"linear"`` or ``"collection"`` for ``self.<attribute>`` assigned once, in ``__init__``, to such a value."""
        assignments = self.attributes.get(attribute, [])
        if self.init is None or len(assignments) != 1 or id(assignments[0]) not in self.parents:
            return None
        assert isinstance(assignments[0], cst.Assign)  # augmented and annotated ones count twice
        kind = self._init_kind(assignments[0].value, set())
        return kind if kind == "linear" or _never_changed(self.klass, attribute) else None

    def _init_kind(self, node: cst.BaseExpression, seen: set[str]) -> str | None:
        if isinstance(node, cst.Call) and self.haiku_name(node.func) == "haiku.Linear":
            return "linear"
        if isinstance(node, (cst.List, cst.Tuple)):
            items = [e for e in node.elements if not isinstance(e, cst.StarredElement)]
            linear = len(items) == len(node.elements) and all(self._init_kind(e.value, seen) == "linear" for e in items)
            return "collection" if linear else None
        if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
            return "collection" if self._init_kind(node.elt, seen) == "linear" else None  # type: ignore[arg-type]
        if _builtin_call(node, ("tuple", "list")):
            return "collection" if self._init_kind(node.args[0].value, seen) == "collection" else None  # type: ignore[attr-defined]
        if isinstance(node, cst.Name) and node.value not in seen:
            return "collection" if self._local_collection(node.value, seen | {node.value}) else None
        return None

    def _local_collection(self, name: str, seen: set[str]) -> bool:
        """A local list of ``__init__`` only ever holding ``hk.Linear`` layers."""
        assert self.init is not None
        uses = [n for n in walk(self.init.body) if isinstance(n, cst.Name) and n.value == name and self._is_variable(n)]
        if not uses:
            return False
        for use in uses:
            parent = self.parents.get(id(use))
            if isinstance(parent, cst.AssignTarget):
                assign = self.parents.get(id(parent))
                value = assign.value if isinstance(assign, cst.Assign) and len(assign.targets) == 1 else None
                empty = isinstance(value, cst.List) and not value.elements
                if value is None or not (empty or self._init_kind(value, seen) == "collection"):
                    return False
            elif isinstance(parent, cst.Attribute) and parent.value is use:
                if not self._fills_with_linears(parent, seen):
                    return False
            elif not self._only_read(use, parent):
                return False
        return True

    def _is_variable(self, name: cst.Name) -> bool:
        """Not an attribute's or a keyword argument's name (``self.layers``, ``f(layers=...)``)."""
        parent = self.parents.get(id(name))
        return not (isinstance(parent, cst.Attribute) and parent.attr is name) and not (
            isinstance(parent, cst.Arg) and parent.keyword is name
        )

    def _fills_with_linears(self, method: cst.Attribute, seen: set[str]) -> bool:
        """``name.append(<hk.Linear>)`` or ``name.extend(<collection>)``."""
        call = self.parents.get(id(method))
        if not isinstance(call, cst.Call) or call.func is not method or len(call.args) != 1 or call.args[0].keyword:
            return False
        wanted = {"append": "linear", "extend": "collection"}.get(method.attr.value)
        return wanted is not None and self._init_kind(call.args[0].value, seen) == wanted

    def _only_read(self, use: cst.Name, parent: cst.CSTNode | None) -> bool:
        """The list is copied (``tuple(name)``, ``list(name)``) or stored (``self.x = name``), never handed on."""
        if isinstance(parent, cst.Arg):
            call = self.parents.get(id(parent))
            return _builtin_call(call, ("tuple", "list")) if call is not None else False
        if isinstance(parent, cst.Assign) and parent.value is use:
            return all(m.matches(t.target, _SELF_ATTR) for t in parent.targets)
        return False


def _never_changed(klass: cst.ClassDef, attribute: str) -> bool:
    """``self.<attribute>`` is only ever read: iterated, indexed, called, or given to a reading builtin."""
    parents = {id(child): node for node in walk(klass) for child in node.children}
    for node in walk(klass):
        if not m.matches(node, m.Attribute(m.Name("self"), m.Name(attribute))):
            continue
        parent = parents.get(id(node))
        if isinstance(parent, cst.AssignTarget):
            continue  # the one assignment (counted by the caller)
        if isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in _MUTATORS:
            return False
        if isinstance(parent, cst.Subscript) and isinstance(parents.get(id(parent)), (cst.AssignTarget, cst.Del)):
            return False
        if isinstance(parent, cst.Arg) and not _reading_call(parents.get(id(parent)), parent):
            return False
    return True


def _attribute_assignments(klass: cst.ClassDef) -> dict[str, list[cst.BaseSmallStatement]]:
    """Every assignment to ``self.<attribute>`` in the class; an augmented or annotated one counts as unknown."""
    found: dict[str, list[cst.BaseSmallStatement]] = {}
    for node in walk(klass):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                if m.matches(target.target, _SELF_ATTR):
                    found.setdefault(target.target.attr.value, []).append(node)  # type: ignore[attr-defined]
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)) and m.matches(node.target, _SELF_ATTR):
            found.setdefault(node.target.attr.value, []).extend([node, node])  # type: ignore[attr-defined]  # never "once"
    return found


def _bindings(method: cst.FunctionDef, name: str) -> list[cst.CSTNode]:
    """What binds ``name`` in the method: loops and comprehensions over it, assignments, parameters, others."""
    found: list[cst.CSTNode] = []
    for node in walk(method):
        if isinstance(node, (cst.For, cst.CompFor)) and _binds(node.target, name):
            found.append(node)
        elif isinstance(node, cst.Assign) and any(_binds(t.target, name) for t in node.targets):
            found.append(
                node if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name) else node.targets[0]
            )
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.NamedExpr, cst.WithItem, cst.ExceptHandler)):
            if any(isinstance(n, cst.Name) and n.value == name for n in walk(node)):
                found.append(node.target if hasattr(node, "target") else node)  # unknown kind: not a linear
        elif isinstance(node, cst.Param) and node.name.value == name:
            found.append(node)
    return found


def _binds(target: cst.BaseExpression, name: str) -> bool:
    return any(isinstance(n, cst.Name) and n.value == name for n in walk(target))


def _is_index(node: cst.Subscript) -> bool:
    """``x[i]`` with one index free of calls (cheap to evaluate twice), not a slice."""
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return False
    return not any(isinstance(n, cst.Call) for n in walk(node.slice[0].slice))


def _reading_call(call: cst.CSTNode | None, arg: cst.Arg) -> bool:
    """``len(x)``, ``zip(x, y)``, ...: a builtin that only reads ``arg``."""
    return (
        isinstance(call, cst.Call)
        and isinstance(call.func, cst.Name)
        and call.func.value in _READERS
        and arg.keyword is None
        and not arg.star
    )


def _builtin_call(node: cst.CSTNode | None, names: tuple[str, ...]) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value in names
        and len(node.args) == 1
        and node.args[0].keyword is None
        and not node.args[0].star
    )


# -- rewriting -----------------------------------------------------------------


class _InputSizeReads(cst.CSTTransformer):
    """``x.input_size is not None`` -> ``x.has_variable(...)``; any other read -> the kernel's first dimension."""

    def leave_Comparison(self, original_node: cst.Comparison, updated_node: cst.Comparison) -> cst.BaseExpression:
        if len(original_node.comparisons) != 1 or not _is_input_size(original_node.left):
            return updated_node
        target = original_node.comparisons[0]
        if not m.matches(target.comparator, m.Name("None")):
            return updated_node
        receiver = original_node.left.value  # type: ignore[attr-defined]
        has_kernel = cst.parse_expression(f"{code(receiver)}.has_variable({_KERNEL})")
        if isinstance(target.operator, cst.IsNot):
            return has_kernel.with_changes(lpar=updated_node.lpar, rpar=updated_node.rpar)
        if isinstance(target.operator, cst.Is):
            return cst.UnaryOperation(cst.Not(), has_kernel, lpar=updated_node.lpar, rpar=updated_node.rpar)
        return updated_node

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        if not _is_input_size(original_node):
            return updated_node
        receiver = code(original_node.value)
        expression = cst.parse_expression(
            f"({receiver}.get_variable({_KERNEL}).shape[0] if {receiver}.has_variable({_KERNEL}) else None)"
        )
        return expression


def _is_input_size(node: cst.CSTNode) -> bool:
    return m.matches(node, m.Attribute(attr=m.Name("input_size")))


__all__ = ["FactoryMethod", "input_size_reason", "plan_factory", "rewrite_input_sizes"]
