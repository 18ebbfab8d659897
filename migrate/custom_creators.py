"""``with hk.custom_creator(c):`` fixing the initial values or the dtype -> ``nn.map_variables`` / ``param_dtype=``.

Haiku runs a custom creator when a parameter is *created* inside the ``with``
block (``haiku/_src/base.py::custom_creator``): it sees ``(next_creator, shape,
dtype, init, context)`` and usually swaps the initializer::

    def zeros_creator(next_creator, shape, dtype, init, context):
        return next_creator(shape, dtype, jnp.zeros)

    with hk.custom_creator(zeros_creator):
        logits = hk.Linear(4, name="logits")(h)
    ->
    logits = nn.map_variables(
        nn.Dense, "params", trans_out_fn=lambda vs: jax.tree.map(jnp.zeros_like, vs), init=True
    )(4, ..., name="logits")(h)

With ``init=True``, ``nn.map_variables`` stores what ``trans_out_fn`` makes of
the parameters the layer creates at init, so the stored values are exactly
Haiku's: ``jnp.zeros`` / ``jnp.ones`` (or ``np.``) become ``zeros_like`` /
``ones_like``, ``hk.initializers.Constant(c)`` fills each leaf with
``jnp.asarray(c)`` cast to its dtype, as Haiku's ``Constant`` does. ``apply``
reads the stored (or converted) values untouched: ``trans_in_fn`` is the
identity and parameters are not written outside init. Names stay Haiku's (a
creator adds no scope). The layer still draws its own initial values first
(Linen's init needs them to run the layer); Haiku skips that draw, which only
moves which key later Haiku initializers get, never a value the block stores.

The other common creator changes the dtype the parameters are created in
(``return next_creator(shape, jnp.bfloat16, init)``): the layer's initializer
draws in that dtype and the parameter is stored so. That is Linen's
``param_dtype=``, added to each ``nn.Dense`` built in the block; ``hk.Linear``
and ``nn.Dense`` then both compute in the promoted dtype of input and
parameters (float32 for float32 inputs), bit-exact on the same parameters,
gradients included (the random draws follow the same law, not the same bits).
Other layers compute differently with parameters in another dtype (``lax``
convolutions do not promote, norms reduce in their own dtype), so a block
building any is left as it was.

Rewritten only when the creator is a module-level ``def c(next_creator, shape,
dtype, init, context)`` (or a ``lambda`` of five parameters in the ``with``)
that returns ``next_creator(shape, dtype, X)`` for one of those constant
initializers (possibly through one ``name = X`` first) or
``next_creator(shape, D, init)`` for a literal ``jnp``/``np`` dtype, the
``with`` has one item, no ``as``, no ``params=``/``state=``, and its block
builds the layers it calls and does not use them after it (as for
``custom_getters.py``: Haiku's creator reaches every parameter first created in
the block, which then is exactly the parameters of the layers built there).
Creators that call the initializer themselves, transform what
``next_creator`` returns, or read ``context`` (``full_name``, ``module_name``)
keep the TODO ``leftovers.py`` writes.
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.base import MigrationState
from flaxify.migrate.custom_getters import CustomGettersCommand
from flaxify.migrate.layers_common import code, literal, walk
from flaxify.migrate.rewrite import JAX_IMPORT

CREATORS = frozenset({"haiku.custom_creator", "haiku.experimental.custom_creator"})
# Array constructors whose result does not depend on a key: (qualified name, jnp twin for one leaf).
_FILLS = {
    "jax.numpy.zeros": "zeros_like",
    "numpy.zeros": "zeros_like",
    "jax.numpy.ones": "ones_like",
    "numpy.ones": "ones_like",
}


class CustomCreatorsCommand(CustomGettersCommand):
    """Unwraps ``with hk.custom_creator(c):`` blocks whose creator only fixes the initial values or the dtype."""

    DESCRIPTION = "Turns hk.custom_creator constant initializers / dtypes into nn.map_variables / param_dtype= on the block's layers."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"custom_creator" in source

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        # module-level creator def -> ("fill", per-leaf fill function) or ("dtype", the parameter dtype)
        self._fills: dict[str, tuple[str, str]] = {}

    def visit_Module(self, node: cst.Module) -> None:
        for stmt in node.body:
            if isinstance(stmt, cst.FunctionDef) and (fill := self._creator_def(stmt)) is not None:
                self._fills[stmt.name.value] = fill

    # -- analysis -------------------------------------------------------------------
    def _creator_def(self, node: cst.FunctionDef) -> str | None:
        """The fill of ``def c(next_creator, shape, dtype, init, context): [init = X]; return next_creator(shape, dtype, X)``."""
        if node.decorators or not isinstance(node.body, cst.IndentedBlock) or not _five_plain(node.params):
            return None
        smalls: list[cst.BaseSmallStatement] = []
        for stmt in node.body.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                return None
            smalls += stmt.body
        if not smalls or not isinstance(smalls[-1], cst.Return) or smalls[-1].value is None or len(smalls) > 2:
            return None
        names = {}
        if len(smalls) == 2:
            first = smalls[0]
            if not (isinstance(first, cst.Assign) and len(first.targets) == 1 and isinstance(first.targets[0].target, cst.Name)):
                return None
            if first.targets[0].target.value in {p.name.value for p in node.params.params[:3]}:
                return None  # rebinds next_creator, shape or dtype
            names[first.targets[0].target.value] = first.value
        return self._fill(node.params, smalls[-1].value, names)

    def _fill(self, params: cst.Parameters, result: cst.BaseExpression, names: dict[str, cst.BaseExpression]) -> tuple[str, str] | None:
        """``("fill", f)`` for ``next_creator(shape, dtype, X)``, X a constant initializer; ``("dtype", D)`` for
        ``next_creator(shape, D, init)``, D a literal ``jnp``/``np`` dtype; else None."""
        nxt, shape, dtype, original = (p.name.value for p in params.params[:4])
        if not isinstance(result, cst.Call) or code(result.func) != nxt or len(result.args) != 3:
            return None
        if any(a.keyword is not None or a.star for a in result.args) or code(result.args[0].value) != shape:
            return None
        new_dtype = result.args[1].value
        if code(new_dtype) != dtype:
            spelled = self.resolve_spelling(new_dtype) if isinstance(new_dtype, (cst.Name, cst.Attribute)) else None
            if code(result.args[2].value) != original or original in names or spelled is None:
                return None
            return ("dtype", code(new_dtype)) if spelled.startswith(("jax.numpy.", "numpy.")) else None
        init = result.args[2].value
        if isinstance(init, cst.Name) and init.value in names:
            init = names[init.value]
        used = {n.value for n in walk(init) if isinstance(n, cst.Name)}
        if used & {p.name.value for p in params.params}:
            return None  # reads the creator's own arguments (context, the original init, ...)
        fill = self._constant(init)
        return None if fill is None else ("fill", fill)

    def _constant(self, init: cst.BaseExpression) -> str | None:
        """``jnp.zeros_like`` for ``jnp.zeros``; a lambda filling with ``c`` for ``Constant(c)``; else None."""
        jnp = self.state.jnp
        if isinstance(init, (cst.Name, cst.Attribute)):
            spelled = self.resolve_spelling(init)
            return f"{jnp}.{_FILLS[spelled]}" if spelled in _FILLS else None
        if not isinstance(init, cst.Call) or len(init.args) != 1 or init.args[0].keyword is not None or init.args[0].star:
            return None
        value = literal(init.args[0].value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        # hk.initializers.Constant before the expressions pass, nn.initializers.constant after it.
        func = code(init.func)
        spelled = self.resolve_spelling(init.func) if isinstance(init.func, (cst.Name, cst.Attribute)) else None
        if spelled != "haiku.initializers.Constant" and func != f"{self.state.nn}.initializers.constant":
            return None
        # Haiku's Constant casts jnp.asarray(c) to the dtype (not c itself): the same rounding.
        return f"lambda v: {jnp}.full_like(v, {jnp}.asarray({code(init.args[0].value)}))"

    def _plan(self, node: cst.With, after: list[cst.BaseStatement]) -> tuple[tuple[str, str], set[int]] | None:  # type: ignore[override]
        """``((kind, fill or dtype), constructions to rewrite)`` for a creator block this pass rewrites."""
        arg = self._with_argument(node, CREATORS)
        fill = None
        if isinstance(arg, cst.Name):
            fill = self._fills.get(arg.value)
        elif isinstance(arg, cst.Lambda) and _five_plain(arg.params):
            fill = self._fill(arg.params, arg.body, {})
        wrapped = self._block_layers(node, after) if fill is not None else None
        if wrapped is None or fill is None:
            return None
        if fill[0] == "dtype" and not all(self._is_dense(n) for n in walk(node.body) if id(n) in wrapped):
            return None  # only nn.Dense is known to compute as hk.Linear does with parameters in another dtype
        return fill, wrapped

    def _is_dense(self, call: cst.CSTNode) -> bool:
        return isinstance(call, cst.Call) and code(call.func) == f"{self.state.nn}.Dense"

    # -- rewriting -------------------------------------------------------------------
    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        for (kind, fill), wrapped in self._plans.values():  # type: ignore[misc]
            if id(original_node) in wrapped and kind == "dtype":
                args = list(updated_node.args)
                equal = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))
                option = cst.Arg(cst.parse_expression(fill), keyword=cst.Name("param_dtype"), equal=equal)
                named = [i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == "name"]
                at = named[0] if named else len(args)  # before name=, as the other rewrites place options
                if at == len(args) and args:
                    args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                option = option.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))) if at < len(args) else option
                return updated_node.with_changes(args=[*args[:at], option, *args[at:]])
            if id(original_node) in wrapped:
                self.need_import(JAX_IMPORT)
                self.need_jnp()
                store = f"lambda vs: jax.tree.map({fill}, vs)"
                lifted = f'{self.state.nn}.map_variables({code(updated_node.func)}, "params", trans_out_fn={store}, init=True)'
                return updated_node.with_changes(func=cst.parse_expression(lifted))
        return updated_node

    def leave_With(self, original_node: cst.With, updated_node: cst.With):  # type: ignore[no-untyped-def]
        if id(original_node) not in self._plans or not isinstance(updated_node.body, cst.IndentedBlock):
            return updated_node
        body = list(updated_node.body.body)
        body[0] = body[0].with_changes(leading_lines=[*updated_node.leading_lines, *body[0].leading_lines])
        return cst.FlattenSentinel(body)


def _five_plain(params: cst.Parameters) -> bool:
    """``(next_creator, shape, dtype, init, context)``: five plain positional parameters."""
    extra = isinstance(params.star_arg, cst.Param) or params.kwonly_params or params.star_kwarg or params.posonly_params
    return len(params.params) == 5 and not extra and all(p.default is None for p in params.params)
