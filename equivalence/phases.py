"""The comparisons run on each device: outputs, gradients, a training step, probes.

Each phase returns :class:`~flaxify.equivalence.report.Check` values; nothing
here decides the verdict or prints.

Random numbers: every phase (evaluation, gradients, training, probes) first
asks whether the Haiku call draws keys. The Flax side always runs with
Haiku's key sequence replayed into ``make_rng``
(:mod:`~flaxify.equivalence.rng_alignment`). A phase whose Haiku call draws
keys is compared only when that replay is sound: no Flax draw inside a lifted
transform, each ``hk.next_rng_keys(n)`` matched by a split of one Flax key
into ``n``, and the outputs then agree. Otherwise it is reported as
``stochastic`` (not judged) with a note that says why, never failed: with keys
drawn in another order, different numbers prove nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from flaxify.equivalence import modes, probes
from flaxify.equivalence.numerics import LeafDiff, compare_leaf, gradient_scale
from flaxify.equivalence.report import Check
from flaxify.equivalence.rng_alignment import Draw, KeyReplay, replaying, trace_haiku_draws
from flaxify.equivalence.rule_batchnorm import DEBIAS_NOTE, flax_ema_expectation
from flaxify.equivalence.session import Method, Session, user_call
from flaxify.equivalence.trees import flatten_flax, flax_path_text, haiku_leaf_values


def device_checks(run: Session, m: Method, device: jax.Device, variables: Any, with_probes: bool) -> list[Check]:
    """Evaluation outputs, gradients, training step (or state) and probes of one method on one device."""
    put = lambda tree: jax.device_put(tree, device)
    name = f"{device.platform}"
    eval_kw = run.eval_kwargs(m)
    xs = put([jnp.asarray(x) for x in m.inputs])
    params, state, fvars = put(run.params), put(run.state), put(variables)
    stochastic, draws = _draws_keys(run, m, eval_kw, params, state, xs)
    hk_eval = jax.jit(run.hk_call(m, eval_kw))
    fx_eval, replay = replaying(jax.jit(run.fx_call(m, eval_kw)), run.rng, draws)
    hk_out, hk_state = user_call("Haiku apply", lambda: hk_eval(params, state, *xs))
    fx_out, fx_updates = user_call("Flax apply", lambda: fx_eval(fvars, *xs))
    eval_check = Check(m.flax_name, "eval", name, tuple(run.leaf_diffs(hk_out, fx_out)))
    checks = [judge_stochastic(run, eval_check, stochastic, replay)]
    checks.append(grad_check(run, m, name, eval_kw, params, state, fvars, xs, hk_out, (stochastic, draws)))
    if modes.has_mode_flag(m.kwargs):
        checks += train_checks(run, m, name, params, state, fvars, put)
    elif run.state and run.collections:  # one mode only, but the call still updates state
        diffs = state_diffs(run, jax.device_get(hk_state), jax.device_get(fx_updates))
        checks.append(judge_stochastic(run, Check(m.flax_name, "state", name, tuple(diffs)), stochastic, replay))
    if with_probes:
        evals = (hk_eval, fx_eval, stochastic, replay)
        checks += probe_checks(run, m, name, evals, params, state, fvars, xs, put)
    return checks


def judge_stochastic(run: Session, check: Check, stochastic: bool, replay: KeyReplay) -> Check:
    """``check`` as compared, or, when the Haiku call draws keys and the replay is unsound, as reported only.

    Sound: no Flax key was drawn inside a lifted transform, every draw that
    stood for an ``hk.next_rng_keys(n)`` was split into ``n`` keys, and, with
    Haiku's keys, every leaf agrees. Differing leaves with replayed keys are
    not a verdict either: the two models may draw keys in another order or
    number (a rate-0 ``hk.dropout`` still draws its key, ``nn.Dropout`` does
    not).
    """
    if not stochastic:
        return check
    # One note per method and reason; the table marks each phase.
    if replay.lifted:
        where = ", ".join(dict.fromkeys(replay.lifted))
        run.notes.append(
            f"{check.method}: phases marked stochastic draw random numbers inside a Flax lifted transform ({where}), "
            "where Flax splits keys by its own rule: Haiku's key sequence cannot be replayed; reported, not compared"
        )
        return dataclasses.replace(check, status="stochastic", rng="lifted")
    if replay.unsplit:
        where = ", ".join(dict.fromkeys(replay.unsplit))
        run.notes.append(
            f"{check.method}: phases marked stochastic draw random numbers; where Haiku called hk.next_rng_keys(n) "
            f"the Flax model ({where}) did not split its make_rng key into n keys with jax.random.split before drawing "
            "again, so the models draw keys in another number; reported, not compared"
        )
        return dataclasses.replace(check, status="stochastic", rng="keys-disagree")
    if check.ok:
        run.notes.append(
            f"{check.method}: phases marked [Haiku keys] draw random numbers and were compared with Haiku's key "
            "sequence (replayed into Flax make_rng in call order; hk.next_rng_keys(n) as the split of one key into n, "
            "hk.reserve_rng_keys as Haiku reserves)"
        )
        return dataclasses.replace(check, rng="haiku-keys")
    run.notes.append(
        f"{check.method}: phases marked stochastic draw random numbers and still differ with Haiku's key sequence "
        "replayed into Flax make_rng, so the models draw keys in another order or number, or compute something "
        "else; reported, not compared (pass kwargs that turn sampling off to compare them)"
    )
    return dataclasses.replace(check, status="stochastic", rng="keys-disagree")


def grad_check(
    run: Session,
    m: Method,
    device: str,
    kw: dict[str, Any],
    params: Any,
    state: Any,
    fvars: Any,
    xs: list[Any],
    hk_out: Any,
    keys: tuple[bool, tuple[Draw, ...] | None] = (False, None),
) -> Check:
    """Gradients of a fixed random projection of the outputs, Haiku's mapped onto the Flax tree.

    Judged per leaf by the output rule with ``atol`` widened by ``rtol`` times
    the largest gradient entry (:func:`~flaxify.equivalence.numerics.gradient_scale`).
    ``keys``: whether the Haiku call draws keys, and its record of draws (:func:`_draws_keys`).
    """
    stochastic, draws = keys
    outs = [o for o in jax.tree.leaves(hk_out) if jnp.issubdtype(o.dtype, jnp.floating)]
    gen = np.random.default_rng(1234)
    cots = [jnp.asarray(gen.standard_normal(o.shape), jnp.float32) for o in outs]

    def loss(tree: Any) -> Any:
        leaves = [o for o in jax.tree.leaves(tree) if jnp.issubdtype(o.dtype, jnp.floating)]
        return sum(
            jnp.sum(o.astype(jnp.float32) * c) for o, c in zip(leaves, cots, strict=False)
        )  # a count mismatch fails the eval check

    hk_fn, fx_fn = run.hk_call(m, kw), run.fx_call(m, kw)
    hk_grad = user_call("Haiku gradient", lambda: jax.jit(jax.grad(lambda p: loss(hk_fn(p, state, *xs)[0])))(params))
    rest = {c: v for c, v in fvars.items() if c != "params"}
    fx_grad_fn, replay = replaying(
        jax.jit(jax.grad(lambda p: loss(fx_fn({"params": p, **rest}, *xs)[0]))), run.rng, draws
    )
    # A model with state but no parameters (hk.nets.VectorQuantizerEMA) has no "params" collection.
    fx_grad = user_call("Flax gradient", lambda: fx_grad_fn(fvars.get("params", {})))
    mapped = flatten_flax(run.plan.apply(jax.device_get(hk_grad), None, linear_only=True, collections={"params"}))
    got = flatten_flax({"params": jax.device_get(fx_grad)})
    scale = gradient_scale(list(mapped.values()))  # rounding noise of a backward sum scales with its terms
    diffs = [
        compare_leaf("d/" + flax_path_text(*k), mapped[k], got[k], rtol=run.rtol, atol=run.atol, scale=scale)
        for k in mapped
        if k in got
    ]
    return judge_stochastic(run, Check(m.flax_name, "grad", device, tuple(diffs)), stochastic, replay)


def train_checks(
    run: Session, m: Method, device: str, params: Any, state: Any, fvars: Any, put: Callable[[Any], Any]
) -> list[Check]:
    """Training-mode outputs and the state after one step on a second batch (dropout: see the module docstring)."""
    kw = modes.mode_kwargs(m.kwargs, training=True)
    xs = put([jnp.asarray(x) for x in modes.second_batch(m.inputs)])
    stochastic, draws = _draws_keys(run, m, kw, params, state, xs)
    fx_train, replay = replaying(jax.jit(run.fx_call(m, kw)), run.rng, draws)
    hk_out, hk_state = user_call("Haiku apply (training)", lambda: jax.jit(run.hk_call(m, kw))(params, state, *xs))
    fx_out, fx_updates = user_call("Flax apply (training)", lambda: fx_train(fvars, *xs))
    train = Check(m.flax_name, "train", device, tuple(run.leaf_diffs(hk_out, fx_out)))
    checks = [judge_stochastic(run, train, stochastic, replay)]
    if run.state or run.collections:
        diffs = state_diffs(run, jax.device_get(hk_state), jax.device_get(fx_updates))
        checks.append(judge_stochastic(run, Check(m.flax_name, "state", device, tuple(diffs)), stochastic, replay))
    return checks


def state_diffs(run: Session, hk_state: Any, fx_updates: Any) -> list[LeafDiff]:
    """Flax collections after the call against the mapped Haiku state (BatchNorm EMAs translated)."""
    got = flatten_flax(fx_updates)
    diffs = []
    for t in run.plan.transfers:
        key = (t.collection, t.flax_path)
        if t.collection == "params" or key not in got:
            continue
        name = flax_path_text(*key)
        if t.ema_bucket is None:
            expected = t.value(haiku_leaf_values(None, hk_state))
            diffs.append(compare_leaf(name, expected, got[key], rtol=run.rtol, atol=run.atol))
            continue
        expected, decay = flax_ema_expectation(run.state[t.ema_bucket], hk_state[t.ema_bucket])
        expected = expected.reshape(np.shape(got[key])).astype(np.asarray(got[key]).dtype)
        raw = np.max(
            np.abs(np.asarray(hk_state[t.ema_bucket]["average"]).reshape(-1) - np.asarray(got[key]).reshape(-1))
        )
        run.notes.append(
            f"{DEBIAS_NOTE}: after one step Haiku's average and Flax's {t.flax_path[-1]} differ by design "
            f"(max {raw:.3g} at {name}); compared against a plain EMA with Haiku's decay {decay:.4g}"
        )
        diffs.append(
            compare_leaf(
                name,
                expected,
                got[key],
                rtol=run.rtol,
                atol=run.atol,
                exact_expected=False,
                note="plain-EMA translation of Haiku's debiased EMA",
            )
        )
    return diffs


def probe_checks(
    run: Session,
    m: Method,
    device: str,
    evals: tuple[Any, Any, bool, KeyReplay],
    params: Any,
    state: Any,
    fvars: Any,
    xs: list[Any],
    put: Callable[[Any], Any],
) -> list[Check]:
    """The probe cases of :mod:`flaxify.equivalence.probes`, each remembered for the layer trace.

    ``evals``: the jitted evaluation calls (the Flax one replaying Haiku's
    keys), whether the Haiku one draws keys, and the Flax replay record.
    """
    hk_eval, fx_eval, stochastic, replay = evals

    def probe(label: str, hk_params: Any, fx_vars: Any, inputs: list[Any], exact: bool) -> Check:
        pxs = put([jnp.asarray(x) for x in inputs])
        diffs = run.leaf_diffs(hk_eval(hk_params, state, *pxs)[0], fx_eval(fx_vars, *pxs)[0])
        check = Check(m.flax_name, "probe", device, tuple(diffs), label=label, counts_for_bitexact=exact)
        return judge_stochastic(run, check, stochastic, replay)

    checks = []
    for label, probe_xs in probes.input_probes(list(m.inputs)):
        run.probe_cases[(m.flax_name, label)] = (probe_xs, run.params)
        checks.append(probe(label, params, fvars, probe_xs, exact=True))
    # Probes that move the parameters: a correct port may still differ by an ulp (scale
    # multiplied in another order), so they are judged by tolerance, not bit-exactness.
    cases = [("perturbed-params", probes.perturbed(jax.device_get(params)))]
    cases += list(probes.weight_probes(cases[0][1]))
    for label, hk_params in cases:
        run.probe_cases[(m.flax_name, label)] = (list(m.inputs), hk_params)
        fx_vars = put(run.plan.apply(hk_params, run.state))
        checks.append(probe(label, put(hk_params), fx_vars, list(m.inputs), exact=False))
    return checks


def _draws_keys(
    run: Session, m: Method, kw: dict[str, Any], params: Any, state: Any, xs: list[Any]
) -> tuple[bool, tuple[Draw, ...] | None]:
    """Whether the Haiku call uses its apply key at all (dropout in training mode, sampling in any mode), and how.

    The call is traced with the key as the one argument; any draw
    (``hk.next_rng_key``, ``hk.maybe_next_rng_key``, ``hk.next_rng_keys``)
    splits that key, so its variable appears among the equations' inputs. A
    call that never draws leaves it unused. The same trace records the order
    of Haiku's draws (:func:`~flaxify.equivalence.rng_alignment.trace_haiku_draws`),
    which the Flax replay follows.
    """
    apply = run.hk.methods[m.name]
    try:
        closed, draws = trace_haiku_draws(lambda key: apply(params, state, key, *xs, **kw), run.rng)
    except Exception:  # noqa: BLE001 - a failing model is reported by the real call
        return False, None
    keys = closed.jaxpr.invars
    used = [v for eqn in closed.jaxpr.eqns for v in eqn.invars] + list(closed.jaxpr.outvars)
    return any(u is k for u in used for k in keys), draws
