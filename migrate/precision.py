"""``hk.mixed_precision.set_policy(cls, policy)`` -> ``dtype=`` / ``param_dtype=`` and casts on the layers of ``cls``.

What Haiku does (``haiku/_src/mixed_precision.py``): ``set_policy`` installs a
method interceptor that, for every method of a module whose *exact* class has
a policy (subclasses do not inherit it), casts the floating array arguments to
``compute_dtype``, creates every parameter built while the method runs in
``param_dtype`` (a custom creator), casts every parameter and state value read
to ``compute_dtype`` (a custom getter) and casts the result to
``output_dtype``. Policies nest: the innermost module with a policy governs the
parameters of the modules it builds, so a policy on ``hk.BatchNorm`` wins over
one on a ``ResNet50`` around it. The Linen forms below were checked bit-exact
on CPU with bfloat16 (``fixtures/migrate/precision``)::

    set_policy(hk.Linear, jmp.get_policy("p=f32,c=bf16"))          # also hk.Conv1D/2D/3D -> nn.Conv
    y = hk.Linear(8)(x)
    ->
    y = nn.Dense(8, ..., dtype=jnp.bfloat16, param_dtype=jnp.float32, name="linear")(x)

``nn.Dense`` / ``nn.Conv`` cast the input, kernel and bias to ``dtype``
(``promote_dtype``) and compute in it, as Haiku does. An output dtype that
differs from compute becomes ``.astype(output)`` on the layer's call::

    set_policy(hk.Linear, jmp.get_policy("p=f32,c=bf16,o=f32"))
    y = nn.Dense(8, ..., dtype=jnp.bfloat16, param_dtype=jnp.float32, name="linear")(x).astype(jnp.float32)

``hk.BatchNorm`` (the helper flaxify emits creates its parameters in the input
dtype) with ``params == compute`` -- DeepMind's ImageNet keeps it in float32 --
becomes casts at the call, and so does ``hk.LayerNorm`` with
``params == compute == float32`` (``nn.LayerNorm`` on float32 input)::

    set_policy(hk.BatchNorm, jmp.get_policy("p=f32,c=f32,o=bf16"))
    y = BatchNorm(True, True, 0.9, name="batch_norm")(x.astype(jnp.float32), is_training).astype(jnp.bfloat16)

A policy on a module class of the file whose one method is ``__call__`` with
positional inputs becomes ``x = x.astype(compute)`` for each array input,
``dtype=`` / ``param_dtype=`` on the ``nn.Dense`` / ``nn.Conv`` layers inside
and ``.astype(output)`` on each result: Linen's layers cast what they receive
where Haiku's promote, so it is applied only when every value in the body is
provably compute-dtype (inputs, layer outputs, Python numbers, dtype-keeping
``jax.nn`` / ``jnp`` functions; ``_DtypeFlow``). Inputs read only as flags
(``if is_training``, a BatchNorm's ``is_training``) stay uncast, as Haiku casts
floating arrays only; a layer inside with its own policy (ImageNet's float32
BatchNorm in a bfloat16 ResNet) keeps it, the innermost winning as in Haiku,
when it returns the compute dtype. Haiku keys a policy on such a class by its
module and name, so it governs this file's class only::

    set_policy(hk.BatchNorm, jmp.get_policy("p=f32,c=f32,o=bf16"))
    set_policy(ConvNet, jmp.get_policy("p=f32,c=bf16,o=f32"))
    ->
    def __call__(self, images, is_training):
        images = images.astype(jnp.bfloat16)
        x = nn.Conv(8, (3, 3), ..., dtype=jnp.bfloat16, param_dtype=jnp.float32, name="conv2_d")(images)
        x = BatchNorm(...)(x.astype(jnp.float32), is_training).astype(jnp.bfloat16)
        return nn.Dense(10, ..., dtype=jnp.bfloat16, param_dtype=jnp.float32, name="linear")(x).astype(jnp.float32)

A ``set_policy`` at module level, or an unconditional one at the top of a
module-level function (``def main()`` setting policies before the model is
built), is applied statically and removed. The function case assumes the
function runs before the model (Haiku applies nothing until it does; the
Flax layers now always carry the dtypes). The policy is a
``jmp.get_policy("...")`` or ``jmp.Policy(...)`` call with literal dtypes, or a
name bound once to one in the same scope (such an assignment in a function goes
too once nothing else reads it). Left under a TODO saying why:

* ``"half"``: jmp picks bfloat16 or float16 by backend at run time;
* a policy on another class: on a module class of the file with other methods,
  defaults other than flags', an input read as array and flag, other modules or
  dtype-changing code inside, an inner policy returning another dtype, or a
  tuple result (Haiku casts each floating leaf), ``hk.ConvND`` (it and
  ``hk.Conv1D/2D/3D`` all become ``nn.Conv``), other norms (Linen norms reduce
  in float32 whatever ``dtype`` is: 0.016 off for LayerNorm in bfloat16);
* ``hk.BatchNorm`` with ``params != compute`` (the helper has no
  ``param_dtype``), ``hk.LayerNorm`` outside float32;
* a layer of the class that is not called where it is built (bound to a name)
  when a cast is needed, or a BatchNorm called with ``scale=`` / ``offset=``;
* a file whose emitted helpers build the class's Flax layer (``hk.nets.MLP``,
  ``hk.LSTM``, ``hk.MultiHeadAttention``, ...): Haiku's policy reaches those;
* a file that builds no layer of the class: the policy is process-wide and
  governs layers built in other files, which this file cannot annotate;
* several policies on one class, a ``set_policy`` after other code in its
  function, or one nested in ``if`` / ``with`` / loops / methods.

Known limit: a Conv policy picks the ``nn.Conv`` layers by kernel rank; an
``hk.ConvND`` of the same rank given its own ``name=`` is indistinguishable
after the layer rewrite (one named ``conv_nd`` refuses the policy).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import libcst as cst
from libcst.codemod.visitors import RemoveImportsVisitor

from flaxify.migrate.base import FlaxifyCommand, MigrationState, has_todo
from flaxify.migrate.layers import helper_class
from flaxify.migrate.layers_common import code, haiku_name, literal, walk

SET_POLICY = "haiku.mixed_precision.set_policy"
# jmp's dtype names (jmp/_src/policy.py::dtype_to_names), "half" excepted.
_DTYPE_NAMES = {
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "f16": "float16",
    "float16": "float16",
    "full": "float32",
    "f32": "float32",
    "float32": "float32",
    "f64": "float64",
    "float64": "float64",
}
_KEYS = {"p": "param", "params": "param", "c": "compute", "compute": "compute", "o": "output", "output": "output"}


@dataclass(frozen=True)
class Policy:
    """A jmp policy with its dtypes as ``jax.numpy`` attribute names."""

    param: str
    compute: str
    output: str


@dataclass(frozen=True)
class Target:
    """Where a Haiku class's layers stand in the migrated file, and how its policy is written on them.

    ``flax`` is an ``nn`` attribute, or with ``helper`` the class flaxify emits;
    ``rank`` picks ``nn.Conv`` layers by kernel rank; ``casts`` layers take the
    policy as casts at the call (``compute`` pins the dtype that must hold).
    """

    flax: str
    helper: bool = False
    rank: int | None = None
    casts: bool = False
    compute: str | None = None


TARGETS = {
    "Linear": Target("Dense"),
    "Conv1D": Target("Conv", rank=1),
    "Conv2D": Target("Conv", rank=2),
    "Conv3D": Target("Conv", rank=3),
    "BatchNorm": Target("BatchNorm", helper=True, casts=True),
    "LayerNorm": Target("LayerNorm", casts=True, compute="float32"),
}


def parse_policy_string(text: str) -> Policy | str:
    """``jmp.get_policy``'s grammar: params default to float32, compute follows params, output follows compute."""
    if "=" not in text:
        dtype = _DTYPE_NAMES.get(text)
        return Policy(dtype, dtype, dtype) if dtype else f"unknown or backend-dependent dtype {text!r}"
    found: dict[str, str] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key not in _KEYS or value not in _DTYPE_NAMES:
            return f"{part!r} is not a key=dtype jmp reads the same on every backend"
        found[_KEYS[key]] = _DTYPE_NAMES[value]
    param = found.get("param", "float32")
    compute = found.get("compute", param)
    return Policy(param, compute, found.get("output", compute))


@dataclass
class _Found:
    """One ``set_policy`` statement: the class it names (``X`` for ``hk.X``, ``X()`` for a module class) and its policy, or why it stays."""

    statement: cst.SimpleStatementLine
    cls: str
    policy: Policy | str
    binding: cst.SimpleStatementLine | None = None  # `name = jmp.get_policy(...)` in a function, if named


class MixedPrecisionCommand(FlaxifyCommand):
    """Applies static ``hk.mixed_precision`` policies on Haiku layer classes to the Flax layers the earlier passes wrote."""

    DESCRIPTION = "Turns hk.mixed_precision policies on Haiku layers into dtype/param_dtype and casts."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"mixed_precision" in source

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        # Haiku class tail (or "Cls().nn.Dense" for the layers in a module class) -> what to write on its layers.
        self._plans: dict[str, tuple[Target, Policy]] = {}
        self._layers: dict[int, str] = {}  # id(layer construction call) -> its key in _plans
        self._remove: set[int] = set()  # ids of statements that go
        self._removed_statements: list[cst.SimpleStatementLine] = []  # the set_policy statements applied
        self._policy_calls: list[tuple[cst.Call, str]] = []  # every hk.mixed_precision call, with the class it names
        self._module_methods: dict[int, tuple[list[str], Policy]] = {}  # id(__call__ of a policy's class) -> inputs to cast
        self._returns: dict[int, Policy] = {}  # id(return statement of such a __call__) -> its policy
        self._reasons: dict[int, str] = {}  # id(set_policy statement) -> why it stays

    # -- reading ------------------------------------------------------------------
    def visit_Module(self, node: cst.Module) -> None:
        found = [f for body, where in _scopes(node) for f in self._policies(body, where)]
        self._policy_calls = self._mixed_precision_calls(node)
        by_class: dict[str, list[_Found]] = {}
        for item in found:
            if isinstance(item.policy, str):
                self._reasons[id(item.statement)] = item.policy
            else:
                by_class.setdefault(item.cls, []).append(item)
        # Haiku's layer classes first: their own policy is the innermost one, so it wins inside a module's.
        for cls, items in sorted(by_class.items(), key=lambda kv: kv[0] not in TARGETS):
            if len(items) > 1:
                for item in items:
                    shown = cls.removesuffix("()") if cls.endswith("()") else f"hk.{cls}"
                    self._reasons[id(item.statement)] = f"several policies on {shown} (the last one run wins in Haiku): keep one"
                continue
            assert isinstance(items[0].policy, Policy)
            plan = self._plan if cls in TARGETS else self._plan_module
            reason = self._changed_elsewhere(cls, items[0].statement) or plan(node, cls, items[0].policy)
            if reason is not None:
                self._reasons[id(items[0].statement)] = reason
                continue
            self._remove.add(id(items[0].statement))
            self._removed_statements.append(items[0].statement)
            if items[0].binding is not None:
                self._remove.add(id(items[0].binding))
        self._keep_read_bindings(node, found)

    def _policies(self, body: Sequence[cst.BaseStatement], where: str | None) -> Iterator[_Found]:
        """The ``set_policy`` statements directly in ``body`` (a module, or function ``where``)."""
        ran_code = False
        for statement in body:
            call = self._set_policy(statement)
            if call is None:
                ran_code = ran_code or (where is not None and not _is_inert(statement, self))
                continue
            if has_todo(statement):  # decided by an earlier run
                continue
            assert isinstance(statement, cst.SimpleStatementLine)
            cls, policy, binding = self._read(call, body, statement, where)
            if ran_code and not isinstance(policy, str):
                policy = (
                    f"it runs after other code in {where}(), which may build or apply a model before the policy is set:"
                    " move the set_policy calls to the top of the function"
                )
            yield _Found(statement, cls, policy, binding)

    def _mixed_precision_calls(self, node: cst.Module) -> list[tuple[cst.Call, str]]:
        """Every ``hk.mixed_precision.*`` call with the class it names (``X`` for hk.X, ``X()`` for a module class, else "?")."""
        calls = []
        for n in walk(node):
            name = self.haiku_name(n.func) if isinstance(n, cst.Call) else None
            if name is None or not name.startswith("haiku.mixed_precision."):
                continue
            first = n.args[0].value if n.args and n.args[0].keyword is None and not n.args[0].star else None
            key = haiku_name(self.haiku_name(first)) if first is not None else None
            if key is None and isinstance(first, cst.Name) and first.value in self.state.module_classes:
                key = first.value + "()"
            calls.append((n, key or "?"))
        return calls

    def _changed_elsewhere(self, cls: str, statement: cst.SimpleStatementLine) -> str | None:
        """Another policy call that may change what governs ``cls``'s layers at run time, if there is one.

        For a Haiku layer class: any other call naming it (or an unknown class). For a module class: any
        call on a Haiku class that is not applied here, since the innermost policy governs the layers inside.
        """
        mine = statement.body[0].value if isinstance(statement.body[0], cst.Expr) else None
        for call, key in self._policy_calls:
            if call is mine:
                continue
            applied = any(isinstance(s.body[0], cst.Expr) and s.body[0].value is call for s in self._removed_statements)
            if key in (cls, "?") or (cls not in TARGETS and not key.endswith("()") and not applied):
                return f"the file also calls {code(call)[:70]}, which may change the policy of the layers this one governs"
        return None

    def _set_policy(self, stmt: cst.CSTNode) -> cst.Call | None:
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1 or not isinstance(stmt.body[0], cst.Expr):
            return None
        call = stmt.body[0].value
        if isinstance(call, cst.Call) and self.haiku_name(call.func) == SET_POLICY:
            return call
        return None

    def _read(
        self, call: cst.Call, body: Sequence[cst.BaseStatement], at: cst.BaseStatement, where: str | None
    ) -> tuple[str, Policy | str, cst.SimpleStatementLine | None]:
        """The class, policy and (in a function) the policy's binding of ``set_policy(cls, policy)``, or why it stays."""
        args = [a for a in call.args if a.keyword is None and not a.star]
        if len(args) != 2 or len(call.args) != 2:
            return "", "set_policy(cls, policy) with two positional arguments is rewritten", None
        cls = haiku_name(self.haiku_name(args[0].value)) or ""
        if cls not in TARGETS:
            if not isinstance(args[0].value, cst.Name) or args[0].value.value not in self.state.module_classes:
                return cls, self._other_class(args[0].value), None
            cls = args[0].value.value + "()"  # a module class of the file (the parentheses keep it apart from TARGETS)
        value, binding = args[1].value, None
        if isinstance(value, cst.Name) and value.value not in ("None", "True", "False"):
            value, binding = _binding(body, at, value.value)
            if value is None:
                return cls, f"the policy {code(args[1].value)} is not bound once, before this call, to a jmp policy call", None
        return cls, self._policy(value), binding if where is not None else None

    @staticmethod
    def _other_class(named: cst.BaseExpression) -> str:
        return (
            f"a policy on {code(named)}: hk.Linear, hk.Conv1D/2D/3D, hk.BatchNorm (params == compute) and hk.LayerNorm"
            " (float32) map exactly; Linen norms reduce in float32 whatever dtype is, and hk.ConvND shares nn.Conv with"
            " Conv1D/2D/3D: set dtype=/param_dtype= on each layer and cast inputs/outputs by hand"
        )

    def _policy(self, policy: cst.BaseExpression) -> Policy | str:
        if not isinstance(policy, cst.Call) or not isinstance(policy.func, (cst.Name, cst.Attribute)):
            return "the policy is not a jmp.get_policy(...) / jmp.Policy(...) call"
        spelled = self.resolve_spelling(policy.func)
        if spelled == "jmp.get_policy" and len(policy.args) == 1 and isinstance(name := literal(policy.args[0].value), str):
            return parse_policy_string(name)
        if spelled == "jmp.Policy":
            return self._constructed(policy)
        return "the policy is not a jmp.get_policy(\"...\") / jmp.Policy(...) call with literal dtypes"

    def _constructed(self, policy: cst.Call) -> Policy | str:
        names = ("param_dtype", "compute_dtype", "output_dtype")
        values: dict[str, str] = {}
        for index, arg in enumerate(policy.args):
            key = arg.keyword.value if arg.keyword is not None else (names[index] if index < 3 and not arg.star else None)
            spelled = self.resolve_spelling(arg.value) if isinstance(arg.value, (cst.Name, cst.Attribute)) else None
            dtype = spelled.rsplit(".", 1)[-1] if spelled and spelled.startswith(("jax.numpy.", "numpy.")) else None
            if key not in names or dtype not in _DTYPE_NAMES.values():
                return "jmp.Policy(...) arguments are not literal jnp/np dtypes"
            values[key] = dtype
        if set(values) != set(names):
            return "jmp.Policy(...) needs param_dtype, compute_dtype and output_dtype"
        return Policy(values["param_dtype"], values["compute_dtype"], values["output_dtype"])

    def _keep_read_bindings(self, node: cst.Module, found: list[_Found]) -> None:
        """A removed policy binding stays when anything but a removed set_policy still reads its name."""
        for item in found:
            if item.binding is None or id(item.binding) not in self._remove:
                continue
            name = _bound_name(item.binding)
            readers = [s for s in _function_statements(node, item.binding) if s is not item.binding and _reads(s, name)]
            if any(id(s) not in self._remove for s in readers):
                self._remove.discard(id(item.binding))

    # -- deciding -----------------------------------------------------------------
    def _plan(self, node: cst.Module, cls: str, policy: Policy) -> str | None:
        """Records the layers ``policy`` on ``hk.<cls>`` rewrites, or says why it cannot."""
        target = TARGETS[cls]
        reason = self._unsupported_policy(cls, target, policy) or self._helpers_reach(cls, target)
        if reason is not None:
            return reason
        called = {id(n.func): n for n in walk(node) if isinstance(n, cst.Call)}
        layers: list[cst.Call] = []
        for n in walk(node):
            if isinstance(n, cst.Call) and self._is_flax(n, target):
                if target.rank is not None and (rank := _kernel_rank(n)) != target.rank:
                    if rank is None:
                        return f"an nn.Conv here has no literal kernel size: which ones came from hk.{cls} is unknown"
                    continue
                if target.rank is not None and (_named(n, ("conv_nd", "depthwise")) or _has_keyword(n, "feature_group_count")):
                    return (
                        f"an nn.Conv of rank {target.rank} here may come from hk.ConvND or a depthwise conv, which"
                        f" hk.{cls}'s policy does not govern: set dtype=/param_dtype= on the hk.{cls} layers by hand"
                    )
                if (target.casts or policy.output != policy.compute) and (why := _uncastable(n, called.get(id(n)), target)):
                    return why
                layers.append(n)
        if not layers:
            flax = target.flax if target.helper else f"nn.{target.flax}"
            return (
                f"this file builds no hk.{cls}, and Haiku's policy is process-wide: set dtype=/param_dtype= on the"
                f" {flax} layers of the files that build them"
            )
        self._plans[cls] = (target, policy)
        self._layers.update((id(n), cls) for n in layers)
        return None

    def _plan_module(self, node: cst.Module, cls: str, policy: Policy) -> str | None:
        """Records the casts and layer dtypes a policy on a module class of the file becomes, or says why it cannot."""
        name = cls.removesuffix("()")
        found = next((s for s in node.body if isinstance(s, cst.ClassDef) and s.name.value == name), None)
        method = _only_call_method(found) if found is not None else None
        if found is None or method is None or _subclassed(node, name):
            return (
                f"a policy on {name}, a module class of this file, is rewritten when the class's one method is __call__ with"
                f" plain positional inputs and nothing subclasses it: {_MODULE_POLICY}"
            )
        planned = {n: self._plans[c][1] for n, c in self._layers.items()}  # layers with their own policy
        flow = _DtypeFlow(self.state.nn, self.state.jnp, policy.compute, planned)
        inputs, why = flow.inputs(method)
        why = why or flow.why(method)
        returns = [n for n in walk(method.body) if isinstance(n, cst.Return)]
        if why is None and policy.output != policy.compute and any(r.value is None or isinstance(r.value, _LITERALS) for r in returns):
            why = "it returns a tuple, list, dict or nothing, and Haiku casts each floating array in it"
        if why is not None:
            return f"a policy on {name}, a module class of this file: {why}; {_MODULE_POLICY}"
        for layer in walk(method.body):
            if isinstance(layer, cst.Call) and id(layer) not in self._layers and code(layer.func) in _LAYERS(self.state.nn):
                key = f"{cls}.{code(layer.func)}"
                # The module's own output cast covers the layers inside: they return compute.
                self._plans[key] = (Target(code(layer.func).rsplit(".", 1)[-1]), Policy(policy.param, policy.compute, policy.compute))
                self._layers[id(layer)] = key
        self._module_methods[id(method)] = (inputs, policy)
        if policy.output != policy.compute:
            self._returns.update((id(r), policy) for r in returns)
        return None

    @staticmethod
    def _unsupported_policy(name: str, target: Target, policy: Policy) -> str | None:
        if target.compute is not None and policy.compute != target.compute:
            return f"compute {policy.compute}: Linen's {name} reduces in float32 whatever dtype is (only a float32 policy maps exactly)"
        if target.casts and policy.param != policy.compute:
            return (
                f"params {policy.param} differ from compute {policy.compute}: the policy becomes casts around the Flax"
                f" {name} call, whose parameters then take the compute dtype"
            )
        return None

    def _helpers_reach(self, cls: str, target: Target) -> str | None:
        """Emitted helpers that build the class's Flax layer: Haiku's policy governs the layers inside them too."""
        needle = target.flax + "(" if target.helper else f"{self.state.nn}.{target.flax}"
        reached = []
        for qualname in sorted(self.state.helper_classes):
            found = helper_class(qualname, nn=self.state.nn, jnp=self.state.jnp)
            if found is not None and found[0] != target.flax and needle in found[1]:
                reached.append(found[0])
        if not reached:
            return None
        return (
            f"this file also uses Haiku modules built from hk.{cls} (emitted helpers: " + ", ".join(reached) + "), which the"
            " policy governs too: set dtype=/param_dtype= on their layers by hand"
        )

    def _is_flax(self, call: cst.Call, target: Target) -> bool:
        if target.helper:
            return (
                isinstance(call.func, cst.Name)
                and call.func.value == target.flax
                and f"haiku.{target.flax}" in self.state.helper_classes
                and target.flax not in self.state.user_names
            )
        return code(call.func) == f"{self.state.nn}.{target.flax}"

    # -- rewriting ----------------------------------------------------------------
    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        cls = self._layers.get(id(original_node))
        if cls is not None and not self._plans[cls][0].casts:
            updated_node = self._with_dtypes(updated_node, self._plans[cls][1])
        cls = self._layers.get(id(original_node.func))
        if cls is None:
            return updated_node
        target, policy = self._plans[cls]
        if target.casts:  # Haiku casts the floating input; Flax creates the parameters in its dtype
            self.need_jnp()
            first = updated_node.args[0].with_changes(value=_cast(updated_node.args[0].value, self._dtype(policy.compute)))
            updated_node = updated_node.with_changes(args=[first, *updated_node.args[1:]])
        if policy.output != policy.compute:
            self.need_jnp()
            return _cast(updated_node, self._dtype(policy.output))
        return updated_node

    def _with_dtypes(self, call: cst.Call, policy: Policy) -> cst.Call:
        if any(a.keyword is not None and a.keyword.value in ("dtype", "param_dtype") for a in call.args):
            return call
        self.need_jnp()
        extra = [_keyword("dtype", self._dtype(policy.compute)), _keyword("param_dtype", self._dtype(policy.param))]
        args = list(call.args)
        at = next((i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == "name"), len(args))
        if at == len(args) and args:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        for offset, arg in enumerate(extra):
            last = at + offset == len(args)
            args.insert(at + offset, arg if last else arg.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))))
        return call.with_changes(args=args)

    def _dtype(self, name: str) -> str:
        return f"{self.state.jnp}.{name}"

    def leave_SimpleStatementLine(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        if id(original_node) in self._remove:
            return cst.RemoveFromParent()
        if id(original_node) in self._reasons:
            self.todo("hk.mixed_precision.set_policy", self._reasons[id(original_node)])
        return updated_node

    def leave_Return(self, original_node: cst.Return, updated_node: cst.Return) -> cst.Return:
        policy = self._returns.get(id(original_node))
        if policy is None or updated_node.value is None:
            return updated_node
        self.need_jnp()
        return updated_node.with_changes(value=_cast(updated_node.value, self._dtype(policy.output)))

    def leave_FunctionDef(self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef) -> cst.FunctionDef:
        if id(original_node) in self._module_methods:
            updated_node = self._cast_inputs(updated_node, *self._module_methods[id(original_node)])
        # A function that only set policies keeps a body.
        if isinstance(updated_node.body, cst.IndentedBlock) and not updated_node.body.body:
            return updated_node.with_changes(body=updated_node.body.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])]))
        return updated_node

    def _cast_inputs(self, method: cst.FunctionDef, inputs: list[str], policy: Policy) -> cst.FunctionDef:
        """``x = x.astype(compute)`` for each input, first thing in the body (after a docstring)."""
        if not inputs:
            return method
        self.need_jnp()
        body = list(method.body.body)
        at = 1 if method.get_docstring() is not None else 0
        casts = [cst.parse_statement(f"{n} = {n}.astype({self._dtype(policy.compute)})") for n in inputs]
        return method.with_changes(body=method.body.with_changes(body=[*body[:at], *casts, *body[at:]]))

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if self._remove:
            RemoveImportsVisitor.remove_unused_import(self.context, "jmp")
        return updated_node


_MODULE_POLICY = (
    "Haiku casts the floating array inputs of each of its methods to compute and the results to output dtype, and"
    " creates and reads every parameter built inside in param/compute dtype; Linen has no per-module policy: cast"
    " inputs/outputs and set dtype=/param_dtype= on the layers inside by hand (exact only where each layer receives"
    " compute-dtype inputs)"
)
_LITERALS = (cst.Tuple, cst.List, cst.Dict, cst.Set)
_FLAGS = ("is_training", "test_local_stats")
# jax.numpy functions that keep their array arguments' dtype (and create no array of their own).
_SAME_DTYPE = frozenset(
    ("abs", "concatenate", "cos", "exp", "expand_dims", "log", "maximum", "mean", "minimum", "reshape", "sin", "sqrt")
    + ("square", "squeeze", "stack", "sum", "swapaxes", "tanh", "transpose", "where")
)


def _LAYERS(nn: str) -> tuple[str, str]:
    return (f"{nn}.Dense", f"{nn}.Conv")


def _only_call_method(node: cst.ClassDef) -> cst.FunctionDef | None:
    """The class's ``__call__`` when it is its one method, taking plain positional inputs; else None."""
    methods = [s for s in node.body.body if isinstance(s, cst.FunctionDef)]
    rest = [s for s in node.body.body if not isinstance(s, cst.FunctionDef) and not _field_or_docstring(s)]
    if rest or len(methods) != 1 or methods[0].name.value != "__call__":
        return None
    params = methods[0].params
    if params.star_arg is not cst.MaybeSentinel.DEFAULT or params.kwonly_params or params.star_kwarg or params.posonly_params:
        return None
    if not params.params:
        return None
    return methods[0]


def _field_or_docstring(statement: cst.BaseStatement) -> bool:
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    return all(isinstance(s, cst.AnnAssign) or (isinstance(s, cst.Expr) and isinstance(s.value, cst.SimpleString)) for s in statement.body)


def _subclassed(node: cst.Module, name: str) -> bool:
    return any(isinstance(n, cst.ClassDef) and any(code(b.value) == name for b in n.bases) for n in walk(node))


class _DtypeFlow:
    """Whether every value in a ``__call__`` body keeps the compute dtype its inputs are cast to.

    The policy's Linen form casts the inputs and sets ``dtype=`` on the layers,
    which cast what they receive; Haiku's layers promote instead. The two agree
    when every array reaching a layer is already in compute dtype: built only
    from the inputs, layer outputs, Python numbers (weakly typed) and functions
    that keep dtypes. A layer with its own policy (``planned``; the innermost
    policy wins in Haiku) must return the compute dtype. Inputs read only as
    flags (``if is_training:``, ``not is_training``, a BatchNorm's
    ``is_training``) are not cast: Haiku casts floating arrays only. Anything
    else (another module, ``.astype``, a global, ``self.x`` outside a layer's
    arguments) refuses.
    """

    def __init__(self, nn: str, jnp: str, compute: str, planned: dict[int, Policy]) -> None:
        self.nn, self.jnp, self.compute, self.planned = nn, jnp, compute, planned
        self.known = {"jax", jnp, nn, "True", "False", "None"}
        self.flag_reads: set[int] = set()  # ids of Name nodes read as flags

    def inputs(self, method: cst.FunctionDef) -> tuple[list[str], str | None]:
        """The inputs to cast (those not read as flags only), or why the method cannot take the policy."""
        params = method.params.params[1:]
        flag_spots = [n for n in walk(method.body) for n in self._flag_spots(n)]
        self.flag_reads = {id(n) for n in flag_spots}
        # `f(is_training=...)` and `x.is_training` spell the name without reading it.
        labels = {id(n.keyword) for n in walk(method.body) if isinstance(n, cst.Arg) and n.keyword is not None}
        labels |= {id(n.attr) for n in walk(method.body) if isinstance(n, cst.Attribute)}
        arrays = []
        for param in params:
            name = param.name.value
            reads = [n for n in walk(method.body) if isinstance(n, cst.Name) and n.value == name and id(n) not in labels]
            flag = bool(reads) and all(id(n) in self.flag_reads for n in reads)
            if not flag and any(id(n) in self.flag_reads for n in reads):
                return [], f"the input {name} is read both as an array and as a flag"
            if param.default is not None and not (flag and literal(param.default) in (True, False)):
                return [], f"the input {name} has a default ({code(param.default)}), and Haiku casts only floating arrays"
            if not flag:
                arrays.append(name)
        self.known.update(p.name.value for p in params)
        return arrays, None

    def _flag_spots(self, node: cst.CSTNode) -> list[cst.Name]:
        """Bare names in flag positions: an if/while test, ``not x``, a norm's is_training/test_local_stats."""
        tests: list[cst.CSTNode] = []
        if isinstance(node, (cst.If, cst.While, cst.IfExp)):
            tests = [node.test]
        elif isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
            tests = [node.expression]
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Call) and id(node.func) in self.planned:
            tests = [a.value for i, a in enumerate(node.args) if (a.keyword is None and i >= 1) or (a.keyword is not None and a.keyword.value in _FLAGS)]
        return [t for t in tests if isinstance(t, cst.Name)]

    def why(self, method: cst.FunctionDef) -> str | None:
        for n in walk(method.body):
            if isinstance(n, cst.AssignTarget):
                self.known.update(t.value for t in walk(n.target) if isinstance(t, cst.Name))
        return self._expr(method.body)

    def _expr(self, node: cst.CSTNode) -> str | None:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda, cst.Global, cst.Nonlocal)):
            return "its __call__ defines functions or classes"
        if isinstance(node, cst.Assign) and isinstance(node.value, _LITERALS):
            return f"it builds a {type(node.value).__name__.lower()} ({code(node)[:40]}), whose leaves Haiku casts one by one"
        if isinstance(node, cst.Call):
            return self._call(node)
        if isinstance(node, cst.Name) and node.value not in self.known:
            return f"it reads {node.value}, which may hold an array in another dtype"
        if isinstance(node, cst.Attribute):
            return self._expr(node.value)  # `x.shape`: the attribute name is no read
        for child in node.children:
            if (why := self._expr(child)) is not None:
                return why
        return None

    def _call(self, node: cst.Call) -> str | None:
        func = code(node.func)
        if func in _LAYERS(self.nn) or id(node) in self.planned:
            return None  # a layer's construction: its arguments are configuration (self.x fields included)
        own = self.planned.get(id(node.func)) if isinstance(node.func, cst.Call) else None
        if own is not None and own.output != self.compute:
            return f"{code(node.func.func)} inside has its own policy, whose output {own.output} is not the compute dtype {self.compute}"
        layer_call = isinstance(node.func, cst.Call) and (own is not None or code(node.func.func) in _LAYERS(self.nn))
        module, _, name = func.rpartition(".")
        same_dtype = (module == "jax.nn" and name != "one_hot") or (module == self.jnp and name in _SAME_DTYPE)
        if not (layer_call or same_dtype):
            return f"it calls {func}, whose result's dtype flaxify does not follow"
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "dtype":
                return f"it passes dtype= to {func}"
            if id(arg.value) not in self.flag_reads and (why := self._expr(arg.value)) is not None:
                return why
        return None


# -- statements -------------------------------------------------------------------
def _scopes(node: cst.Module) -> Iterator[tuple[Sequence[cst.BaseStatement], str | None]]:
    """The module body, then each module-level function's body (with its name)."""
    yield node.body, None
    for statement in node.body:
        if isinstance(statement, cst.FunctionDef) and isinstance(statement.body, cst.IndentedBlock):
            yield statement.body.body, statement.name.value


def _function_statements(node: cst.Module, statement: cst.BaseStatement) -> Sequence[cst.BaseStatement]:
    """Every statement of the module-level function whose body holds ``statement``."""
    for body, where in _scopes(node):
        if where is not None and any(s is statement for s in body):
            return [s for top in body for s in walk(top) if isinstance(s, (cst.SimpleStatementLine, cst.BaseCompoundStatement))]
    return ()


def _is_inert(statement: cst.BaseStatement, command: MixedPrecisionCommand) -> bool:
    """A docstring, ``del``/``pass``, or ``name = <jmp policy call>``: nothing that could build or apply a model."""
    if not isinstance(statement, cst.SimpleStatementLine):
        return False
    for small in statement.body:
        if isinstance(small, (cst.Del, cst.Pass)) or (isinstance(small, cst.Expr) and isinstance(small.value, cst.SimpleString)):
            continue
        call = small.value if isinstance(small, cst.Assign) else None
        if isinstance(call, cst.Call) and isinstance(call.func, (cst.Name, cst.Attribute)) and command.resolve_spelling(call.func) in _POLICY_CALLS:
            continue
        return False
    return True


_POLICY_CALLS = ("jmp.get_policy", "jmp.Policy")


def _binding(
    body: Sequence[cst.BaseStatement], at: cst.BaseStatement, name: str
) -> tuple[cst.BaseExpression | None, cst.SimpleStatementLine | None]:
    """The value of the one ``name = value`` before ``at`` in ``body``, when nothing else there binds ``name``."""
    bindings = [s for s in body if _binds(s, name)]
    if len(bindings) != 1 or not isinstance(statement := bindings[0], cst.SimpleStatementLine):
        return None, None
    if list(body).index(statement) > list(body).index(at) or _bound_name(statement) != name:
        return None, None
    small = statement.body[0]
    assert isinstance(small, cst.Assign)
    return small.value, statement


def _binds(statement: cst.BaseStatement, name: str) -> bool:
    """True when ``statement`` (or anything in it) assigns, deletes or imports ``name``."""
    for node in walk(statement):
        targets: list[cst.CSTNode] = []
        if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr)):
            targets = [node.target]
        elif isinstance(node, cst.AsName):
            targets = [node.name]
        elif isinstance(node, (cst.Global, cst.Nonlocal)):
            targets = [n.name for n in node.names]
        if any(isinstance(t, cst.Name) and t.value == name for target in targets for t in walk(target)):
            return True
    return False


def _bound_name(statement: cst.SimpleStatementLine) -> str | None:
    """``name`` of a one-target ``name = value`` statement."""
    small = statement.body[0] if len(statement.body) == 1 else None
    if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
        return small.targets[0].target.value
    return None


def _reads(statement: cst.BaseStatement, name: str | None) -> bool:
    return any(isinstance(n, cst.Name) and n.value == name for n in walk(statement))


# -- layers -----------------------------------------------------------------------
def _kernel_rank(call: cst.Call) -> int | None:
    """Length of ``nn.Conv``'s literal kernel-size tuple (second positional or ``kernel_size=``)."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    arg = next((a for a in call.args if a.keyword is not None and a.keyword.value == "kernel_size"), None)
    value = literal(arg.value if arg is not None else positional[1].value if len(positional) > 1 else None)
    return len(value) if isinstance(value, tuple) else None


def _has_keyword(call: cst.Call, keyword: str) -> bool:
    return any(a.keyword is not None and a.keyword.value == keyword for a in call.args)


def _named(call: cst.Call, prefix: str | tuple[str, ...]) -> bool:
    name = next((literal(a.value) for a in call.args if a.keyword is not None and a.keyword.value == "name"), None)
    return isinstance(name, str) and name.startswith(prefix)


def _uncastable(layer: cst.Call, use: cst.Call | None, target: Target) -> str | None:
    """Why the casts of a policy cannot go on the call of ``layer``, if they cannot."""
    if use is None:
        return (
            f"a {target.flax} layer is not called where it is built (bound to a name, or in a list: {code(layer)[:60]}...):"
            " cast its inputs and outputs where it is called by hand"
        )
    if target.casts and (not use.args or use.args[0].keyword is not None or use.args[0].star):
        return f"a {target.flax} layer is called without a positional input: cast it by hand"
    if target.casts and any(a.star or (a.keyword is not None and a.keyword.value in ("scale", "offset")) for a in use.args):
        return f"a {target.flax} layer is called with scale/offset (Haiku casts them too): cast them by hand"
    return None


def _cast(value: cst.BaseExpression, dtype: str) -> cst.Call:
    """``value.astype(dtype)``, parenthesising ``value`` where ``.`` would bind tighter."""
    if not isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or value.lpar:
        value = value if value.lpar else value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.Call(cst.Attribute(value, cst.Name("astype")), [cst.Arg(cst.parse_expression(dtype))])


def _keyword(name: str, value: str) -> cst.Arg:
    equal = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))
    return cst.Arg(cst.parse_expression(value), keyword=cst.Name(name), equal=equal)
