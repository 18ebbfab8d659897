"""JX405: ``module.apply(...)`` without ``mutable=`` on a Linen module that writes a variable."""

from __future__ import annotations

import ast

from flaxify.lint.analysis import Analysis
from flaxify.lint.project import ClassInfo, FunctionInfo, ModuleInfo
from flaxify.lint.rule import ModuleContext, Rule

# Statements whose body may run zero times: a write inside proves nothing about this apply call.
_MAYBE = (ast.For, ast.AsyncFor, ast.While, ast.Match)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
BATCH_NORM = "flax.linen.BatchNorm"


class LinenApplyWithoutMutable(Rule):
    """
    ## What it does
    Flags ``model.apply(variables, ...)`` when ``model`` is statically an instance of a project
    Linen module whose applied method (``__call__``, or ``method=``), ``setup``, or a ``self.``
    method or submodule they call unconditionally writes a variable (``self.variable(col,
    ...).value = ...`` or ``+=``, ``self.put_variable(col, ...)``, ``nn.BatchNorm`` with
    ``use_running_average=False``), and ``mutable=`` does not cover that collection.
    Writes guarded by ``if self.is_initializing():`` or ``if self.is_mutable_collection(col):``
    do not count, nor do writes under other conditions or in loops (they may not run).
    ``if not self.is_initializing():`` does not help: ``apply`` is not initializing.

    ## Why is this bad?
    Outside ``init``, every collection is immutable unless ``mutable=`` names it:
    ``ModifyScopeVariableError: Cannot update variable "n" in "/" because collection "counter"
    is immutable.`` (flax 0.12.8, also under ``jax.jit``).

    ## Example
    ```python
    class Counter(nn.Module):
        @nn.compact
        def __call__(self, x):
            n = self.variable("counter", "n", lambda: jnp.zeros((), jnp.int32))
            n.value += 1
            return x

    model = Counter()
    y = model.apply(variables, x)
    ```

    ## Use instead
    ```python
    y, updates = model.apply(variables, x, mutable=["counter"])
    ```
    (or ``self.sow("intermediates", ...)``, which is a no-op on an immutable collection).

    ## Fix safety
    No fix: ``mutable=`` changes the return value to ``(output, updates)``.
    """

    CODE = "JX405"
    NAME = "linen-apply-without-mutable"
    SCOPE = "module"
    MESSAGE = ("`{cls}.{method}` writes collection {cols} ({where}) but this `apply` does not pass it in `mutable=`: "
               "raises ModifyScopeVariableError; pass `mutable=[{fix}]` and unpack `(y, updates)`")
    VALID = [
        "import jax.numpy as jnp\nimport flax.linen as nn\nclass Counter(nn.Module):\n    @nn.compact\n"
        "    def __call__(self, x):\n        n = self.variable('counter', 'n', lambda: jnp.zeros(()))\n"
        "        n.value += 1\n        return x\nmodel = Counter()\n"
        "def run(v, x):\n    return model.apply(v, x, mutable=['counter'])",
        "import jax.numpy as jnp\nimport flax.linen as nn\nclass Counter(nn.Module):\n    @nn.compact\n"
        "    def __call__(self, x):\n        n = self.variable('counter', 'n', lambda: jnp.zeros(()))\n"
        "        if self.is_mutable_collection('counter'):\n            n.value += 1\n        return x\n"
        "def run(v, x):\n    return Counter().apply(v, x)",
        "import flax.linen as nn\nclass Probe(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        self.sow('intermediates', 'h', x)\n        return x\ndef run(v, x):\n    return Probe().apply(v, x)",
        "import jax.numpy as jnp\nimport flax.linen as nn\nclass Counter(nn.Module):\n    def setup(self):\n"
        "        self.n = self.variable('counter', 'n', lambda: jnp.zeros(()))\n    def __call__(self, x):\n"
        "        return x\n    def bump(self):\n        self.n.value += 1\n"
        "def run(v, x, mutable):\n    model = Counter()\n    model.apply(v, x, mutable=mutable)\n"
        "    return model.apply(v, x)",
        "import flax.linen as nn\nclass Net(nn.Module):\n    train: bool = False\n    @nn.compact\n"
        "    def __call__(self, x):\n        return nn.BatchNorm(use_running_average=not self.train)(x)\n"
        "def run(v, x):\n    return Net().apply(v, x)",
    ]
    INVALID = [
        "import flax.linen as nn\nclass Net(nn.Module):\n    def setup(self):\n"
        "        self.bn = nn.BatchNorm(use_running_average=False)\n    def __call__(self, x):\n"
        "        return self.bn(x)\nclass Outer(nn.Module):\n    @nn.compact\n    def __call__(self, x):\n"
        "        return Net()(x)\ndef run(v, x):\n    return Outer().apply(v, x)",
        "import jax.numpy as jnp\nimport flax.linen as nn\nclass Counter(nn.Module):\n    @nn.compact\n"
        "    def __call__(self, x):\n        n = self.variable('counter', 'n', lambda: jnp.zeros(()))\n"
        "        if not self.is_initializing():\n            n.value += 1\n        return x\nmodel = Counter()\n"
        "def run(v, x):\n    return model.apply(v, x)",
        "import jax.numpy as jnp\nimport flax.linen as nn\nclass Counter(nn.Module):\n    def setup(self):\n"
        "        self.n = self.variable('counter', 'n', lambda: jnp.zeros(()))\n    def __call__(self, x):\n"
        "        self._bump()\n        return x\n    def _bump(self):\n        self.n.value = self.n.value + 1\n"
        "def run(v, x):\n    return Counter().apply(v, x, mutable=['batch_stats'])",
        "import jax.numpy as jnp\nimport flax.linen as nn\nclass Cache(nn.Module):\n    @nn.compact\n"
        "    def __call__(self, x):\n        return x\n    def store(self, x):\n"
        "        self.put_variable('cache', 'x', x)\n        return x\n"
        "def run(v, x):\n    model = Cache()\n    return model.apply(v, x, method=Cache.store)",
    ]

    def check_module(self, ctx: ModuleContext) -> None:
        if ".apply(" not in ctx.module.source:
            return
        module = ctx.module
        scopes: list[tuple[FunctionInfo | None, list[ast.Call]]] = [(None, module.module_calls)]
        scopes.extend((fn, fn.calls) for fn in module.all_functions)
        for scope, calls in scopes:
            for call in calls:
                if isinstance(call.func, ast.Attribute) and call.func.attr == "apply":
                    self._check_apply(call, call.func.value, scope, ctx)

    def _check_apply(self, call: ast.Call, receiver: ast.expr, scope: FunctionInfo | None,
                     ctx: ModuleContext) -> None:
        allowed = _mutable_collections(call)
        if allowed is None:
            return
        cls = _instance_class(receiver, scope, ctx)
        if cls is None or ctx.analysis.framework(cls) != "linen" or ctx.analysis.method_of(cls, "apply"):
            return
        method_name = _applied_method(call, receiver, cls)
        if method_name is None:
            return
        analysis = ctx.analysis
        writes: dict[str, str] = {}
        roots = [analysis.method_of(cls, "setup"), analysis.method_of(cls, method_name)]
        if roots[1] is None:
            return
        seen: set[FunctionInfo] = set()
        for root in roots:
            if root is not None:
                _collect_writes(root, cls, analysis, writes, seen)
        missing = {col: where for col, where in writes.items() if col not in allowed}
        if not missing:
            return
        cols = ", ".join(f'"{col}"' for col in sorted(missing))
        where = "; ".join(f"{missing[col]}" for col in sorted(missing))
        fix = ", ".join(f"'{col}'" for col in sorted(set(writes) | allowed))
        ctx.report(call, self.MESSAGE.format(cls=cls.name, method=method_name, cols=cols, where=where, fix=fix))


def _mutable_collections(call: ast.Call) -> set[str] | None:
    """Collections ``mutable=`` makes writable; None when it is unknown or everything (stay silent)."""
    for keyword in call.keywords:
        if keyword.arg is None:  # **options may carry mutable=
            return None
        if keyword.arg != "mutable":
            continue
        value = keyword.value
        if isinstance(value, ast.Constant) and value.value is False:
            return set()
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return {value.value}
        if isinstance(value, (ast.List, ast.Tuple, ast.Set)) and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts):
            return {e.value for e in value.elts}  # type: ignore[attr-defined]
        return None  # True, a DenyList, a variable: cannot be judged
    return set()


def _applied_method(call: ast.Call, receiver: ast.expr, cls: ClassInfo) -> str | None:
    """``__call__``, or the method ``method=`` names as a string or ``Cls.m`` / ``model.m``."""
    for keyword in call.keywords:
        if keyword.arg != "method":
            continue
        value = keyword.value
        if isinstance(value, ast.Constant) and value.value is None:
            return "__call__"
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
        if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and (
                value.value.id == cls.name or (isinstance(receiver, ast.Name) and value.value.id == receiver.id)):
            return value.attr
        return None
    return "__call__"


def _instance_class(receiver: ast.expr, scope: FunctionInfo | None, ctx: ModuleContext) -> ClassInfo | None:
    """The project class ``receiver`` is an instance of: ``Cls(...)`` or a name bound once to it."""
    if isinstance(receiver, ast.Call):
        return _constructed(receiver, scope, ctx)
    if not isinstance(receiver, ast.Name):
        return None
    name = receiver.id
    fn = scope
    while fn is not None:
        if name in fn.declared_global or name in fn.declared_nonlocal:
            return None
        if name in fn.locals:
            if any(p.arg == name for p in fn.params):
                return None
            value = _single_binding(fn, name)
            return _constructed(value, fn, ctx) if isinstance(value, ast.Call) else None
        fn = fn.parent
    return _module_binding(ctx.module, name, ctx)


def _single_binding(fn: FunctionInfo, name: str) -> ast.expr | None:
    """The value of ``name = value`` when that is the only binding of ``name`` in ``fn``."""
    values: list[ast.expr] = []
    for target, value, how in fn.facts:
        if not any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(target)):
            continue
        if how != "assign" or not isinstance(target, ast.Name):
            return None  # bound by a loop, `with`, unpacking or `+=`: not one known value
        values.append(value)
    return values[0] if len(values) == 1 else None


def _module_binding(module: ModuleInfo, name: str, ctx: ModuleContext) -> ClassInfo | None:
    if module.module_assigned.get(name) != 1:
        return None
    for stmt in module.tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == name and isinstance(value, ast.Call):
            return _constructed(value, None, ctx)
    return None


def _constructed(call: ast.Call, scope: FunctionInfo | None, ctx: ModuleContext) -> ClassInfo | None:
    """The project class ``Cls(...)`` constructs (same module or imported across the project)."""
    qualname = ctx.qualname(call.func, scope)
    found = ctx.analysis.project.lookup(qualname, ctx.module) if qualname else None
    return found if isinstance(found, ClassInfo) else None


def _collect_writes(method: FunctionInfo, cls: ClassInfo, analysis: Analysis, writes: dict[str, str],
                    seen: set[FunctionInfo]) -> None:
    """Collections ``method`` certainly writes during ``apply``.

    Follows unconditional ``self.m()`` calls, and submodules it calls (``Sub()(x)``, ``self.sub(x)``
    with ``self.sub = Sub()`` in ``setup``): a project Linen class, or ``nn.BatchNorm`` with
    ``use_running_average=False`` written out (it updates ``batch_stats``).
    """
    if method in seen or isinstance(method.node, ast.Lambda):
        return
    seen.add(method)
    variables = _variable_names(method, cls, analysis)
    submodules = _submodule_names(method, cls, analysis)
    for stmt in _certain_statements(method.node.body):
        for node in _certain_nodes(stmt):
            col = _written_collection(node, variables)
            if col is not None:
                writes.setdefault(col, f"`{cls.name}.{method.name}`, {method.module.display}:{node.lineno}")
            elif not isinstance(node, ast.Call):
                continue
            elif (isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                  and node.func.value.id == "self" and (callee := analysis.method_of(cls, node.func.attr))):
                _collect_writes(callee, cls, analysis, writes, seen)
            else:
                ctor = node.func if isinstance(node.func, ast.Call) else submodules.get(_target_key(node.func, "") or "")
                if ctor is not None:
                    _submodule_writes(ctor, node, method, analysis, writes, seen)


def _submodule_names(method: FunctionInfo, cls: ClassInfo, analysis: Analysis) -> dict[str, ast.Call]:
    """``sub`` / ``self.sub`` -> the constructor call bound to it (one binding, a call)."""
    names: dict[str, ast.Call] = {}
    for fn, prefix in ((analysis.method_of(cls, "setup"), "self."), (method, "")):
        if fn is None:
            continue
        bound: dict[str, list[tuple[ast.expr, str]]] = {}
        for target, value, how in fn.facts:
            for name in (n.id for n in ast.walk(target) if isinstance(n, ast.Name) and not prefix):
                if not (isinstance(target, ast.Name) and target.id == name):
                    bound.setdefault(name, []).append((value, "unpacked"))
            key = _target_key(target, prefix)
            if key is not None:
                bound.setdefault(key, []).append((value, how))
        for key, values in bound.items():
            if len(values) == 1 and values[0][1] == "assign" and isinstance(values[0][0], ast.Call):
                names[key] = values[0][0]
    return names


def _submodule_writes(ctor: ast.Call, call: ast.Call, method: FunctionInfo, analysis: Analysis,
                      writes: dict[str, str], seen: set[FunctionInfo]) -> None:
    """What calling the submodule ``ctor`` builds writes (``call`` is the call of the instance)."""
    qualname = analysis.qualify(method, method.module, ctor.func)
    if qualname is None:
        return
    if qualname == BATCH_NORM:
        if _keyword_false(ctor, "use_running_average") or _keyword_false(call, "use_running_average"):
            writes.setdefault("batch_stats", f"`nn.BatchNorm(use_running_average=False)`, "
                                             f"{method.module.display}:{call.lineno}")
        return
    found = analysis.project.lookup(qualname, method.module)
    if not isinstance(found, ClassInfo) or analysis.framework(found) != "linen":
        return
    for name in ("setup", "__call__"):
        sub_method = analysis.method_of(found, name)
        if sub_method is not None:
            _collect_writes(sub_method, found, analysis, writes, seen)


def _keyword_false(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is False for k in call.keywords)


def _certain_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run whenever ``body`` runs under ``apply``, up to the first possible exit."""
    out: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, (ast.Return, ast.Raise)):
            out.append(stmt)
            return out
        if isinstance(stmt, _SCOPES):
            continue
        if isinstance(stmt, ast.If) and (branch := _apply_branch(stmt)) is not None:
            # `if self.is_initializing(): return ...` exits only during init; apply goes on.
            out.extend(_certain_statements(branch))
            if any(_may_exit(s) for s in branch):
                return out
            continue
        # Any other `if` may be false for this call, and loops may not run: their writes are not
        # certain. Their exits still end what is certain.
        if isinstance(stmt, (ast.With, ast.AsyncWith, ast.Try)):
            out.extend(_certain_statements(stmt.body))
        elif not isinstance(stmt, (ast.If, *_MAYBE)):
            out.append(stmt)
            continue
        if _may_exit(stmt):
            return out
    return out


def _apply_branch(stmt: ast.If) -> list[ast.stmt] | None:
    """The branch of ``if [not] self.is_initializing():`` that runs under ``apply``; None for others."""
    test, negated = stmt.test, False
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, negated = test.operand, True
    if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and not test.args
            and test.func.attr == "is_initializing" and isinstance(test.func.value, ast.Name)
            and test.func.value.id == "self"):
        return None
    return stmt.body if negated else stmt.orelse


def _may_exit(stmt: ast.stmt) -> bool:
    return any(isinstance(n, (ast.Return, ast.Raise, ast.Break, ast.Continue)) for n in _walk_scope(stmt))


def _walk_scope(node: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    stack = [node]
    while stack:
        item = stack.pop()
        out.append(item)
        stack.extend(c for c in ast.iter_child_nodes(item) if not isinstance(c, _SCOPES))
    return out


def _certain_nodes(stmt: ast.stmt) -> list[ast.AST]:
    """Nodes of a simple statement that always evaluate (not the lazy side of ``and``/``or``/``x if c else y``)."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.IfExp):
            stack.append(node.test)
        elif isinstance(node, ast.BoolOp):
            stack.append(node.values[0])
        elif not isinstance(node, (*_SCOPES, ast.comprehension, ast.ListComp, ast.SetComp, ast.DictComp,
                                   ast.GeneratorExp)):
            stack.extend(ast.iter_child_nodes(node))
    return out


def _variable_names(method: FunctionInfo, cls: ClassInfo, analysis: Analysis) -> dict[str, str]:
    """``n`` / ``self.n`` -> collection, for variables made by ``self.variable(col, ...)``."""
    names: dict[str, str] = {}
    for fn, prefix in ((analysis.method_of(cls, "setup"), "self."), (method, "")):
        if fn is None:
            continue
        conflicting: set[str] = set()
        for target, value, how in fn.facts:
            key = _target_key(target, prefix)
            if key is None:
                if isinstance(target, (ast.Tuple, ast.List)) and not prefix:  # `n, m = ...` rebinds both
                    conflicting.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
                continue
            col = _variable_collection(value) if how == "assign" else None
            if col is None or names.get(key, col) != col:
                conflicting.add(key)
            else:
                names[key] = col
        for key in conflicting:
            names.pop(key, None)
    return names


def _target_key(target: ast.expr, prefix: str) -> str | None:
    if prefix == "" and isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return f"self.{target.attr}"
    return None


def _variable_collection(value: ast.expr) -> str | None:
    """``col`` of ``self.variable(col, name, ...)`` when it is a string literal."""
    return _self_call_collection(value, "variable")


def _self_call_collection(value: ast.expr, method: str) -> str | None:
    """``col`` of ``self.<method>(col, ...)`` when it is a string literal."""
    if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == method
            and isinstance(value.func.value, ast.Name) and value.func.value.id == "self"):
        return None
    col = value.args[0] if value.args else next((k.value for k in value.keywords if k.arg == "col"), None)
    return col.value if isinstance(col, ast.Constant) and isinstance(col.value, str) else None


def _written_collection(node: ast.AST, variables: dict[str, str]) -> str | None:
    """The collection ``node`` writes: ``v.value = ...``, ``v.value += ...`` or ``self.put_variable(col, ...)``."""
    if isinstance(node, ast.Call):
        return _self_call_collection(node, "put_variable")
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
        node, (ast.AugAssign, ast.AnnAssign)) else []
    for target in targets:
        if not (isinstance(target, ast.Attribute) and target.attr == "value"):
            continue
        holder = target.value
        if isinstance(holder, ast.Call):
            return _variable_collection(holder)
        key = _target_key(holder, "")
        if key is not None and key in variables:
            return variables[key]
    return None
