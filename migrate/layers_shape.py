"""``hk.Flatten`` / ``hk.Reshape`` -> a ``jnp.reshape`` lambda (Flax has no such layers).

Haiku leaves an input with ``ndim <= preserve_dims`` unchanged, which a bare
reshape would not (it would append a dimension), so the guard is kept for
positive ``preserve_dims``. A negative ``preserve_dims`` counts trailing
dimensions and needs no guard.

Examples::

    hk.Flatten()                    -> lambda x: x if x.ndim <= 1 else jnp.reshape(x, x.shape[:1] + (-1,))
    hk.Flatten(preserve_dims=-2)    -> lambda x: jnp.reshape(x, x.shape[:-2] + (-1,))
    hk.Reshape((4, -1))             -> lambda x: x if x.ndim <= 1 else jnp.reshape(x, x.shape[:1] + (4, -1))

These layers own no parameters, so no ``name=`` is emitted.
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.layers_common import UNKNOWN, Bound, Ctx, Signature, code, free_name, literal, py
from flaxify.migrate.rewrite import Rewrite, Unsupported

FLATTEN = Signature("hk.Flatten", ("preserve_dims", "name"))
RESHAPE = Signature("hk.Reshape", ("output_shape", "preserve_dims", "name"))


def _reshape_lambda(shape_src: str, bound: Bound, ctx: Ctx, display: str) -> Rewrite | Unsupported:
    dims = literal(bound["preserve_dims"]) if "preserve_dims" in bound else 1
    if dims is UNKNOWN or not isinstance(dims, int) or isinstance(dims, bool) or dims == 0:
        return Unsupported(f"{display}: preserve_dims must be a non-zero literal int")
    x = free_name("x", *bound.values())
    reshaped = f"{ctx.jnp}.reshape({x}, {x}.shape[:{dims}] + {shape_src})"
    body = reshaped if dims < 0 else f"{x} if {x}.ndim <= {dims} else {reshaped}"
    return Rewrite(cst.parse_expression(f"lambda {x}: {body}"))


def flatten(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.Flatten(preserve_dims)``."""
    return _reshape_lambda("(-1,)", bound, ctx, FLATTEN.display)


def reshape(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.Reshape(output_shape, preserve_dims)``."""
    if "output_shape" not in bound:
        return Unsupported("hk.Reshape needs output_shape")
    shape = literal(bound["output_shape"])
    if isinstance(shape, tuple | list):
        if list(shape).count(-1) > 1:
            return Unsupported("hk.Reshape: output_shape may contain -1 only once")
        shape_src = py(tuple(shape))
    elif isinstance(bound["output_shape"], cst.Tuple | cst.List) and not any(
        isinstance(e, cst.StarredElement) for e in bound["output_shape"].elements
    ):
        elements = [code(e.value) for e in bound["output_shape"].elements]
        shape_src = f"({elements[0]},)" if len(elements) == 1 else f"({', '.join(elements)})"
    else:
        shape_src = f"tuple({code(bound['output_shape'])})"
    return _reshape_lambda(shape_src, bound, ctx, RESHAPE.display)
