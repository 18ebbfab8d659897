"""Layer tracing: which module is the first to compute something different.

Both models run once more with method interceptors (``hk.intercept_methods``,
``nn.intercept_methods``) that record each module call's array inputs and
outputs. Calls inside ``scan`` bodies (``hk.dynamic_unroll``, ``nn.RNN``) only
see tracers, so their values are fetched with ``jax.debug.callback``, one
record per step. A module whose inputs agree but whose outputs do not is a
*culprit*; the deepest, earliest one is reported (a wrong LayerNorm epsilon
points at that LayerNorm, not at the model around it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import haiku as hk
import jax
import numpy as np

from flaxify.equivalence.numerics import close
from flaxify.equivalence.trees import FlaxPath

Key = tuple[Any, str]  # (module path, method name)


@dataclass(frozen=True)
class LayerRow:
    """One Haiku module call site lined up with its Flax counterpart."""

    haiku_module: str
    method: str
    flax_module: str
    calls: int
    inputs_match: bool
    outputs_match: bool
    diverges_on_same_inputs: bool


class _Recorder:
    def __init__(self) -> None:
        self.order: list[Key] = []
        self.calls: dict[Key, list[tuple[list[np.ndarray], list[np.ndarray]]]] = {}

    def enter(self, key: Key) -> None:
        """Notes the first call of ``key`` on the way in, so parents precede children."""
        if key not in self.order:
            self.order.append(key)

    def record(self, key: Key, inputs: Any, outputs: Any) -> None:
        ins = [x for x in jax.tree.leaves(inputs) if hasattr(x, "shape")]
        outs = [x for x in jax.tree.leaves(outputs) if hasattr(x, "shape")]
        n_in = len(ins)

        def store(*values: Any) -> None:
            arrays = [np.asarray(v) for v in values]
            self.calls.setdefault(key, []).append((arrays[:n_in], arrays[n_in:]))

        if any(isinstance(x, jax.core.Tracer) for x in ins + outs):
            jax.debug.callback(store, *ins, *outs)
        else:
            store(*ins, *outs)


def record_haiku(run: Callable[[], Any]) -> _Recorder:
    """Runs ``run`` (a Haiku apply call) recording every module method call."""
    rec = _Recorder()

    def interceptor(next_f, args, kwargs, context):
        if context.method_name == "__init__":  # the module has no name yet
            return next_f(*args, **kwargs)
        key = (context.module.module_name, context.method_name)
        rec.enter(key)
        out = next_f(*args, **kwargs)
        rec.record(key, args, out)
        return out

    with hk.intercept_methods(interceptor):
        jax.block_until_ready(run())
    jax.effects_barrier()
    return rec


def record_flax(run: Callable[[], Any]) -> _Recorder:
    """Runs ``run`` (a Flax apply call) recording every module method call."""
    rec = _Recorder()

    def interceptor(next_f, args, kwargs, context):
        out = next_f(*args, **kwargs)
        scope = context.module.scope
        if scope is not None and context.method_name != "setup":
            rec.record((tuple(scope.path), context.method_name), args, out)
        return out

    with nn.intercept_methods(interceptor):
        jax.block_until_ready(run())
    jax.effects_barrier()
    return rec


def _match(refs: list[np.ndarray], gots: list[np.ndarray], rtol: float, atol: float) -> bool:
    """Every Haiku array has a Flax array of the same shape that agrees (order may differ: (h, c) vs (c, h))."""
    return all(any(close(r, g, rtol, atol) for g in gots if np.shape(g) == np.shape(r)) for r in refs)


def layer_rows(
    haiku: _Recorder, flax: _Recorder, to_flax: Callable[[str], FlaxPath], rtol: float, atol: float
) -> list[LayerRow]:
    """Lines up the recorded calls of both models by mapped module path.

    Calls are paired by their inputs, not by position: a lifted ``nn.scan``
    records its whole-sequence call as well as each step, Haiku only the steps.
    """
    rows = []
    for module, method in haiku.order:
        fkey = (to_flax(module), method)
        hk_calls, fx_calls = haiku.calls.get((module, method), []), flax.calls.get(fkey, [])
        if not hk_calls or not fx_calls or method == "__init__":
            continue
        ins_ok, outs_ok, culprit = True, True, False
        for hk_in, hk_out in hk_calls:
            partners = [fx_out for fx_in, fx_out in fx_calls if _match(hk_in, fx_in, rtol, atol)]
            same = any(_match(hk_out, fx_out, rtol, atol) for fx_out in partners)
            ins_ok, outs_ok = ins_ok and bool(partners), outs_ok and same
            culprit = culprit or (bool(partners) and not same)
        rows.append(LayerRow(module, method, "/".join(fkey[0]) or "<root>", len(hk_calls), ins_ok, outs_ok, culprit))
    return rows


def culprits(rows: list[LayerRow]) -> list[str]:
    """The deepest modules whose inputs agree but outputs differ; else the first divergent module."""
    bad = [r for r in rows if r.diverges_on_same_inputs]
    leaves = [r for r in bad if not any(o is not r and o.haiku_module.startswith(r.haiku_module + "/") for o in bad)]
    if leaves:
        return [f"{r.haiku_module} (Flax {r.flax_module}, {r.method}): same inputs, different outputs" for r in leaves]
    diverged = [r for r in rows if not r.outputs_match]
    if diverged:
        r = diverged[0]
        return [
            f"{r.haiku_module} (Flax {r.flax_module}): first module with different outputs; its inputs already "
            "differ, so the cause is upstream, in code outside any module call"
        ]
    return []
