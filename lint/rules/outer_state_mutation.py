"""JX104: mutating a container or object that lives outside the traced function."""

from __future__ import annotations

import ast

from flaxify.lint.rule import Rule, TracedContext
from flaxify.lint.rules._common import root_name, traced_args

MUTATORS = frozenset(
    {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear", "remove", "add",
     "discard", "sort", "reverse", "appendleft", "extendleft", "put", "write", "__setitem__"}
)
# Mutators that store their arguments (the ones that can leak a tracer), with their positional arity:
# `opt.update(grads, state)` has two arguments, so it is an optimizer, not `dict.update`.
STORING: dict[str, int] = {"append": 1, "extend": 1, "insert": 2, "update": 1, "setdefault": 2, "add": 1,
                           "appendleft": 1, "extendleft": 1, "put": 1, "__setitem__": 2}


class OuterStateMutation(Rule):
    """
    ## What it does
    Flags ``outs.append(y)``, ``cache[k] = y`` and ``obj.attr = y`` storing a traced value
    ``y`` into ``outs``/``cache``/``obj``, a global or a variable closed over from outside the
    traced function. Containers created inside the function, and trace-time caches of static
    values, are fine.

    ## Why is this bad?
    The mutation runs once, at trace time, and stores tracers: later use raises
    ``UnexpectedTracerError``, and later calls never update the container.

    ## Example
    ```python
    outs = []
    @jax.jit
    def f(x):
        y = x + 1
        outs.append(y)
        return y
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        return x + 1
    outs.append(f(x))  # on the host
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX104"
    NAME = "outer-state-mutation"
    MESSAGE = ("mutating `{name}`, which lives outside the traced function, happens once at trace time and "
               "leaks tracers; return the value instead")
    VALID = [
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    ys = []\n    for i in range(3):\n"
        "        ys.append(x * i)\n    d = {'a': 0.0}\n    d['a'] += x\n    return jnp.stack(ys).sum() + d['a']",
        "import jax\nouts = []\ndef host(x):\n    outs.append(x)",
        "import jax\n@jax.jit\ndef f(state, x):\n    state['seen'] = x\n    return state",
        "import jax\n_CACHE = {}\n@jax.jit\ndef f(x):\n    _CACHE[x.dtype] = type(x)\n    return x",
    ]
    INVALID = [
        "import jax\nouts = []\n@jax.jit\ndef f(x):\n    y = x + 1\n    outs.append(y)\n    return y",
        "import jax\ncache = {}\n@jax.jit\ndef f(x):\n    cache['x'] = x\n    return x",
        "import jax\ndef make():\n    seen = []\n    @jax.jit\n    def f(x):\n        seen.append(x)\n"
        "        return x\n    return f",
    ]

    # Only stores of traced values are flagged: trace-time caches of static facts (types, shapes,
    # treedefs) in module-level dicts are a common and harmless idiom.
    def visit_Expr(self, node: ast.Expr, ctx: TracedContext) -> None:
        # Only a statement call: `updates, state = opt.update(...)` is an optimizer, not dict.update.
        call = node.value
        if not isinstance(call, ast.Call):
            return
        func = call.func
        if not isinstance(func, ast.Attribute) or len(call.args) > STORING.get(func.attr, -1):
            return
        if traced_args(call, ctx):
            self._check(func.value, ctx, call)

    def visit_Assign(self, node: ast.Assign, ctx: TracedContext) -> None:
        if not ctx.taint(node.value):
            return
        for target in node.targets:
            if isinstance(target, (ast.Subscript, ast.Attribute)):
                self._check(target.value, ctx, target)

    def visit_AugAssign(self, node: ast.AugAssign, ctx: TracedContext) -> None:
        if isinstance(node.target, (ast.Subscript, ast.Attribute)) and ctx.taint(node.value):
            self._check(node.target.value, ctx, node.target)

    def _check(self, owner: ast.expr, ctx: TracedContext, where: ast.AST) -> None:
        root = root_name(owner)
        if root is None or root.id in ("self", "cls"):
            return
        if not ctx.is_outer(root.id):
            return
        if ctx.qualname(root) is not None:  # an imported module or object: sys.path.append...
            return
        ctx.report(where, self.MESSAGE.format(name=root.id))
