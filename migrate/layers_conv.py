"""``hk.Conv*D`` / ``hk.ConvND`` -> ``nn.Conv``, ``hk.Conv*DTranspose`` -> ``nn.ConvTranspose``,
``hk.DepthwiseConv*D`` -> ``nn.Conv(feature_group_count=C)``.

Traps carried over explicitly:

* An int ``kernel_shape`` means an N-D square kernel in Haiku, but
  ``nn.Conv(c, 3)`` is a *1-D* kernel that silently convolves only the last
  spatial axis: the kernel size is always emitted as an N-tuple.
* ``rate`` is ``kernel_dilation``; ``stride`` is ``strides``; ``with_bias`` is
  ``use_bias``; padding strings are upper-cased (Haiku does), ``hk.pad.*``
  functions become explicit ``(low, high)`` pairs.
* Haiku's default ``w_init`` is ``TruncatedNormal(1 / sqrt(fan_in))``.
* Transposed conv kernels are ``[*k, O, I]`` in Haiku and ``[*k, I, O]`` in Flax:
  ``mask`` is transposed, and shape-dependent initializers draw in Haiku's layout.
* Depthwise convs need the input channel count ``C``, which Haiku reads at call
  time. Where the input is known at construction (the immediate call
  ``hk.DepthwiseConv2D(m, k)(x)``, or a local called once on a method argument)
  the rewrite is ``nn.Conv(m * C, feature_group_count=C)``; otherwise (built in
  ``__init__``, channels-first, a run-time ``**config``) it is the emitted
  ``DepthwiseConv1D/2D/3D`` helper: Haiku's fields, ``C`` read from the input in
  ``@nn.compact``, the same ``lax.conv_general_dilated`` call, and
  ``kernel [*k, 1, C * m]`` / ``bias`` leaves (Haiku's ``w`` / ``b`` renamed).

Examples::

    hk.Conv2D(16, 3)                -> nn.Conv(16, (3, 3), kernel_init=<haiku default>)
    hk.Conv1D(8, 5, rate=2, padding=hk.pad.causal)
                                    -> nn.Conv(8, (5,), padding=((8, 0),), kernel_dilation=2, ...)
    hk.Conv2DTranspose(4, 3, stride=2) -> nn.ConvTranspose(4, (3, 3), strides=2, ...)
    hk.DepthwiseConv2D(2, 3)(x)     -> nn.Conv(2 * x.shape[-1], (3, 3), feature_group_count=x.shape[-1], ...)(x)
    self.dw = hk.DepthwiseConv2D(2, 3, data_format="NCHW")
                                    -> self.dw = DepthwiseConv2D(2, 3, data_format="NCHW", name="depthwise_conv2_d")
"""

from __future__ import annotations

import re

import libcst as cst

from flaxify.migrate.initializers import default_kernel_init
from flaxify.migrate.layers_common import (
    UNKNOWN,
    Bound,
    Ctx,
    Signature,
    code,
    flax_call,
    free_name,
    haiku_name,
    is_simple_ref,
    literal,
    name_arg,
    py,
    resolve,
)
from flaxify.migrate.layers_helpers import helper_call
from flaxify.migrate.layers_linear import Args, flag_arg, init_arg
from flaxify.migrate.rewrite import JAX_IMPORT, ImportSpec, Rewrite, Unsupported, merge_imports

_CONV_PARAMS = (
    "output_channels", "kernel_shape", "stride", "rate", "padding", "with_bias",
    "w_init", "b_init", "data_format", "mask", "feature_group_count", "name",
)  # fmt: skip
_TRANSPOSE_PARAMS = (
    "output_channels", "kernel_shape", "stride", "output_shape", "padding",
    "with_bias", "w_init", "b_init", "data_format", "mask", "name",
)  # fmt: skip
_DEPTHWISE_PARAMS = (
    "channel_multiplier", "kernel_shape", "stride", "rate", "padding", "with_bias",
    "w_init", "b_init", "data_format", "name",
)  # fmt: skip

#: Haiku class name -> (signature, number of spatial dims or None for ConvND).
CONV = {f"Conv{n}D": (Signature(f"hk.Conv{n}D", _CONV_PARAMS), n) for n in (1, 2, 3)}
CONV["ConvND"] = (Signature("hk.ConvND", ("num_spatial_dims", *_CONV_PARAMS)), None)
TRANSPOSE = {f"Conv{n}DTranspose": (Signature(f"hk.Conv{n}DTranspose", _TRANSPOSE_PARAMS), n) for n in (1, 2, 3)}
TRANSPOSE["ConvNDTranspose"] = (Signature("hk.ConvNDTranspose", ("num_spatial_dims", *_TRANSPOSE_PARAMS)), None)
DEPTHWISE = {f"DepthwiseConv{n}D": (Signature(f"hk.DepthwiseConv{n}D", _DEPTHWISE_PARAMS), n) for n in (1, 2, 3)}

#: ``hk.pad`` functions of the effective kernel size ``ek = (k - 1) * rate + 1``.
_PAD_FNS = {
    "valid": lambda ek: (0, 0),
    "same": lambda ek: ((ek - 1) // 2, ek // 2),
    "full": lambda ek: (ek - 1, ek - 1),
    "causal": lambda ek: (ek - 1, 0),
    "reverse_causal": lambda ek: (0, ek - 1),
}

#: Haiku data formats whose channel axis is last (``hk.get_channel_index == -1``).
_CHANNELS_LAST = re.compile(r"^N[^C]*C$")


def spatial_dims(bound: Bound, fixed: int | None, display: str) -> int | Unsupported:
    """N, the number of spatial dimensions (a literal for ``ConvND``)."""
    if fixed is not None:
        return fixed
    n = literal(bound.get("num_spatial_dims"))
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        return n
    return Unsupported(f"{display}: num_spatial_dims must be a literal int to choose the Flax kernel size")


def replicate(value: object, n: int) -> tuple[object, ...] | None:
    """Haiku's ``utils.replicate``: an int (or 1-sequence) becomes an n-tuple."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if isinstance(value, tuple | list) and len(value) in (1, n):
        return tuple(value) * (n if len(value) == 1 else 1)
    return None


def kernel_size(node: cst.BaseExpression | None, n: int, display: str) -> str | Unsupported:
    """The Flax ``kernel_size`` source: always an explicit N-tuple."""
    if node is None:
        return Unsupported(f"{display} needs kernel_shape")
    value = literal(node)
    if value is not UNKNOWN:
        sizes = replicate(value, n)
        if sizes is None:
            return Unsupported(f"{display}: kernel_shape {code(node)} must be an int or have length 1 or {n}")
        return py(sizes)
    if n == 1:
        return code(node)  # Flax reads an int as (k,), exactly Haiku's 1-D meaning
    if is_simple_ref(node):
        k = code(node)
        return f"({', '.join([k] * n)}) if isinstance({k}, int) else tuple({k})"
    if isinstance(node, cst.IfExp):  # `1 if bottleneck else 3`: each branch on its own
        body, orelse = kernel_size(node.body, n, display), kernel_size(node.orelse, n, display)
        if isinstance(body, Unsupported) or isinstance(orelse, Unsupported):
            return body if isinstance(body, Unsupported) else orelse
        body, orelse = (f"({s})" if " if " in s else s for s in (body, orelse))
        return f"{body} if {code(node.test)} else {orelse}"
    return Unsupported(
        f"{display}: kernel_shape `{code(node)}` is not a literal; nn.Conv reads an int as a "
        f"1-D kernel, so write kernel_size as a {n}-tuple"
    )


def _pad_fn_name(node: cst.BaseExpression, ctx: Ctx) -> str | None:
    qualname = resolve(node, ctx.resolver)
    if qualname and qualname.split(".")[0] == "haiku" and "pad" in qualname.split(".")[1:-1]:
        return qualname.split(".")[-1]
    return None


def _padding_from_fns(
    node: cst.BaseExpression, bound: Bound, n: int, ctx: Ctx, display: str
) -> str | Unsupported | None:
    """Explicit pairs for ``hk.pad.*`` functions (or a list of them); None if not padfns."""
    elements = [e.value for e in node.elements] if isinstance(node, cst.List | cst.Tuple) else [node]
    names = [_pad_fn_name(e, ctx) for e in elements]
    if not all(names):
        return None
    if any(name not in _PAD_FNS for name in names):
        return Unsupported(f"{display}: unknown padding function {code(node)}")
    kernel = replicate(literal(bound.get("kernel_shape")), n)
    rate = replicate(literal(bound["rate"]) if "rate" in bound else 1, n)
    fns = replicate([*names], n) if len(names) in (1, n) else None
    if kernel is None or rate is None or fns is None:
        return Unsupported(
            f"{display}: padding={code(node)} needs literal kernel_shape and rate to compute the "
            "explicit (low, high) pairs Flax takes"
        )
    pairs = tuple(_PAD_FNS[f]((k - 1) * r + 1) for f, k, r in zip(fns, kernel, rate, strict=True))  # type: ignore[operator]
    return py(pairs)


def padding(bound: Bound, n: int, ctx: Ctx, display: str, allow_fns: bool = True) -> Args | Unsupported:
    """The Flax ``padding=`` argument (nothing for Haiku's and Flax's shared 'SAME')."""
    node = bound.get("padding")
    if node is None:
        return []
    value = literal(node)
    if isinstance(value, str):
        if value.upper() not in ("SAME", "VALID", "SAME_LOWER"):
            return Unsupported(f"{display}: padding {value!r} is not a lax padding mode")
        return [] if value.upper() == "SAME" else [("padding", py(value.upper()))]
    if isinstance(value, tuple | list) and value:
        pairs = (value,) * n if isinstance(value[0], int) else tuple(value) * (n if len(value) == 1 else 1)
        if len(pairs) != n or not all(isinstance(p, tuple | list) and len(p) == 2 for p in pairs):
            return Unsupported(f"{display}: padding {code(node)} must give one (low, high) pair per spatial dim")
        return [("padding", py(tuple(tuple(p) for p in pairs)))]
    if allow_fns:
        from_fns = _padding_from_fns(node, bound, n, ctx, display)
        if from_fns is not None:
            return from_fns if isinstance(from_fns, Unsupported) else [("padding", from_fns)]
    return [("padding", code(node))]


def channels_last(bound: Bound, display: str) -> Unsupported | None:
    """None when ``data_format`` is channels-last (the only layout Flax convs take)."""
    if "data_format" not in bound:
        return None
    value = literal(bound["data_format"])
    if value == "channels_last" or (isinstance(value, str) and _CHANNELS_LAST.match(value)):
        return None
    return Unsupported(
        f"{display}(data_format={code(bound['data_format'])}): Flax convolutions are channels-last "
        "only; transpose the input to channels-last (and the output back) around nn.Conv"
    )


def _sizes_arg(node: cst.BaseExpression, n: int) -> str:
    """Strides or dilation: an int stays an int (Flax broadcasts it as Haiku does)."""
    value = literal(node)
    if isinstance(value, int) or value is UNKNOWN:
        return code(node)
    sizes = replicate(value, n)
    return py(sizes) if sizes else code(node)


def _common(bound: Bound, n: int, ctx: Ctx, display: str, *, transpose: bool = False) -> Args | Unsupported:
    """``kernel_size``, ``strides``, ``padding``, ``kernel_dilation``: shared by every conv."""
    fmt = channels_last(bound, display)
    if fmt is not None:
        return fmt
    kernel = kernel_size(bound.get("kernel_shape"), n, display)
    if isinstance(kernel, Unsupported):
        return kernel
    args: Args = [(None, kernel)]
    if "stride" in bound and literal(bound["stride"]) != 1:
        args.append(("strides", _sizes_arg(bound["stride"], n)))
    pad = padding(bound, n, ctx, display, allow_fns=not transpose)
    if isinstance(pad, Unsupported):
        return pad
    args += pad
    if "rate" in bound and literal(bound["rate"]) != 1:
        args.append(("kernel_dilation", _sizes_arg(bound["rate"], n)))
    return args


def conv(bound: Bound, ctx: Ctx, qualname_tail: str) -> Rewrite | Unsupported:
    """``hk.Conv1D/2D/3D/ConvND`` -> ``nn.Conv``."""
    sig, fixed = CONV[qualname_tail]
    n = spatial_dims(bound, fixed, sig.display)
    if isinstance(n, Unsupported):
        return n
    if "output_channels" not in bound:
        return Unsupported(f"{sig.display} needs output_channels")
    common = _common(bound, n, ctx, sig.display)
    w = init_arg(bound, "w_init", "kernel_init", ctx, default_kernel_init(ctx.nn))
    b = init_arg(bound, "b_init", "bias_init", ctx)
    for part in (common, w, b):
        if isinstance(part, Unsupported):
            return part
    args: Args = [(None, code(bound["output_channels"])), *common]
    if "feature_group_count" in bound and literal(bound["feature_group_count"]) != 1:
        args.append(("feature_group_count", code(bound["feature_group_count"])))
    args += flag_arg(bound, "with_bias", "use_bias")
    if "mask" in bound and literal(bound["mask"]) is not None:
        args.append(("mask", code(bound["mask"])))
    args += w[0] + b[0] + list(ctx.extra) + name_arg(bound, ctx.name)
    return Rewrite(flax_call(f"{ctx.nn}.Conv", args), merge_imports(w[1], b[1]))


#: Flax initializers (possibly already converted by the engine) that draw iid elements.
_FLAX_ELEMENTWISE = ("zeros", "ones", "zeros_init", "ones_init", "normal", "truncated_normal", "uniform")


def _is_elementwise(node: cst.BaseExpression, ctx: Ctx) -> bool:
    """True for initializers whose draw does not depend on the weight shape."""
    target = node.func if isinstance(node, cst.Call) else node
    qualname = resolve(target, ctx.resolver) or ""
    tail = haiku_name(qualname, "initializers")
    if tail in ("RandomNormal", "TruncatedNormal", "RandomUniform"):
        return True
    if tail == "Constant" or qualname.endswith("initializers.constant"):
        return isinstance(node, cst.Call) and bool(node.args) and isinstance(literal(node.args[0].value), int | float)
    if ".initializers." in qualname and qualname.rsplit(".", 1)[-1] in _FLAX_ELEMENTWISE:
        return True
    return qualname in ("jax.numpy.zeros", "jax.numpy.ones", "numpy.zeros", "numpy.ones")


def _transpose_kernel_init(bound: Bound, ctx: Ctx) -> tuple[Args, tuple[ImportSpec, ...]] | Unsupported:
    """``kernel_init`` for ``nn.ConvTranspose``, drawn in Haiku's ``[*k, O, I]`` layout.

    Haiku's default (fan_in = prod(k) * I) and elementwise initializers need no
    change; a fan-based one (e.g. VarianceScaling) is drawn at Haiku's shape and
    transposed, so the distribution of every kernel entry stays Haiku's.
    """
    result = init_arg(bound, "w_init", "kernel_init", ctx, default_kernel_init(ctx.nn))
    node = bound.get("w_init")
    if isinstance(result, Unsupported) or node is None or literal(node) is None or _is_elementwise(node, ctx):
        return result
    (_, init), imports = result[0][0], result[1]
    key, shape, dtype = free_name("key", node), free_name("shape", node), free_name("dtype", node)
    swapped = (
        f"lambda {key}, {shape}, {dtype}={ctx.jnp}.float32: {ctx.jnp}.swapaxes(({init})({key}, "
        f"(*{shape}[:-2], {shape}[-1], {shape}[-2]), {dtype}), -1, -2)"
    )
    return [("kernel_init", swapped)], imports


def conv_transpose(bound: Bound, ctx: Ctx, qualname_tail: str) -> Rewrite | Unsupported:
    """``hk.Conv*DTranspose`` -> ``nn.ConvTranspose`` (Haiku's ``w`` is ``swapaxes(kernel, -1, -2)``)."""
    sig, fixed = TRANSPOSE[qualname_tail]
    n = spatial_dims(bound, fixed, sig.display)
    if isinstance(n, Unsupported):
        return n
    if "output_shape" in bound and literal(bound["output_shape"]) is not None:
        return Unsupported(
            f"{sig.display}(output_shape=...) derives its padding from the input's spatial shape at "
            "call time; nn.ConvTranspose takes explicit padding: compute the (low, high) pairs for "
            "your input size (haiku's conv.compute_adjusted_padding) and pass padding="
        )
    if "output_channels" not in bound:
        return Unsupported(f"{sig.display} needs output_channels")
    common = _common(bound, n, ctx, sig.display, transpose=True)
    w = _transpose_kernel_init(bound, ctx)
    b = init_arg(bound, "b_init", "bias_init", ctx)
    for part in (common, w, b):
        if isinstance(part, Unsupported):
            return part
    args: Args = [(None, code(bound["output_channels"])), *common]
    args += flag_arg(bound, "with_bias", "use_bias")
    if "mask" in bound and literal(bound["mask"]) is not None:
        args.append(("mask", f"{ctx.jnp}.swapaxes({code(bound['mask'])}, -1, -2)"))
    args += w[0] + b[0] + list(ctx.extra) + name_arg(bound, ctx.name)
    return Rewrite(flax_call(f"{ctx.nn}.ConvTranspose", args), merge_imports(w[1], b[1]))


def depthwise(bound: Bound, ctx: Ctx, qualname_tail: str, inputs: cst.BaseExpression | None) -> Rewrite | Unsupported:
    """``hk.DepthwiseConv*D`` -> ``nn.Conv(C * m, feature_group_count=C)``, C from ``inputs``.

    Unsupported when ``inputs`` is unknown or the layout is not channels-last:
    the caller then uses :func:`depthwise_helper`.
    """
    sig, n = DEPTHWISE[qualname_tail]
    if inputs is None or not is_simple_ref(inputs):
        return Unsupported(f"{sig.display} needs the input channel count C, which Haiku reads from the input when called")
    if "channel_multiplier" not in bound:
        return Unsupported(f"{sig.display} needs channel_multiplier")
    common = _common(bound, n, ctx, sig.display, transpose=True)  # padding goes to lax as given
    w = init_arg(bound, "w_init", "kernel_init", ctx, default_kernel_init(ctx.nn))
    b = init_arg(bound, "b_init", "bias_init", ctx)
    for part in (common, w, b):
        if isinstance(part, Unsupported):
            return part
    channels = f"{code(inputs)}.shape[-1]"
    args: Args = [(None, f"{code(bound['channel_multiplier'])} * {channels}"), *common]
    args.append(("feature_group_count", channels))
    args += flag_arg(bound, "with_bias", "use_bias") + w[0] + b[0] + name_arg(bound, ctx.name)
    return Rewrite(flax_call(f"{ctx.nn}.Conv", args), merge_imports(w[1], b[1]))


#: Spatial dimension letters and Haiku's default ``data_format`` per ``DepthwiseConv{n}D``.
_DEPTHWISE_LAYOUT = {1: ("W", "NWC"), 2: ("HW", "NHWC"), 3: ("DHW", "NDHWC")}

DEPTHWISE_SOURCE = '''class {name}({nn}.Module):
    """Haiku's hk.{name}: kernel [*kernel_shape, 1, C * channel_multiplier], feature_group_count=C, C read from the input."""

    channel_multiplier: int
    kernel_shape: Any
    stride: Any = 1
    rate: Any = 1
    padding: Any = "SAME"
    with_bias: bool = True
    w_init: Any = None
    b_init: Any = None
    data_format: str = "{data_format}"

    @{nn}.compact
    def __call__(self, inputs):
        def replicate(value):
            value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
            return value * {n} if len(value) == 1 else value

        channel_index = get_channel_index(self.data_format)
        channels = inputs.shape[channel_index]
        w_shape = replicate(self.kernel_shape) + (1, self.channel_multiplier * channels)
        w_init = self.w_init or {nn}.initializers.variance_scaling(0.87962566103423978**2, "fan_in", "truncated_normal")
        kernel = self.param("kernel", w_init, w_shape, inputs.dtype)
        layout = "N{spatial}C" if channel_index == -1 else "NC{spatial}"
        out = jax.lax.conv_general_dilated(
            inputs,
            kernel,
            window_strides=replicate(self.stride),
            padding=self.padding,
            rhs_dilation=replicate(self.rate),
            dimension_numbers=(layout, "{spatial}IO", layout),
            feature_group_count=channels,
        )
        if self.with_bias:
            features = self.channel_multiplier * channels
            b_shape = (features,) if channel_index == -1 else (features, 1, 1)
            bias = self.param("bias", self.b_init or {nn}.initializers.zeros, b_shape, inputs.dtype)
            out = out + {jnp}.broadcast_to(bias, out.shape)
        return out
'''

DEPTHWISE_CLASS_IMPORTS = (JAX_IMPORT, ImportSpec("typing", "Any", None))


def depthwise_class_source(qualname_tail: str, nn: str = "nn", jnp: str = "jnp") -> str:
    """The emitted ``DepthwiseConv{n}D`` helper."""
    n = DEPTHWISE[qualname_tail][1]
    spatial, data_format = _DEPTHWISE_LAYOUT[n]
    return DEPTHWISE_SOURCE.format(name=qualname_tail, nn=nn, jnp=jnp, n=n, spatial=spatial, data_format=data_format)


def depthwise_helper(call: cst.Call, ctx: Ctx, qualname_tail: str) -> Rewrite | Unsupported:
    """``hk.DepthwiseConv2D(...)`` -> ``DepthwiseConv2D(...)`` (the exact helper), arguments as written."""
    sig, _ = DEPTHWISE[qualname_tail]
    return helper_call(call, sig, qualname_tail, ("w_init", "b_init"), ctx, required=("channel_multiplier", "kernel_shape"))
