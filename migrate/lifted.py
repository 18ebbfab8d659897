"""Haiku's lifted transforms over module-building code -> Linen lifted transforms.

``hk.remat(f)`` inside a module method becomes ``nn.remat`` of ``f`` lifted
over the calling module (the function form of ``nn.remat``), so the modules
``f`` builds keep their Haiku names in the caller's scope, as in Haiku::

    y = hk.remat(block, static_argnums=(1,))(x, training)
    ->
    y = functools.partial(nn.remat(lambda _, *args, **kwargs: block(*args, **kwargs), static_argnums=(2,)), self)(x, training)

(Flax counts the module as argument 0, so static positions shift by one.)

``hk.layer_stack(n)`` / ``hk.experimental.layer_stack(n)`` becomes the emitted
helper ``layer_stack(n)``: ``nn.scan`` over a one-layer body module with
``variable_axes={"params": 0}`` (every leaf stacked on a leading layer axis, as
in Haiku) and ``split_rngs={"params": True, "dropout": True}`` (a different
dropout mask per layer, as Haiku splits its key per layer). The body is named
``__layer_stack_no_per_layer`` / ``__layer_stack_with_per_layer`` like Haiku's::

    @hk.layer_stack(4)                       @layer_stack(4)
    def stack(x):                    ->      def stack(x):
      return Block(8)(x)                       return Block(8, name="block")(x)

``transparent``, ``pass_reverse_to_layer_fn`` and ``name`` are not rewritten
(marked TODO). ``hk.vmap(f, ..., split_rng=s)`` becomes ``nn.vmap`` lifted over
the calling module like ``hk.remat`` (parameters broadcast, the dropout stream
split when Haiku splits; an ``f`` drawing keys itself takes the mapped module). ``hk.scan(f, init, xs)`` and ``hk.map(fn, xs)`` become
``nn.scan`` lifted over the calling module (parameters broadcast, a fresh
dropout key per step), called at once; a function using state or drawing keys
itself is handed the scanned module instead, through the emitted
``stateful_scan`` (``lifted_loops.py`` marks it), as a closure over the calling
module would draw the same key at every step. ``hk.cond`` / ``hk.switch`` become
``nn.cond`` / ``nn.switch`` with branches lifted over the calling module (both
libraries need the branches' parameters to exist at init: build and call the
modules before the branch, as Haiku's docs ask). ``hk.while_loop`` and
``hk.fori_loop`` become ``nn.while_loop`` / the emitted ``fori_loop`` helper
(``lifted_loops.py``, which also turns loops over pure functions into
``jax.lax`` loops before the module pass).
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.layers_common import Signature, bind, code, free_name, literal
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported

REMAT = Signature("hk.remat", ("fun", "prevent_cse", "policy", "static_argnums"))
LAYER_STACK = Signature(
    "hk.layer_stack",
    ("num_layers", "with_per_layer_inputs", "unroll", "pass_reverse_to_layer_fn", "transparent", "transparency_map", "name"),
)
VMAP = Signature("hk.vmap", ("fun", "in_axes", "out_axes", "axis_name", "axis_size"), ("split_rng", "spmd_axis_name"))
SCAN = Signature("hk.scan", ("f", "init", "xs", "length", "reverse", "unroll"))
MAP = Signature("hk.map", ("fn", "xs"))
REMAT_CALLS = frozenset({"haiku.remat", "haiku.checkpoint"})
#: Lifted over ``self``: rewritten only in module methods, not inside a layer_stack body.
LOOP_CALLS = frozenset({"haiku.fori_loop", "haiku.while_loop"})  # lifted_loops.py
SELF_LIFTED = REMAT_CALLS | LOOP_CALLS | {"haiku.vmap", "haiku.scan", "haiku.map", "haiku.cond", "haiku.switch"}
# Haiku shares parameters across steps and gives every step a fresh key.
_SCAN_OPTIONS = 'variable_broadcast="params", split_rngs={"params": False, "dropout": True}'

LAYER_STACK_CALLS = frozenset({"haiku.layer_stack", "haiku.experimental.layer_stack"})

LAYER_STACK_SOURCE = '''def layer_stack(num_layers, with_per_layer_inputs=False, unroll=1, name=None, remat=None):
    """Haiku's hk.layer_stack for functions that build Linen modules: nn.scan over one layer, parameters stacked on axis 0.

    remat: nn.remat options to rematerialise each layer, as Haiku's layer_stack(n)(hk.remat(f)) does.
    """
    name = name or ("__layer_stack_with_per_layer" if with_per_layer_inputs else "__layer_stack_no_per_layer")

    def decorator(fn):
        def wrapped(*args):
            carry, per_layer = (args[0], args[1:]) if with_per_layer_inputs else (args, ())
            scan = {nn}.scan(
                LayerStackBody if remat is None else {nn}.remat(LayerStackBody, **remat),
                variable_axes={{"params": 0}},
                split_rngs={{"params": True, "dropout": True}},
                length=num_layers,
                unroll=unroll,
            )
            carry, ys = scan(fn, with_per_layer_inputs, name=name)(carry, per_layer)
            if with_per_layer_inputs:
                return carry, ys
            return carry if len(args) > 1 else carry[0]

        return wrapped

    return decorator
'''

LAYER_STACK_BODY_SOURCE = '''class LayerStackBody({nn}.Module):
    """Haiku's hk.layer_stack body: one layer, running the layer function (its modules are named in this scope)."""

    fn: Any
    with_per_layer_inputs: bool

    @{nn}.compact
    def __call__(self, carry, per_layer):
        if self.with_per_layer_inputs:
            return self.fn(carry, *per_layer)
        out = self.fn(*carry)
        return (out if len(carry) > 1 else (out,)), None
'''

HELPERS = {
    "layer_stack": ("layer_stack", LAYER_STACK_SOURCE, ()),
    "LayerStackBody": ("LayerStackBody", LAYER_STACK_BODY_SOURCE, (ImportSpec("typing", "Any", None),)),
}
DEPENDENCIES = {"layer_stack": ("LayerStackBody",)}


def helper_source(tail: str, *, nn: str) -> tuple[str, str, tuple[ImportSpec, ...]] | None:
    # lifted_loops.py and name_scope.py hold passes (they import base.py, which imports this module): import them late.
    from flaxify.migrate import lifted_loops, name_scope

    found = HELPERS.get(tail) or lifted_loops.HELPERS.get(tail) or name_scope.HELPERS.get(tail)
    if found is None:
        return None
    name, template, imports = found
    return name, template.format(nn=nn), imports


def rewrite_loop(call: cst.Call, qualname: str, *, nn: str) -> Rewrite | Unsupported:
    """``hk.fori_loop`` / ``hk.while_loop`` in a module method (``lifted_loops.py``)."""
    from flaxify.migrate import lifted_loops  # late, as in helper_source

    if qualname == "haiku.fori_loop":
        return lifted_loops.rewrite_fori_loop(call, nn=nn)
    return lifted_loops.rewrite_while_loop(call, nn=nn)


def rewrite_remat(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.remat(f, ...)`` -> ``functools.partial(nn.remat(lambda _, *args, **kwargs: f(...), ...), self)``."""
    bound = bind(call, REMAT)
    if isinstance(bound, Unsupported):
        return bound
    if "fun" not in bound:
        return Unsupported("hk.remat needs the function to rematerialise")
    fun = bound["fun"]
    args, kwargs = free_name("args", fun), free_name("kwargs", fun)
    target = code(fun)
    if not isinstance(fun, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        target = f"({target})"
    options = []
    for key in ("prevent_cse", "policy"):
        if key in bound:
            options.append(f"{key}={code(bound[key])}")
    if "static_argnums" in bound:
        shifted = _shifted(bound["static_argnums"])
        if shifted is None:
            return Unsupported(
                "hk.remat(static_argnums=...) is not a literal int or tuple; nn.remat counts the module as argument 0,"
                " so pass the Haiku positions plus one"
            )
        options.append(f"static_argnums={shifted}")
    lam = f"lambda _, *{args}, **{kwargs}: {target}(*{args}, **{kwargs})"
    text = f"functools.partial({nn}.remat({', '.join([lam, *options])}), self)"
    return Rewrite(cst.parse_expression(text), (ImportSpec("functools", None, None),))


def rewrite_vmap(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.vmap(f, in_axes, out_axes, axis_name, axis_size, split_rng=s)`` -> ``nn.vmap`` lifted over ``self``.

    Haiku never maps parameters: ``variable_axes={"params": None}`` broadcasts them
    and ``split_rngs={"params": False, "dropout": s}`` splits the dropout key per
    element exactly when Haiku splits its key.
    """
    bound = bind(call, VMAP)
    if isinstance(bound, Unsupported):
        return bound
    if "fun" not in bound or "split_rng" not in bound:
        return Unsupported("hk.vmap needs the function and split_rng=")
    if "spmd_axis_name" in bound and literal(bound["spmd_axis_name"]) is not None:
        return Unsupported("hk.vmap(spmd_axis_name=...) has no nn.vmap counterpart; write jax.vmap over a pure function by hand")
    # Imported late, as in helper_source.
    from flaxify.migrate.lifted_loops import lifted_function

    fun = bound["fun"]
    args = free_name("args", fun)
    target = code(fun)
    if not isinstance(fun, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        target = f"({target})"
    options = ['variable_axes={"params": None}', f'split_rngs={{"params": False, "dropout": {code(bound["split_rng"])}}}']
    for key in ("in_axes", "out_axes", "axis_name", "axis_size"):
        if key in bound:
            options.append(f"{key}={code(bound[key])}")
    # A function drawing keys itself takes the mapped module (lifted_loops.py marked it): nn.vmap splits its keys.
    lam = lifted_function(fun) or f"lambda _, *{args}: {target}(*{args})"
    text = f"functools.partial({nn}.vmap({', '.join([lam, *options])}), self)"
    return Rewrite(cst.parse_expression(text), (ImportSpec("functools", None, None),))


def rewrite_scan(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.scan(f, init, xs, length, reverse, unroll)`` -> ``nn.scan`` lifted over ``self``, called at once."""
    bound = bind(call, SCAN)
    if isinstance(bound, Unsupported):
        return bound
    if not all(k in bound for k in ("f", "init")):
        return Unsupported("hk.scan needs f and init")
    # Imported late, as in helper_source.
    from flaxify.migrate.lifted_loops import SCAN_STATEFUL, lifted_function

    f = bound["f"]
    carry, x = free_name("carry", f), free_name("x", f)
    extra = [f"{k}={code(bound[k])}" for k in ("length", "reverse", "unroll") if k in bound]
    xs = code(bound["xs"]) if "xs" in bound else "None"
    taking_module = lifted_function(f)
    if taking_module is not None:  # uses state or draws keys itself (lifted_loops.py marked it)
        args = ["self", taking_module, code(bound["init"]), xs, *extra]
        return Rewrite(cst.parse_expression(f"{SCAN_STATEFUL}({', '.join(args)})"))
    lam = f"lambda _, {carry}, {x}: {_callee(f)}({carry}, {x})"
    return Rewrite(cst.parse_expression(f"{nn}.scan({lam}, {', '.join([_SCAN_OPTIONS, *extra])})(self, {code(bound['init'])}, {xs})"))


def rewrite_map(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.map(fn, xs)`` -> ``nn.scan`` with a ``None`` carry, lifted over ``self``; the outputs."""
    bound = bind(call, MAP)
    if isinstance(bound, Unsupported):
        return bound
    if not all(k in bound for k in ("fn", "xs")):
        return Unsupported("hk.map needs fn and xs")
    # Imported late, as in helper_source.
    from flaxify.migrate.lifted_loops import SCAN_STATEFUL, lifted_function

    fn = bound["fn"]
    carry, x = free_name("carry", fn), free_name("x", fn)
    xs = code(bound["xs"])
    taking_module = lifted_function(fn)  # uses state or draws keys itself: it gets the scanned module (lifted_loops.py)
    if taking_module is not None and isinstance(fn, cst.Lambda):  # lambda self, y: E -> lambda self, carry, y: (carry, E)
        marked = cst.ensure_type(cst.parse_expression(taking_module), cst.Lambda)
        mdl, y = (p.name.value for p in marked.params.params)
        lam = f"lambda {mdl}, {carry}, {y}: ({carry}, {code(marked.body)})"
        return Rewrite(cst.parse_expression(f"{SCAN_STATEFUL}(self, {lam}, None, {xs})[1]"))
    if taking_module is not None:
        mdl = free_name("mdl", fn)
        lam = f"lambda {mdl}, {carry}, {x}: ({carry}, {taking_module}({mdl}, {x}))"
        return Rewrite(cst.parse_expression(f"{SCAN_STATEFUL}(self, {lam}, None, {xs})[1]"))
    lam = f"lambda _, {carry}, {x}: ({carry}, {_callee(fn)}({x}))"
    return Rewrite(cst.parse_expression(f"{nn}.scan({lam}, {_SCAN_OPTIONS})(self, None, {xs})[1]"))


def rewrite_cond(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.cond(pred, true_fun, false_fun, *operands)`` -> ``nn.cond(..., self, *operands)``.

    The branches get the lifted module first; they may call modules built (and
    first called) before the ``cond``, as Haiku requires at init.
    """
    args = list(call.args)
    if len(args) < 3 or any(a.star or a.keyword is not None for a in args[:3]):
        return Unsupported("hk.cond: pass pred, true_fun and false_fun positionally")
    operands = _operands(args[3:])
    if operands is None:
        return Unsupported("hk.cond(operand=..., linear=...) or */** operands: rewrite to nn.cond(pred, t, f, self, *operands) by hand")
    branches = [_lifted_branch(a.value) for a in args[1:3]]
    text = f"{nn}.cond({code(args[0].value)}, {', '.join(branches)}, {', '.join(['self', *operands])})"
    return Rewrite(cst.parse_expression(text))


def rewrite_switch(call: cst.Call, *, nn: str) -> Rewrite | Unsupported:
    """``hk.switch(index, [f0, f1, ...], *operands)`` -> ``nn.switch(index, [...], self, *operands)``."""
    args = list(call.args)
    if len(args) < 2 or any(a.star or a.keyword is not None for a in args[:2]):
        return Unsupported("hk.switch: pass index and branches positionally")
    branches = args[1].value
    operands = _operands(args[2:])
    if not isinstance(branches, (cst.List, cst.Tuple)) or any(isinstance(e, cst.StarredElement) for e in branches.elements):
        return Unsupported("hk.switch: the branches are not a literal list; rewrite to nn.switch(index, branches, self, *operands) by hand")
    if operands is None:
        return Unsupported("hk.switch with */** operands: rewrite to nn.switch(index, branches, self, *operands) by hand")
    lifted_branches = ", ".join(_lifted_branch(e.value) for e in branches.elements)
    text = f"{nn}.switch({code(args[0].value)}, [{lifted_branches}], {', '.join(['self', *operands])})"
    return Rewrite(cst.parse_expression(text))


def _operands(args: list[cst.Arg]) -> list[str] | None:
    if any(a.star or a.keyword is not None for a in args):
        return None
    return [code(a.value) for a in args]


def _lifted_branch(fun: cst.BaseExpression) -> str:
    args = free_name("args", fun)
    return f"lambda _, *{args}: {_callee(fun)}(*{args})"


def _callee(node: cst.BaseExpression) -> str:
    text = code(node)
    return text if isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) else f"({text})"


def _shifted(node: cst.BaseExpression) -> str | None:
    value = literal(node)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value + 1)
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        inner = ", ".join(str(v + 1) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return None


def stack_base(call: cst.Call) -> str | None:
    """Haiku's base name for a layer stack, None when ``with_per_layer_inputs`` is not a literal."""
    bound = bind(call, LAYER_STACK)
    if isinstance(bound, Unsupported):
        return None
    per_layer = literal(bound["with_per_layer_inputs"]) if "with_per_layer_inputs" in bound else False
    if not isinstance(per_layer, bool):
        return None
    return "__layer_stack_with_per_layer" if per_layer else "__layer_stack_no_per_layer"


def remat_in_stack(stack: cst.Call, remat: cst.Call) -> tuple[cst.Call, cst.BaseExpression] | Unsupported:
    """``layer_stack(n)(hk.remat(f, prevent_cse=..., policy=...))`` -> ``layer_stack(n, remat={...})(f)``.

    ``stack`` is the already rewritten ``layer_stack(n)`` call. ``nn.remat`` of
    ``f`` lifted over ``self`` would build each layer's modules in the calling
    module, outside the scan; rematerialising the scanned body module instead
    keeps Haiku's stacked parameters. Returns the new stack call and ``f``.
    """
    bound = bind(remat, REMAT)
    if isinstance(bound, Unsupported):
        return bound
    if "fun" not in bound:
        return Unsupported("hk.remat needs the function to rematerialise")
    if "static_argnums" in bound:
        return Unsupported("hk.remat(static_argnums=...) around a layer_stack body: a layer function takes only the carry")
    options = ", ".join(f'"{key}": {code(bound[key])}' for key in ("prevent_cse", "policy") if key in bound)
    args = list(stack.args)
    args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    equal = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))
    option = cst.Arg(cst.parse_expression("{" + options + "}"), keyword=cst.Name("remat"), equal=equal)
    return stack.with_changes(args=[*args, option]), bound["fun"]


def rewrite_layer_stack(call: cst.Call, name: str | None = None) -> Rewrite | Unsupported:
    """``hk.layer_stack(n, with_per_layer_inputs, unroll)`` -> ``layer_stack(...)`` (the emitted helper).

    ``name`` is the Haiku name of the stack when the engine knows it (the second
    stack in a scope is ``__layer_stack_no_per_layer_1``).
    """
    bound = bind(call, LAYER_STACK)
    if isinstance(bound, Unsupported):
        return bound
    if "num_layers" not in bound:
        return Unsupported("hk.layer_stack needs num_layers")
    unsupported = [k for k in ("pass_reverse_to_layer_fn", "transparent", "transparency_map", "name") if k in bound and literal(bound[k]) not in (None, False)]
    if unsupported:
        return Unsupported(
            f"hk.layer_stack({', '.join(unsupported)}=...) is not rewritten: write nn.scan(Body, variable_axes={{'params': 0}},"
            " split_rngs={'params': True, 'dropout': True}, length=n) by hand"
        )
    new = call.with_changes(func=cst.Name("layer_stack"))
    if name is not None and name != stack_base(call):
        args = list(new.args)
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        equal = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))
        new = new.with_changes(args=[*args, cst.Arg(cst.SimpleString(f'"{name}"'), keyword=cst.Name("name"), equal=equal)])
    return Rewrite(new)
