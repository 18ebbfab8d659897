"""``compare``: run both models and build the :class:`Report`.

Order of work: wrap both objects, initialise Haiku once, map its variables
onto the Flax tree (a mapping failure is a result: the report lists it and no
outputs are compared), then on every device compare evaluation outputs and
parameter gradients, training outputs and the state after one training step
(stateful models), probe cases, and finally initializer statistics. When
outputs differ, both models are traced layer by layer to name the culprit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flaxify.equivalence import initstats, modes, probes, trace
from flaxify.equivalence.errors import CheckUsageError, ModelRaisedError, UnsupportedModelKindError
from flaxify.equivalence.flax_side import as_flax_module, merge_trees, module_table, public_methods
from flaxify.equivalence.haiku_side import HaikuModel, as_haiku_model
from flaxify.equivalence.mapping import MappingPlan, build_plan
from flaxify.equivalence.numerics import LeafDiff, compare_leaf, compare_trees, tolerance
from flaxify.equivalence.report import Check, ParamRow, Report
from flaxify.equivalence.rule_batchnorm import DEBIAS_NOTE, flax_ema_expectation
from flaxify.equivalence.trees import HaikuLeaf, flatten_flax, flax_path_text

PRECISIONS = ("highest", "high", "default", "float32", "tensorfloat32", "bfloat16")


@dataclass(frozen=True)
class Method:
    """One Haiku apply function paired with a Flax method, with its inputs and kwargs."""

    name: str
    flax_name: str
    inputs: list[Any]
    kwargs: dict[str, Any]


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
        haiku_obj, flax_obj, inputs, kwargs=kwargs, ctor=ctor, devices=devices, precision=precision, rtol=rtol,
        atol=atol, methods=methods, init_seeds=init_seeds, run_probes=run_probes, seed=seed, haiku_variables=haiku_variables,
    )
    return report


def run_comparison(
    haiku_obj: Any, flax_obj: Any, inputs: Any, *, kwargs: Mapping[str, Any] | None, ctor: Mapping[str, Any] | None,
    devices: str, precision: str, rtol: float | None, atol: float | None, methods: Sequence[str] | None,
    init_seeds: int, run_probes: bool, seed: int, haiku_variables: tuple[Any, Any] | None,
) -> tuple[Report, "_Run"]:
    """:func:`compare`, also returning the run (its mapping plan and variables) for ``convert-params``."""
    if precision not in PRECISIONS:
        raise CheckUsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    hk_model = as_haiku_model(haiku_obj, ctor)
    module = as_flax_module(flax_obj, ctor if isinstance(flax_obj, type) else None)
    pairs = _methods(hk_model, module, inputs, kwargs or {}, methods)
    targets = _devices(devices)
    run = _Run(hk_model, module, pairs, targets, precision, rtol, atol, seed, haiku_variables)
    run.init_call = _init_method(pairs, inputs, kwargs or {})
    with jax.default_matmul_precision(precision):
        return run.report(init_seeds, run_probes), run


def _methods(
    hk_model: HaikuModel, module: nn.Module, inputs: Any, kwargs: Mapping[str, Any], names: Sequence[str] | None
) -> list[Method]:
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
    for hk_name, fx_name in zip(hk_names, fx_names):
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


def _user(what: str, fn: Callable[[], Any]) -> Any:
    """Runs user code, turning its exceptions into a usage error that says which call failed."""
    try:
        return fn()
    except CheckUsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure in user code is reported, not a traceback
        raise ModelRaisedError(f"{what} raised {type(exc).__name__}: {exc}") from exc


class _Run:
    """State shared by the phases of one comparison."""

    def __init__(self, hk_model: HaikuModel, module: nn.Module, pairs: list[Method], devices: list[jax.Device],
                 precision: str, rtol: float | None, atol: float | None, seed: int,
                 haiku_variables: tuple[Any, Any] | None = None) -> None:
        self.hk, self.module, self.pairs, self.devices = hk_model, module, pairs, devices
        self.given = haiku_variables
        self.precision, self.rtol, self.atol = precision, rtol, atol
        self.rng = jax.random.PRNGKey(seed)
        self.notes: list[str] = []
        self.init_call = pairs[0]
        self.probe_cases: dict[str, tuple[list[Any], Any]] = {}  # probe label -> (inputs, Haiku params)

    # -- setup -------------------------------------------------------------------------------
    def init_kwargs(self, m: Method) -> dict[str, Any]:
        return modes.mode_kwargs(m.kwargs, training=True) or m.kwargs

    def eval_kwargs(self, m: Method) -> dict[str, Any]:
        return modes.mode_kwargs(m.kwargs, training=False) or m.kwargs

    def setup(self) -> MappingPlan:
        first = self.init_call
        if self.given is not None:
            self.params, self.state = self.given[0], self.given[1] or {}
        else:
            self.params, self.state = _user(
                "Haiku init", lambda: self.hk.init(self.rng, *first.inputs, **self.init_kwargs(first))
            )
        rngs = {"params": self.rng, "dropout": self.rng}
        trees = [
            _user(f"Flax init ({m.flax_name})", lambda m=m: jax.eval_shape(
                lambda r: self.module.init(r, *m.inputs, method=m.flax_name, **self.init_kwargs(m)), rngs))
            for m in self.pairs
        ]
        # `sow` output is a by-product of the call, not model state: never mapped.
        self.template = {c: v for c, v in merge_trees(trees).items() if c != "intermediates"}
        head = self.pairs[0]
        self.table = _user("Flax init", lambda: module_table(self.module, rngs, *head.inputs, method=head.flax_name, **self.init_kwargs(head)))
        self.collections = [c for c in self.template if c != "params"]
        return build_plan(self.params, self.state, self.template, root_is_module=self.hk.root_is_module, flax_modules=self.table)

    # -- calling both models -------------------------------------------------------------------
    def hk_call(self, m: Method, kwargs: dict[str, Any], rng: Any = "default") -> Callable[..., Any]:
        apply, key = self.hk.methods[m.name], self.rng if rng == "default" else rng
        return lambda params, state, *xs: apply(params, state, key, *xs, **kwargs)

    def fx_call(self, m: Method, kwargs: dict[str, Any]) -> Callable[..., Any]:
        mutable = self.collections or False

        def call(variables: Any, *xs: Any) -> tuple[Any, Any]:
            res = self.module.apply(variables, *xs, method=m.flax_name, mutable=mutable, rngs={"dropout": self.rng}, **kwargs)
            return res if mutable else (res, {})

        return call

    # -- the report --------------------------------------------------------------------------
    def report(self, init_seeds: int, run_probes: bool) -> Report:
        plan = self.setup()
        self.plan = plan
        checks: list[Check] = []
        layers, culprits = [], [_mismatch_culprit(m) for m in plan.mismatches]
        init_rows = []
        self.variables = None
        if plan.complete:
            variables = self.variables = plan.apply(self.params, self.state)
            for device in self.devices:
                for m in self.pairs:
                    checks += self.device_checks(m, device, variables, run_probes)
            failed = next((c for c in checks if c.phase in {"eval", "probe"} and not c.ok), None)
            if failed is not None:
                layers, found = self.safe_trace(failed)
                culprits += found
            culprits += [f"state {d.name}: differs after one training step" for c in checks if c.phase == "state" for d in c.leaves if not d.within]
            if init_seeds:
                init_rows = initstats.init_rows(self, plan, init_seeds)
        return Report(
            haiku_kind=self.hk.kind, flax_kind=type(self.module).__name__, precision=self.precision,
            devices=tuple(f"{d.platform}:{d.device_kind}" for d in self.devices), rtol=self.rtol, atol=self.atol,
            params=tuple(_param_rows(plan)), haiku_param_count=_count(self.params),
            flax_param_count=_count(self.template.get("params", {})), checks=tuple(checks), init=tuple(init_rows),
            layers=tuple(layers), culprits=tuple(culprits), notes=tuple(plan.notes) + tuple(dict.fromkeys(self.notes)),
        )

    def device_checks(self, m: Method, device: jax.Device, variables: Any, with_probes: bool) -> list[Check]:
        put = lambda tree: jax.device_put(tree, device)  # noqa: E731
        name = f"{device.platform}"
        eval_kw = self.eval_kwargs(m)
        hk_eval = jax.jit(self.hk_call(m, eval_kw))
        fx_eval = jax.jit(self.fx_call(m, eval_kw))
        xs = put([jnp.asarray(x) for x in m.inputs])
        params, state, fvars = put(self.params), put(self.state), put(variables)
        hk_out, hk_state = _user("Haiku apply", lambda: hk_eval(params, state, *xs))
        fx_out, fx_updates = _user("Flax apply", lambda: fx_eval(fvars, *xs))
        checks = [Check(m.name, "eval", name, tuple(self.leaf_diffs(hk_out, fx_out)))]
        checks.append(self.grad_check(m, name, eval_kw, params, state, fvars, xs, hk_out))
        if modes.has_mode_flag(m.kwargs):
            checks += self.train_checks(m, name, params, state, fvars, put)
        elif self.state and self.collections:  # one mode only, but the call still updates state
            diffs = self.state_diffs(jax.device_get(hk_state), jax.device_get(fx_updates))
            checks.append(Check(m.name, "state", name, tuple(diffs)))
        if with_probes:
            checks += self.probe_checks(m, name, hk_eval, fx_eval, params, state, fvars, xs, put)
        return checks

    def leaf_diffs(self, hk_out: Any, fx_out: Any) -> list[LeafDiff]:
        named = jax.tree_util.tree_flatten_with_path(hk_out)[0]
        names = ["out" + jax.tree_util.keystr(p) for p, _ in named]
        return compare_trees(names, [np.asarray(v) for _, v in named], [np.asarray(v) for v in jax.tree.leaves(fx_out)], rtol=self.rtol, atol=self.atol)

    def grad_check(self, m: Method, device: str, kw: dict[str, Any], params: Any, state: Any, fvars: Any, xs: list[Any], hk_out: Any) -> Check:
        outs = [o for o in jax.tree.leaves(hk_out) if jnp.issubdtype(o.dtype, jnp.floating)]
        gen = np.random.default_rng(1234)
        cots = [jnp.asarray(gen.standard_normal(o.shape), jnp.float32) for o in outs]

        def loss(tree: Any) -> Any:
            leaves = [o for o in jax.tree.leaves(tree) if jnp.issubdtype(o.dtype, jnp.floating)]
            return sum(jnp.sum(o.astype(jnp.float32) * c) for o, c in zip(leaves, cots))

        hk_fn, fx_fn = self.hk_call(m, kw), self.fx_call(m, kw)
        hk_grad = _user("Haiku gradient", lambda: jax.jit(jax.grad(lambda p: loss(hk_fn(p, state, *xs)[0])))(params))
        rest = {c: v for c, v in fvars.items() if c != "params"}
        fx_grad = _user("Flax gradient", lambda: jax.jit(jax.grad(lambda p: loss(fx_fn({"params": p, **rest}, *xs)[0])))(fvars["params"]))
        mapped = flatten_flax(self.plan.apply(jax.device_get(hk_grad), None, linear_only=True, collections={"params"}))
        got = flatten_flax({"params": jax.device_get(fx_grad)})
        diffs = [compare_leaf("d/" + flax_path_text(*k), mapped[k], got[k], rtol=self.rtol, atol=self.atol) for k in mapped if k in got]
        return Check(m.name, "grad", device, tuple(diffs))

    def train_checks(self, m: Method, device: str, params: Any, state: Any, fvars: Any, put: Callable[[Any], Any]) -> list[Check]:
        kw = modes.mode_kwargs(m.kwargs, training=True)
        xs = put([jnp.asarray(x) for x in modes.second_batch(m.inputs)])
        if _needs_rng(self.hk_call(m, kw, rng=None), params, state, xs):
            self.notes.append(f"{m.name}: training mode draws random numbers (dropout): outputs and state are reported, not compared")
            return [Check(m.name, "train", device, (), status="stochastic")]
        hk_out, hk_state = _user("Haiku apply (training)", lambda: jax.jit(self.hk_call(m, kw))(params, state, *xs))
        fx_out, fx_updates = _user("Flax apply (training)", lambda: jax.jit(self.fx_call(m, kw))(fvars, *xs))
        checks = [Check(m.name, "train", device, tuple(self.leaf_diffs(hk_out, fx_out)))]
        if self.state or self.collections:
            checks.append(Check(m.name, "state", device, tuple(self.state_diffs(jax.device_get(hk_state), jax.device_get(fx_updates)))))
        return checks

    def state_diffs(self, hk_state: Any, fx_updates: Any) -> list[LeafDiff]:
        got = flatten_flax(fx_updates)
        diffs = []
        for t in self.plan.transfers:
            key = (t.collection, t.flax_path)
            if t.collection == "params" or key not in got:
                continue
            name = flax_path_text(*key)
            if t.ema_bucket is None:
                expected = t.value(_leaves(hk_state))
                diffs.append(compare_leaf(name, expected, got[key], rtol=self.rtol, atol=self.atol))
                continue
            expected, decay = flax_ema_expectation(self.state[t.ema_bucket], hk_state[t.ema_bucket])
            expected = expected.reshape(np.shape(got[key])).astype(np.asarray(got[key]).dtype)
            raw = np.max(np.abs(np.asarray(hk_state[t.ema_bucket]["average"]).reshape(-1) - np.asarray(got[key]).reshape(-1)))
            self.notes.append(
                f"{DEBIAS_NOTE}: after one step Haiku's average and Flax's {t.flax_path[-1]} differ by design "
                f"(max {raw:.3g} at {name}); compared against a plain EMA with Haiku's decay {decay:.4g}"
            )
            diffs.append(compare_leaf(name, expected, got[key], rtol=self.rtol, atol=self.atol, exact_expected=False, note="plain-EMA translation of Haiku's debiased EMA"))
        return diffs

    def probe_checks(self, m: Method, device: str, hk_eval: Any, fx_eval: Any, params: Any, state: Any, fvars: Any, xs: list[Any], put: Callable[[Any], Any]) -> list[Check]:
        checks = []
        for label, probe_xs in probes.input_probes(list(m.inputs)):
            self.probe_cases[label] = (probe_xs, self.params)
            pxs = put([jnp.asarray(x) for x in probe_xs])
            checks.append(Check(m.name, "probe", device, tuple(self.leaf_diffs(hk_eval(params, state, *pxs)[0], fx_eval(fvars, *pxs)[0])), label=label))
        host_params = probes.perturbed(jax.device_get(params))
        self.probe_cases["perturbed-params"] = (list(m.inputs), host_params)
        fv, hp = put(self.plan.apply(host_params, self.state)), put(host_params)
        checks.append(Check(m.name, "probe", device, tuple(self.leaf_diffs(hk_eval(hp, state, *xs)[0], fx_eval(fv, *xs)[0])), label="perturbed-params", counts_for_bitexact=False))
        for label, scaled in probes.weight_probes(host_params):
            self.probe_cases[label] = (list(m.inputs), scaled)
            fv = put({**self.plan.apply(scaled, self.state)})
            hp = put(scaled)
            checks.append(Check(m.name, "probe", device, tuple(self.leaf_diffs(hk_eval(hp, state, *xs)[0], fx_eval(fv, *xs)[0])), label=label, counts_for_bitexact=False))
        return checks

    def safe_trace(self, failed: Check) -> tuple[list[trace.LayerRow], list[str]]:
        """Traces the first failing case layer by layer; a diagnosis aid that never blocks the verdict."""
        m = next(p for p in self.pairs if p.name == failed.method)
        inputs, params = self.probe_cases.get(failed.label, (m.inputs, self.params))
        try:
            rows, found = self.trace(m, inputs, params)
        except Exception as exc:  # noqa: BLE001 - interceptors meet arbitrary user code
            self.notes.append(f"layer trace unavailable ({type(exc).__name__}: {exc})")
            return [], []
        where = f" [traced on probe {failed.label}]" if failed.label else ""
        return rows, [c + where for c in found]

    def trace(self, m: Method, inputs: list[Any], params: Any) -> tuple[list[trace.LayerRow], list[str]]:
        kw = self.eval_kwargs(m)
        hk_fn, fx_fn = self.hk_call(m, kw), self.fx_call(m, kw)
        xs = [jnp.asarray(x) for x in inputs]
        variables = self.plan.apply(params, self.state)
        hk_rec = trace.record_haiku(lambda: hk_fn(params, self.state, *xs))
        fx_rec = trace.record_flax(lambda: fx_fn(variables, *xs))
        rtol, atol = tolerance(["float32"], self.rtol, self.atol)
        rows = trace.layer_rows(hk_rec, fx_rec, self.plan.flax_module, rtol, atol)
        return rows, trace.culprits(rows)


def _needs_rng(call: Callable[..., Any], params: Any, state: Any, xs: list[Any]) -> bool:
    try:
        jax.eval_shape(call, params, state, *xs)
    except ValueError as exc:
        return "rng" in str(exc).lower() or "random" in str(exc).lower()
    except Exception:  # noqa: BLE001 - other failures surface in the real call
        return False
    return False


def _leaves(state: Mapping[str, Mapping[str, Any]]) -> dict[HaikuLeaf, Any]:
    return {HaikuLeaf("state", m, n): v for m, leaves in state.items() for n, v in leaves.items()}


def _count(tree: Any) -> int:
    return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(tree)))


def _mismatch_culprit(m: Any) -> str:
    return f"{m.source}: Haiku shape {m.haiku_shape} vs Flax {flax_path_text(m.collection, m.flax_path)} shape {m.flax_shape}"


def _param_rows(plan: MappingPlan) -> list[ParamRow]:
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
        rows.append(ParamRow(str(mm.source), hs, hd, flax_path_text(mm.collection, mm.flax_path), mm.flax_shape, fd, "-", "mismatch", mm.reason))
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
