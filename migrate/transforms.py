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

A factory function (a module-level def whose every ``return`` is such a
transform of a def, as acme and Haiku's examples write them) returns the
module instead::

    def make_net(config) -> hk.Transformed:        def make_net(config) -> nn.Module:
      def forward(x):                                class Forward(nn.Module):
        return Classifier(config)(x)        ->         def __call__(self, x):
      return hk.transform(forward)                       return Classifier(config)(x)
                                                     return Forward()

and a name bound from calling it (``net = make_net(cfg)``, here or, through
``project.py``, in a file importing the factory) is a transformed name.

``hk.transform(functools.partial(fn, kw=value))`` (keywords only, ``fn`` a def
of this file used nowhere else) becomes a class whose fields are the bound
keywords; ``__call__`` starts ``kw = self.kw`` and the transform becomes
``Fn(kw=value)``. Positional bound arguments, or ``fn`` used elsewhere too,
are marked TODO with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m
from libcst.codemod.visitors import RemoveImportsVisitor
from libcst.metadata import QualifiedNameProvider

from flaxify.migrate.base import FlaxifyCommand, MigrationState, TransformInfo
from flaxify.migrate.layers_common import walk
from flaxify.migrate.multi_transform import MultiTemplate, read_template
from flaxify.migrate.rewrite import ImportSpec
from flaxify.migrate.transform_scopes import (
    Owners,
    binds,
    count_name,
    keyword_parameters,
    own_scope,
    partial_problem,
    statements_with_owners,
    unbind_parameters,
)


@dataclass(frozen=True)
class Chain:
    """``hk.without_apply_rng(hk.transform(fn))`` taken apart."""

    fn: cst.BaseExpression
    apply_rng: bool
    with_state: bool
    multi: bool = False


@dataclass(frozen=True)
class Plan:
    """The class one transformed def becomes."""

    class_name: str
    keep_def: bool  # the function is used elsewhere: keep it and delegate
    # Keywords a functools.partial binds: the class's fields, given where it is built.
    bound: tuple[cst.Arg, ...] = ()


@dataclass(frozen=True)
class Target:
    """The def a transform names, the def whose scope holds it (None: the module), and what a partial binds."""

    fn: cst.FunctionDef
    scope: cst.FunctionDef | None
    bound: tuple[cst.Arg, ...] = ()


@dataclass(frozen=True)
class Use:
    """One transform of a planned def: the class to build there and what init/apply take."""

    plan: Plan
    info: TransformInfo


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
        self._def_plans: dict[int, Plan] = {}  # id(def) -> plan
        self._uses: dict[int, Use] = {}  # id(transform call) -> what it becomes
        self._problems: dict[int, str] = {}  # id(transform call) -> why it stays (a TODO)
        self._module_defs: dict[str, list[cst.FunctionDef]] = {}  # module-level defs by name
        self._factories: dict[str, TransformInfo] = {}  # factory function -> what calling it returns
        self._factory_ids: set[int] = set()
        self._factory_calls: set[int] = set()  # id(call of a factory) whose result is not a plain name
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
        self._top_level_statements = {id(s) for s in node.body}
        for statement in node.body:
            if isinstance(statement, cst.FunctionDef):
                self._module_defs.setdefault(statement.name.value, []).append(statement)
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
        for owners, statement in statements_with_owners(node.body, ()):
            self._plan(statement, owners)
        for statement in node.body:
            if isinstance(statement, cst.FunctionDef):
                self._plan_factory(statement)
        if self._factories:
            self._bind_factory_results(node)

    def fresh_class_name(self, base: str) -> str:
        name = snake_to_camel(base)
        while name in self._taken:
            name += "Module"
        self._taken.add(name)
        return name

    # -- which def a transform names --------------------------------------------
    def _resolve_def(self, name: str, owners: Owners) -> Target | None:
        """The def ``name`` means inside ``owners`` (the enclosing defs, outermost first): innermost wins.

        A parameter or assignment of that name in an enclosing def shadows any def
        further out, and a name defined twice in one scope is ambiguous: both give
        None (the transform stays a TODO).
        """
        for owner in reversed(owners):
            local = [n for n in own_scope(owner.body) if isinstance(n, cst.FunctionDef) and n.name.value == name]
            if local:
                return Target(local[0], owner) if len(local) == 1 else None
            parameters = owner.params
            every = (*parameters.posonly_params, *parameters.params, *parameters.kwonly_params)
            if any(p.name.value == name for p in every) or binds(owner, name):
                return None
        found = self._module_defs.get(name, [])
        return Target(found[0], None) if len(found) == 1 else None

    def _target(self, fn: cst.BaseExpression, owners: Owners) -> Target | str | None:
        """The def a transform's argument names and the keywords a functools.partial binds to it.

        A string says why this shape is not rewritten; None: not a shape this pass knows.
        """
        bound: tuple[cst.Arg, ...] = ()
        partial = isinstance(fn, cst.Call) and self._is_partial(fn.func)
        if partial:
            assert isinstance(fn, cst.Call)
            first = fn.args[0] if fn.args else None
            if first is None or first.keyword is not None or first.star or not isinstance(first.value, cst.Name):
                return "functools.partial of something other than a def of this file; write the nn.Module by hand"
            fn, bound = fn.args[0].value, tuple(fn.args[1:])
        if not isinstance(fn, cst.Name):
            return None
        found = self._resolve_def(fn.value, owners)
        if found is None:
            return "the function is not a def of this file (or is shadowed or defined twice)" if partial else None
        if found.fn.decorators or found.fn.asynchronous:
            return "the transformed function is decorated or async; wrap it in an nn.Module by hand"
        if partial:
            keywords = [a.keyword.value if a.keyword is not None else (a.star or None) for a in bound]
            problem = partial_problem(fn.value, keywords, keyword_parameters(found.fn.params), self._count_uses(found))
            if problem is not None:
                return problem
        return Target(found.fn, found.scope, bound)

    def _count_uses(self, target: Target) -> int:
        """How often the def's name is spelled in its scope (its own ``def`` line included)."""
        name = target.fn.name.value
        return self._name_uses.get(name, 0) if target.scope is None else count_name(target.scope, name)

    def _is_partial(self, func: cst.BaseExpression) -> bool:
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return False
        return any(q.name == "functools.partial" for q in self.get_metadata(QualifiedNameProvider, func, set()))

    def _plan_use(self, call: cst.BaseExpression, chain: Chain, owners: Owners, *, commit: bool = True) -> bool:
        """Plans the class of one transform's def; False (and a reason, if any) when it stays Haiku's."""
        target = self._target(chain.fn, owners)
        if not isinstance(target, Target):
            if target is not None:
                self._problems[id(call)] = target
            return False
        if not commit:
            return True
        plan = self._def_plans.get(id(target.fn))
        if plan is None:
            # Uses of the name: the def itself, this argument, and anything else.
            keep_def = not target.bound and self._count_uses(target) > 2
            plan = Plan(self.fresh_class_name(target.fn.name.value), keep_def=keep_def, bound=target.bound)
            self._def_plans[id(target.fn)] = plan
        self._uses[id(call)] = Use(plan, TransformInfo(plan.class_name, chain.apply_rng, chain.with_state))
        return True

    # -- `net = hk.transform(f)` ----------------------------------------------
    def _plan(self, node: cst.SimpleStatementLine, owners: Owners) -> None:
        assign = _single_assign(node)
        # Only `name = hk.transform(fn)` is rewritten (leave_SimpleStatementLine):
        # planning a class for `init, apply = ...` would leave it orphaned, and a
        # second run would add another one.
        if assign is None or not isinstance(assign.targets[0].target, cst.Name):
            return
        chain = self.chain(assign.value)
        if chain is None:
            return
        if not chain.multi:
            self._plan_use(assign.value, chain, owners)
            return
        fn = chain.fn.value if isinstance(chain.fn, cst.Name) else None
        if fn is None or fn not in self._defs or fn in self._multi_plans:
            return
        template = read_template(self._def_nodes[fn], self._class_names)
        if template is not None:
            self._multi_plans[fn] = (template, self._name_uses.get(fn, 0) > 2)

    # -- `def make_net(config): ...; return hk.transform(forward)` ----------------
    def _plan_factory(self, factory: cst.FunctionDef) -> None:
        """A module-level def whose every return is a transform of a def becomes a module factory."""
        if factory.decorators or factory.asynchronous:
            return
        returns = [n for n in own_scope(factory.body) if isinstance(n, cst.Return)]
        chains = [self.chain(r.value) if r.value is not None else None for r in returns]
        if not returns or any(c is None or c.multi for c in chains):
            return
        if len({(c.apply_rng, c.with_state) for c in chains if c is not None}) != 1:
            return
        pairs = [(r.value, c) for r, c in zip(returns, chains) if r.value is not None and c is not None]
        # Every return or none: a factory returning a Linen module on one path and a
        # Haiku Transformed on another could not have its call sites rewritten.
        ready = [self._plan_use(value, chain, (factory,), commit=False) for value, chain in pairs]  # each return's TODO
        if not all(ready):
            return
        for value, chain in pairs:
            self._plan_use(value, chain, (factory,))
        self._factories[factory.name.value] = self._uses[id(pairs[0][0])].info
        self._factory_ids.add(id(factory))

    def _bind_factory_results(self, node: cst.Module) -> None:
        """``net = make_net(cfg)`` makes ``net`` a transformed name; other uses of the result are marked."""
        named: set[int] = set()
        for sub in walk(node):
            if isinstance(sub, cst.Assign) and len(sub.targets) == 1 and isinstance(sub.targets[0].target, cst.Name):
                factory = self._factory_called(sub.value)
                if factory is not None:
                    self.state.transformed[sub.targets[0].target.value] = self._factories[factory]
                    named.add(id(sub.value))
        self._factory_calls = {id(s) for s in walk(node) if self._factory_called(s) is not None and id(s) not in named}

    def _factory_called(self, node: cst.CSTNode) -> str | None:
        """The factory of this file that ``node`` calls, if it is such a call."""
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in self._factories:
            return node.func.value
        return None

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        if id(original_node) in self._factory_calls:
            name = original_node.func.value  # type: ignore[attr-defined]
            self.todo(
                name,
                f"{name} now returns a Linen module: its init/apply are rewritten only on a name bound as"
                f" `net = {name}(...)`; adapt them to Flax's signatures by hand here",
            )
        return updated_node

    def leave_Return(self, original_node: cst.Return, updated_node: cst.Return) -> cst.Return:
        if original_node.value is None:
            return updated_node
        if id(original_node.value) in self._problems:
            self.todo("hk.transform", self._problems[id(original_node.value)])
        use = self._uses.get(id(original_node.value))
        return updated_node if use is None else updated_node.with_changes(value=self._instance(use))

    def _instance(self, use: Use) -> cst.Call:
        """``Forward()``, or ``ForwardFn(hidden=3)`` for a functools.partial (which is no longer needed)."""
        if use.plan.bound:
            self._drop_functools_import()
        return _instantiate(use.plan.class_name).with_changes(args=_commas(list(use.plan.bound)))

    def _drop_functools_import(self) -> None:
        for local, qualified in self._imports().items():
            if qualified in ("functools", "functools.partial"):
                obj = "partial" if qualified == "functools.partial" else None
                alias = None if local == qualified.rsplit(".", 1)[-1] else local
                RemoveImportsVisitor.remove_unused_import(self.context, "functools", obj, alias)

    def leave_SimpleStatementLine(self, original_node, updated_node):  # type: ignore[no-untyped-def]
        assign = _single_assign(updated_node)
        if assign is None or not isinstance(assign.targets[0].target, cst.Name):
            return updated_node
        original = _single_assign(original_node).value  # metadata lives on the original
        chain = self.chain(original)
        if chain is None:
            return updated_node
        target = assign.targets[0].target.value
        if chain.multi:
            return self._multi(updated_node, assign, target, chain)
        if isinstance(chain.fn, cst.Lambda):
            return self._from_lambda(updated_node, assign, target, chain, top=id(original_node) in self._top_level_statements)
        use = self._uses.get(id(original))
        if use is None:
            reason = "the transformed function is not a def or lambda in this file; wrap it in an nn.Module by hand"
            self.todo("hk.transform", self._problems.get(id(original), reason))
            return updated_node
        self.state.transformed[target] = use.info
        return updated_node.with_changes(body=[assign.with_changes(value=self._instance(use))])

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

    def _from_lambda(self, stmt, assign, target: str, chain: Chain, *, top: bool):  # type: ignore[no-untyped-def]
        lam = chain.fn
        assert isinstance(lam, cst.Lambda)
        name = self.fresh_class_name(target)
        info = TransformInfo(name, chain.apply_rng, chain.with_state)
        self.state.transformed[target] = info
        self.state.wrapper_classes.add(name)
        body = cst.IndentedBlock([cst.SimpleStatementLine([cst.Return(lam.body)])])
        klass = self._class(name, _method_params(lam.params), body)
        # PEP 8: two blank lines around a top-level class, one inside a function.
        blank = cst.EmptyLine(indent=False)
        spacing = [blank] * (2 if top else 1)
        lead = list(stmt.leading_lines)
        if top and sum(line.comment is None for line in lead) < 2:
            lead = [blank, blank, *lead]
        new_stmt = stmt.with_changes(body=[assign.with_changes(value=_instantiate(name))], leading_lines=spacing)
        return cst.FlattenSentinel([klass.with_changes(leading_lines=lead), new_stmt])

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
        klass = self._class(name, _method_params(node.params), node.body, returns=node.returns)
        klass = klass.with_changes(leading_lines=node.leading_lines)
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
        if id(original_node) in self._factory_ids:
            return self._factory(original_node, updated_node)
        multi = self._multi_plans.get(updated_node.name.value)
        if multi is not None and not multi[1] and original_node is self._def_nodes.get(updated_node.name.value):
            return cst.RemoveFromParent()  # the template's module is now the model itself
        plan = self._def_plans.get(id(original_node))
        if plan is None:
            return updated_node
        self.state.wrapper_classes.add(plan.class_name)
        if plan.bound:
            return self._partial_class(plan, updated_node).with_changes(leading_lines=updated_node.leading_lines)
        if plan.keep_def:
            call = _delegating_call(updated_node.name.value, updated_node.params)
            body = cst.IndentedBlock([cst.SimpleStatementLine([cst.Return(call)])])
            klass = self._class(plan.class_name, _method_params(updated_node.params), body)
            return cst.FlattenSentinel([updated_node, klass])
        klass = self._class(plan.class_name, _method_params(updated_node.params), updated_node.body, returns=updated_node.returns)
        return klass.with_changes(leading_lines=updated_node.leading_lines)

    def _factory(self, original: cst.FunctionDef, node: cst.FunctionDef) -> cst.FunctionDef:
        """``-> hk.Transformed`` (or ``TransformedWithState``) on a factory becomes ``-> nn.Module``."""
        returns = original.returns.annotation if original.returns is not None else None
        if returns is not None and self.haiku_name(returns) in ("haiku.Transformed", "haiku.TransformedWithState"):
            return node.with_changes(returns=cst.Annotation(self.nn_attr("Module")))
        return node

    def _partial_class(self, plan: Plan, node: cst.FunctionDef) -> cst.ClassDef:
        """``def fn(x, hidden)`` under ``partial(fn, hidden=3)`` -> fields, and ``hidden = self.hidden`` first."""
        names = [arg.keyword.value for arg in plan.bound if arg.keyword is not None]
        fields = [
            cst.SimpleStatementLine([cst.AnnAssign(cst.Name(n), cst.Annotation(self._field_type(node.params, n)))])
            for n in names
        ]
        reads = [cst.parse_statement(f"{n} = self.{n}\n") for n in names]
        body = list(node.body.body) if isinstance(node.body, cst.IndentedBlock) else [node.body]  # type: ignore[list-item]
        docstring = int(bool(body) and m.matches(body[0], m.SimpleStatementLine([m.Expr(m.SimpleString())])))
        statements = [*body[:docstring], *reads, *body[docstring:]]
        params = _method_params(unbind_parameters(node.params, set(names)))
        return self._class(plan.class_name, params, cst.IndentedBlock(statements), fields, returns=node.returns)  # type: ignore[arg-type]

    def _field_type(self, params: cst.Parameters, name: str) -> cst.BaseExpression:
        """The parameter's own annotation, else ``Any`` (Linen fields need one)."""
        for param in (*params.params, *params.kwonly_params):
            if param.name.value == name and param.annotation is not None:
                return param.annotation.annotation
        self.need_import(ImportSpec("typing", "Any", None))
        return cst.Name("Any")

    def _class(
        self,
        name: str,
        params: cst.Parameters,
        body: cst.BaseSuite,
        fields: Sequence[cst.SimpleStatementLine] = (),
        returns: cst.Annotation | None = None,
    ) -> cst.ClassDef:
        method = cst.FunctionDef(name=cst.Name("__call__"), params=params, body=body, returns=returns)
        if fields:
            method = method.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        return cst.ClassDef(
            name=cst.Name(name),
            bases=[cst.Arg(self.nn_attr("Module"))],
            body=cst.IndentedBlock([*fields, method]),
            leading_lines=[cst.EmptyLine()],
        )


def _single_assign(node: cst.SimpleStatementLine) -> cst.Assign | None:
    if len(node.body) == 1 and isinstance(node.body[0], cst.Assign) and len(node.body[0].targets) == 1:
        return node.body[0]
    return None


def _instantiate(class_name: str) -> cst.Call:
    return cst.Call(func=cst.Name(class_name))


def _commas(args: list[cst.Arg]) -> list[cst.Arg]:
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    last = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in args[-1:]]
    return [a.with_changes(comma=comma) for a in args[:-1]] + last


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
