"""``hk.max_pool`` / ``hk.avg_pool`` (and ``hk.MaxPool`` / ``hk.AvgPool``) -> ``nn.max_pool`` / ``nn.avg_pool``.

Haiku's window and stride shapes cover every input axis (``(1, 3, 3, 1)`` for
NHWC; a shorter tuple is left-padded with 1s, an int means "every axis but the
batch and channel axes"); Flax's cover the spatial axes only and treat every
axis before them as a batch axis. Leading axes with window 1 and stride 1 are
therefore dropped, which is exact for any input rank; an int size becomes
``(k,) * (x.ndim - 2)``. Pooling over the channel axis has no Flax spelling.

Haiku's ``avg_pool`` with ``'SAME'`` divides by the number of real (unpadded)
elements in each window: that is Flax's ``count_include_pad=False``.

Examples::

    hk.max_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), "SAME") -> nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    hk.avg_pool(x, 2, 2, "SAME")      -> nn.avg_pool(x, (2,) * (x.ndim - 2), strides=(2,) * (x.ndim - 2),
                                                     padding="SAME", count_include_pad=False)
    hk.MaxPool(2, 2, "VALID")         -> lambda x: nn.max_pool(x, (2,) * (x.ndim - 2), strides=..., padding="VALID")
"""

from __future__ import annotations

import libcst as cst

from flaxify.migrate.layers_common import (
    UNKNOWN,
    Bound,
    Resolver,
    Signature,
    bind,
    code,
    free_name,
    haiku_name,
    is_literal,
    is_simple_ref,
    literal,
    py,
    resolve,
)
from flaxify.migrate.rewrite import Rewrite, Unsupported

_POOL_PARAMS = ("window_shape", "strides", "padding", "channel_axis")
FUNCTIONS = {
    "max_pool": Signature("hk.max_pool", ("value", *_POOL_PARAMS)),
    "avg_pool": Signature("hk.avg_pool", ("value", *_POOL_PARAMS)),
}
MODULES = {
    "MaxPool": Signature("hk.MaxPool", (*_POOL_PARAMS, "name")),
    "AvgPool": Signature("hk.AvgPool", (*_POOL_PARAMS, "name")),
}


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tuple_sizes(
    window: tuple[int, ...], strides: tuple[int, ...], display: str
) -> tuple[str, str | None] | Unsupported:
    """Spatial window/strides from Haiku's (left-padded) full-rank tuples."""
    rank = max(len(window), len(strides))
    window = (1,) * (rank - len(window)) + window
    strides = (1,) * (rank - len(strides)) + strides
    if window[-1] != 1 or strides[-1] != 1:
        return Unsupported(
            f"{display}: the window/strides {window}/{strides} pool over the last (channel) axis, which "
            "Flax pooling cannot do; Haiku left-pads short tuples with 1s, so (3, 3) on NHWC pools W and C"
        )
    start = 0
    while start < rank - 2 and window[start] == 1 and strides[start] == 1:
        start += 1
    spatial_w, spatial_s = window[start:-1], strides[start:-1]
    return py(spatial_w), (None if set(spatial_s) == {1} else py(spatial_s))


def _sizes(bound: Bound, x: str | None, display: str) -> tuple[str, str | None] | Unsupported:
    """Source of Flax ``window_shape`` and ``strides`` (None: Flax's default of all 1s)."""
    window, strides = literal(bound.get("window_shape")), literal(bound.get("strides"))
    if isinstance(window, tuple | list) and all(map(_int, window)):
        if _int(strides) and strides == 1:
            strides = (1,)
        if isinstance(strides, tuple | list) and all(map(_int, strides)):
            return _tuple_sizes(tuple(window), tuple(strides), display)
    if _int(window) and (_int(strides) or (isinstance(strides, tuple | list) and set(strides) == {1})):
        if not is_literal(bound, "channel_axis", -1):
            return Unsupported(
                f"{display}: an int window with channel_axis={code(bound['channel_axis'])} pools the "
                "channel axis or a channels-first layout; Flax pools channels-last spatial axes only"
            )
        if x is None:
            return Unsupported(f"{display}: an int window needs the input rank; pass full-rank tuples")
        spatial = f"({x}.ndim - 2)"
        stride_src = None if strides in (1, (1,), [1]) or not _int(strides) else f"({strides},) * {spatial}"
        return f"({window},) * {spatial}", stride_src
    return Unsupported(
        f"{display}: window_shape and strides must be literal ints or tuples of ints (mixing an int "
        "with a shorter tuple depends on the input rank); write the Flax spatial window by hand"
    )


def _pool_call(kind: str, x: str, bound: Bound, nn: str, display: str) -> str | Unsupported:
    if "window_shape" not in bound or "strides" not in bound or "padding" not in bound:
        return Unsupported(f"{display} needs window_shape, strides and padding")
    sizes = _sizes(bound, x if x is not None else None, display)
    if isinstance(sizes, Unsupported):
        return sizes
    window, strides = sizes
    padding = literal(bound["padding"])
    if padding is not UNKNOWN and padding not in ("SAME", "VALID"):
        return Unsupported(f"{display}: padding must be 'SAME' or 'VALID'")
    args = [x, window]
    if strides is not None:
        args.append(f"strides={strides}")
    args.append(f"padding={py(padding) if padding is not UNKNOWN else code(bound['padding'])}")
    if kind == "avg" and padding != "VALID":
        args.append("count_include_pad=False")  # Haiku divides by the real elements only
    return f"{nn}.{kind}_pool({', '.join(args)})"


def rewrite_pool(
    call: cst.Call, qualname: str, *, nn: str = "nn", resolver: Resolver | None = None
) -> Rewrite | Unsupported:
    """Rewrites a Haiku pooling call (function or module constructor) into Flax pooling."""
    tail = haiku_name(qualname or resolve(call.func, resolver))
    if tail in FUNCTIONS:
        sig = FUNCTIONS[tail]
        bound = bind(call, sig)
        if isinstance(bound, Unsupported):
            return bound
        value = bound.get("value")
        if value is None:
            return Unsupported(f"{sig.display} needs its input value")
        x = code(value) if is_simple_ref(value) else None
        needs_rank = _int(literal(bound.get("window_shape")))
        if x is None and not needs_rank:
            x = code(value)
        text = (
            _pool_call(tail[:3], x, bound, nn, sig.display)
            if x
            else Unsupported(
                f"{sig.display}: an int window needs the input's rank; bind the input to a name or pass "
                "full-rank tuples"
            )
        )
        return text if isinstance(text, Unsupported) else Rewrite(cst.parse_expression(text))
    if tail in MODULES:
        sig = MODULES[tail]
        bound = bind(call, sig)
        if isinstance(bound, Unsupported):
            return bound
        x = free_name("x", *bound.values())
        text = _pool_call(tail[:3].lower(), x, bound, nn, sig.display)
        return text if isinstance(text, Unsupported) else Rewrite(cst.parse_expression(f"lambda {x}: {text}"))
    return Unsupported(f"{qualname} is not a Haiku pooling function")
