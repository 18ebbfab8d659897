"""``hk.mixed_precision.set_policy(hk.Linear, policy)`` -> ``dtype=`` / ``param_dtype=`` on the Dense layers.

Haiku's policy for a class (``haiku/_src/mixed_precision.py``) creates the
class's parameters in ``param_dtype``, casts them and the floating inputs to
``compute_dtype`` on every call, and casts the output to ``output_dtype``. For
``hk.Linear`` that is what ``nn.Dense(dtype=compute, param_dtype=params)``
does (``promote_dtype`` casts the input, kernel and bias to ``dtype``; the
matmul and bias add then run in it), so when ``output == compute`` the layer is
bit-identical (checked on CPU with bfloat16)::

    hk.mixed_precision.set_policy(hk.Linear, jmp.get_policy("p=f32,c=bf16"))
    ...
    y = hk.Linear(8)(x)
    ->
    y = nn.Dense(8, ..., dtype=jnp.bfloat16, param_dtype=jnp.float32, name="linear")(x)

The ``set_policy`` statement goes away (Linen has no per-class policy). Only a
module-level call is rewritten (a call inside a function applies from the
moment it runs), with a policy written as ``jmp.get_policy("...")`` or
``jmp.Policy(param_dtype=..., compute_dtype=..., output_dtype=...)`` with
literal dtypes. Left under a TODO saying why:

* ``output != compute``: Linen layers return ``dtype``; every call site would
  need ``.astype(output)``;
* ``"half"``: jmp picks bfloat16 or float16 by backend at run time;
* a policy on any other class: Linen norms reduce in float32 whatever ``dtype``
  is (``force_float32_reductions``; 0.016 off for LayerNorm in bfloat16), and a
  policy on a user module also casts its inputs/outputs and governs every layer
  built inside it;
* a file whose rewrite emits a helper (``hk.nets.MLP``, ``hk.LSTM``,
  ``hk.MultiHeadAttention``, ...): Haiku's policy reaches the ``hk.Linear``
  layers inside those too;
* a file that builds no ``hk.Linear``: the policy is process-wide and governs
  layers built in other files, which this file cannot annotate.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from flaxify.migrate.base import FlaxifyCommand, MigrationState, has_todo
from flaxify.migrate.layers_common import code, literal, walk
from libcst.codemod.visitors import RemoveImportsVisitor

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


class MixedPrecisionCommand(FlaxifyCommand):
    """Applies module-level ``hk.Linear`` policies to the ``nn.Dense`` layers the earlier passes wrote."""

    DESCRIPTION = "Turns hk.mixed_precision policies on hk.Linear into Dense dtype/param_dtype."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"mixed_precision" in source

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._policy: Policy | None = None
        self._statement: int | None = None  # id of the set_policy statement to remove
        self._reasons: dict[int, str] = {}  # id(module-level set_policy statement) -> why it stays

    def visit_Module(self, node: cst.Module) -> None:
        on_linear: list[tuple[cst.BaseStatement, Policy]] = []
        for statement in node.body:
            call = self._set_policy(statement)
            if call is None or has_todo(statement):  # a marked one was decided by an earlier run
                continue
            found = self._read(call)
            if isinstance(found, str):
                self._reasons[id(statement)] = found
            else:
                on_linear.append((statement, found))
        if len(on_linear) > 1:
            for statement, _ in on_linear:
                self._reasons[id(statement)] = "several policies on hk.Linear (the last one run wins in Haiku): keep one"
            return
        if on_linear:
            statement, found = on_linear[0]
            reason = self._unsafe(node, found)
            if reason is None:
                self._policy, self._statement = found, id(statement)
            else:
                self._reasons[id(statement)] = reason

    def _unsafe(self, node: cst.Module, found: Policy) -> str | None:
        """Why an hk.Linear policy cannot be applied to this file's Dense layers, if it cannot."""
        if found.output != found.compute:
            return (
                f"output dtype {found.output} differs from compute dtype {found.compute}: nn.Dense(dtype="
                f"{found.compute}) returns {found.compute}, so cast each layer's output with .astype(jnp.{found.output})"
            )
        if self.state.helper_classes:
            return (
                "this file also uses Haiku modules built from hk.Linear (emitted helpers: "
                + ", ".join(sorted(q.rsplit(".", 1)[-1] for q in self.state.helper_classes))
                + "), which the policy governs too: set dtype=/param_dtype= on their Dense layers by hand"
            )
        if not any(isinstance(n, cst.Call) and code(n.func) == f"{self.state.nn}.Dense" for n in walk(node)):
            return (
                "this file builds no hk.Linear, and Haiku's policy is process-wide: set dtype=/param_dtype= on the"
                " nn.Dense layers of the files that build them"
            )
        return None

    def _set_policy(self, stmt: cst.CSTNode) -> cst.Call | None:
        if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1 or not isinstance(stmt.body[0], cst.Expr):
            return None
        call = stmt.body[0].value
        if isinstance(call, cst.Call) and self.haiku_name(call.func) == SET_POLICY:
            return call
        return None

    def _read(self, call: cst.Call) -> Policy | str:
        """The policy of ``set_policy(hk.Linear, policy)``, or why it is not rewritten."""
        args = [a for a in call.args if a.keyword is None and not a.star]
        if len(args) != 2 or len(call.args) != 2:
            return "set_policy(cls, policy) with two positional arguments is rewritten"
        if self.haiku_name(args[0].value) != "haiku.Linear":
            return (
                f"a policy on {code(args[0].value)}: only hk.Linear maps exactly (nn.Dense(dtype=compute, param_dtype=params));"
                " Linen norms reduce in float32 whatever dtype is, and a policy on a user module also casts its inputs and"
                " outputs and governs every layer inside it: set dtype=/param_dtype= on each layer and cast inputs/outputs by hand"
            )
        policy = args[1].value
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

    # -- rewriting ----------------------------------------------------------------
    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if self._policy is None or code(updated_node.func) != f"{self.state.nn}.Dense":
            return updated_node
        if any(a.keyword is not None and a.keyword.value in ("dtype", "param_dtype") for a in updated_node.args):
            return updated_node
        self.need_jnp()
        jnp = self.state.jnp
        extra = [_keyword("dtype", f"{jnp}.{self._policy.compute}"), _keyword("param_dtype", f"{jnp}.{self._policy.param}")]
        args = list(updated_node.args)
        at = next((i for i, a in enumerate(args) if a.keyword is not None and a.keyword.value == "name"), len(args))
        if at == len(args) and args:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        for offset, arg in enumerate(extra):
            last = at + offset == len(args)
            args.insert(at + offset, arg if last else arg.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))))
        return updated_node.with_changes(args=args)

    def leave_SimpleStatementLine(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        if id(original_node) == self._statement:
            return cst.RemoveFromParent()
        if id(original_node) in self._reasons:
            self.todo("hk.mixed_precision.set_policy", self._reasons[id(original_node)])
        return updated_node

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if self._policy is not None:
            RemoveImportsVisitor.remove_unused_import(self.context, "jmp")
        return updated_node


def _keyword(name: str, value: str) -> cst.Arg:
    equal = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))
    return cst.Arg(cst.parse_expression(value), keyword=cst.Name(name), equal=equal)
