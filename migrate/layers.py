"""Table-driven rewrites of Haiku layer constructors into Flax Linen layers.

The engine calls :func:`rewrite_layer` for every Haiku module constructor call it
meets and :func:`rewrite_layer_call` for the immediate-call form
``hk.Linear(3)(x, precision=P)``. Each family lives in its own module with its
documentation and examples: ``layers_linear`` (Linear, Embed, Bias),
``layers_conv`` (Conv, ConvTranspose, DepthwiseConv), ``layers_norm``
(LayerNorm, InstanceNorm, GroupNorm, RMSNorm), ``layers_shape`` (Flatten,
Reshape), ``layers_combinators`` (Sequential, nets.MLP) and ``pooling``.

Every rewrite is exact (same outputs for the same converted parameters, same
initializer distributions) or an :class:`Unsupported` saying what differs.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from flaxify.migrate import (
    attention,
    batch_apply,
    data_structures,
    layers_batchnorm,
    layers_combinators,
    layers_conv,
    layers_linear,
    layers_norm,
    layers_shape,
    lifted,
    moving_averages,
    prng,
    recurrent,
    spectral_norm,
)
from flaxify.migrate.layers_common import Bound, Ctx, Resolver, Signature, bind, code, haiku_name, is_simple_ref
from flaxify.migrate.pooling import MODULES as POOL_MODULES
from flaxify.migrate.pooling import rewrite_pool
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported
from flaxify.migrate.unsupported import MODULES as UNSUPPORTED_MODULES

_Handler = Callable[[Bound, Ctx], Rewrite | Unsupported]


def _with_tail(handler: Callable[[Bound, Ctx, str], Rewrite | Unsupported], tail: str) -> _Handler:
    return lambda bound, ctx: handler(bound, ctx, tail)


#: Haiku class name -> (signature, handler). The table *is* the list of supported layers.
LAYERS: dict[str, tuple[Signature, _Handler]] = {
    "Linear": (layers_linear.LINEAR, layers_linear.linear),
    "Embed": (layers_linear.EMBED, layers_linear.embed),
    "Bias": (layers_linear.BIAS, layers_linear.bias),
    **{tail: (sig, _with_tail(layers_conv.conv, tail)) for tail, (sig, _) in layers_conv.CONV.items()},
    **{tail: (sig, _with_tail(layers_conv.conv_transpose, tail)) for tail, (sig, _) in layers_conv.TRANSPOSE.items()},
    "LayerNorm": (layers_norm.LAYER_NORM, layers_norm.layer_norm),
    "InstanceNorm": (layers_norm.INSTANCE_NORM, layers_norm.instance_norm),
    "GroupNorm": (layers_norm.GROUP_NORM, layers_norm.group_norm),
    "RMSNorm": (layers_norm.RMS_NORM, layers_norm.rms_norm),
    "LSTM": (recurrent.LSTM, recurrent.lstm),
    "GRU": (recurrent.GRU, recurrent.gru),
    "VanillaRNN": (recurrent.VANILLA_RNN, recurrent.vanilla_rnn),
    **{tail: (recurrent.CONV_LSTM, _with_tail(recurrent.conv_lstm, tail)) for tail in recurrent.CONV_LSTM_DIMS},
    **recurrent.COMBINATORS,
    "MultiHeadAttention": (attention.MULTI_HEAD_ATTENTION, attention.multi_head_attention),
    "ExponentialMovingAverage": (moving_averages.EMA, moving_averages.exponential_moving_average),
    "Flatten": (layers_shape.FLATTEN, layers_shape.flatten),
    "Reshape": (layers_shape.RESHAPE, layers_shape.reshape),
    "Sequential": (layers_combinators.SEQUENTIAL, layers_combinators.sequential),
    "MLP": (layers_combinators.MLP, layers_combinators.mlp),
    **spectral_norm.LAYERS,
}

#: Layers whose exact helper takes Haiku's own parameters: the call is copied as written
#: (``layers_helpers.helper_call``), so a run-time ``**config`` passes through.
_VERBATIM: dict[str, Callable[[cst.Call, Ctx], Rewrite | Unsupported]] = {
    "BatchNorm": layers_batchnorm.batch_norm,
}

#: Helpers an emitted helper refers to (``BatchNorm`` -> ``ExponentialMovingAverage``).
DEPENDENCIES = {
    **layers_batchnorm.DEPENDENCIES,
    **{tail: ("get_channel_index",) for tail in layers_conv.DEPTHWISE},
    **spectral_norm.DEPENDENCIES,
}

#: Layers rewritten to a lambda (no parameters): their immediate call is inlined.
_LAMBDA_LAYERS = frozenset({"Flatten", "Reshape", "MaxPool", "AvgPool"})

#: Call-time arguments Haiku layers take that Flax takes at construction.
_CALL_TIME_CTOR_ARGS = {
    **{tail: ("precision",) for tail in ("Linear", *layers_conv.CONV, *layers_conv.TRANSPOSE)},
}
#: Call-time arguments with no Flax counterpart, per layer.
_CALL_TIME_UNSUPPORTED = {
    "LayerNorm": ("scale", "offset"),
    "GroupNorm": ("scale", "offset"),
    "Embed": ("lookup_style", "precision"),
}


def helper_class(qualname: str, *, nn: str = "nn", jnp: str = "jnp") -> tuple[str, str, tuple[ImportSpec, ...]] | None:
    """``(class name, class source, imports)`` a rewrite of ``qualname`` refers to, else None.

    ``hk.nets.MLP`` and ``hk.Bias`` have no Flax layer; their rewrites construct a
    small Linen module the engine emits once per file (at module level, after the
    imports) when it is not already defined there.
    """
    tail = _tail(qualname)
    if tail == "MLP":
        return "MLP", layers_combinators.mlp_class_source(nn), layers_combinators.MLP_CLASS_IMPORTS
    if tail == "Bias":
        return "Bias", layers_linear.bias_class_source(nn, jnp), layers_linear.BIAS_CLASS_IMPORTS
    if tail == "ExponentialMovingAverage":
        return tail, moving_averages.class_source(nn, jnp), moving_averages.CLASS_IMPORTS
    if tail == "BatchNorm":
        return tail, layers_batchnorm.class_source(nn, jnp), layers_batchnorm.CLASS_IMPORTS
    if tail == "get_channel_index":
        return tail, layers_batchnorm.channel_index_source(), layers_batchnorm.CHANNEL_INDEX_IMPORTS
    if tail in layers_conv.DEPTHWISE:
        return tail, layers_conv.depthwise_class_source(tail, nn, jnp), layers_conv.DEPTHWISE_CLASS_IMPORTS
    if tail == "MultiHeadAttention":
        return "MultiHeadAttention", attention.class_source(nn, jnp), attention.CLASS_IMPORTS
    if not tail:
        return None
    return (
        recurrent.helper_source(tail, nn=nn, jnp=jnp)
        or lifted.helper_source(tail, nn=nn)
        or batch_apply.helper_source(tail, jnp=jnp)
        or prng.helper_source(tail, jnp=jnp)
        or spectral_norm.helper_source(tail, nn=nn, jnp=jnp)
        or data_structures.helper_source(qualname)
    )


def _tail(qualname: str) -> str | None:
    tail = haiku_name(qualname)
    if tail == "MLP" and "nets" not in qualname.split("."):
        return None
    return tail


def rewrite_layer(
    call: cst.Call,
    qualname: str,
    *,
    name: str | None,
    nn: str = "nn",
    jnp: str = "jnp",
    resolver: Resolver | None = None,
    inputs: cst.BaseExpression | None = None,
) -> Rewrite | Unsupported:
    """Rewrites one Haiku module constructor call into an equivalent Flax callable.

    ``name`` is the Flax ``name=`` to emit (a ``name=`` in the Haiku call wins);
    ``resolver`` maps names inside the call (initializers, ``hk.pad.*``) to
    qualified names; without it the conventional aliases (``hk``, ``jnp``) are assumed.
    ``inputs`` is what the built module will be called on, when the caller has
    proved it is the same value at construction time (depthwise convs read
    their channel count from it).
    """
    tail = _tail(qualname)
    if tail in POOL_MODULES:
        return rewrite_pool(call, qualname, nn=nn, resolver=resolver)
    if tail in layers_conv.DEPTHWISE:
        return _depthwise(call, tail, inputs, Ctx(name, nn, jnp, resolver))
    if tail in _VERBATIM:
        return _VERBATIM[tail](call, Ctx(name, nn, jnp, resolver))
    if tail not in LAYERS:
        path = qualname.removeprefix("haiku.")
        known = UNSUPPORTED_MODULES.get(path) or UNSUPPORTED_MODULES.get(tail or "")
        reason = f"{qualname} has no table-driven Flax rewrite"
        return Unsupported(f"{reason}: {known}" if known else reason)
    sig, handler = LAYERS[tail]
    bound = bind(call, sig)
    return bound if isinstance(bound, Unsupported) else handler(bound, Ctx(name, nn, jnp, resolver))


def _depthwise(call: cst.Call, tail: str, inputs: cst.BaseExpression | None, ctx: Ctx) -> Rewrite | Unsupported:
    """``nn.Conv`` when the input (so C) is known at construction, else the exact ``DepthwiseConv*D`` helper."""
    sig, _ = layers_conv.DEPTHWISE[tail]
    bound = bind(call, sig)
    conv = bound if isinstance(bound, Unsupported) else layers_conv.depthwise(bound, ctx, tail, inputs)
    return conv if isinstance(conv, Rewrite) else layers_conv.depthwise_helper(call, ctx, tail)


def rewrite_layer_call(
    outer: cst.Call,
    qualname: str,
    *,
    name: str | None,
    nn: str = "nn",
    jnp: str = "jnp",
    resolver: Resolver | None = None,
) -> Rewrite | Unsupported | None:
    """Rewrites the immediate-call form ``hk.Layer(...)(x, ...)`` as a whole.

    ``outer`` is the call of the constructed layer (its ``func`` is the
    constructor call, whose qualified name is ``qualname``). The returned
    expression replaces all of ``outer``. ``None`` means the call-time arguments
    need nothing: rewrite the inner constructor with :func:`rewrite_layer` alone.
    """
    inner = outer.func
    tail = _tail(qualname)
    if not isinstance(inner, cst.Call) or tail is None:
        return None
    ctx = Ctx(name, nn, jnp, resolver)
    if tail in layers_conv.DEPTHWISE:
        inputs = outer.args[0].value if outer.args and outer.args[0].keyword is None else None
        rewritten = _depthwise(inner, tail, inputs, ctx)
        return rewritten if isinstance(rewritten, Unsupported) else _recall(outer, rewritten, outer.args)
    if tail in _LAMBDA_LAYERS:
        rewritten = rewrite_layer(inner, qualname, name=name, nn=nn, jnp=jnp, resolver=resolver)
        return rewritten if isinstance(rewritten, Unsupported) else _inline(outer, rewritten)
    keywords = {a.keyword.value: a for a in outer.args if a.keyword is not None}
    unsupported = [k for k in _CALL_TIME_UNSUPPORTED.get(tail, ()) if k in keywords]
    if unsupported or (tail in _CALL_TIME_UNSUPPORTED and len(outer.args) > 1 and not keywords):
        return Unsupported(
            f"hk.{tail} called with {', '.join(unsupported) or 'extra positional arguments'}: "
            f"the Flax layer takes no such call-time argument"
        )
    moved = [k for k in _CALL_TIME_CTOR_ARGS.get(tail, ()) if k in keywords]
    if not moved:
        return None
    extra = tuple((k, code(keywords[k].value)) for k in moved)
    sig, handler = LAYERS[tail]
    bound = bind(inner, sig)
    if isinstance(bound, Unsupported):
        return bound
    rewritten = handler(bound, Ctx(name, nn, jnp, resolver, extra))
    if isinstance(rewritten, Unsupported):
        return rewritten
    kept = [a for a in outer.args if a.keyword is None or a.keyword.value not in moved]
    return _recall(outer, rewritten, kept)


class _Substitute(cst.CSTTransformer):
    def __init__(self, name: str, value: cst.BaseExpression) -> None:
        super().__init__()
        self.name, self.value, self.count = name, value, 0

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.BaseExpression:
        if updated_node.value != self.name:
            return updated_node
        self.count += 1
        return self.value


def _inline(outer: cst.Call, rewritten: Rewrite) -> Rewrite:
    """``(lambda x: body)(arg)`` -> ``body`` with ``arg`` for ``x`` when ``arg`` is a plain name."""
    fn = rewritten.expr
    args = outer.args
    if isinstance(fn, cst.Lambda) and len(args) == 1 and args[0].keyword is None and not args[0].star:
        param = fn.params.params[0].name.value  # a name no user expression in the call uses
        if is_simple_ref(args[0].value):
            return Rewrite(fn.body.visit(_Substitute(param, args[0].value)), rewritten.imports)
    parenthesized = fn.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return _recall(outer, Rewrite(parenthesized, rewritten.imports), args)


def _recall(outer: cst.Call, rewritten: Rewrite, args: list[cst.Arg] | tuple[cst.Arg, ...]) -> Rewrite:
    """``<rewritten constructor>(args)``, with a clean trailing comma."""
    args = list(args)
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return Rewrite(outer.with_changes(func=rewritten.expr, args=args), rewritten.imports)


__all__ = ["DEPENDENCIES", "LAYERS", "helper_class", "rewrite_layer", "rewrite_layer_call"]
