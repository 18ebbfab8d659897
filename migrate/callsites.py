"""``net.init`` / ``net.apply`` → Flax's signatures.

Before (``net = hk.without_apply_rng(hk.transform(forward))``)::

    params = net.init(rng, x)
    logits = net.apply(params, x)

After (``net = Forward()``)::

    params = net.init(rng, x)["params"]
    logits = net.apply({"params": params}, x)

The surrounding program keeps a plain parameter dict, so optax updates,
``jax.grad`` over ``params`` and checkpoint saving keep their meaning. With
``hk.transform`` (no ``without_apply_rng``) the ``rng`` argument of ``apply``
becomes ``rngs={"dropout": rng}`` when the file's modules draw random numbers,
and is dropped otherwise; a literal ``None`` is always dropped. An integer
seed given to ``init`` becomes ``jax.random.PRNGKey(seed)`` (Flax needs a key).
``net.init`` / ``net.apply`` used as values (``jax.jit(net.apply)``) cannot
keep their signature and are marked TODO.
"""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m

from libcst.metadata import QualifiedNameProvider

from flaxify.migrate.base import FlaxifyCommand, MigrationState, TransformInfo
from flaxify.migrate.rewrite import JAX_IMPORT


class RewriteInitApplyCommand(FlaxifyCommand):
    DESCRIPTION = "Rewrites init/apply call sites of migrated transforms."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return bool(state.transformed) or (state.project is not None and state.project.imported_by(source))

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._called: set[int] = set()  # id(Attribute) of method references that are called

    def _target(self, node: cst.BaseExpression) -> tuple[str, TransformInfo] | None:
        if not m.matches(node, m.Attribute(m.Name() | m.Attribute(), m.Name("init") | m.Name("apply"))):
            return None
        receiver = node.value  # type: ignore[attr-defined]
        info = self.state.transformed.get(receiver.value) if isinstance(receiver, cst.Name) else None
        if info is None and self.state.project is not None:
            for qualified in self.get_metadata(QualifiedNameProvider, receiver, set()):
                info = info or self.state.project.lookup(qualified.name)
        return None if info is None else (node.attr.value, info)  # type: ignore[attr-defined]

    def visit_Call(self, node: cst.Call) -> None:
        if self._target(node.func) is not None:
            self._called.add(id(node.func))

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        target = self._target(original_node)
        if target is not None and id(original_node) not in self._called:
            variable = cst.Module([]).code_for_node(original_node.value)
            self.todo(
                f"{variable}.{target[0]}",
                f"used as a function value; Flax's {target[0]} has another signature"
                f" (apply takes {{'params': params}} and the inputs, init returns {{'params': ...}}):"
                " wrap it in a lambda that adapts the arguments",
            )
        return updated_node

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        target = self._target(original_node.func)
        if target is None:
            return updated_node
        method, info = target
        if any(arg.star for arg in updated_node.args):
            self.todo(f"{method}", "called with *args/**kwargs; adapt the arguments to Flax's signature by hand")
            return updated_node
        if method == "init":
            return self._init(updated_node)
        return self._apply(updated_node, info)

    def _init(self, call: cst.Call) -> cst.BaseExpression:
        args = list(call.args)
        if args and args[0].keyword is None and isinstance(args[0].value, cst.Integer):
            self.need_import(JAX_IMPORT)
            key = cst.parse_expression(f"jax.random.PRNGKey({args[0].value.value})")
            args[0] = args[0].with_changes(value=key)
        return cst.Subscript(
            value=call.with_changes(args=args),
            slice=[cst.SubscriptElement(cst.Index(cst.SimpleString('"params"')))],
        )

    def _apply(self, call: cst.Call, info: TransformInfo) -> cst.BaseExpression:
        positional = [a for a in call.args if a.keyword is None]
        keywords = {a.keyword.value: a for a in call.args if a.keyword is not None}
        params = positional.pop(0).value if positional else keywords.pop("params").value if "params" in keywords else None
        if params is None:
            self.todo("apply", "no params argument found; adapt the call to Flax's signature by hand")
            return call
        rng: cst.BaseExpression | None = None
        if info.apply_rng:
            rng = positional.pop(0).value if positional else keywords.pop("rng").value if "rng" in keywords else None
        variables = cst.Dict([cst.DictElement(cst.SimpleString('"params"'), params)])
        args = [cst.Arg(variables), *(a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in positional)]
        args += [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in keywords.values()]
        if rng is not None and not m.matches(rng, m.Name("None")) and (info.uses_rng or self.state.uses_rng):
            rngs = cst.Dict([cst.DictElement(cst.SimpleString('"dropout"'), rng)])
            args.append(cst.Arg(rngs, keyword=cst.Name("rngs"), equal=_EQUAL))
        return call.with_changes(args=_commas(args))


_EQUAL = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


def _commas(args: list[cst.Arg]) -> list[cst.Arg]:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [a.with_changes(comma=comma) for a in args[:-1]] + args[-1:]
