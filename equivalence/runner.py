"""``compare``: run both models and build the :class:`Report`.

Order of work: wrap both objects, initialise Haiku once, map its variables
onto the Flax tree (a mapping failure is a result: the report lists it and no
outputs are compared), then on every device compare evaluation outputs and
parameter gradients, training outputs and the state after one training step
(stateful models), probe cases, and finally initializer statistics. When
outputs differ, both models are traced layer by layer to name the culprit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flaxify.equivalence import initstats, trace
from flaxify.equivalence.errors import CheckUsageError, UnsupportedModelKindError
from flaxify.equivalence.flax_side import as_flax_module, public_methods
from flaxify.equivalence.haiku_side import HaikuModel, as_haiku_model
from flaxify.equivalence.mapping import MappingPlan
from flaxify.equivalence.numerics import tolerance
from flaxify.equivalence.phases import device_checks
from flaxify.equivalence.report import Check, ParamRow, Report
from flaxify.equivalence.session import Method, Session
from flaxify.equivalence.trees import flax_path_text

PRECISIONS = ("highest", "high", "default", "float32", "tensorfloat32", "bfloat16")


def compare(
    haiku_obj: Any,
    flax_obj: Any,
    inputs: Sequence[Any] | Mapping[str, Sequence[Any]],
    *,
    kwargs: Mapping[str, Any] | None = None,
    ctor: Mapping[str, Any] | None = None,
    devices: str = "all",
    precision: str = "highest",
    rtol: float | None = None,
    atol: float | None = None,
    methods: Sequence[str] | None = None,
    init_seeds: int = 64,
    run_probes: bool = True,
    seed: int = 0,
    haiku_variables: tuple[Any, Any] | None = None,
) -> Report:
    """Compares a Haiku model with its Flax twin; see the module docstring.

    Args:
      haiku_obj: ``hk.Transformed``/``TransformedWithState``/``MultiTransformed``,
        a function, or an ``hk.Module`` subclass (constructed with ``ctor``).
      flax_obj: a ``flax.linen`` module instance, or a class (constructed with ``ctor``).
      ctor: constructor arguments for whichever side is a class; when the two
        classes take different arguments, ``{"haiku": {...}, "flax": {...}}``.
      inputs: positional call arguments; for multi-method models a dict
        ``{method: [args]}``.
      kwargs: keyword call arguments (``{"is_training": False}``); for
        multi-method models optionally ``{method: {...}}``.
      devices: ``"all"`` (CPU and any GPU), ``"cpu"`` or ``"gpu"``.
      precision: ``jax_default_matmul_precision`` during the comparison.
      rtol, atol: tolerances (default by dtype: float32 1e-5/1e-6).
      methods: Flax method names for an unnamed (tuple) ``MultiTransformed``.
      init_seeds: seeds for initializer statistics (0 skips them).
      run_probes: also compare probe cases (tiny inputs, scaled weights).
      haiku_variables: ``(params, state)`` to use instead of Haiku's ``init``
        (a trained checkpoint).

    Raises:
      CheckUsageError: bad arguments, unsupported object kinds, or a model that raises.
    """
    report, _ = run_comparison(
        haiku_obj,
        flax_obj,
        inputs,
        kwargs=kwargs,
        ctor=ctor,
        devices=devices,
        precision=precision,
        rtol=rtol,
        atol=atol,
        methods=methods,
        init_seeds=init_seeds,
        run_probes=run_probes,
        seed=seed,
        haiku_variables=haiku_variables,
    )
    return report


def run_comparison(
    haiku_obj: Any,
    flax_obj: Any,
    inputs: Any,
    *,
    kwargs: Mapping[str, Any] | None,
    ctor: Mapping[str, Any] | None,
    devices: str,
    precision: str,
    rtol: float | None,
    atol: float | None,
    methods: Sequence[str] | None,
    init_seeds: int,
    run_probes: bool,
    seed: int,
    haiku_variables: tuple[Any, Any] | None,
) -> tuple[Report, Session]:
    """:func:`compare`, also returning the run (its mapping plan and variables) for ``convert-params``."""
    if precision not in PRECISIONS:
        raise CheckUsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    hk_ctor, fx_ctor = _split_ctor(ctor)
    hk_model = as_haiku_model(haiku_obj, hk_ctor)
    module = as_flax_module(flax_obj, fx_ctor if isinstance(flax_obj, type) else None)
    pairs = _methods(hk_model, module, inputs, kwargs or {}, methods)
    targets = _devices(devices)
    run = Session(hk_model, module, pairs, targets, precision, rtol, atol, seed, haiku_variables)
    run.init_call = _init_method(pairs, inputs, kwargs or {})
    with jax.default_matmul_precision(precision):
        return build_report(run, init_seeds, run_probes), run


def _split_ctor(ctor: Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """One set of constructor arguments for both classes, or ``{"haiku": ..., "flax": ...}``."""
    if ctor and set(ctor) == {"haiku", "flax"} and all(isinstance(v, Mapping) for v in ctor.values()):
        return ctor["haiku"], ctor["flax"]
    return ctor, ctor


def _methods(
    hk_model: HaikuModel, module: nn.Module, inputs: Any, kwargs: Mapping[str, Any], names: Sequence[str] | None
) -> list[Method]:
    """Pairs each Haiku apply function with a Flax method and its own inputs and kwargs."""
    hk_names = list(hk_model.methods)
    if hk_model.named_methods:
        fx_names = list(hk_names)
    else:
        fx_names = list(names or public_methods(module))
        if len(fx_names) != len(hk_names):
            raise UnsupportedModelKindError(
                f"the Haiku model has {len(hk_names)} unnamed apply functions; name the Flax methods in order "
                f"(found {fx_names or 'none'}; pass methods=[...] or --methods)"
            )
    out = []
    for hk_name, fx_name in zip(hk_names, fx_names, strict=True):
        if fx_name != "__call__" and not callable(getattr(module, fx_name, None)):
            raise UnsupportedModelKindError(f"the Flax module {type(module).__name__} has no method {fx_name!r}")
        args = inputs.get(fx_name, inputs.get(hk_name)) if isinstance(inputs, Mapping) else inputs
        if args is None:
            raise CheckUsageError(f"no inputs given for method {fx_name!r}")
        kw = kwargs.get(fx_name, kwargs.get(hk_name, {})) if _per_method(kwargs, hk_names + fx_names) else kwargs
        out.append(Method(hk_name, fx_name, [np.asarray(a) for a in args], dict(kw)))
    return out


def _init_method(pairs: list[Method], inputs: Any, kwargs: Mapping[str, Any]) -> Method:
    """The call Haiku's ``init`` runs: the multi-transform *template*, not any one method.

    Its inputs are ``inputs['init']`` or ``inputs['__call__']`` when given,
    else those of the first method the user listed.
    """
    if not isinstance(inputs, Mapping):
        return pairs[0]
    name = next((n for n in ("init", "__call__") if n in inputs), next(iter(inputs)))
    kw = kwargs.get(name, {}) if isinstance(kwargs.get(name), Mapping) else pairs[0].kwargs
    flax_name = name if name != "init" else pairs[0].flax_name
    return Method(name, flax_name, [np.asarray(a) for a in inputs[name]], dict(kw))


def _per_method(kwargs: Mapping[str, Any], names: list[str]) -> bool:
    """``{"encode": {...}, "decode": {...}}``: every key a method name, every value a dict."""
    return bool(kwargs) and all(k in names and isinstance(v, Mapping) for k, v in kwargs.items())


def _devices(which: str) -> list[jax.Device]:
    """One CPU, plus the first GPU when asked for and present."""
    cpu = jax.devices("cpu")[:1]
    try:
        gpu = jax.devices("gpu")[:1]
    except RuntimeError:
        gpu = []
    if which == "cpu":
        return cpu
    if which == "gpu":
        if not gpu:
            raise CheckUsageError("--devices gpu: JAX sees no GPU on this machine")
        return gpu
    if which == "all":
        return cpu + gpu
    raise CheckUsageError(f"unknown --devices {which!r}; use all, cpu or gpu")


def build_report(run: Session, init_seeds: int, run_probes: bool) -> Report:
    """Maps the variables, runs every phase on every device, traces the first failure."""
    plan = run.setup()
    checks: list[Check] = []
    layers, culprits = [], [_mismatch_culprit(m) for m in plan.mismatches]
    init_rows = []
    run.variables = None
    if plan.complete:
        variables = run.variables = plan.apply(run.params, run.state)
        for device in run.devices:
            for m in run.pairs:
                checks += device_checks(run, m, device, variables, run_probes)
        failed = next((c for c in checks if c.phase in {"eval", "probe"} and not c.ok), None)
        if failed is not None:
            layers, found = safe_trace(run, failed)
            culprits += found
        culprits += [
            f"state {d.name}: differs after the call ({c.method}, {c.device})"
            for c in checks
            if c.phase == "state"
            for d in c.leaves
            if not d.within
        ]
        if init_seeds:
            init_rows = initstats.init_rows(run, plan, init_seeds)
    return Report(
        haiku_kind=run.hk.kind,
        flax_kind=type(run.module).__name__,
        precision=run.precision,
        devices=tuple(f"{d.platform}:{d.device_kind}" for d in run.devices),
        rtol=run.rtol,
        atol=run.atol,
        params=tuple(_param_rows(plan)),
        haiku_param_count=_count(run.params),
        flax_param_count=_count(run.template.get("params", {})),
        checks=tuple(checks),
        init=tuple(init_rows),
        layers=tuple(layers),
        culprits=tuple(culprits),
        notes=tuple(plan.notes) + tuple(dict.fromkeys(run.notes)),
    )


def safe_trace(run: Session, failed: Check) -> tuple[list[trace.LayerRow], list[str]]:
    """Traces the first failing case layer by layer; a diagnosis aid that never blocks the verdict."""
    m = next(p for p in run.pairs if p.flax_name == failed.method)
    inputs, params = run.probe_cases.get((m.flax_name, failed.label), (m.inputs, run.params))
    try:
        rows, found = trace_layers(run, m, inputs, params)
    except Exception as exc:  # noqa: BLE001 - interceptors meet arbitrary user code
        run.notes.append(f"layer trace unavailable ({type(exc).__name__}: {exc})")
        return [], []
    where = f" [traced on probe {failed.label}]" if failed.label else ""
    return rows, [c + where for c in found]


def trace_layers(run: Session, m: Method, inputs: list[Any], params: Any) -> tuple[list[trace.LayerRow], list[str]]:
    """Records both models module by module on ``inputs`` and names the culprits."""
    kw = run.eval_kwargs(m)
    hk_fn, fx_fn = run.hk_call(m, kw), run.fx_call(m, kw)
    xs = [jnp.asarray(x) for x in inputs]
    variables = run.plan.apply(params, run.state)
    hk_rec = trace.record_haiku(lambda: hk_fn(params, run.state, *xs))
    fx_rec = trace.record_flax(lambda: fx_fn(variables, *xs))
    rtol, atol = tolerance(["float32"], run.rtol, run.atol)
    rows = trace.layer_rows(hk_rec, fx_rec, run.plan.flax_module, rtol, atol)
    return rows, trace.culprits(rows)


def _count(tree: Any) -> int:
    """Number of scalars in a tree (the parameter count)."""
    return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(tree)))


def _mismatch_culprit(m: Any) -> str:
    """A mismatch is its own culprit: both paths, both shapes."""
    flax = flax_path_text(m.collection, m.flax_path)
    return f"{m.source}: Haiku shape {m.haiku_shape} vs Flax {flax} shape {m.flax_shape}"


def _param_rows(plan: MappingPlan) -> list[ParamRow]:
    """The side-by-side parameter table, problems last."""
    rows = []
    for t in plan.transfers:
        src = t.sources[0]
        hs, hd = plan.haiku_meta[src]
        fs, fd = plan.flax_meta[(t.collection, t.flax_path)]
        rule = t.rule + (" (by order)" if t.by == "order" else "")
        # A dtype change (Haiku makes bf16 params from bf16 inputs, Flax keeps f32) changes numerics.
        status, note = ("ok", "") if hd == fd else ("dtype", f"Haiku {hd}, Flax {fd}")
        rows.append(ParamRow(str(src), hs, hd, flax_path_text(t.collection, t.flax_path), fs, fd, rule, status, note))
    for mm in plan.mismatches:
        hs, hd = plan.haiku_meta[mm.source]
        _, fd = plan.flax_meta.get((mm.collection, mm.flax_path), (None, ""))
        rows.append(
            ParamRow(
                str(mm.source),
                hs,
                hd,
                flax_path_text(mm.collection, mm.flax_path),
                mm.flax_shape,
                fd,
                "-",
                "mismatch",
                mm.reason,
            )
        )
    for leaf in plan.unmapped:
        hs, hd = plan.haiku_meta[leaf]
        rows.append(ParamRow(str(leaf), hs, hd, "", None, "", "-", "unmapped", "no Flax leaf by name or order"))
    for key in plan.leftover:
        fs, fd = plan.flax_meta[key]
        rows.append(ParamRow("", None, "", flax_path_text(*key), fs, fd, "-", "leftover", "no Haiku leaf maps here"))
    for d in plan.dropped:
        hs, hd = plan.haiku_meta[d.source]
        rows.append(ParamRow(str(d.source), hs, hd, "", None, "", "-", "dropped", d.reason))
    return rows
