"""``hk.transform`` → a top-level Linen module.

Before::

    def forward(x):
      return hk.nets.MLP([300, 10])(x)

    net = hk.without_apply_rng(hk.transform(forward))

After (``modules.py`` then adds ``@nn.compact`` and the layers)::

    class Forward(nn.Module):
      def __call__(self, x):
        return ...

    net = Forward()

The decorator form ``@hk.transform`` (under ``@hk.without_apply_rng`` or not)
becomes the class plus ``net = Net()``. The variable keeps its name and becomes the module instance; ``callsites.py``
rewrites ``net.init`` / ``net.apply``. A function that is also used outside
the transform keeps its ``def`` and the class calls it. A lambda becomes a
class named after the variable. Forms that cannot be rewritten exactly (the
result unpacked into ``init, apply``, a transform of an expression that is not
a plain function) are left for ``leftovers.py`` to mark.

``hk.transform_with_state`` is rewritten the same way; its module keeps state
in Linen collections (``batch_stats`` for BatchNorm, ``state`` for
``hk.get_state``) and ``callsites.py`` threads them through ``init``/``apply``.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from flaxify.migrate.base import FlaxifyCommand, MigrationState, TransformInfo
from flaxify.migrate.multi_transform import MultiTemplate, read_template
from flaxify.migrate.layers_common import walk


@dataclass(frozen=True)
class Chain:
    """``hk.without_apply_rng(hk.transform(fn))`` taken apart."""

    fn: cst.BaseExpression
    apply_rng: bool
    with_state: bool
    multi: bool = False


@dataclass(frozen=True)
class Plan:
    class_name: str
    info: TransformInfo
    keep_def: bool  # the function is used elsewhere: keep it and delegate


def snake_to_camel(name: str) -> str:
    """``net_fn`` → ``NetFn``; ``_forward`` → ``Forward``."""
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    return camel or "Model"


class ConvertTransformsCommand(FlaxifyCommand):
    DESCRIPTION = "Turns functions given to hk.transform into Linen modules."

    @classmethod
    def wanted(cls, source: bytes, state: MigrationState) -> bool:
        return b"transform" in source

    def __init__(self, context):  # type: ignore[no-untyped-def]
        super().__init__(context)
        self._taken: set[str] = set()
        self._name_uses: dict[str, int] = {}
        self._def_plans: dict[str, Plan] = {}  # function name -> plan
        self._defs: set[str] = set()
        self._def_nodes: dict[str, cst.FunctionDef] = {}
        self._class_names: set[str] = set()
        self._multi_plans: dict[str, tuple[MultiTemplate, bool]] = {}  # template fn -> (template, keep_def)
        self._top_level_defs: set[int] = set()

    # -- analysis ---------------------------------------------------------
    def chain(self, expr: cst.BaseExpression) -> Chain | None:
        if not isinstance(expr, cst.Call) or not expr.args:
            return None
        qualname = self.haiku_name(expr.func)
        first = expr.args[0].value
        if qualname == "haiku.without_apply_rng":
            inner = self.chain(first)
            return None if inner is None else Chain(inner.fn, False, inner.with_state, inner.multi)
        if qualname in ("haiku.transform", "haiku.transform_with_state"):
            if len(expr.args) > 1 and not m.matches(expr.args[1], m.Arg(keyword=m.Name("apply_rng"))):
                return None
            return Chain(first, True, qualname.endswith("_with_state"))
        if qualname in ("haiku.multi_transform", "haiku.multi_transform_with_state") and len(expr.args) == 1:
            return Chain(first, True, qualname.endswith("_with_state"), multi=True)
        return None

    def visit_Module(self, node: cst.Module) -> None:
        # Plans are made up front: a def is left before the assignment below it is seen.
        self._top_level_defs = {id(s) for s in node.body if isinstance(s, cst.FunctionDef)}
        statements = []
        for sub in walk(node):
            if isinstance(sub, (cst.ClassDef, cst.FunctionDef)):
                self._taken.add(sub.name.value)
                if isinstance(sub, cst.FunctionDef):
                    self._defs.add(sub.name.value)
                    self._def_nodes.setdefault(sub.name.value, sub)
                else:
                    self._class_names.add(sub.name.value)
            elif isinstance(sub, cst.Name):
                self._name_uses[sub.value] = self._name_uses.get(sub.value, 0) + 1
            elif isinstance(sub, cst.AssignTarget) and isinstance(sub.target, cst.Name):
                self._taken.add(sub.target.value)
            elif isinstance(sub, cst.SimpleStatementLine):
                statements.append(sub)
        for statement in statements:
            self._plan(statement)

    def fresh_class_name(self, base: str) -> str:
        name = snake_to_camel(base)
        while name in self._taken:
            name += "Module"
        self._taken.add(name)
        return name

    # -- `net = hk.transform(f)` ----------------------------------------------
    def _plan(self, node: cst.SimpleStatementLine) -> None:
        assign = _single_assign(node)
        # Only `name = hk.transform(fn)` is rewritten (leave_SimpleStatementLine):
        # planning a class for `init, apply = ...` would leave it orphaned, and a
        # second run would add another one.
        if assign is None or not isinstance(assign.targets[0].target, cst.Name):
            return
        chain = self.chain(assign.value)
        if chain is None or not isinstance(chain.fn, cst.Name):
            return
        fn = chain.fn.value
        if fn in self._def_plans or fn not in self._defs:
            return
        if chain.multi:
            template = read_template(self._def_nodes[fn], self._class_names)
            if template is not None and fn not in self._multi_plans:
                self._multi_plans[fn] = (template, self._name_uses.get(fn, 0) > 2)
            return
        # Uses of the name: the def itself, this argument, and anything else.
        keep_def = self._name_uses.get(fn, 0) > 2
        info = TransformInfo(self.fresh_class_name(fn), chain.apply_rng, chain.with_state)
        self._def_plans[fn] = Plan(info.class_name, info, keep_def)

    def leave_SimpleStatementLine(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        assign = _single_assign(updated_node)
        if assign is None or not isinstance(assign.targets[0].target, cst.Name):
            return updated_node
        chain = self.chain(_single_assign(original_node).value)  # metadata lives on the original
        if chain is None:
            return updated_node
        target = assign.targets[0].target.value
        if chain.multi:
            return self._multi(updated_node, assign, target, chain)
        if isinstance(chain.fn, cst.Lambda):
            return self._from_lambda(updated_node, assign, target, chain)
        if not isinstance(chain.fn, cst.Name) or chain.fn.value not in self._def_plans:
            self.todo("hk.transform", "the transformed function is not a def or lambda in this file; wrap it in an nn.Module by hand")
            return updated_node
        plan = self._def_plans[chain.fn.value]
        self.state.transformed[target] = plan.info
        return updated_node.with_changes(body=[assign.with_changes(value=_instantiate(plan.class_name))])

    def _multi(self, stmt, assign, target: str, chain: Chain):  # type: ignore[no-untyped-def]
        plan = self._multi_plans.get(chain.fn.value) if isinstance(chain.fn, cst.Name) else None
        if plan is None:
            self.todo(
                "hk.multi_transform",
                "only a template `def f(): m = Module(...); return m.<init>, {key: m.<method>, ...}` (or a tuple of"
                " m.<method>; init may be a lambda or def passing its parameters to m unchanged) is rewritten;"
                " make the module the Flax model and call net.apply(variables, ..., method='<method>')",
            )
            return stmt
        template = plan[0]
        class_name = template.construction.func.value  # type: ignore[attr-defined]
        info = TransformInfo(class_name, chain.apply_rng, chain.with_state, False, template.init_method, template.methods)
        self.state.transformed[target] = info
        if self._name_uses.get(class_name, 0) == 2:  # the class statement and the template's construction
            self.state.root_classes.add(class_name)
        return stmt.with_changes(body=[assign.with_changes(value=template.construction)])

    def _from_lambda(self, stmt, assign, target: str, chain: Chain):  # type: ignore[no-untyped-def]
        lam = chain.fn
        assert isinstance(lam, cst.Lambda)
        name = self.fresh_class_name(target)
        info = TransformInfo(name, chain.apply_rng, chain.with_state)
        self.state.transformed[target] = info
        self.state.wrapper_classes.add(name)
        body = cst.IndentedBlock([cst.SimpleStatementLine([cst.Return(lam.body)])])
        klass = self._class(name, _method_params(lam.params), body)
        new_stmt = stmt.with_changes(body=[assign.with_changes(value=_instantiate(name))], leading_lines=[])
        return cst.FlattenSentinel([klass.with_changes(leading_lines=stmt.leading_lines), new_stmt])

    # -- `def f` → `class F(nn.Module)` -------------------------------------------
    def _decorator_chain(self, node: cst.FunctionDef) -> Chain | None:
        """``@hk.transform`` / ``@hk.transform_with_state``, optionally under ``@hk.without_apply_rng``."""
        names = [self.haiku_name(d.decorator) for d in node.decorators]
        if not names or len(names) > 2:
            return None
        *outer, inner = names
        if inner not in ("haiku.transform", "haiku.transform_with_state") or any(o != "haiku.without_apply_rng" for o in outer):
            return None
        return Chain(node.name, not outer, inner.endswith("_with_state"))

    def _from_decorated(self, node: cst.FunctionDef, chain: Chain):  # type: ignore[no-untyped-def]
        """``@hk.transform def net(x): ...`` -> ``class Net(nn.Module)`` and ``net = Net()``."""
        target = node.name.value
        name = self.fresh_class_name(target)
        info = TransformInfo(name, chain.apply_rng, chain.with_state)
        self.state.transformed[target] = info
        self.state.wrapper_classes.add(name)
        klass = self._class(name, _method_params(node.params), node.body).with_changes(leading_lines=node.leading_lines)
        instance = cst.SimpleStatementLine(
            [cst.Assign([cst.AssignTarget(cst.Name(target))], _instantiate(name))],
            leading_lines=[cst.EmptyLine(indent=False), cst.EmptyLine(indent=False)],
        )
        return cst.FlattenSentinel([klass, instance])

    def leave_FunctionDef(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        if id(original_node) in self._top_level_defs and not updated_node.asynchronous:
            chain = self._decorator_chain(original_node)
            if chain is not None:
                return self._from_decorated(updated_node, chain)
        multi = self._multi_plans.get(updated_node.name.value)
        if multi is not None and not multi[1] and original_node is self._def_nodes.get(updated_node.name.value):
            return cst.RemoveFromParent()  # the template's module is now the model itself
        plan = self._def_plans.get(updated_node.name.value)
        if plan is None:
            return updated_node
        self.state.wrapper_classes.add(plan.class_name)
        if updated_node.decorators or updated_node.asynchronous:
            self.todo("hk.transform", "the transformed function is decorated or async; wrap it in an nn.Module by hand")
            del self._def_plans[updated_node.name.value]
            return updated_node
        if plan.keep_def:
            call = _delegating_call(updated_node.name.value, updated_node.params)
            body = cst.IndentedBlock([cst.SimpleStatementLine([cst.Return(call)])])
            klass = self._class(plan.class_name, _method_params(updated_node.params), body)
            return cst.FlattenSentinel([updated_node, klass])
        klass = self._class(plan.class_name, _method_params(updated_node.params), updated_node.body)
        return klass.with_changes(leading_lines=updated_node.leading_lines)

    def _class(self, name: str, params: cst.Parameters, body: cst.BaseSuite) -> cst.ClassDef:
        method = cst.FunctionDef(name=cst.Name("__call__"), params=params, body=body)
        return cst.ClassDef(
            name=cst.Name(name),
            bases=[cst.Arg(self.nn_attr("Module"))],
            body=cst.IndentedBlock([method]),
            leading_lines=[cst.EmptyLine()],
        )


def _single_assign(node: cst.SimpleStatementLine) -> cst.Assign | None:
    if len(node.body) == 1 and isinstance(node.body[0], cst.Assign) and len(node.body[0].targets) == 1:
        return node.body[0]
    return None


def _instantiate(class_name: str) -> cst.Call:
    return cst.Call(func=cst.Name(class_name))


def _method_params(params: cst.Parameters) -> cst.Parameters:
    """The function's parameters with ``self`` in front."""
    return params.with_changes(params=[cst.Param(cst.Name("self")), *params.params])


def _delegating_call(fn: str, params: cst.Parameters) -> cst.Call:
    """``fn(a, b, *args, c=c, **kwargs)`` forwarding every parameter."""
    args = [cst.Arg(p.name) for p in (*params.posonly_params, *params.params)]
    if isinstance(params.star_arg, cst.Param):
        args.append(cst.Arg(params.star_arg.name, star="*"))
    args += [cst.Arg(p.name, keyword=p.name) for p in params.kwonly_params]
    if params.star_kwarg is not None:
        args.append(cst.Arg(params.star_kwarg.name, star="**"))
    return cst.Call(func=cst.Name(fn), args=args)
