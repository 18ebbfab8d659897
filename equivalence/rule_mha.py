"""Multi-head attention: ``hk.MultiHeadAttention`` → ``nn.MultiHeadDotProductAttention``.

Haiku projects with ``query/key/value: w (D, H·K), b (H·K,)`` and writes the
output with ``linear: w (H·V, D')``; Flax keeps heads apart:
``query/key/value: kernel (D, H, K), bias (H, K)`` and ``out: kernel (H, V, D')``.
Haiku reshapes its projections row-major, head-major (``reshape(..., H, K)``),
so the conversion is a plain reshape; ``linear`` is renamed ``out``.

Example: ``mha/query: {w (16, 8)}`` → ``mha/query: {kernel (16, 2, 4)}`` (H=2, K=4).
"""

from __future__ import annotations

from flaxify.equivalence.index import FlaxIndex
from flaxify.equivalence.plan import Mismatch, RuleResult, Transfer, refines, reshape_to
from flaxify.equivalence.rule_rename import flax_leaf_name
from flaxify.equivalence.trees import FlaxPath, HaikuBucket, shape_of

PROJECTIONS = {"query", "key", "value", "linear"}
FLAX_CHILDREN = {"query", "key", "value", "out"}


def target_for(target: FlaxPath, index: FlaxIndex) -> FlaxPath | None:
    """The Flax node of a Haiku MHA projection bucket, or None if this is not MHA."""
    if not target or target[-1] not in PROJECTIONS:
        return None
    if not index.children("params", target[:-1]) >= FLAX_CHILDREN:
        return None
    return target[:-1] + ("out" if target[-1] == "linear" else target[-1],)


def apply(bucket: HaikuBucket, target: FlaxPath, index: FlaxIndex, *, by: str = "name") -> RuleResult | None:
    """Maps one projection bucket with head-splitting reshapes; None if not an MHA layout."""
    node = target_for(target, index)
    if node is None:
        return None
    available = index.leaves_at("params", node)
    result = RuleResult("mha", unit=node)
    for name, value in bucket.leaves.items():
        flax_name = flax_leaf_name(name, available)
        if flax_name is None:
            continue
        hk_shape, fx_shape = shape_of(value), available.pop(flax_name)
        path = node + (flax_name,)
        if refines(hk_shape, fx_shape) or refines(fx_shape, hk_shape):
            result.transfers.append(
                Transfer("params", path, (bucket.leaf(name),), reshape_to(fx_shape), rule="mha reshape", by=by)
            )
        else:
            result.mismatches.append(
                Mismatch(bucket.leaf(name), hk_shape, "params", path, fx_shape, "not an MHA head split")
            )
    return None if result.empty else result
