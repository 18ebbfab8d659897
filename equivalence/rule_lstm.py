"""LSTM: ``hk.LSTM`` (one fused Linear) → ``nn.LSTMCell`` / ``nn.OptimizedLSTMCell``.

Haiku: ``lstm/linear: w (I+H, 4H), b (4H,)``; rows are ``[x ; h]``, column
blocks are the gates in order **i, g, f, o**, and Haiku adds ``+1`` to the
forget pre-activation on every call. Flax: ``ii, if, ig, io: kernel (I, H)``
(no bias) and ``hi, hf, hg, ho: kernel (H, H), bias (H,)``. The ``+1`` is folded
into ``hf.bias`` (as an offset, so mapped *gradients* stay linear).

Example: ``lstm/linear: {w (7, 12), b (12,)}`` with H=3 → ``lstm: {ii: {kernel (4,3)}, …,
hf: {kernel (3,3), bias (3,) = b[6:9] + 1}}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flaxify.equivalence.index import FlaxIndex
from flaxify.equivalence.plan import Convert, Mismatch, RuleResult, Transfer
from flaxify.equivalence.trees import FlaxPath, HaikuBucket, shape_of

GATES = ("i", "g", "f", "o")  # Haiku's column order in the fused matrix
GATE_NODES = {f"{src}{g}" for src in "ih" for g in GATES}


def is_gate_node(node: FlaxPath, index: FlaxIndex) -> bool:
    return index.children("params", node) >= GATE_NODES


def find_cell(target: FlaxPath, index: FlaxIndex) -> FlaxPath | None:
    """The gate node for Haiku ``.../lstm/linear``: the LSTM's own node, or its unique gate descendant.

    Only the Haiku LSTM's node (the parent of its ``linear``) is searched, never
    the root, so an unrelated ``linear`` next to an LSTM is not taken for one.
    """
    parent = target[:-1]
    if not parent:
        return None
    if is_gate_node(parent, index):
        return parent
    below = {n[:-1] for n in index.nodes("params") if n[: len(parent)] == parent and len(n) > len(parent)}
    cells = sorted(n for n in below if is_gate_node(n, index))
    return cells[0] if len(cells) == 1 else None


def _columns(q: int, hidden: int, rows: slice | None) -> Convert:
    """Gate ``q``'s column block of the fused matrix (``rows`` selects the x or h rows)."""
    cols = slice(q * hidden, (q + 1) * hidden)

    def take(values: Sequence[np.ndarray]) -> np.ndarray:
        v = values[0]
        return v[rows, cols] if rows is not None else v[cols]

    return take


def apply(bucket: HaikuBucket, target: FlaxPath, index: FlaxIndex, *, by: str = "name") -> RuleResult | None:
    """Splits the fused LSTM matrix into per-gate kernels; None if the Flax side is no LSTM cell."""
    if set(bucket.leaves) - {"w", "b"} or "w" not in bucket.leaves:
        return None
    cell = target if by == "order" and is_gate_node(target, index) else find_cell(target, index)
    if cell is None:
        return None
    w_shape = shape_of(bucket.leaves["w"])
    hi_shape = index.leaves_at("params", cell + ("hi",)).get("kernel", (0, 0))
    hidden = hi_shape[-1]
    result = RuleResult("lstm", unit=cell)
    if len(w_shape) != 2 or w_shape[1] != 4 * hidden or w_shape[0] <= hidden:
        result.mismatches.append(
            Mismatch(
                bucket.leaf("w"),
                w_shape,
                "params",
                cell + ("hi", "kernel"),
                hi_shape,
                "not a fused LSTM (I+H, 4H) matrix",
            )
        )
        return result
    inputs = w_shape[0] - hidden
    for q, gate in enumerate(GATES):
        result.transfers += [
            Transfer(
                "params",
                cell + (f"i{gate}", "kernel"),
                (bucket.leaf("w"),),
                _columns(q, hidden, slice(0, inputs)),
                rule="lstm gate split",
                by=by,
            ),
            Transfer(
                "params",
                cell + (f"h{gate}", "kernel"),
                (bucket.leaf("w"),),
                _columns(q, hidden, slice(inputs, None)),
                rule="lstm gate split",
                by=by,
            ),
        ]
        if "b" in bucket.leaves:
            offset = 1.0 if gate == "f" else 0.0
            rule = "lstm gate split, forget bias +1" if offset else "lstm gate split"
            result.transfers.append(
                Transfer(
                    "params",
                    cell + (f"h{gate}", "bias"),
                    (bucket.leaf("b"),),
                    _columns(q, hidden, None),
                    offset=offset,
                    rule=rule,
                    by=by,
                )
            )
    return _check_shapes(result, index)


def _check_shapes(result: RuleResult, index: FlaxIndex) -> RuleResult:
    """Gate kernels the Flax cell lacks (e.g. a bias-free cell) become mismatches, not guesses."""
    flat = {path: shape_of(leaf) for (c, path), leaf in index.flat.items() if c == "params"}
    kept = []
    for t in result.transfers:
        if t.flax_path not in flat:
            result.mismatches.append(
                Mismatch(t.sources[0], (), "params", t.flax_path, (), "Flax LSTM cell has no such leaf")
            )
        else:
            kept.append(t)
    result.transfers = kept
    return result
