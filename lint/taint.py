"""Which values in a traced function are traced, and which are static.

Flow-insensitive and monotone: a name is traced if any assignment to it in the
function is traced. Static information is what JAX keeps concrete under
``jit``: ``.shape``/``.ndim``/``.dtype``, ``len``, ``is None`` tests, string
comparisons, constants, static arguments. When unsure, a value is not traced
(precision first).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from flaxify.lint.model import Taint
from flaxify.lint.project import FunctionInfo

STATIC_ATTRS = frozenset(
    {"shape", "ndim", "dtype", "size", "aval", "sharding", "weak_type", "itemsize", "nbytes", "device", "devices"}
)
# Builtins whose result is a concrete Python value (the call itself may be a finding).
STATIC_BUILTINS = frozenset(
    {"len", "isinstance", "issubclass", "type", "hasattr", "callable", "id", "str", "repr", "int", "float",
     "bool", "complex", "range", "print", "format", "hash", "super", "object", "iter", "next", "vars", "dir"}
)
ARRAY_BUILTINS = frozenset({"abs", "min", "max", "sum", "round", "pow", "divmod"})
ARRAY_METHODS = frozenset(
    {"sum", "mean", "max", "min", "prod", "std", "var", "reshape", "astype", "dot", "transpose", "squeeze",
     "ravel", "flatten", "argmax", "argmin", "any", "all", "cumsum", "clip", "round", "conj", "swapaxes",
     "repeat", "take", "sort", "argsort", "nonzero", "view", "item", "tolist"}
)
# Functions returning static information even when given traced arrays.
STATIC_FUNCTIONS = frozenset(
    {"jax.numpy.shape", "jax.numpy.ndim", "jax.numpy.size", "jax.numpy.result_type", "jax.numpy.dtype",
     "jax.numpy.iinfo", "jax.numpy.finfo", "jax.numpy.issubdtype", "jax.numpy.promote_types",
     "jax.numpy.can_cast", "jax.numpy.isdtype", "jax.tree_util.tree_structure", "jax.tree.structure",
     "jax.dtypes.canonicalize_dtype", "jax.dtypes.result_type", "numpy.shape", "numpy.ndim", "numpy.dtype",
     "jax.eval_shape", "jax.ShapeDtypeStruct", "jax.typeof", "jax.numpy.isscalar", "numpy.isscalar",
     "jax.numpy.iscomplexobj", "jax.numpy.isrealobj", "numpy.iscomplexobj", "numpy.isrealobj",
     "jax.core.get_aval", "jax.numpy.broadcast_shapes", "numpy.broadcast_shapes"}
)
# JAX functions returning Python containers (lists, tuples, pytrees) of what they are given:
# `not jax.tree.leaves(x)` asks whether the list is empty, which is static.
TREE_FUNCTIONS = frozenset(
    {"jax.tree.leaves", "jax.tree_util.tree_leaves", "jax.tree.flatten", "jax.tree_util.tree_flatten",
     "jax.tree.map", "jax.tree_util.tree_map", "jax.tree.unflatten", "jax.tree_util.tree_unflatten",
     "jax.tree.transpose", "jax.tree_util.tree_transpose", "jax.tree_util.tree_flatten_with_path",
     "jax.tree.flatten_with_path", "jax.tree.leaves_with_path", "jax.tree_util.tree_leaves_with_path",
     "jax.numpy.split", "jax.numpy.array_split", "jax.numpy.hsplit", "jax.numpy.vsplit", "jax.numpy.dsplit"}
)
# Calls that create traced values out of static arguments.
TRACED_SOURCES = frozenset(
    {"jax.lax.axis_index", "haiku.get_parameter", "haiku.get_state", "haiku.next_rng_key",
     "haiku.maybe_next_rng_key"}
)
ARRAY_ATTRS = frozenset({"T", "mT", "real", "imag", "at", "H", "value"})
TRACED_SELF_METHODS = frozenset({"param", "make_rng"})
ARRAY_NAMESPACES = ("jax.", "flax.linen.", "optax.", "haiku.")
ARRAY_ANNOTATIONS = ("Array", "ndarray", "ArrayLike", "Float", "Int", "Tensor", "PRNGKey", "KeyArray")
STATIC_ANNOTATIONS = ("bool", "int", "str", "float", "Callable", "Sequence", "Optional", "tuple", "Tuple",
                      "Literal", "Mapping", "dict", "Dict", "list", "List", "Iterable", "Module", "Any")

Qualifier = Callable[[ast.expr], "str | None"]
# Taint of a call to a project function, from its return statements; None when not a project function.
Summarizer = Callable[[ast.Call], "Taint | None"]
# Per-position taints when the project function always returns a tuple of one length.
ItemSummarizer = Callable[[ast.Call], "tuple[Taint, ...] | None"]


def annotation_taint(annotation: ast.expr | None) -> Taint | None:
    """ARRAY for ``jax.Array``-like annotations, NONE for Python types, None if unknown."""
    if annotation is None:
        return None
    text = ast.unparse(annotation)
    if any(word in text for word in ARRAY_ANNOTATIONS):
        return Taint.ARRAY
    if any(word in text for word in STATIC_ANNOTATIONS):
        return Taint.NONE
    return None


class Env:
    """Taints of the names of one function, and of any expression in it."""

    def __init__(self, fn: FunctionInfo, params: Mapping[str, Taint], closure: Mapping[str, Taint],
                 qualify: Qualifier, summarize: Summarizer | None = None,
                 summarize_items: ItemSummarizer | None = None) -> None:
        self.fn = fn
        self.summarize = summarize
        self.summarize_items = summarize_items
        self.names: dict[str, Taint] = {k: v for k, v in params.items() if v}
        self.closure = closure
        self.qualify = qualify
        self._memo: dict[int, Taint] | None = None
        self._solve()

    def _solve(self) -> None:
        for _ in range(6):
            before = dict(self.names)
            for target, value, how in self.fn.facts:
                self._bind_fact(target, value, how)
            if before == self.names:
                break
        self._memo = {}

    def _bind_fact(self, target: ast.expr, value: ast.expr, how: str) -> None:
        if how == "with":
            return
        if how == "iter":
            self._bind_iter(target, value)
            return
        if (isinstance(target, ast.Tuple) and isinstance(value, ast.Call) and self.summarize_items is not None
                and not any(isinstance(e, ast.Starred) for e in target.elts)):
            items = self.summarize_items(value)
            if items is not None and len(items) == len(target.elts):
                for elt, item in zip(target.elts, items):
                    self._bind(elt, item)
                return
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
            for elt, item in zip(target.elts, value.elts):
                self._bind(elt, self.of(item))
            return
        taint = self.of(value)
        if how == "aug" and taint:
            taint = Taint.ARRAY
        self._bind(target, taint)

    def _bind_iter(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            name = value.func.id
            if name == "range":
                return
            if name in ("enumerate", "zip") and isinstance(target, ast.Tuple):
                sources = value.args if name == "zip" else [None, *value.args[:1]]
                for elt, src in zip(target.elts, sources):
                    if src is not None:
                        self._bind(elt, self.of(src))
                return
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                and value.func.attr == "items" and isinstance(target, ast.Tuple) and len(target.elts) == 2):
            self._bind(target.elts[1], self.of(value.func.value))
            return
        self._bind(target, self.of(value))

    def _bind(self, target: ast.expr, taint: Taint) -> None:
        if not taint:
            return
        if isinstance(target, ast.Name):
            if taint > self.names.get(target.id, Taint.NONE):
                self.names[target.id] = taint
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._bind(elt, taint)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, Taint.TREE)

    # --- expressions ------------------------------------------------------------
    def of(self, node: ast.expr | None) -> Taint:
        """The taint of ``node`` (memoized once the names are solved)."""
        if node is None:
            return Taint.NONE
        memo = self._memo
        if memo is None:
            return self._compute(node)
        key = id(node)
        found = memo.get(key)
        if found is None:
            found = memo[key] = self._compute(node)
        return found

    def name(self, name: str) -> Taint:
        if name in self.names:
            return self.names[name]
        if name in self.fn.locals:
            return Taint.NONE
        return self.closure.get(name, Taint.NONE)

    def _compute(self, node: ast.expr) -> Taint:
        method = _DISPATCH.get(type(node))
        return method(self, node) if method else Taint.NONE

    def _any(self, nodes: list[ast.expr]) -> Taint:
        best = Taint.NONE
        for item in nodes:
            taint = self.of(item)
            if taint > best:
                best = taint
                if best == Taint.ARRAY:
                    break
        return best

    def _name(self, node: ast.Name) -> Taint:
        return self.name(node.id)

    def _attribute(self, node: ast.Attribute) -> Taint:
        if node.attr in STATIC_ATTRS or node.attr.startswith("__"):
            return Taint.NONE
        base = self.of(node.value)
        if base == Taint.ARRAY and node.attr not in ARRAY_ATTRS:
            return Taint.TREE  # an unknown attribute of an array-valued expression: not surely an array
        return base

    def _subscript(self, node: ast.Subscript) -> Taint:
        return self.of(node.value)

    def _binop(self, node: ast.BinOp) -> Taint:
        if isinstance(node.op, ast.Mod) and isinstance(node.left, (ast.Constant, ast.JoinedStr)):
            return Taint.NONE  # "%s" % x is string formatting
        taint = max(self.of(node.left), self.of(node.right))
        if not taint:
            return taint
        sides = (node.left, node.right)
        if isinstance(node.op, ast.Add) and any(isinstance(side, (ast.Tuple, ast.List)) for side in sides):
            return Taint.TREE
        return Taint.ARRAY

    def _unary(self, node: ast.UnaryOp) -> Taint:
        if isinstance(node.op, ast.Not):
            return Taint.NONE
        return Taint.ARRAY if self.of(node.operand) else Taint.NONE

    def _compare(self, node: ast.Compare) -> Taint:
        if any(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in node.ops):
            return Taint.NONE
        operands = [node.left, *node.comparators]
        for item in operands:
            if isinstance(item, ast.Constant) and (item.value is None or isinstance(item.value, (str, bytes))):
                return Taint.NONE
        taint = self._any(operands)
        if taint == Taint.TREE and all(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            # `==` is defined on anything (treedefs, configs, graph metadata): only arrays are certain.
            return Taint.NONE
        return Taint.ARRAY if taint else Taint.NONE

    def _boolop(self, node: ast.BoolOp) -> Taint:
        return self._any(node.values)

    def _ifexp(self, node: ast.IfExp) -> Taint:
        return max(self.of(node.body), self.of(node.orelse))

    def _container(self, node: ast.Tuple | ast.List | ast.Set) -> Taint:
        return Taint.TREE if self._any(node.elts) else Taint.NONE

    def _dict(self, node: ast.Dict) -> Taint:
        return Taint.TREE if self._any(node.values) else Taint.NONE

    def _comp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> Taint:
        return Taint.TREE if self.of(node.elt) else Taint.NONE

    def _dictcomp(self, node: ast.DictComp) -> Taint:
        return Taint.TREE if self.of(node.value) else Taint.NONE

    def _starred(self, node: ast.Starred) -> Taint:
        return self.of(node.value)

    def _named(self, node: ast.NamedExpr) -> Taint:
        return self.of(node.value)

    def _call(self, node: ast.Call) -> Taint:
        func = node.func
        args = [*node.args, *(k.value for k in node.keywords)]
        if isinstance(func, ast.Name) and func.id not in self.fn.locals and func.id in STATIC_BUILTINS:
            if self.qualify(func) is None:
                return Taint.NONE
        if self.summarize is not None:
            summary = self.summarize(node)
            if summary is not None:
                return summary
        qualname = self.qualify(func)
        if qualname is not None:
            if qualname in STATIC_FUNCTIONS:
                return Taint.NONE
            if qualname in TRACED_SOURCES:
                return Taint.ARRAY
            if qualname in TREE_FUNCTIONS:
                return Taint.TREE if self._any(args) else Taint.NONE
            if qualname.startswith(ARRAY_NAMESPACES):
                return Taint.ARRAY if self._any(args) else Taint.NONE
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id == "self" and func.attr in TRACED_SELF_METHODS:
                return Taint.ARRAY
            receiver = self.of(func.value)
            if receiver:
                return Taint.ARRAY if receiver == Taint.ARRAY or func.attr in ARRAY_METHODS else Taint.TREE
        elif isinstance(func, ast.Name) and func.id in ARRAY_BUILTINS and self.qualify(func) is None:
            return Taint.ARRAY if self._any(args) else Taint.NONE
        return Taint.TREE if self._any(args) else Taint.NONE


_DISPATCH: dict[type, Callable[[Env, Any], Taint]] = {
    ast.Name: Env._name,
    ast.Attribute: Env._attribute,
    ast.Subscript: Env._subscript,
    ast.BinOp: Env._binop,
    ast.UnaryOp: Env._unary,
    ast.Compare: Env._compare,
    ast.BoolOp: Env._boolop,
    ast.IfExp: Env._ifexp,
    ast.Tuple: Env._container,
    ast.List: Env._container,
    ast.Set: Env._container,
    ast.Dict: Env._dict,
    ast.ListComp: Env._comp,
    ast.SetComp: Env._comp,
    ast.GeneratorExp: Env._comp,
    ast.DictComp: Env._dictcomp,
    ast.Starred: Env._starred,
    ast.NamedExpr: Env._named,
    ast.Call: Env._call,
}
