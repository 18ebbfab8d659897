"""Haiku layers, pools and initializers outside module scopes.

Inside converted module classes ``modules.py`` rewrites constructions (with
their Haiku names). Everything else lands here: module constructions in
helper functions called from a compact scope (rewritten without ``name=``:
their Haiku names depend on the caller, so Flax auto-names them and the
checker maps them by creation order and shape), ``hk.max_pool`` /
``hk.avg_pool`` anywhere, ``hk.dynamic_unroll`` / ``hk.static_unroll`` /
``hk.LSTMState`` anywhere (emitted helpers, ``recurrent.py``), and initializer constants such as
``W_INIT = hk.initializers.VarianceScaling(2.0)``.
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate import batch_apply, data_structures, lifted, prng, recurrent, utilities
from flaxify.migrate.base import FlaxifyCommand, parenthesized
from flaxify.migrate.initializers import rewrite_initializer
from flaxify.migrate.layers import rewrite_layer, rewrite_layer_call
from flaxify.migrate.pooling import rewrite_pool
from flaxify.migrate.rewrite import ImportSpec, Rewrite

POOLS = frozenset({"haiku.max_pool", "haiku.avg_pool"})
#: Haiku's tree type aliases (annotations) and flax.typing's: Linen trees nest one level per module,
#: so "a mapping of anything" is the honest type (hk.Params promises two levels of arrays).
TREE_TYPES = {
    "haiku.Params": "VariableDict",
    "haiku.State": "VariableDict",
    "haiku.MutableParams": "MutableVariableDict",
    "haiku.MutableState": "MutableVariableDict",
}


class RewriteLooseExpressionsCommand(FlaxifyCommand):
    DESCRIPTION = "Rewrites Haiku layers, pools and initializers outside module classes."

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._in_module_class: list[bool] = []
        self._called_at_once: set[int] = set()  # ids of `hk.Layer(...)` in `hk.Layer(...)(x)`

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        inside = bool(self._in_module_class and self._in_module_class[-1])
        self._in_module_class.append(inside or node.name.value in self.state.module_classes)

    def leave_ClassDef(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        self._in_module_class.pop()
        return updated_node

    def _module_scope(self) -> bool:
        return bool(self._in_module_class) and self._in_module_class[-1]

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Call) and self.is_haiku_module_class(self.haiku_name(node.func.func)):
            self._called_at_once.add(id(node.func))

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        qualname = self.haiku_name(original_node)
        if qualname == prng.QUALNAME:
            # `hk.PRNGSequence` as a value or a type (`rng: hk.PRNGSequence`): the emitted helper (prng.py).
            return self.apply_rewrite(Rewrite(cst.Name(prng.CLASS_NAME)), prng.QUALNAME, updated_node)
        if qualname in TREE_TYPES:
            return self._tree_type(qualname, updated_node)
        return updated_node

    def _tree_type(self, qualname: str, updated_node: cst.Attribute) -> cst.BaseExpression:
        """``params: hk.Params`` -> ``params: VariableDict`` (from flax.typing), unless the file binds that name."""
        name = TREE_TYPES[qualname]
        if name in self.state.user_names:
            return updated_node  # MarkLeftovers marks it: importing would shadow the user's name
        result = Rewrite(cst.Name(name), imports=(ImportSpec("flax.typing", name),))
        return self.apply_rewrite(result, qualname, updated_node)

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        qualname = self.haiku_name(original_node.func)
        if qualname in POOLS:
            result = rewrite_pool(updated_node, qualname, nn=self.state.nn, resolver=self.resolve_spelling)
            return self.apply_rewrite(result, qualname, updated_node)
        if qualname in lifted.LAYER_STACK_CALLS:
            return self.apply_rewrite(lifted.rewrite_layer_stack(updated_node), qualname, updated_node)
        if qualname in utilities.TREE_SUMS:
            return self.apply_rewrite(utilities.rewrite_tree_sum(updated_node, qualname), qualname, updated_node)
        if qualname in data_structures.CALLS:
            return self.apply_rewrite(data_structures.rewrite(updated_node, qualname, self.module, self.haiku_name), qualname, updated_node)
        if qualname in recurrent.FUNCTIONS or qualname in batch_apply.FUNCTIONS:
            # An emitted helper of the same name and signature (recurrent.py, batch_apply.py).
            name = cst.Name(qualname.rsplit(".", 1)[-1])
            return self.apply_rewrite(Rewrite(updated_node.with_changes(func=name)), qualname, updated_node)
        if qualname is not None and qualname.startswith("haiku.initializers."):
            # Anywhere, module scopes included: `init = hk.initializers.X(...)`
            # bindings are rewritten where they stand (bindings.py).
            result = rewrite_initializer(updated_node, qualname, nn=self.state.nn, jnp=self.state.jnp, resolver=self.resolve_spelling)
            return self.apply_rewrite(result, qualname, updated_node)
        if self._module_scope():
            return updated_node
        if self.is_haiku_module_class(qualname) and id(original_node) not in self._called_at_once:
            result = rewrite_layer(
                updated_node, qualname, name=None, nn=self.state.nn, jnp=self.state.jnp, resolver=self.resolve_spelling  # type: ignore[arg-type]
            )
            return self.apply_rewrite(result, qualname, updated_node)  # type: ignore[arg-type]
        if id(original_node.func) in self._called_at_once:
            return self._immediate_call(original_node.func, updated_node)  # type: ignore[arg-type]
        return updated_node

    def _immediate_call(self, inner: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        """``hk.Linear(3)(x, precision=p)``: call-time arguments may move into the constructor."""
        qualname = self.haiku_name(inner.func) or ""
        kwargs = {"name": None, "nn": self.state.nn, "jnp": self.state.jnp, "resolver": self.resolve_spelling}
        whole = rewrite_layer_call(updated, qualname, **kwargs)  # type: ignore[arg-type]
        if whole is not None:
            return self.apply_rewrite(whole, qualname, updated)
        constructor = updated.func
        assert isinstance(constructor, cst.Call)
        result = rewrite_layer(constructor, qualname, **kwargs)  # type: ignore[arg-type]
        return updated.with_changes(func=parenthesized(self.apply_rewrite(result, qualname, constructor)))

