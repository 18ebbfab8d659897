"""``hk.LayerNorm`` / ``hk.InstanceNorm`` / ``hk.GroupNorm`` / ``hk.RMSNorm`` -> ``nn.*Norm``.

Flax's norms default to ``epsilon=1e-6`` and the one-pass variance
``E[x^2] - E[x]^2``; Haiku uses ``eps=1e-5`` and the two-pass ``jnp.var``. On
inputs with a small spread both change the output a lot (0.79 on std 1e-3 data),
so ``epsilon`` and ``use_fast_variance=False`` are always written out.

Haiku's own ``use_fast_variance=True`` (LayerNorm) is not rewritten: Flax clips a
negative one-pass variance to 0 and Haiku does not, so near-constant rows differ.
Channels-first ``data_format`` is not rewritten (Flax norms here are channels-last).
For float32 inputs LayerNorm and InstanceNorm (and GroupNorm/RMSNorm without a
scale) compute bit-identical numbers. With a learned scale, GroupNorm and RMSNorm
multiply in a different order (Haiku ``(x * rsqrt(var + eps)) * scale``, Flax
``x * (rsqrt(var + eps) * scale)``), which can move the last bit (|diff| <= 2 ulp
of the output's magnitude); no Flax flag changes that order. For bfloat16 inputs
Flax reduces in float32 (``force_float32_reductions``) and Haiku in bfloat16.

Examples::

    hk.LayerNorm(-1, True, True)       -> nn.LayerNorm(epsilon=1e-05, use_fast_variance=False)
    hk.LayerNorm(axis=(1, 2), create_scale=False, create_offset=True, eps=1e-3)
                                       -> nn.LayerNorm(epsilon=1e-3, use_scale=False, reduction_axes=(1, 2),
                                                       use_fast_variance=False)
    hk.GroupNorm(8)                    -> nn.GroupNorm(num_groups=8, epsilon=1e-05, use_fast_variance=False)
    hk.RMSNorm(-1)                     -> nn.RMSNorm(epsilon=1e-05)
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.layers_common import (
    UNKNOWN,
    Bound,
    Ctx,
    Signature,
    code,
    flax_call,
    is_literal,
    literal,
    name_arg,
    py,
)
from flaxify.migrate.layers_conv import channels_last
from flaxify.migrate.layers_linear import Args, flag_arg, init_arg
from flaxify.migrate.rewrite import ImportSpec, Rewrite, Unsupported, merge_imports

LAYER_NORM = Signature(
    "hk.LayerNorm",
    ("axis", "create_scale", "create_offset", "eps", "scale_init", "offset_init", "use_fast_variance", "name"),
    ("param_axis",),
)
INSTANCE_NORM = Signature(
    "hk.InstanceNorm",
    ("create_scale", "create_offset", "eps", "scale_init", "offset_init", "data_format", "name"),
)
GROUP_NORM = Signature(
    "hk.GroupNorm",
    ("groups", "axis", "create_scale", "create_offset", "eps", "scale_init", "offset_init", "data_format", "name"),
)
RMS_NORM = Signature("hk.RMSNorm", ("axis", "eps", "scale_init", "name", "create_scale"), ("param_axis",))

HAIKU_EPS = "1e-05"


def _slice_axes(node: cst.BaseExpression) -> tuple[int, ...] | None:
    """Negative axes for ``slice(-k, None)`` / ``slice(-k, -j)``, valid for any rank >= k."""
    if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "slice"):
        return None
    values = [literal(a.value) for a in node.args]
    if len(values) == 2 and not any(a.keyword for a in node.args):
        start, stop = values
        if isinstance(start, int) and start < 0 and (stop is None or (isinstance(stop, int) and start < stop < 0)):
            return tuple(range(start, 0 if stop is None else stop))
    return None


def axes_arg(bound: Bound, haiku_key: str, flax_key: str, display: str) -> Args | Unsupported:
    """``reduction_axes``/``feature_axes``: omitted for ``-1`` (Flax's default)."""
    node = bound.get(haiku_key)
    if node is None or literal(node) in (-1, (-1,), [-1]) or (literal(node) is None and haiku_key == "param_axis"):
        return []
    value = literal(node)
    if isinstance(value, int) and not isinstance(value, bool):
        return [(flax_key, str(value))]
    if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value):
        return [(flax_key, py(tuple(value)))]
    if value is UNKNOWN:
        axes = _slice_axes(node)
        if axes is not None:
            return [(flax_key, py(axes))]
        if isinstance(node, cst.Call):
            return Unsupported(
                f"{display}({haiku_key}={code(node)}): Flax takes explicit axes, and this slice "
                "depends on the input rank; pass a tuple of (negative) axes"
            )
        return [(flax_key, code(node))]
    return Unsupported(f"{display}: {haiku_key}={code(node)} is not an int or sequence of ints")


def eps_arg(bound: Bound) -> Args:
    """Haiku's epsilon, always explicit (Flax's default is 1e-6)."""
    return [("epsilon", code(bound["eps"]) if "eps" in bound else HAIKU_EPS)]


def _inits(bound: Bound, ctx: Ctx, with_offset: bool = True) -> tuple[Args, tuple[ImportSpec, ...]] | Unsupported:
    scale = init_arg(bound, "scale_init", "scale_init", ctx)
    offset = init_arg(bound, "offset_init", "bias_init", ctx) if with_offset else ([], ())
    for part in (scale, offset):
        if isinstance(part, Unsupported):
            return part
    return scale[0] + offset[0], merge_imports(scale[1], offset[1])


def _fast_variance(bound: Bound, display: str) -> Unsupported | None:
    if is_literal(bound, "use_fast_variance", False):
        return None
    return Unsupported(
        f"{display}(use_fast_variance={code(bound['use_fast_variance'])}): Flax clips a negative "
        "one-pass variance to 0 and Haiku does not, so near-constant inputs normalize differently; "
        "use nn.LayerNorm(use_fast_variance=True) if that edge case does not matter to you"
    )


def layer_norm(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.LayerNorm`` -> ``nn.LayerNorm``."""
    if "axis" not in bound or "create_scale" not in bound or "create_offset" not in bound:
        return Unsupported("hk.LayerNorm needs axis, create_scale and create_offset")
    fast = _fast_variance(bound, LAYER_NORM.display)
    if fast is not None:
        return fast
    reduction = axes_arg(bound, "axis", "reduction_axes", LAYER_NORM.display)
    if isinstance(reduction, Unsupported):
        return reduction
    feature = axes_arg(bound, "param_axis", "feature_axes", LAYER_NORM.display)
    if isinstance(feature, Unsupported):
        return feature
    inits = _inits(bound, ctx)
    if isinstance(inits, Unsupported):
        return inits
    init_args, imports = inits
    args: Args = eps_arg(bound) + flag_arg(bound, "create_scale", "use_scale")
    args += flag_arg(bound, "create_offset", "use_bias") + init_args + reduction + feature
    args += [("use_fast_variance", "False"), *name_arg(bound, ctx.name)]
    return Rewrite(flax_call(f"{ctx.nn}.LayerNorm", args), imports)


def instance_norm(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.InstanceNorm`` -> ``nn.InstanceNorm`` (channels-last)."""
    if "create_scale" not in bound or "create_offset" not in bound:
        return Unsupported("hk.InstanceNorm needs create_scale and create_offset")
    fmt = channels_last(bound, INSTANCE_NORM.display)
    if fmt is not None:
        return fmt
    inits = _inits(bound, ctx)
    if isinstance(inits, Unsupported):
        return inits
    init_args, imports = inits
    args: Args = eps_arg(bound) + flag_arg(bound, "create_scale", "use_scale")
    args += flag_arg(bound, "create_offset", "use_bias") + init_args
    args += [("use_fast_variance", "False"), *name_arg(bound, ctx.name)]
    return Rewrite(flax_call(f"{ctx.nn}.InstanceNorm", args), imports)


def group_norm(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.GroupNorm`` -> ``nn.GroupNorm`` (default axes, channels-last)."""
    if "groups" not in bound:
        return Unsupported("hk.GroupNorm needs groups")
    fmt = channels_last(bound, GROUP_NORM.display)
    if fmt is not None:
        return fmt
    if "axis" in bound and code(bound["axis"]).replace(" ", "") != "slice(1,None)":
        return Unsupported(
            f"hk.GroupNorm(axis={code(bound['axis'])}): only the default axis=slice(1, None) maps "
            "to nn.GroupNorm's reduction_axes; set reduction_axes by hand"
        )
    inits = _inits(bound, ctx)
    if isinstance(inits, Unsupported):
        return inits
    init_args, imports = inits
    args: Args = [("num_groups", code(bound["groups"])), *eps_arg(bound)]
    args += flag_arg(bound, "create_scale", "use_scale") + flag_arg(bound, "create_offset", "use_bias")
    args += [*init_args, ("use_fast_variance", "False"), *name_arg(bound, ctx.name)]
    return Rewrite(flax_call(f"{ctx.nn}.GroupNorm", args), imports)


def rms_norm(bound: Bound, ctx: Ctx) -> Rewrite | Unsupported:
    """``hk.RMSNorm`` -> ``nn.RMSNorm``."""
    if "axis" not in bound:
        return Unsupported("hk.RMSNorm needs axis")
    reduction = axes_arg(bound, "axis", "reduction_axes", RMS_NORM.display)
    if isinstance(reduction, Unsupported):
        return reduction
    feature = axes_arg(bound, "param_axis", "feature_axes", RMS_NORM.display)
    if isinstance(feature, Unsupported):
        return feature
    inits = _inits(bound, ctx, with_offset=False)
    if isinstance(inits, Unsupported):
        return inits
    init_args, imports = inits
    args: Args = eps_arg(bound) + flag_arg(bound, "create_scale", "use_scale") + init_args
    args += reduction + feature + name_arg(bound, ctx.name)
    return Rewrite(flax_call(f"{ctx.nn}.RMSNorm", args), imports)
