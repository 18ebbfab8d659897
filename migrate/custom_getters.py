"""``with hk.custom_getter(cast):`` over a dtype cast -> ``nn.map_variables`` on the layers built in the block.

Haiku runs a custom getter on every parameter a module reads inside the
``with`` block (``haiku/_src/base.py::custom_getter``). The common getter casts
the parameter (``return next_getter(value.astype(jnp.bfloat16))``); Linen's
counterpart is ``nn.map_variables(Cls, "params", trans_in_fn=fn, init=True)``,
whose ``fn`` maps one module's whole parameter dict when it is read (and
``init=True`` lets the wrapped module create its parameters)::

    def to_bf16(next_getter, value, context):
        return next_getter(value.astype(jnp.bfloat16))

    with hk.custom_getter(to_bf16):
        y = hk.Linear(8)(x)
    ->
    y = nn.map_variables(
        nn.Dense, "params",
        trans_in_fn=lambda vs: jax.tree.map(lambda v: v.astype(jnp.bfloat16), vs),
        trans_out_fn=lambda vs: jax.tree.map(lambda v: v.astype(jnp.float32), vs),
        init=True,
    )(8, ..., name="linear")(x)

The names stay Haiku's (a getter adds no scope); outputs are bit-identical
(checked on CPU for ``hk.Linear`` in bfloat16), and so are gradients of layers
without a bias. A biased layer (or a user module) also gets a TODO note: Haiku's
``hk.Linear`` broadcasts the cast bias before adding it, so its bias gradient
is summed in the cast dtype, Linen's in float32 before the cast (one rounding
apart). ``trans_out_fn``
keeps the stored parameters float32 (Linen's ``param_dtype``, and what Haiku
stores for float32 inputs): Linen's ``init=True`` stores the mapped view, so
without it the tree would hold bfloat16 leaves; the price is that the values
Linen draws at init pass through the cast once (init only: a converted
checkpoint is read, never written, by ``apply``). This pass runs after the
module pass, so the layers are already Linen ones.

Rewritten only when it is certain that the getter sees exactly what Haiku's
does: the getter is a module-level ``def g(next_getter, value, context)`` whose
body is that one ``return`` of a cast to a literal ``jnp``/``np`` dtype; the
``with`` has one item, no ``as``, no ``state=``; it stands directly in a method
body; every call in the block builds a Linen layer or a module class of this
file, calls one built there, or is a ``jax``/``numpy`` function; and no name a
layer built in the block is bound to is read after the block (Haiku's getter
does not reach calls made outside the context). Anything else keeps the TODO
``leftovers.py`` writes (``unsupported.py`` says how to port it).
"""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.metadata import QualifiedNameProvider

from flaxify.migrate.base import FlaxifyCommand, MigrationState, has_todo
from flaxify.migrate.layers_common import code, walk
from flaxify.migrate.rewrite import JAX_IMPORT

GETTERS = frozenset({"haiku.custom_getter", "haiku.experimental.custom_getter"})
_PURE = ("jax.", "numpy.")
_ARRAY_METHODS = frozenset(
    {"astype", "reshape", "transpose", "swapaxes", "squeeze", "sum", "mean", "max", "min", "std", "var", "clip", "ravel", "flatten"}
)


class CustomGettersCommand(FlaxifyCommand):
    """Unwraps ``with hk.custom_getter(cast):`` blocks whose layers can carry the cast themselves."""

    DESCRIPTION = "Turns hk.custom_getter dtype casts into nn.map_variables on the layers of the block."
    METADATA_DEPENDENCIES = (QualifiedNameProvider,)

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"custom_getter" in source

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._casts: dict[str, str] = {}  # module-level getter def -> dtype expression
        # id(With) -> (dtype, ids of constructions to wrap); custom_creators.py keeps its creator there instead
        self._plans: dict[int, tuple[Any, set[int]]] = {}

    def visit_Module(self, node: cst.Module) -> None:
        for stmt in node.body:
            if isinstance(stmt, cst.FunctionDef) and (dtype := self._cast_getter(stmt)) is not None:
                self._casts[stmt.name.value] = dtype

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if not isinstance(node.body, cst.IndentedBlock):
            return
        statements = list(node.body.body)
        for index, stmt in enumerate(statements):
            if isinstance(stmt, cst.With) and not has_todo(stmt):
                plan = self._plan(stmt, statements[index + 1 :])
                if plan is not None:
                    self._plans[id(stmt)] = plan

    # -- analysis -------------------------------------------------------------------
    def _cast_getter(self, node: cst.FunctionDef) -> str | None:
        """``dtype`` for ``def g(next_getter, value, context): return next_getter(value.astype(dtype))``."""
        params = node.params
        extra = isinstance(params.star_arg, cst.Param) or params.kwonly_params or params.star_kwarg or params.posonly_params
        if node.decorators or len(params.params) != 3 or extra:
            return None
        nxt, value = params.params[0].name.value, params.params[1].name.value
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        if len(body) != 1 or not isinstance(body[0], cst.SimpleStatementLine) or len(body[0].body) != 1:
            return None
        ret = body[0].body[0]
        if not isinstance(ret, cst.Return) or not isinstance(ret.value, cst.Call) or code(ret.value.func) != nxt:
            return None
        if len(ret.value.args) != 1 or ret.value.args[0].keyword is not None or ret.value.args[0].star:
            return None
        cast = ret.value.args[0].value
        if not (isinstance(cast, cst.Call) and isinstance(cast.func, cst.Attribute) and cast.func.attr.value == "astype"):
            return None
        if code(cast.func.value) != value or len(cast.args) != 1 or cast.args[0].keyword is not None:
            return None
        dtype = cast.args[0].value
        spelled = self.resolve_spelling(dtype) if isinstance(dtype, (cst.Name, cst.Attribute)) else None
        if spelled is None or not spelled.startswith(("jax.numpy.", "numpy.")):
            return None
        return code(dtype)

    def _plan(self, node: cst.With, after: list[cst.BaseStatement]) -> tuple[str, set[int]] | None:
        arg = self._with_argument(node, GETTERS)
        if not isinstance(arg, cst.Name) or arg.value not in self._casts:
            return None
        wrapped = self._block_layers(node, after)
        return None if wrapped is None else (self._casts[arg.value], wrapped)

    def _with_argument(self, node: cst.With, apis: frozenset[str]) -> cst.BaseExpression | None:
        """``arg`` of ``with <one of apis>(arg):`` (one item, no ``as``, one positional argument), else None."""
        if len(node.items) != 1 or node.items[0].asname is not None or node.asynchronous:
            return None
        call = node.items[0].item
        if not isinstance(call, cst.Call) or self.haiku_name(call.func) not in apis or len(call.args) != 1:
            return None
        arg = call.args[0]
        return None if arg.keyword is not None or arg.star else arg.value

    def _block_layers(self, node: cst.With, after: list[cst.BaseStatement]) -> set[int] | None:
        """Ids of the layer constructions of the block, when they are all its modules and none is used after it."""
        wrapped: set[int] = set()
        bound: set[str] = set()  # names holding a layer built in the block
        for sub in walk(node.body):
            if isinstance(sub, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                return None  # deferred code may run outside the context
            if isinstance(sub, cst.Assign) and isinstance(sub.value, cst.Call) and self._builds(sub.value):
                bound.update(t.target.value for t in sub.targets if isinstance(t.target, cst.Name))
        for sub in walk(node.body):
            if not isinstance(sub, cst.Call):
                continue
            if self._builds(sub):
                wrapped.add(id(sub))
            elif not (isinstance(sub.func, cst.Call) and self._builds(sub.func)) and not self._allowed(sub, bound):
                return None
        later = {n.value for stmt in after for n in walk(stmt) if isinstance(n, cst.Name)}
        if not wrapped or bound & later:
            return None
        return wrapped

    def _builds(self, call: cst.Call) -> bool:
        """A Linen layer (``nn.X(...)``, capitalised) or a module class of this file being constructed."""
        func = call.func
        if any(a.keyword is not None and a.keyword.value == "param_dtype" for a in call.args):
            return False  # stored in another dtype: the float32 cast back would change it
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == self.state.nn:
            return func.attr.value[:1].isupper()
        return isinstance(func, cst.Name) and func.value in self.state.module_classes

    def _allowed(self, call: cst.Call, bound: set[str]) -> bool:
        """Calls a layer built in the block, or a jax/numpy function (a method of an array counts too)."""
        func = call.func
        if isinstance(func, cst.Name) and func.value in bound:
            return True
        if code(func).startswith(f"{self.state.nn}.initializers."):
            return True  # the layers' initializer arguments (flax.linen is imported after the passes)
        spelled = self.resolve_spelling(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if spelled is not None:
            return spelled.startswith(_PURE) or spelled in ("jax", "numpy")
        # `x.reshape(...)`, `(a + b).sum()`: array methods, never a module's.
        return isinstance(func, cst.Attribute) and func.attr.value in _ARRAY_METHODS

    # -- rewriting -------------------------------------------------------------------
    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        for dtype, wrapped in self._plans.values():
            if id(original_node) in wrapped:
                self.need_import(JAX_IMPORT)
                cast_in = f"lambda vs: jax.tree.map(lambda v: v.astype({dtype}), vs)"
                # Linen's init stores the mapped view; Haiku stores the created float32 values.
                cast_out = f"lambda vs: jax.tree.map(lambda v: v.astype({self.state.jnp}.float32), vs)"
                options = f'"params", trans_in_fn={cast_in}, trans_out_fn={cast_out}, init=True'
                lifted = f"{self.state.nn}.map_variables({code(updated_node.func)}, {options})"
                self.need_jnp()
                return updated_node.with_changes(func=cst.parse_expression(lifted))
        return updated_node

    def leave_With(self, original_node: cst.With, updated_node: cst.With):  # type: ignore[no-untyped-def]
        if id(original_node) not in self._plans:
            return updated_node
        body = list(updated_node.body.body) if isinstance(updated_node.body, cst.IndentedBlock) else []
        if not body:
            return updated_node
        body[0] = body[0].with_changes(leading_lines=[*updated_node.leading_lines, *body[0].leading_lines])
        dtype, wrapped = self._plans[id(original_node)]
        if any(id(n) in wrapped and not self._without_bias(n) for n in walk(original_node.body)):
            self.todo(
                "hk.custom_getter",
                f"outputs are bit-exact, gradients nearly: Haiku's hk.Linear broadcasts its cast bias before adding it, so its"
                f" bias gradient is summed in {dtype}; Linen's Dense sums it in float32, then casts (one {dtype} rounding apart)",
            )
        return cst.FlattenSentinel(body)

    def _without_bias(self, call: cst.Call) -> bool:
        """An ``nn.Dense(..., use_bias=False)``: no bias gradient to differ."""
        layer = code(call.func).removeprefix(f"{self.state.nn}.")
        no_bias = any(a.keyword is not None and a.keyword.value == "use_bias" and code(a.value) == "False" for a in call.args)
        return layer == "Dense" and no_bias
