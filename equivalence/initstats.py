"""Initializer equivalence: does each Flax leaf start from Haiku's distribution?

Both libraries initialise the model over many seeds with their own ``init``;
the Haiku draws are mapped onto the Flax tree (so the LSTM forget bias ``+1``
counts) and each Flax leaf's pooled mean and standard deviation are compared
with a statistical tolerance of ``Z`` standard errors. Values never match
one to one (the RNG streams differ), only distributions can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from flaxify.equivalence.flax_side import merge_trees
from flaxify.equivalence.report import InitRow
from flaxify.equivalence.trees import flatten_flax, flax_path_text

if TYPE_CHECKING:
    from flaxify.equivalence.mapping import MappingPlan

Z = 4.0  # standard errors; a 12% std difference (lecun vs Haiku's truncated normal) needs ~2k draws
ABS_TOL = 1e-6


def init_rows(run: Any, plan: MappingPlan, seeds: int) -> list[InitRow]:
    """One row per Flax ``params`` leaf; none (with a note on ``run``) if a model cannot be vmapped."""
    try:
        return _rows(run, plan, seeds)
    except Exception as exc:  # noqa: BLE001 - vmapping init runs arbitrary user code
        run.notes.append(f"initializer statistics unavailable ({type(exc).__name__}: {exc})")
        return []


def _rows(run: Any, plan: MappingPlan, seeds: int) -> list[InitRow]:
    init = run.init_call
    keys = jax.random.split(jax.random.PRNGKey(2024), seeds)
    hk_kw = run.init_kwargs(init)

    def hk_init(key: jax.Array) -> Any:
        return run.hk.init(key, *init.inputs, **hk_kw)[0]

    def fx_init(key: jax.Array) -> Any:
        rngs = {"params": key, "dropout": key}
        trees = [run.module.init(rngs, *p.inputs, method=p.flax_name, **run.init_kwargs(p)) for p in run.pairs]
        return merge_trees(trees).get("params", {})  # a state-only model has no "params"

    # One compiled, vmapped init per library: drawing seeds one by one would be ~seeds times slower.
    hk_params = jax.device_get(jax.jit(jax.vmap(hk_init))(keys))
    fx_params = jax.device_get(jax.jit(jax.vmap(fx_init))(keys))
    mapped = [
        flatten_flax(plan.apply(jax.tree.map(lambda a, i=i: a[i], hk_params), None, collections={"params"}))
        for i in range(seeds)
    ]
    flax_flat = flatten_flax({"params": fx_params})
    sources = {(t.collection, t.flax_path): str(t.sources[0]) for t in plan.transfers}
    rows = []
    for key, fx in flax_flat.items():
        if key not in mapped[0]:
            continue
        hk = np.stack([np.asarray(d[key], np.float64) for d in mapped])
        rows.append(_row(flax_path_text(*key), sources.get(key, ""), hk, np.asarray(fx, np.float64)))
    return rows


def _row(name: str, source: str, hk: np.ndarray, fx: np.ndarray) -> InitRow:
    """Mean, std and kurtosis agree within ``Z`` standard errors (normal-theory errors)."""
    hm, hs, fm, fs = float(hk.mean()), float(hk.std()), float(fx.mean()), float(fx.std())
    hkurt, fkurt = _kurtosis(hk), _kurtosis(fx)
    n = hk.size
    se_mean = np.sqrt((hs**2 + fs**2) / n)
    se_std = np.sqrt((hs**2 + fs**2) / (2 * n))
    # The shape of the distribution: a normal and a truncated normal of equal std
    # differ here (3.0 vs ~2.37), and training from scratch sees the difference.
    se_kurt = np.sqrt(2 * 24 / n)
    ok = (
        abs(hm - fm) <= Z * se_mean + ABS_TOL
        and abs(hs - fs) <= Z * se_std + ABS_TOL
        and abs(hkurt - fkurt) <= Z * se_kurt
    )
    return InitRow(name, source, hm, hs, fm, fs, bool(ok), hkurt, fkurt)


def _kurtosis(values: np.ndarray) -> float:
    """Fourth standardised moment; 0 for a constant leaf (zeros, ones), where it is undefined."""
    std = values.std()
    if std == 0:
        return 0.0
    return float(np.mean(((values - values.mean()) / std) ** 4))
