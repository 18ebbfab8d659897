"""Traced regions and the project-wide call graph.

Seeds are the functions JAX (or Flax, or Haiku) traces: decorated with or
passed to a transformation, bodies of ``lax`` control flow, module methods.
From each seed the analysis follows calls into the project's own functions,
at any depth and across modules, carrying which arguments are traced. Every
function reached gets one :class:`Context`; contexts only grow (kind, traced
parameters), so the worklist terminates.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass, field

from flaxify.lint.model import Kind, Taint
from flaxify.lint.project import ClassInfo, FunctionInfo, ModuleInfo, Project
from flaxify.lint.taint import Env, annotation_taint
from flaxify.lint.transforms import (
    HAIKU_MODULE,
    LAST_NAMES,
    LINEN_COMPACT,
    LINEN_MODULE,
    LINEN_ROOT_METHODS,
    NNX_MODULE,
    TRANSFORMS,
    Transform,
)

# Host callbacks: the function passed in runs on the host with concrete values, not traced.
CALLBACKS = frozenset({"jax.debug.callback", "jax.pure_callback", "jax.experimental.io_callback",
                       "jax.experimental.host_callback.call", "jax.experimental.host_callback.id_tap",
                       "jax.experimental.pure_callback"})
TREE_MAPS = frozenset({"jax.tree_util.tree_map", "jax.tree_util.tree_map_with_path", "jax.tree.map_with_path"})
PARTIALS = frozenset({"functools.partial"})
CUSTOM_RULE_ATTRS = frozenset({"defjvp", "defvjp", "defjvps"})
# Library implementations handle tracers on purpose (isinstance checks, try/except, avals): when their
# source is linted, their functions are checked where they are traced roots, but never reached as helpers.
FRAMEWORKS = frozenset({"jax", "jaxlib", "flax", "haiku", "optax", "equinox", "chex"})


@dataclass(frozen=True)
class Hop:
    """One edge of a call chain: ``fn`` calls the next function at ``line``."""

    fn: FunctionInfo
    line: int


@dataclass(eq=False)
class Context:
    """Everything known about one traced function, merged over every way it is reached."""

    fn: FunctionInfo
    kind: Kind
    params: dict[str, Taint]
    closure: dict[str, Taint]
    inner: set[str]
    flavors: set[str]
    chain: tuple[Hop, ...]
    env: Env | None = None

    def merge(self, kind: Kind, params: dict[str, Taint], closure: dict[str, Taint], inner: set[str],
              flavors: set[str]) -> bool:
        changed = False
        if kind > self.kind:
            self.kind, changed = kind, True
        for table, extra in ((self.params, params), (self.closure, closure)):
            for name, taint in extra.items():
                if taint > table.get(name, Taint.NONE):
                    table[name], changed = taint, True
        if not inner <= self.inner:
            self.inner |= inner
            changed = True
        if not flavors <= self.flavors:
            self.flavors |= flavors
            changed = True
        return changed


@dataclass
class _Target:
    fn: FunctionInfo
    bound_positional: int = 0
    bound_names: frozenset[str] = frozenset()
    via_attribute: bool = False  # reached as obj.method: the first parameter is already bound


@dataclass
class Analysis:
    """Runs the seeding and the worklist; ``contexts`` holds the result."""

    project: Project
    contexts: dict[FunctionInfo, Context] = field(default_factory=dict)
    returns: dict[FunctionInfo, Taint] = field(default_factory=dict)
    tuple_returns: dict[FunctionInfo, tuple[Taint, ...]] = field(default_factory=dict)
    _callers: dict[FunctionInfo, set[FunctionInfo]] = field(default_factory=dict)
    _queue: deque[Context] = field(default_factory=deque)
    _queued: set[FunctionInfo] = field(default_factory=set)

    def run(self) -> dict[FunctionInfo, Context]:
        for module in self.project.modules:
            self._seed_module(module)
        while self._queue:
            ctx = self._queue.popleft()
            self._queued.discard(ctx.fn)
            self._process(ctx)
        return self.contexts

    # --- name resolution -----------------------------------------------------------
    def qualify(self, fn: FunctionInfo | None, module: ModuleInfo, node: ast.expr) -> str | None:
        """Qualified name of ``node`` unless its root name is a local of ``fn``."""
        return qualify(fn, module, node)

    def resolve(self, node: ast.expr, scope: FunctionInfo | None, module: ModuleInfo) -> _Target | None:
        """The project function an expression denotes (a name, ``self.m``, ``mod.f``, partial, lambda)."""
        if isinstance(node, ast.Lambda):
            info = module.by_node.get(id(node))
            return _Target(info) if info else None
        if isinstance(node, ast.Name):
            fn = scope
            while fn is not None:
                if node.id in fn.nested:
                    return _Target(fn.nested[node.id])
                if node.id in fn.locals:
                    return None
                fn = fn.parent
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            cls = _enclosing_class(scope)
            method = self.method_of(cls, node.attr) if cls else None
            return _Target(method, via_attribute=True) if method else None
        if isinstance(node, ast.Call):
            return self._resolve_partial(node, scope, module)
        qualname = self.qualify(scope, module, node) if isinstance(node, (ast.Name, ast.Attribute)) else None
        if qualname is None:
            return None
        found = self.project.lookup(qualname, module)
        if isinstance(found, FunctionInfo):
            return _Target(found)
        return None

    def _resolve_partial(self, node: ast.Call, scope: FunctionInfo | None, module: ModuleInfo) -> _Target | None:
        if not node.args or self.qualify(scope, module, node.func) not in PARTIALS:
            return None
        inner = self.resolve(node.args[0], scope, module)
        if inner is None:
            return None
        names = frozenset(k.arg for k in node.keywords if k.arg)
        if any(k.arg is None for k in node.keywords):  # partial(f, **options): every keyword-only one is bound
            names |= {a.arg for a in inner.fn.node.args.kwonlyargs}
        return _Target(inner.fn, inner.bound_positional + len(node.args) - 1, inner.bound_names | names,
                       inner.via_attribute)

    def method_of(self, cls: ClassInfo, name: str, depth: int = 0) -> FunctionInfo | None:
        """``name`` looked up on ``cls`` and its project base classes."""
        if name in cls.methods:
            return cls.methods[name]
        if depth > 10:
            return None
        for base in cls.bases:
            found = self.project.lookup(base or "", cls.module)
            if isinstance(found, ClassInfo):
                method = self.method_of(found, name, depth + 1)
                if method:
                    return method
        return None

    def framework(self, cls: ClassInfo, depth: int = 0) -> str | None:
        """"linen", "nnx" or "haiku" when ``cls`` derives from that framework's Module."""
        if cls.resolved or depth > 10:
            return cls.framework
        cls.resolved = True
        for qualname in cls.bases:
            if qualname is None:
                continue
            kind = {LINEN_MODULE: "linen", NNX_MODULE: "nnx", HAIKU_MODULE: "haiku"}.get(qualname)
            if kind is None:
                found = self.project.lookup(qualname, cls.module)
                kind = self.framework(found, depth + 1) if isinstance(found, ClassInfo) else None
            if kind:
                cls.framework = kind
                break
        return cls.framework

    # --- seeding -----------------------------------------------------------------------
    def _seed_module(self, module: ModuleInfo) -> None:
        if module.may_seed:
            for fn in module.all_functions:
                if not isinstance(fn.node, ast.Lambda):
                    self._seed_decorators(fn)
                for call in fn.calls:
                    self._seed_call(call, fn, module, None)
            for call in module.module_calls:
                self._seed_call(call, None, module, None)
        for cls in _all_classes(module):
            self._seed_class(cls)

    def _seed_decorators(self, fn: FunctionInfo) -> None:
        assert not isinstance(fn.node, ast.Lambda)
        module = fn.module
        for deco in fn.node.decorator_list:
            if isinstance(deco, ast.Attribute) and deco.attr in CUSTOM_RULE_ATTRS:
                self._seed_rule_function(fn, deco, 0 if deco.attr != "defvjp" else 1, None)
                continue
            spec, options = self._decorator_spec(deco, fn.parent, module)
            if spec is None:
                continue
            params = self._params(_Target(fn), spec, options, fn.parent is None and fn.cls is None)
            self.reach(fn, spec.kind, params, {}, set(), {spec.flavor}, ())

    def _decorator_spec(self, deco: ast.expr, scope: FunctionInfo | None, module: ModuleInfo
                        ) -> tuple[Transform | None, list[ast.keyword]]:
        return decorator_spec(deco, scope, module)

    def _seed_call(self, call: ast.Call, scope: FunctionInfo | None, module: ModuleInfo,
                   outer: Context | None) -> bool:
        """Reaches the callables passed to a transform call; True if ``call`` is one."""
        if _custom_rule_call(call):
            self._seed_custom_rules(call, scope, module, outer)
            return True
        spec = _call_spec(call, scope, module)
        if spec is None:
            return False
        for arg in _slot_args(call, spec):
            target = self.resolve(arg, scope, module)
            if target is None:
                continue
            params = self._params(target, spec, call.keywords, host=outer is None)
            kind = max(spec.kind, outer.kind) if outer else spec.kind
            closure, inner = self._closure_for(target.fn, outer)
            flavors = {spec.flavor} | (outer.flavors if outer else set())
            chain = (*outer.chain, Hop(outer.fn, call.lineno)) if outer else ()
            self.reach(target.fn, kind, params, closure, inner, flavors, chain)
        return True

    def _seed_custom_rules(self, call: ast.Call, scope: FunctionInfo | None, module: ModuleInfo,
                           outer: Context | None) -> None:
        """``f.defvjp(fwd, bwd)`` / ``f.defjvp(jvp)``: the rule functions are traced like ``f``."""
        if not isinstance(call.func, ast.Attribute):
            return
        for position, arg in enumerate(call.args[:2]):
            target = self.resolve(arg, scope, module)
            if target is not None:
                self._seed_rule_function(target.fn, call.func, position, outer)

    def _seed_rule_function(self, fn: FunctionInfo, method: ast.Attribute, position: int,
                            outer: Context | None) -> None:
        """Nondiff arguments of the primal stay static: in fwd at their index, in bwd/jvp as the leading ones."""
        primal = self.resolve(method.value, fn.parent, fn.module)
        nondiff = self._nondiff_argnums(primal.fn) if primal else None
        if nondiff is None:
            return  # unknown primal: nothing is known about which arguments are traced
        names = fn.positional
        if method.attr == "defvjp" and position == 0:
            static = _pick(names, nondiff)
        else:
            static = set(names[: len(nondiff)])
        params = {n: Taint.TREE for n in names if n not in static}
        kind = max(Kind.GRAD, outer.kind) if outer else Kind.GRAD
        self.reach(fn, kind, params, {}, set(), {"jax"}, ())

    def _nondiff_argnums(self, fn: FunctionInfo) -> set[int] | None:
        if isinstance(fn.node, ast.Lambda):
            return None
        for deco in fn.node.decorator_list:
            spec, options = self._decorator_spec(deco, fn.parent, fn.module)
            if spec is not None and spec.statics == "nondiff":
                return _ints(next((k.value for k in options if k.arg == "nondiff_argnums"), None))
        return None

    def _seed_class(self, cls: ClassInfo) -> None:
        framework = self.framework(cls)
        if framework is None:
            return
        for name, method in cls.methods.items():
            if not self._is_root_method(framework, name, method):
                continue
            params = _module_params(method, skip_first=True)
            self.reach(method, Kind.STAGE, params, {}, set(), {framework}, ())

    def _is_root_method(self, framework: str, name: str, method: FunctionInfo) -> bool:
        if framework == "nnx":
            return name == "__call__"
        if framework == "haiku":
            return name == "__call__" or not name.startswith("_")
        if name in LINEN_ROOT_METHODS:
            return True
        decorators = getattr(method.node, "decorator_list", [])
        return any(self.qualify(None, method.module, d) == LINEN_COMPACT for d in decorators)

    # --- parameters ----------------------------------------------------------------------
    def _params(self, target: _Target, spec: Transform, options: list[ast.keyword], host: bool) -> dict[str, Taint]:
        fn = target.fn
        names = fn.positional
        if target.via_attribute and names:
            names = names[1:]
        if spec.statics == "module":
            return _module_params(fn, skip_first=fn.is_method)
        static: set[str] = set(target.bound_names) | set(names[: target.bound_positional])
        free = names[target.bound_positional:]
        traced_only: set[str] | None = None
        opts = {k.arg: k.value for k in options if k.arg}
        if spec.statics in ("jit", "pmap", "nondiff"):
            key = {"jit": "static_argnums", "pmap": "static_broadcasted_argnums", "nondiff": "nondiff_argnums"}
            static |= _pick(free, _ints(opts.get(key[spec.statics])))
            static |= _strs(opts.get("static_argnames"))
        elif spec.statics == "grad" and host:
            argnums = _ints(opts.get("argnums")) if "argnums" in opts else {0}
            traced_only = _pick(free, argnums)
        elif spec.statics == "vmap" and host:
            axes = opts.get("in_axes")
            if isinstance(axes, (ast.Tuple, ast.List)):
                static |= {n for n, a in zip(free, axes.elts) if isinstance(a, ast.Constant) and a.value is None}
        if fn.is_method and not target.via_attribute and names:
            static.add(names[0])
        result: dict[str, Taint] = {}
        for arg in fn.params:
            name = arg.arg
            if name in static or (traced_only is not None and name not in traced_only):
                continue
            if _has_static_default(fn, name):
                continue
            result[name] = annotation_taint(arg.annotation) or Taint.TREE
        return result

    # --- the worklist ----------------------------------------------------------------------
    def reach(self, fn: FunctionInfo, kind: Kind, params: dict[str, Taint], closure: dict[str, Taint],
              inner: set[str], flavors: set[str], chain: tuple[Hop, ...]) -> None:
        if chain and fn.module.name.partition(".")[0] in FRAMEWORKS:
            return
        params = _cap_by_annotation(fn, params)
        ctx = self.contexts.get(fn)
        if ctx is None:
            ctx = Context(fn, kind, dict(params), dict(closure), set(inner), set(flavors), chain)
            self.contexts[fn] = ctx
            self._enqueue(ctx)
        elif ctx.merge(kind, params, closure, inner, flavors):
            self._enqueue(ctx)

    def _enqueue(self, ctx: Context) -> None:
        ctx.env = None
        if ctx.fn not in self._queued:
            self._queued.add(ctx.fn)
            self._queue.append(ctx)

    def env(self, ctx: Context) -> Env:
        if ctx.env is None:
            fn = ctx.fn
            ctx.env = Env(fn, ctx.params, ctx.closure, lambda node: self.qualify(fn, fn.module, node),
                          lambda call: self._summary(fn, call), lambda call: self._item_summary(fn, call))
        return ctx.env

    def _summary(self, caller: FunctionInfo, call: ast.Call) -> Taint | None:
        """Return taint of a project function (from its own analysis); re-run ``caller`` when it grows."""
        target = self.resolve(call.func, caller, caller.module)
        if target is None or target.fn.is_generator:
            return None
        self._callers.setdefault(target.fn, set()).add(caller)
        # Capped at TREE: a helper may return a list or a tuple, whose truthiness is fine.
        return min(self.returns.get(target.fn, Taint.NONE), Taint.TREE)

    def _item_summary(self, caller: FunctionInfo, call: ast.Call) -> tuple[Taint, ...] | None:
        target = self.resolve(call.func, caller, caller.module)
        if target is None or target.fn.is_generator or target.fn.tuple_width is None:
            return None
        self._callers.setdefault(target.fn, set()).add(caller)
        width = target.fn.tuple_width
        return self.tuple_returns.get(target.fn, (Taint.NONE,) * width)

    def _process(self, ctx: Context) -> None:
        fn, module = ctx.fn, ctx.fn.module
        env = self.env(ctx)
        for call in fn.calls:
            if self._seed_call(call, fn, module, ctx):
                continue
            target = self.resolve(call.func, fn, module)
            if target is not None:
                self._reach_call(ctx, env, call, target)
            self._reach_callbacks(ctx, env, call)
        returned = max((env.of(value) for value in fn.returns), default=Taint.NONE)
        grew = returned > self.returns.get(fn, Taint.NONE)
        if grew:
            self.returns[fn] = returned
        tuples = _tuple_returns(fn)
        if tuples:
            items = tuple(max(env.of(t.elts[i]) for t in tuples) for i in range(len(tuples[0].elts)))
            old = self.tuple_returns.get(fn)
            if old is None or any(a > b for a, b in zip(items, old)):
                self.tuple_returns[fn] = tuple(max(a, b) for a, b in zip(items, old or items))
                grew = True
        if grew:
            for caller in self._callers.get(fn, ()):
                if caller in self.contexts:
                    self._enqueue(self.contexts[caller])

    def _reach_call(self, ctx: Context, env: Env, call: ast.Call, target: _Target) -> None:
        callee = target.fn
        names = callee.positional
        if callee.is_method and (target.via_attribute or isinstance(call.func, ast.Attribute)) and names:
            names = names[1:]
        params: dict[str, Taint] = {}
        for name, arg in zip(names, call.args):
            if isinstance(arg, ast.Starred):
                break
            params[name] = env.of(arg)
        for keyword in call.keywords:
            if keyword.arg is not None:
                params[keyword.arg] = env.of(keyword.value)
        closure, inner = self._closure_for(callee, ctx)
        self.reach(callee, ctx.kind, params, closure, inner, ctx.flavors, (*ctx.chain, Hop(ctx.fn, call.lineno)))

    def _reach_callbacks(self, ctx: Context, env: Env, call: ast.Call) -> None:
        """Local functions and lambdas passed to other calls run at trace time too (tree_map...)."""
        callee = self.qualify(ctx.fn, ctx.fn.module, call.func)
        if callee in CALLBACKS:
            return
        tree_map = callee in TREE_MAPS
        for arg in call.args:
            if not isinstance(arg, (ast.Lambda, ast.Name)):
                continue
            target = self.resolve(arg, ctx.fn, ctx.fn.module)
            if target is None or target.fn.parent is None:
                continue
            params = {name: Taint.TREE for name in target.fn.positional} if tree_map else {}
            closure, inner = self._closure_for(target.fn, ctx)
            self.reach(target.fn, ctx.kind, params, closure, inner, ctx.flavors,
                       (*ctx.chain, Hop(ctx.fn, call.lineno)))

    def _closure_for(self, callee: FunctionInfo, outer: Context | None) -> tuple[dict[str, Taint], set[str]]:
        """Names a nested function sees from the traced function that encloses it."""
        if outer is None or callee.parent is None:
            return {}, set()
        scope: FunctionInfo | None = callee.parent
        while scope is not None and scope is not outer.fn:
            scope = scope.parent
        if scope is None:
            return dict(outer.closure), set(outer.inner)
        env = self.env(outer)
        closure = dict(outer.closure)
        closure.update(env.names)
        return closure, outer.inner | outer.fn.locals


def qualify(fn: FunctionInfo | None, module: ModuleInfo, node: ast.expr) -> str | None:
    """Qualified name of ``node`` unless its root name is a local of ``fn`` (needs no other module)."""
    root = node
    while isinstance(root, ast.Attribute):
        root = root.value
    if isinstance(root, ast.Name) and fn is not None:
        scope: FunctionInfo | None = fn
        while scope is not None:
            if root.id in scope.locals:
                return None
            scope = scope.parent
    return module.imports.qualname(node)


def decorator_spec(deco: ast.expr, scope: FunctionInfo | None, module: ModuleInfo
                   ) -> tuple[Transform | None, list[ast.keyword]]:
    """The transformation a decorator applies (``@jax.jit``, ``@partial(jax.jit, ...)``) and its options."""
    if isinstance(deco, ast.Call):
        name = qualify(scope, module, deco.func)
        if name in PARTIALS and deco.args:
            return TRANSFORMS.get(qualify(scope, module, deco.args[0]) or ""), deco.keywords
        return TRANSFORMS.get(name or ""), deco.keywords
    return TRANSFORMS.get(qualify(scope, module, deco) or ""), []


def _custom_rule_call(call: ast.Call) -> bool:
    """``f.defvjp(...)`` and friends."""
    return isinstance(call.func, ast.Attribute) and call.func.attr in CUSTOM_RULE_ATTRS


def _call_spec(call: ast.Call, scope: FunctionInfo | None, module: ModuleInfo) -> Transform | None:
    """The transformation ``call`` applies to the callables passed to it (``jax.jit(f)``), if any."""
    func = call.func
    last = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if last not in LAST_NAMES:
        return None  # a cheap filter before resolving imports
    return TRANSFORMS.get(qualify(scope, module, func) or "")


def has_seed_sites(module: ModuleInfo) -> bool:
    """False when seeding ``module``'s functions and module-level calls cannot reach anything.

    Mirrors :meth:`Analysis._seed_module` up to the point where it needs other modules: a
    transformation decorator, a call to a transformation, or ``f.defvjp(...)``. Reads only this
    module, so ``-j`` workers compute it where the tree is, and the main process skips the rest.
    """
    for fn in module.all_functions:
        if not isinstance(fn.node, ast.Lambda):
            for deco in fn.node.decorator_list:
                if (isinstance(deco, ast.Attribute) and deco.attr in CUSTOM_RULE_ATTRS) or decorator_spec(
                        deco, fn.parent, module)[0] is not None:
                    return True
        if any(_custom_rule_call(call) or _call_spec(call, fn, module) for call in fn.calls):
            return True
    return any(_custom_rule_call(call) or _call_spec(call, None, module) for call in module.module_calls)


def _tuple_returns(fn: FunctionInfo) -> list[ast.Tuple] | None:
    """The returned tuples, when every return is a tuple display of the same length."""
    values = fn.returns
    if not values or not all(isinstance(v, ast.Tuple) for v in values):
        return None
    tuples: list[ast.Tuple] = values  # type: ignore[assignment]
    width = len(tuples[0].elts)
    if any(len(t.elts) != width or any(isinstance(e, ast.Starred) for e in t.elts) for t in tuples):
        return None
    return tuples


def _cap_by_annotation(fn: FunctionInfo, params: dict[str, Taint]) -> dict[str, Taint]:
    """A parameter annotated ``float``/``int``/``bool``/``str`` is meant to be static: trust that."""
    if not params:
        return params
    capped = dict(params)
    for arg in fn.params:
        if arg.arg in capped and arg.annotation is not None and _python_scalars(arg.annotation):
            del capped[arg.arg]
    return capped


_SCALAR_WORDS = frozenset({"bool", "int", "str", "float", "None", "Optional", "Union", "tuple", "Tuple", "list",
                           "List", "Sequence", "typing", "tp", "t"})


def _python_scalars(annotation: ast.expr) -> bool:
    """``int``, ``Optional[bool]``, ``Sequence[int]``, ``Union[int, tuple[int, ...]]``: static by intent."""
    words = re.findall(r"[A-Za-z_][A-Za-z_0-9]*", ast.unparse(annotation))
    return bool(words) and all(word in _SCALAR_WORDS for word in words) and any(
        word in ("bool", "int", "str", "float") for word in words)


def _enclosing_class(fn: FunctionInfo | None) -> ClassInfo | None:
    while fn is not None:
        if fn.cls is not None:
            return fn.cls
        fn = fn.parent
    return None


def _all_classes(module: ModuleInfo) -> list[ClassInfo]:
    seen = {id(c) for c in module.classes.values()}
    found = list(module.classes.values())
    for fn in module.all_functions:
        if fn.cls is not None and id(fn.cls) not in seen:
            seen.add(id(fn.cls))
            found.append(fn.cls)
    return found


def _slot_args(call: ast.Call, spec: Transform) -> list[ast.expr]:
    found: list[ast.expr] = []
    for position, keyword in spec.slots:
        arg = call.args[position] if len(call.args) > position else None
        if arg is None:
            arg = next((k.value for k in call.keywords if k.arg == keyword), None)
        if arg is None or isinstance(arg, ast.Starred):
            continue
        if spec.many and isinstance(arg, (ast.List, ast.Tuple)):
            found.extend(arg.elts)
        else:
            found.append(arg)
    return found


def _module_params(fn: FunctionInfo, skip_first: bool) -> dict[str, Taint]:
    """Guess for Flax/Haiku module methods: annotations first, defaults mean static, else maybe traced."""
    params = fn.params
    if skip_first and params:
        params = params[1:]
    result: dict[str, Taint] = {}
    for arg in params:
        taint = annotation_taint(arg.annotation)
        if taint is None:
            taint = Taint.NONE if _has_static_default(fn, arg.arg) else Taint.TREE
        if taint:
            result[arg.arg] = taint
    return result


def _defaults(fn: FunctionInfo) -> dict[str, ast.expr]:
    args = fn.node.args
    positional = [*args.posonlyargs, *args.args]
    table = {a.arg: d for a, d in zip(positional[len(positional) - len(args.defaults):], args.defaults)}
    table.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
    return table


def _has_static_default(fn: FunctionInfo, name: str) -> bool:
    """``flag=False``, ``axis=-1``, ``mode="x"``: a constant default is baked in unless passed (precision first).

    ``None`` is the exception: ``mask=None`` is how optional *arrays* are spelled.
    """
    default = _defaults(fn).get(name)
    if isinstance(default, ast.UnaryOp) and isinstance(default.op, ast.USub):
        default = default.operand
    if isinstance(default, ast.Constant) and default.value is None:
        return False
    return isinstance(default, (ast.Constant, ast.Tuple))


def _ints(node: ast.expr | None) -> set[int]:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, int)}
    return set()


def _strs(node: ast.expr | None) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List)):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()


def _pick(names: list[str], indexes: set[int]) -> set[str]:
    picked = set()
    for index in indexes:
        if -len(names) <= index < len(names):
            picked.add(names[index])
    return picked
