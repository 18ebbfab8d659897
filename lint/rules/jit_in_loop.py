"""JX303: ``jax.jit`` created inside a loop."""

from __future__ import annotations

import ast

from flaxify.lint.rule import ModuleContext, Rule

JITS = frozenset({"jax.jit", "jax.pmap", "flax.nnx.jit", "equinox.filter_jit"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


class JitInLoop(Rule):
    """
    ## What it does
    Flags ``jax.jit(...)`` (and ``pmap``, ``nnx.jit``) of a fresh callable (a ``lambda``, a
    ``functools.partial``, a ``def`` in the loop body) inside a ``for`` or ``while`` loop,
    such as ``jax.jit(lambda x: step(x))(x)`` in a training loop. ``jax.jit(f)`` of the same
    ``f`` hits JAX's cache and is not flagged.

    ## Why is this bad?
    Each call creates a new jitted function with an empty cache, so every iteration traces
    and compiles again (a 3-iteration loop traces 3 times; ~400x slowdowns reported).

    ## Example
    ```python
    for batch in batches:
        params = jax.jit(lambda p: update(p, batch))(params)
    ```

    ## Use instead
    ```python
    update_jit = jax.jit(update)
    for batch in batches:
        params = update_jit(params, batch)  # batch is an argument, not a closure
    ```

    ## Fix safety
    No fix: hoisting needs a new name and a place outside the loop.
    """

    CODE = "JX303"
    NAME = "jit-in-loop"
    SCOPE = "module"
    MESSAGE = "`{name}` inside a loop builds a new jitted function each iteration and recompiles it; jit once, outside the loop"
    VALID = [
        "import jax\nstep = jax.jit(lambda x: x + 1)\nfor i in range(3):\n    y = step(i)",
        "import jax\nclass T:\n    def __init__(self, f):\n        self.f = jax.jit(f)",
        "import jax\nfor fn in (lambda x: x, lambda x: x * 2):\n    y = jax.jit(fn)(1.0)",
    ]
    INVALID = [
        "import jax\nfor i in range(3):\n    y = jax.jit(lambda x: x + 1)(i)",
        "import jax\nfrom functools import partial\ndef train(update, params, batches, lr):\n"
        "    for batch in batches:\n        params = jax.jit(partial(update, lr=lr))(params, batch)\n    return params",
    ]

    def check_module(self, ctx: ModuleContext) -> None:
        if "jit" not in ctx.module.source and "pmap" not in ctx.module.source:
            return
        for loop in ctx.module.loops:
            self._loop(loop, ctx)

    def _loop(self, loop: ast.For | ast.AsyncFor | ast.While, ctx: ModuleContext) -> None:
        defined: set[str] | None = None  # functions defined in the loop, collected at the first jit call
        stack: list[ast.AST] = list(loop.body)
        lowered: set[int] = set()
        while stack:
            node = stack.pop()
            if isinstance(node, _SCOPES) or isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
                continue  # inner loops are visited on their own
            if isinstance(node, ast.Attribute) and node.attr in ("lower", "trace") and isinstance(node.value, ast.Call):
                lowered.add(id(node.value))  # jax.jit(f).lower(...): deliberate ahead-of-time tracing
            if isinstance(node, ast.Call) and id(node) not in lowered:
                name = ctx.module.imports.qualname(node.func)
                if name in JITS:
                    if defined is None:
                        defined = {n.name for stmt in loop.body for n in ast.walk(stmt)
                                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
                    if self._new_function(node, defined, ctx):
                        ctx.report(node, self.MESSAGE.format(name=name))
            stack.extend(reversed(list(ast.iter_child_nodes(node))))

    @staticmethod
    def _new_function(call: ast.Call, defined: set[str], ctx: ModuleContext) -> bool:
        """The jitted callable is a new object each iteration (lambda, partial, def in the loop).

        ``jax.jit(f)`` on the same ``f`` hits JAX's tracing cache, so only fresh callables recompile.
        """
        if not call.args:
            return False
        fn = call.args[0]
        if isinstance(fn, ast.Lambda):
            return True
        if isinstance(fn, ast.Call):
            return ctx.module.imports.qualname(fn.func) == "functools.partial"
        return isinstance(fn, ast.Name) and fn.id in defined
