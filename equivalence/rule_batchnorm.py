"""BatchNorm state: Haiku's zero-debiased EMAs → Flax ``batch_stats``.

Haiku stores ``<bn>/~/mean_ema`` and ``<bn>/~/var_ema``, each
``{counter, hidden, average}`` of shape ``(1,…,1,C)``; evaluation uses the
debiased ``average``.

The ``BatchNorm`` that ``flaxify migrate`` emits keeps exactly that layout
(``batch_stats: {<bn>: {mean_ema, var_ema: {counter, hidden, average}}}``) and
Haiku's update rule: every leaf is copied one to one and compared after a
training step like any other state.

A hand-written Flax ``nn.BatchNorm`` keeps ``batch_stats: {mean, var}`` of
shape ``(C,)`` and a plain EMA. ``average`` → ``mean``/``var`` reproduces
evaluation outputs exactly; ``hidden`` and ``counter`` have no place in
``nn.BatchNorm`` and are reported as *dropped by design*.

After a training step the two libraries disagree by design (debiased vs plain
EMA). :func:`flax_ema_expectation` gives what a faithful ``nn.BatchNorm`` (with
``momentum`` equal to Haiku's ``decay_rate``) must hold after the same step, so
a wrong momentum is still caught.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from flaxify.equivalence import rule_rename
from flaxify.equivalence.index import FlaxIndex
from flaxify.equivalence.plan import Dropped, Mismatch, RuleResult, Transfer, reshape_to, squeeze_equal
from flaxify.equivalence.trees import FlaxPath, HaikuBucket, shape_of

STATS = {"mean_ema": "mean", "var_ema": "var"}
DEBIAS_NOTE = "Haiku BatchNorm keeps a zero-debiased EMA (hidden/counter); nn.BatchNorm keeps a plain EMA"


def apply(bucket: HaikuBucket, target: FlaxPath, index: FlaxIndex, *, by: str = "name") -> RuleResult | None:
    """Maps one ``mean_ema``/``var_ema`` state bucket; None if it is not BatchNorm state."""
    if not target or target[-1] not in STATS or "average" not in bucket.leaves:
        return None
    stat = STATS[target[-1]]
    for collection in index.collections():
        if collection == "params":
            continue
        if set(bucket.leaves) <= set(index.leaves_at(collection, target)):  # the emitted exact BatchNorm
            return rule_rename.apply(bucket, target, index, collection=collection, by=by)
        available = index.leaves_at(collection, target[:-1])
        if stat in available:
            return _result(bucket, collection, target[:-1] + (stat,), available[stat], by)
    return None


def _result(bucket: HaikuBucket, collection: str, path: FlaxPath, fx_shape: tuple[int, ...], by: str) -> RuleResult:
    result = RuleResult("batchnorm_ema", unit=path[:-1])
    hk_shape = shape_of(bucket.leaves["average"])
    if squeeze_equal(hk_shape, fx_shape):
        result.transfers.append(
            Transfer(
                collection,
                path,
                (bucket.leaf("average"),),
                reshape_to(fx_shape),
                rule="ema average→" + path[-1],
                by=by,
                ema_bucket=bucket.module,
            )
        )
    else:
        result.mismatches.append(
            Mismatch(bucket.leaf("average"), hk_shape, collection, path, fx_shape, "shape differs")
        )
    for name in bucket.leaves:
        if name != "average":
            result.dropped.append(
                Dropped(bucket.leaf(name), "debiased-EMA bookkeeping; nn.BatchNorm keeps a plain EMA")
            )
    return result


def flax_ema_expectation(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[np.ndarray, float]:
    """Returns (the value a plain EMA with Haiku's decay holds after the step, that decay).

    From one Haiku training step ``hidden' = d·hidden + (1-d)·v`` with the batch
    statistic ``v`` and ``average' = hidden' / (1 - d**counter')``. The decay is
    recovered from the state itself (no access to the module's arguments):
    ``d**counter'`` = ``1 - hidden'/average'``, and the plain EMA a Flax
    ``nn.BatchNorm(momentum=d)`` starting from the converted ``average`` gives
    ``d·average + (1-d)·v``.
    """
    hidden_new = np.asarray(new["hidden"], np.float64)
    hidden_old = np.asarray(old["hidden"], np.float64)
    average_new = np.asarray(new["average"], np.float64)
    counter = float(np.asarray(new["counter"]))
    denom = float(np.sum(average_new * average_new))
    powered = 1.0 - float(np.sum(hidden_new * average_new)) / denom if denom else 0.0
    decay = float(np.clip(powered, 0.0, 1.0) ** (1.0 / max(counter, 1.0)))
    fresh = hidden_new - decay * hidden_old  # (1 - d) * v
    return decay * np.asarray(old["average"], np.float64) + fresh, decay
