"""Default leaf rule: same module path, leaves renamed, singleton dims squeezed.

Haiku → Flax leaf names: ``w``→``kernel``, ``b``/``offset``→``bias``,
``embeddings``→``embedding``; any other name must match exactly (``scale``,
custom ``hk.get_parameter`` names). Shapes must be equal, or differ only by
size-1 dimensions (BatchNorm ``(1,1,1,C)``→``(C,)``, channels-first conv bias
``(O,1,1)``→``(O,)``). A ConvTranspose kernel ``(*k, O, I)`` becomes
``(*k, I, O)`` (Haiku stores output channels first) — applied only when the
Flax module is an ``nn.ConvTranspose`` or, without module types, when the Haiku
module is named ``*_transpose``, because a square kernel gives no shape hint.

Examples (Haiku bucket → Flax node):
  ``linear: {w (4,8), b (8,)}`` → ``linear: {kernel (4,8), bias (8,)}``
  ``batch_norm: {scale (1,1,1,C)}`` → ``batch_norm: {scale (C,)}``
  ``conv2_d_transpose: {w (3,3,O,I)}`` → ``ConvTranspose_0: {kernel (3,3,I,O)}``
"""

from __future__ import annotations

import numpy as np

from flaxify.equivalence.index import FlaxIndex
from flaxify.equivalence.plan import Mismatch, RuleResult, Transfer, identity, reshape_to, squeeze_equal
from flaxify.equivalence.trees import FlaxPath, HaikuBucket, shape_of

RENAMES: dict[str, str] = {"w": "kernel", "b": "bias", "offset": "bias", "embeddings": "embedding"}


def flax_leaf_name(haiku_name: str, available: dict[str, tuple[int, ...]]) -> str | None:
    """The Flax leaf a Haiku leaf name maps to, if ``available`` has it."""
    if haiku_name in available:
        return haiku_name
    renamed = RENAMES.get(haiku_name)
    return renamed if renamed in available else None


def is_transpose_conv(bucket: HaikuBucket, target: FlaxPath, index: FlaxIndex) -> bool:
    kind = index.module_type(target)
    if kind is not None:
        return kind == "ConvTranspose"
    return "_transpose" in bucket.module.rsplit("/", 1)[-1]  # conv2_d_transpose, conv1_d_transpose_1


def apply(
    bucket: HaikuBucket, target: FlaxPath, index: FlaxIndex, *, collection: str = "params", by: str = "name"
) -> RuleResult | None:
    """Maps ``bucket`` onto the Flax node ``target`` leaf by leaf; None if no leaf name fits."""
    available = index.leaves_at(collection, target)
    transpose = is_transpose_conv(bucket, target, index)
    result = RuleResult("rename", unit=target)
    for name, value in bucket.leaves.items():
        flax_name = flax_leaf_name(name, available)
        if flax_name is None:
            continue
        hk_shape, fx_shape = shape_of(value), available.pop(flax_name)
        source = bucket.leaf(name)
        path = target + (flax_name,)
        if hk_shape == fx_shape and not (transpose and flax_name == "kernel"):
            result.transfers.append(
                Transfer(collection, path, (source,), identity, rule=_label(name, flax_name), by=by)
            )
        elif transpose and flax_name == "kernel" and hk_shape[:-2] + hk_shape[:-3:-1] == fx_shape:
            swap = lambda v: np.swapaxes(v[0], -1, -2)  # noqa: E731
            result.transfers.append(Transfer(collection, path, (source,), swap, rule="conv_transpose", by=by))
        elif squeeze_equal(hk_shape, fx_shape) and not transpose:
            result.transfers.append(
                Transfer(
                    collection, path, (source,), reshape_to(fx_shape), rule=_label(name, flax_name) + "+reshape", by=by
                )
            )
        else:
            result.mismatches.append(Mismatch(source, hk_shape, collection, path, fx_shape, "shape differs"))
    return None if result.empty else result


def _label(haiku_name: str, flax_name: str) -> str:
    return "same" if haiku_name == flax_name else f"{haiku_name}→{flax_name}"
