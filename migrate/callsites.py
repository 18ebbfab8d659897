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
``net.init`` / ``net.apply`` used as values (``jax.jit(net.apply)``) become a
lambda with Haiku's signature that calls Flax's (``lambda params, *args,
**kwargs: net.apply({"params": params}, *args, **kwargs)``).

With ``hk.transform_with_state`` the program keeps its ``params`` and
``state`` (a dict of Linen collections)::

    params, state = net.init(rng, x, is_training=True)
    out, state = net.apply(params, state, rng, x, is_training=True)

becomes::

    state = net.init(rng, x, is_training=True)
    params = state.pop("params")
    out, state = net.apply({"params": params, **state}, x, is_training=True,
                           rngs={"dropout": rng}, mutable=list(state))

``mutable=list(state)`` returns every state collection, updated or not, so
``state`` keeps its structure as Haiku's did.

A literal ``None`` for the parameters of ``apply`` (a model without any) adds no
``"params"`` entry, a ``None`` key for ``init`` becomes ``{}`` (no RNG streams),
and ``_, state = net.init(...)`` pops ``"params"`` with a default.

With ``hk.multi_transform`` each apply function is a method of the model:
``net.apply["encode"](params, rng, x)`` becomes ``net.apply({"params": params},
x, method="encode")``; ``net.apply[KEY]`` used as a value and the tuple form's
unpacking ``encode, decode = net.apply`` (Flax's migration guide) become the
same Haiku-signature lambdas as above, each with its ``method=``.

A name bound from calling a factory of another file (``net = make_net(cfg)``
with ``from model import make_net``; see ``project.py``) is a transformed name
here too; ``transforms.py`` binds those of this file's own factories.
"""

from __future__ import annotations

import libcst as cst
import libcst.matchers as m
from libcst.metadata import QualifiedNameProvider

from flaxify.migrate.base import FlaxifyCommand, MigrationState, TransformInfo
from flaxify.migrate.layers_common import code, walk
from flaxify.migrate.rewrite import JAX_IMPORT


class RewriteInitApplyCommand(FlaxifyCommand):
    DESCRIPTION = "Rewrites init/apply call sites of migrated transforms."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return bool(state.transformed) or (state.project is not None and state.project.imported_by(source))

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._called: set[int] = set()  # id(Attribute) of method references that are called
        self._split_inits: dict[int, tuple[cst.BaseAssignTargetExpression, cst.BaseAssignTargetExpression]] = {}
        self._split_done: dict[int, cst.Call] = {}  # id(original init call) -> its rewrite
        # `encode, decode = net.apply` of a tuple hk.multi_transform: id(net.apply) -> its info.
        self._unpacked: dict[int, TransformInfo] = {}
        self._called_subscripts: set[int] = set()  # id(Subscript) of `net.apply[KEY](...)`
        self._multi_values: dict[int, tuple[TransformInfo, str]] = {}  # id(Subscript) -> (info, method)
        self._factory_calls: set[int] = set()  # id(call of an imported factory) not bound to a plain name

    def visit_Module(self, node: cst.Module) -> None:
        """``net = make_net(cfg)`` of an imported factory makes ``net`` a transformed name of this file."""
        if self.state.project is None:
            return
        named: set[int] = set()
        for sub in walk(node):
            if isinstance(sub, cst.Assign) and len(sub.targets) == 1 and isinstance(sub.targets[0].target, cst.Name):
                info = self._factory_result(sub.value)
                if info is not None:
                    self.state.transformed.setdefault(sub.targets[0].target.value, info)
                    named.add(id(sub.value))
        self._factory_calls = {
            id(sub) for sub in walk(node) if id(sub) not in named and self._factory_result(sub) is not None
        }

    def _factory_result(self, node: cst.CSTNode) -> TransformInfo | None:
        """What a call of an imported factory returns (``make_net(cfg)``, ``model.make_net(cfg)``), else None."""
        if self.state.project is None or not m.matches(node, m.Call(func=m.Name() | m.Attribute())):
            return None
        assert isinstance(node, cst.Call)
        for qualified in self.get_metadata(QualifiedNameProvider, node.func, set()):
            info = self.state.project.lookup_factory(qualified.name, self.context.filename or "")
            if info is not None:
                return info
        return None

    def _target(self, node: cst.BaseExpression) -> tuple[str, TransformInfo] | None:
        if not m.matches(node, m.Attribute(m.Name() | m.Attribute(), m.Name("init") | m.Name("apply"))):
            return None
        receiver = node.value  # type: ignore[attr-defined]
        info = self.state.transformed.get(receiver.value) if isinstance(receiver, cst.Name) else None
        if info is None and self.state.project is not None:
            for qualified in self.get_metadata(QualifiedNameProvider, receiver, set()):
                info = info or self.state.project.lookup(qualified.name, self.context.filename or "")
        return None if info is None else (node.attr.value, info)  # type: ignore[attr-defined]

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        """Finds ``params, state = net.init(...)``: split into two statements on the way out."""
        if len(node.body) != 1 or not isinstance(node.body[0], cst.Assign) or len(node.body[0].targets) != 1:
            return
        assign = node.body[0]
        target = assign.targets[0].target
        pair = isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2
        if pair and isinstance(assign.value, cst.Call) and not any(isinstance(e, cst.StarredElement) for e in target.elements):
            self._split_inits[id(assign.value)] = (target.elements[0].value, target.elements[1].value)  # type: ignore[assignment,union-attr]

    def leave_SimpleStatementLine(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        value = getattr(original_node.body[0], "value", None) if len(original_node.body) == 1 else None
        call = self._split_done.pop(id(value), None)
        if call is None or not isinstance(updated_node.body[0], cst.Assign):
            return updated_node
        params, state = self._split_inits[id(value)]
        first = cst.SimpleStatementLine(
            [cst.Assign([cst.AssignTarget(state)], call)], leading_lines=updated_node.leading_lines
        )
        # `_, state = net.init(None, ...)` (EMAParamsTree's documented use): a model without
        # parameters, whose Flax init returns no "params" collection.
        default = ", {}" if m.matches(params, m.Name("_")) else ""
        pop = cst.parse_expression(f'{code(state)}.pop("params"{default})')
        second = cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(params)], pop)])
        return cst.FlattenSentinel([first, second])

    def visit_Call(self, node: cst.Call) -> None:
        if self._target(node.func) is not None:
            self._called.add(id(node.func))
        elif isinstance(node.func, cst.Subscript) and self._multi_apply(node.func) is not None:
            self._called.add(id(node.func.value))
            self._called_subscripts.add(id(node.func))

    def visit_Assign(self, node: cst.Assign) -> None:
        """Finds ``encode, decode = net.apply`` (one target per apply function, keys 0..n-1)."""
        target = self._target(node.value)
        if target is None or target[0] != "apply" or not target[1].methods or len(node.targets) != 1:
            return
        names = node.targets[0].target
        if not isinstance(names, (cst.Tuple, cst.List)) or any(isinstance(e, cst.StarredElement) for e in names.elements):
            return
        if [key for key, _ in target[1].methods] == list(range(len(names.elements))):
            self._unpacked[id(node.value)] = target[1]
            self._called.add(id(node.value))

    def visit_Subscript(self, node: cst.Subscript) -> None:
        """``net.apply[KEY]`` used as a value (``jax.jit(net.apply["encode"])``)."""
        multi = self._multi_apply(node)
        if multi is not None and multi[1] is not None and id(node) not in self._called_subscripts:
            self._multi_values[id(node)] = (multi[0], multi[1])
            self._called.add(id(node.value))

    def leave_Subscript(self, original_node: cst.Subscript, updated_node: cst.Subscript) -> cst.BaseExpression:
        found = self._multi_values.get(id(original_node))
        if found is None:
            return updated_node
        variable = code(original_node.value.value)  # type: ignore[attr-defined]
        adapter = _adapter(variable, "apply", found[0], self.state.uses_rng, apply_method=found[1])
        if adapter is None:
            self.todo(f"{variable}.apply", "used as a function value; call net.apply(variables, ..., method='<name>') by hand")
            return updated_node
        return adapter

    def _multi_apply(self, func: cst.Subscript) -> tuple[TransformInfo, str | None] | None:
        """``net.apply["encode"]`` of a migrated hk.multi_transform: its info and method (None: unknown key)."""
        target = self._target(func.value)
        if target is None or target[0] != "apply" or not target[1].methods or len(func.slice) != 1:
            return None
        index = func.slice[0].slice
        key = None
        if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
            key = index.value.evaluated_value
        elif isinstance(index, cst.Index) and isinstance(index.value, cst.Integer):
            key = int(index.value.value)
        methods = dict(target[1].methods)
        return target[1], methods.get(key)  # type: ignore[arg-type]

    def leave_Attribute(self, original_node: cst.Attribute, updated_node: cst.Attribute) -> cst.BaseExpression:
        if id(original_node) in self._unpacked:
            return self._unpacked_applies(original_node, self._unpacked[id(original_node)])
        target = self._target(original_node)
        if target is not None and id(original_node) not in self._called:
            variable = cst.Module([]).code_for_node(original_node.value)
            adapter = _adapter(variable, target[0], target[1], self.state.uses_rng)
            if adapter is not None:
                return adapter  # type: ignore[return-value]
            self.todo(
                f"{variable}.{target[0]}",
                f"used as a function value; Flax's {target[0]} has another signature"
                f" (apply takes {{'params': params}} and the inputs, init returns {{'params': ...}}):"
                " wrap it in a lambda that adapts the arguments",
            )
        return updated_node

    def _unpacked_applies(self, node: cst.Attribute, info: TransformInfo) -> cst.BaseExpression:
        """``net.apply`` unpacked into one name per method -> a tuple of Haiku-signature lambdas."""
        variable = code(node.value)
        adapters = [_adapter(variable, "apply", info, self.state.uses_rng, apply_method=name) for _, name in info.methods]
        if any(a is None for a in adapters):
            self.todo(f"{variable}.apply", "unpacked into functions; call net.apply(variables, ..., method='<name>') by hand")
            return node
        return cst.Tuple([cst.Element(a) for a in adapters], lpar=[], rpar=[])  # type: ignore[arg-type]

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        if id(original_node) in self._factory_calls:
            factory = code(original_node.func)
            self.todo(
                factory,
                f"{factory} now returns a Linen module: its init/apply are rewritten only on a name bound as"
                f" `net = {factory}(...)`; adapt them to Flax's signatures by hand here",
            )
        if isinstance(original_node.func, cst.Subscript):
            multi = self._multi_apply(original_node.func)
            if multi is None:
                return updated_node
            if multi[1] is None or any(arg.star for arg in updated_node.args):
                self.todo("apply", "apply function of an hk.multi_transform not known statically; call net.apply(..., method='<name>')")
                return updated_node
            return self._apply(updated_node.with_changes(func=updated_node.func.value), multi[0], multi[1])
        target = self._target(original_node.func)
        if target is None:
            return updated_node
        method, info = target
        if method == "apply" and info.methods:
            self.todo("apply", "net.apply of an hk.multi_transform is a collection of functions; index it as net.apply[KEY](...)")
            return updated_node
        if any(arg.star for arg in updated_node.args):
            self.todo(f"{method}", "called with *args/**kwargs; adapt the arguments to Flax's signature by hand")
            return updated_node
        if method == "init":
            return self._init(original_node, updated_node, info)
        return self._apply(updated_node, info)

    def _init(self, original: cst.Call, call: cst.Call, info: TransformInfo) -> cst.BaseExpression:
        args = list(call.args)
        if args and args[0].keyword is None and m.matches(args[0].value, m.Name("None")):
            # Haiku's init runs without a key until something draws one; Flax's, given no streams.
            args[0] = args[0].with_changes(value=cst.Dict([]))
        if args and args[0].keyword is None and isinstance(args[0].value, cst.Integer):
            self.need_import(JAX_IMPORT)
            key = cst.parse_expression(f"jax.random.PRNGKey({args[0].value.value})")
            args[0] = args[0].with_changes(value=key)
        if info.init_method != "__call__":
            args = _commas([*args, cst.Arg(cst.SimpleString(f'"{info.init_method}"'), keyword=cst.Name("method"), equal=_EQUAL)])
        if info.with_state:
            return self._init_with_state(original, call.with_changes(args=args))
        return cst.Subscript(
            value=call.with_changes(args=args),
            slice=[cst.SubscriptElement(cst.Index(cst.SimpleString('"params"')))],
        )

    def _init_with_state(self, original: cst.Call, call: cst.Call) -> cst.BaseExpression:
        """``params, state = net.init(...)``: the statement is split when it is left."""
        if id(original) not in self._split_inits:
            self.todo(
                "init",
                "init of a stateful model outside `params, state = net.init(...)`: Flax returns one dict of"
                ' collections; split it with `params = variables.pop("params")`',
            )
            return original
        self._split_done[id(original)] = call
        return call

    def _apply(self, call: cst.Call, info: TransformInfo, method: str = "__call__") -> cst.BaseExpression:
        positional = [a for a in call.args if a.keyword is None]
        keywords = {a.keyword.value: a for a in call.args if a.keyword is not None}
        params = positional.pop(0).value if positional else keywords.pop("params").value if "params" in keywords else None
        if params is None:
            self.todo("apply", "no params argument found; adapt the call to Flax's signature by hand")
            return call
        state: cst.BaseExpression | None = None
        if info.with_state:
            state = positional.pop(0).value if positional else keywords.pop("state").value if "state" in keywords else None
            if state is None or not _simple(state):
                self.todo(
                    "apply",
                    "the state argument is missing or not a plain name; pass {'params': params, **state} and"
                    " mutable=list(state) by hand",
                )
                return call
        rng: cst.BaseExpression | None = None
        if info.apply_rng:
            rng = positional.pop(0).value if positional else keywords.pop("rng").value if "rng" in keywords else None
        # `apply(None, ...)`: a model without parameters (Flax rejects a None collection).
        no_params = m.matches(params, m.Name("None"))
        elements = [] if no_params else [cst.DictElement(cst.SimpleString('"params"'), params)]
        if state is not None:
            elements.append(cst.StarredDictElement(state))
        variables = cst.Dict(elements)
        args = [cst.Arg(variables), *(a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in positional)]
        args += [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in keywords.values()]
        if rng is not None and not m.matches(rng, m.Name("None")) and (info.uses_rng or self.state.uses_rng):
            rngs = cst.Dict([cst.DictElement(cst.SimpleString('"dropout"'), rng)])
            args.append(cst.Arg(rngs, keyword=cst.Name("rngs"), equal=_EQUAL))
        if method != "__call__":
            args.append(cst.Arg(cst.SimpleString(f'"{method}"'), keyword=cst.Name("method"), equal=_EQUAL))
        if state is not None:
            mutable = cst.Call(cst.Name("list"), [cst.Arg(state)])
            args.append(cst.Arg(mutable, keyword=cst.Name("mutable"), equal=_EQUAL))
        return call.with_changes(args=_commas(args))


_ADAPTER_NAMES = frozenset({"params", "state", "rng", "args", "kwargs", "variables"})


def _adapter(
    variable: str, method: str, info: TransformInfo, file_uses_rng: bool, *, apply_method: str | None = None
) -> cst.BaseExpression | None:
    """``net.apply`` / ``net.init`` used as a value -> a lambda with Haiku's signature calling Flax's.

    ``jax.jit(net.apply)`` keeps working: the lambda takes ``(params[, state][, rng], *args)``
    as Haiku's apply did. ``apply_method`` is the method one apply function of an
    hk.multi_transform runs. None (a TODO) for a multi_transform's whole ``apply``
    and for receivers whose name a lambda parameter would shadow.
    """
    if info.methods and method == "apply" and apply_method is None or variable.split(".")[0] in _ADAPTER_NAMES:
        return None
    method_kw = f', method="{info.init_method}"' if info.init_method != "__call__" else ""
    if method == "init":
        call = f"{variable}.init(rng, *args{method_kw}, **kwargs)"
        body = f'(lambda variables: (variables.pop("params"), variables))({call})' if info.with_state else f'{call}["params"]'
        return cst.parse_expression(f"(lambda rng, *args, **kwargs: {body})")
    params = ["params"] + (["state"] if info.with_state else []) + (["rng"] if info.apply_rng else [])
    variables = '{"params": params, **state}' if info.with_state else '{"params": params}'
    extra = ""
    if info.apply_rng and (info.uses_rng or file_uses_rng):
        extra += ', rngs=None if rng is None else {"dropout": rng}'
    if apply_method is not None and apply_method != "__call__":
        extra += f', method="{apply_method}"'
    if info.with_state:
        extra += ", mutable=list(state)"
    body = f"{variable}.apply({variables}, *args{extra}, **kwargs)"
    return cst.parse_expression(f"(lambda {', '.join(params)}, *args, **kwargs: {body})")


def _simple(node: cst.BaseExpression) -> bool:
    """A name or attribute chain: safe to read twice (``**state`` and ``list(state)``)."""
    return isinstance(node, cst.Name) or (isinstance(node, cst.Attribute) and _simple(node.value))


_EQUAL = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(""))


def _commas(args: list[cst.Arg]) -> list[cst.Arg]:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [a.with_changes(comma=comma) for a in args[:-1]] + args[-1:]
