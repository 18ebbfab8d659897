"""Haiku initializers -> Flax initializers with the same distribution.

A Haiku initializer is called ``init(shape, dtype)`` and draws its key with
``hk.next_rng_key()``; a Flax one is called ``init(key, shape, dtype)``. Every
rewrite below keeps Haiku's distribution *and its defaults*: Haiku's
``RandomNormal``/``TruncatedNormal`` default to ``stddev=1`` where JAX defaults to
``0.01``, so the stddev is always written out.

Examples (``nn`` = ``flax.linen``):

==========================================  ==================================================
Haiku                                       Flax
==========================================  ==================================================
``hk.initializers.Constant(0.5)``           ``nn.initializers.constant(0.5)``
``hk.initializers.TruncatedNormal()``       ``nn.initializers.truncated_normal(1.0)``
``hk.initializers.RandomNormal(0.1, 1.0)``  ``lambda key, shape, dtype=jnp.float32:
                                            1.0 + 0.1 * jax.random.normal(key, shape, dtype)``
``hk.initializers.VarianceScaling(2.0)``    ``nn.initializers.variance_scaling(2.0, "fan_in",
                                            "truncated_normal")``
``hk.initializers.UniformScaling(2.0)``     ``nn.initializers.variance_scaling(2.0 ** 2,
                                            "fan_in", "uniform")``
``jnp.zeros`` / ``jnp.ones``                ``nn.initializers.zeros`` / ``nn.initializers.ones``
``lambda s, d: jnp.full(s, 2.0, d)``        ``lambda key, s, d: jnp.full(s, 2.0, d)``
==========================================  ==================================================

Where JAX has no initializer with Haiku's parameters (a non-zero ``mean``, a
``RandomUniform`` lower bound, ``Identity``) a small lambda calls the same
``jax.random`` function Haiku calls, so for the same key it yields the same
numbers. ``VarianceScaling``/``UniformScaling`` map to JAX's ``variance_scaling``:
same distribution, but JAX computes the scale factor in float32 where Haiku uses
float64, so for the same key values can differ in the last bit.
"""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from flaxify.migrate.layers_common import (
    Bound,
    Resolver,
    Signature,
    bind,
    code,
    free_name,
    haiku_name,
    is_literal,
    literal,
    py,
    resolve,
)
from flaxify.migrate.rewrite import JAX_IMPORT, Rewrite, Unsupported

_Handler = Callable[[Bound, str, str], Rewrite | Unsupported]

#: Haiku's default ``w_init`` for ``Linear``, ``ConvND``, ``ConvNDTranspose`` and
#: ``DepthwiseConvND``: ``TruncatedNormal(stddev=1 / sqrt(fan_in))`` with
#: ``fan_in = prod(w.shape[:-1])``. JAX's ``variance_scaling`` divides the stddev
#: by 0.8796 (the stddev of a unit normal truncated at ±2); multiplying the
#: variance by 0.8796**2 undoes that, leaving Haiku's distribution.
DEFAULT_KERNEL_INIT = '{nn}.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")'


def default_kernel_init(nn: str = "nn") -> str:
    """Source of Haiku's default Linear/Conv weight initializer, in Flax."""
    return DEFAULT_KERNEL_INIT.format(nn=nn)


#: What a resolver reports for a module field that, after migration, holds a
#: Flax initializer or None (``init_fields.py``): a layer slot given one keeps
#: Haiku's "None means the layer's default" with :func:`field_or_default`.
FIELD_INITIALIZER = "<flaxify: initializer field>"

#: Haiku's default for an initializer slot, in Flax, by the Flax keyword, where
#: every Haiku layer that fills the slot agrees (biases and offsets start at
#: zero, scales at one, Linear/Conv/MLP weights at ``DEFAULT_KERNEL_INIT``).
_SLOT_DEFAULTS = {
    "bias_init": "{nn}.initializers.zeros",
    "scale_init": "{nn}.initializers.ones",
    "kernel_init": DEFAULT_KERNEL_INIT,
}


def field_or_default(field: str, flax_key: str, default: str | None, *, nn: str = "nn") -> str | None:
    """``field if field is not None else <Haiku's default>``, or None when that default is unknown.

    ``default`` is the layer's own Haiku default in Flax (it wins); without it
    the slot's common default is used.
    """
    fallback = default or _SLOT_DEFAULTS.get(flax_key, "").format(nn=nn)
    if not fallback:
        return None
    return f"{field} if {field} is not None else {fallback}"


def _lambda(params: tuple[str, str, str], body: str, jnp: str) -> str:
    key, shape, dtype = params
    return f"lambda {key}, {shape}, {dtype}={jnp}.float32: {body}"


def _names(bound: Bound) -> tuple[str, str, str]:
    """Lambda parameter names that no copied argument expression refers to."""
    nodes = list(bound.values())
    return free_name("key", *nodes), free_name("shape", *nodes), free_name("dtype", *nodes)


def _arg(bound: Bound, key: str, default: str) -> str:
    return code(bound[key]) if key in bound else default


def _constant(b: Bound, nn: str, jnp: str) -> Rewrite | Unsupported:
    if "constant" not in b:
        return Unsupported("hk.initializers.Constant needs a `constant` argument")
    return Rewrite(cst.parse_expression(f"{nn}.initializers.constant({code(b['constant'])})"))


def _random_normal(b: Bound, nn: str, jnp: str) -> Rewrite | Unsupported:
    stddev = _arg(b, "stddev", "1.0")
    if is_literal(b, "mean", 0.0) or is_literal(b, "mean", 0):
        return Rewrite(cst.parse_expression(f"{nn}.initializers.normal({stddev})"))
    key, shape, dtype = _names(b)
    body = f"{code(b['mean'])} + {stddev} * jax.random.normal({key}, {shape}, {dtype})"
    return _lambda_rewrite((key, shape, dtype), body, jnp)


def _truncated_normal(b: Bound, nn: str, jnp: str) -> Rewrite | Unsupported:
    stddev = _arg(b, "stddev", "1.0")
    if is_literal(b, "mean", 0.0) or is_literal(b, "mean", 0):
        bounds = [f"{k}={code(b[k])}" for k in ("lower", "upper") if k in b]
        args = ", ".join([stddev, *bounds])
        return Rewrite(cst.parse_expression(f"{nn}.initializers.truncated_normal({args})"))
    key, shape, dtype = _names(b)
    lower, upper = _arg(b, "lower", "-2.0"), _arg(b, "upper", "2.0")
    draw = f"jax.random.truncated_normal({key}, {lower}, {upper}, {shape}, {dtype})"
    return _lambda_rewrite((key, shape, dtype), f"{stddev} * {draw} + {code(b['mean'])}", jnp)


def _random_uniform(b: Bound, nn: str, jnp: str) -> Rewrite | Unsupported:
    maxval = _arg(b, "maxval", "1.0")
    # jax.random.uniform(k, s, d, 0, m) and JAX's uniform(m) give the same bits.
    if is_literal(b, "minval", 0.0) or is_literal(b, "minval", 0):
        return Rewrite(cst.parse_expression(f"{nn}.initializers.uniform({maxval})"))
    key, shape, dtype = _names(b)
    body = f"jax.random.uniform({key}, {shape}, {dtype}, {code(b['minval'])}, {maxval})"
    return _lambda_rewrite((key, shape, dtype), body, jnp)


def _variance_scaling(b: Bound, nn: str, jnp: str) -> Rewrite | Unsupported:
    if not is_literal(b, "fan_in_axes", None):
        return Unsupported(
            "hk.initializers.VarianceScaling(fan_in_axes=...) counts fans differently from "
            "JAX's variance_scaling(in_axis=...) (JAX multiplies in the receptive field); "
            "write nn.initializers.variance_scaling(..., in_axis=..., out_axis=...) by hand"
        )
    distribution = literal(b.get("distribution"))
    dist = py(distribution.lower()) if isinstance(distribution, str) else _arg(b, "distribution", '"truncated_normal"')
    mode = _arg(b, "mode", '"fan_in"')
    text = f"{nn}.initializers.variance_scaling({_arg(b, 'scale', '1.0')}, {mode}, {dist})"
    return Rewrite(cst.parse_expression(text))


def _uniform_scaling(b: Bound, nn: str, jnp: str) -> Rewrite | Unsupported:
    scale = literal(b.get("scale"))
    if "scale" not in b:
        variance = "1.0"
    elif isinstance(scale, int | float) and not isinstance(scale, bool):
        variance = f"{code(b['scale'])} ** 2"
    else:
        variance = f"({code(b['scale'])}) ** 2"
    return Rewrite(cst.parse_expression(f'{nn}.initializers.variance_scaling({variance}, "fan_in", "uniform")'))


def _orthogonal(b: Bound, nn: str, jnp: str) -> Rewrite | Unsupported:
    args = [code(b["scale"])] if "scale" in b else []
    if "axis" in b:
        args.append(f"column_axis={code(b['axis'])}")
    return Rewrite(cst.parse_expression(f"{nn}.initializers.orthogonal({', '.join(args)})"))


def _identity(b: Bound, nn: str, jnp: str) -> Rewrite | Unsupported:
    key, shape, dtype = _names(b)
    eye = f"{jnp}.broadcast_to({jnp}.eye({shape}[-2], {shape}[-1], dtype={dtype}), {shape})"
    body = f"{code(b['gain'])} * {eye}" if "gain" in b else eye
    return Rewrite(cst.parse_expression(_lambda((key, shape, dtype), body, jnp)))


def _lambda_rewrite(params: tuple[str, str, str], body: str, jnp: str) -> Rewrite:
    return Rewrite(cst.parse_expression(_lambda(params, body, jnp)), (JAX_IMPORT,))


_TABLE: dict[str, tuple[Signature, _Handler]] = {
    "Constant": (Signature("hk.initializers.Constant", ("constant",)), _constant),
    "RandomNormal": (Signature("hk.initializers.RandomNormal", ("stddev", "mean")), _random_normal),
    "TruncatedNormal": (
        Signature("hk.initializers.TruncatedNormal", ("stddev", "mean", "lower", "upper")),
        _truncated_normal,
    ),
    "RandomUniform": (Signature("hk.initializers.RandomUniform", ("minval", "maxval")), _random_uniform),
    "VarianceScaling": (
        Signature("hk.initializers.VarianceScaling", ("scale", "mode", "distribution", "fan_in_axes")),
        _variance_scaling,
    ),
    "UniformScaling": (Signature("hk.initializers.UniformScaling", ("scale",)), _uniform_scaling),
    "Orthogonal": (Signature("hk.initializers.Orthogonal", ("scale", "axis")), _orthogonal),
    "Identity": (Signature("hk.initializers.Identity", ("gain",)), _identity),
}

#: Plain array constructors Haiku code passes as initializers (``init(shape, dtype)``).
_ARRAY_FUNCTIONS = {
    "jax.numpy.zeros": "zeros",
    "jax.numpy.ones": "ones",
    "numpy.zeros": "zeros",
    "numpy.ones": "ones",
}


def rewrite_initializer(
    expr: cst.BaseExpression,
    qualname: str | None,
    *,
    nn: str = "nn",
    jnp: str = "jnp",
    resolver: Resolver | None = None,
) -> Rewrite | Unsupported:
    """Rewrites one Haiku initializer expression into a Flax ``(key, shape, dtype)`` one.

    ``qualname`` is the resolved name of ``expr`` (for a call, of its callee);
    ``resolver`` resolves names inside ``expr`` (e.g. ``hk.next_rng_key`` in a lambda).
    """
    target = expr.func if isinstance(expr, cst.Call) else expr
    qualname = qualname or resolve(target, resolver)
    if _already_flax(expr, qualname, nn):
        return Rewrite(expr)
    name = haiku_name(qualname, "initializers")
    if isinstance(expr, cst.Call) and name in _TABLE:
        sig, handler = _TABLE[name]
        bound = bind(expr, sig)
        return bound if isinstance(bound, Unsupported) else handler(bound, nn, jnp)
    if not isinstance(expr, cst.Call) and qualname in _ARRAY_FUNCTIONS:
        return Rewrite(cst.parse_expression(f"{nn}.initializers.{_ARRAY_FUNCTIONS[qualname]}"))
    if isinstance(expr, cst.Lambda):
        return _rewrite_lambda(expr, resolver)
    return Unsupported(
        f"`{code(expr)}` is not a known Haiku initializer; Flax initializers take "
        "(key, shape, dtype) where Haiku's take (shape, dtype): pass a Flax initializer, "
        "e.g. `lambda key, shape, dtype: f(shape, dtype)` if f draws no random numbers"
    )


_FLAX_INITIALIZER_MODULES = ("flax.linen.initializers.", "jax.nn.initializers.", "flax.nnx.initializers.")


def _already_flax(expr: cst.BaseExpression, qualname: str | None, nn: str) -> bool:
    """True for an initializer this module (or a person) already wrote in Flax's signature.

    The engine rewrites children before parents, so a layer's ``w_init`` may
    arrive already converted; converting it again must be a no-op.
    """
    if qualname and qualname.startswith((*_FLAX_INITIALIZER_MODULES, f"{nn}.initializers.")):
        return True
    if isinstance(expr, cst.Lambda):  # the (key, shape, dtype) lambdas emitted here
        positional = [*expr.params.posonly_params, *expr.params.params]
        return len(positional) == 3 and positional[0].name.value.startswith("key")
    return False


class _NextRngKeyToKey(cst.CSTTransformer):
    """Replaces ``hk.next_rng_key()`` with the Flax initializer's ``key`` parameter."""

    def __init__(self, key: str, resolver: Resolver | None) -> None:
        super().__init__()
        self.key = key
        self.resolver = resolver
        self.count = 0

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if resolve(original_node.func, self.resolver) in ("haiku.next_rng_key", "haiku.maybe_next_rng_key"):
            self.count += 1
            return cst.Name(self.key)
        return updated_node


def _rewrite_lambda(expr: cst.Lambda, resolver: Resolver | None) -> Rewrite | Unsupported:
    """``lambda shape, dtype: body`` -> ``lambda key, shape, dtype: body``."""
    params = expr.params
    if params.star_arg is not cst.MaybeSentinel.DEFAULT or params.kwonly_params or params.star_kwarg:
        return Unsupported("a lambda initializer with *args/**kwargs cannot be converted; write a Flax initializer")
    positional = [*params.posonly_params, *params.params]
    if len(positional) != 2 or any(p.default is not None for p in positional):
        return Unsupported(
            f"`{code(expr)}`: a Haiku initializer lambda takes (shape, dtype); "
            "write the Flax initializer `lambda key, shape, dtype: ...` by hand"
        )
    key = free_name("key", expr)
    transformer = _NextRngKeyToKey(key, resolver)
    body = expr.body.visit(transformer)
    if transformer.count > 1:
        return Unsupported(
            f"`{code(expr)}` draws hk.next_rng_key() more than once; split the Flax key with jax.random.split instead"
        )
    new_params = params.with_changes(posonly_params=(), params=(cst.Param(cst.Name(key)), *positional))
    return Rewrite(expr.with_changes(params=new_params, body=body))


__all__ = ["DEFAULT_KERNEL_INIT", "FIELD_INITIALIZER", "default_kernel_init", "field_or_default", "rewrite_initializer"]
