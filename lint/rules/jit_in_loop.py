"""JX303: ``jax.jit`` created inside a loop."""

from __future__ import annotations

import ast

from flaxify.lint.rule import ModuleContext, Rule

JITS = frozenset({"jax.jit", "jax.pmap", "flax.nnx.jit", "equinox.filter_jit"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


class JitInLoop(Rule):
    """
    ## What it does
    Flags ``jax.jit(...)`` (and ``pmap``, ``nnx.jit``) called inside a ``for`` or ``while``
    loop, such as ``jax.jit(lambda x: step(x))(x)`` in a training loop.

    ## Why is this bad?
    Each call creates a new jitted function with an empty cache, so every iteration traces
    and compiles again (a 3-iteration loop traces 3 times; ~400x slowdowns reported).

    ## Example
    ```python
    for batch in batches:
        params = jax.jit(update)(params, batch)
    ```

    ## Use instead
    ```python
    update_jit = jax.jit(update)
    for batch in batches:
        params = update_jit(params, batch)
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
    ]
    INVALID = [
        "import jax\nfor i in range(3):\n    y = jax.jit(lambda x: x + 1)(i)",
        "import jax\ndef train(update, params, batches):\n    for batch in batches:\n"
        "        params = jax.jit(update)(params, batch)\n    return params",
    ]

    def check_module(self, ctx: ModuleContext) -> None:
        if "jit" not in ctx.module.source and "pmap" not in ctx.module.source:
            return
        for node in ast.walk(ctx.tree):
            if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
                self._loop(node, ctx)

    def _loop(self, loop: ast.For | ast.AsyncFor | ast.While, ctx: ModuleContext) -> None:
        stack: list[ast.AST] = list(loop.body)
        while stack:
            node = stack.pop()
            if isinstance(node, _SCOPES) or isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
                continue  # inner loops are visited on their own
            if isinstance(node, ast.Call):
                name = ctx.module.imports.qualname(node.func)
                if name in JITS:
                    ctx.report(node, self.MESSAGE.format(name=name))
            stack.extend(ast.iter_child_nodes(node))
