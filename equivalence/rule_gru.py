"""GRU: ``hk.GRU`` has no exact ``nn.GRUCell`` equivalent — say so instead of guessing.

Haiku's GRU (``gru: w_i (I, 3H), w_h (H, 3H), b (3H,)``, gates ``z, r, a``)
applies the reset gate *before* the recurrent matmul (``W_ha (r ⊙ h)``); Flax's
``nn.GRUCell`` applies it after (``r ⊙ (W_hn h + b_hn)``) and swaps the meaning
of ``z``. No parameter transform makes them compute the same function, so
pairing ``gru`` with a Flax ``GRUCell`` node reports each leaf as a mismatch
with that reason. A faithful port is a custom Linen cell with Haiku's leaves
(``w_i``, ``w_h``, ``b``), which the plain by-name rule maps as is.
"""

from __future__ import annotations

from flaxify.equivalence.index import FlaxIndex
from flaxify.equivalence.plan import Mismatch, RuleResult
from flaxify.equivalence.trees import FlaxPath, HaikuBucket, shape_of

HAIKU_LEAVES = {"w_i", "w_h", "b"}
FLAX_GATES = {"ir", "iz", "in", "hr", "hz", "hn"}
REASON = (
    "hk.GRU places the reset gate before the recurrent matmul; nn.GRUCell cannot reproduce it "
    "(port a custom cell with leaves w_i, w_h, b)"
)
TARGETS = {"w_i": ("ir", "kernel"), "w_h": ("hr", "kernel"), "b": ("in", "bias")}


def apply(bucket: HaikuBucket, target: FlaxPath, index: FlaxIndex, *, by: str = "name") -> RuleResult | None:
    """Reports a Haiku GRU paired with a Flax ``GRUCell``; None for anything else."""
    if not set(bucket.leaves) >= HAIKU_LEAVES or not index.children("params", target) >= FLAX_GATES:
        return None
    result = RuleResult("gru", unit=target)
    for name, leaf in TARGETS.items():
        path = target + leaf
        fx_shape = index.leaves_at("params", path[:-1]).get(path[-1], ())
        result.mismatches.append(
            Mismatch(bucket.leaf(name), shape_of(bucket.leaves[name]), "params", path, fx_shape, REASON)
        )
    return result
