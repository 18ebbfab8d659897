"""JX105: mutating ``self`` in a traced method of a plain Python class."""

from __future__ import annotations

import ast

from flaxify.lint.rule import Rule, TracedContext
from flaxify.lint.rules.outer_state_mutation import STORING


class SelfMutationInTracedMethod(Rule):
    """
    ## What it does
    Flags ``self.attr = ...``, ``self.attr += ...`` and ``self.items.append(...)`` in a
    method that is jitted (or reached from jitted code), for ordinary classes. Flax and
    Haiku modules have their own rules (JX401); NNX modules may mutate under ``nnx.jit``.

    ## Why is this bad?
    "Such side effects are executed only once when the function is first traced": a
    jitted counter returns 1, 1, 1, and a stored traced value leaks out of the trace.

    ## Example
    ```python
    class Counter:
        @partial(jax.jit, static_argnums=0)
        def count(self, x):
            self.n += 1
            return x + self.n
    ```

    ## Use instead
    ```python
    class Counter:
        @partial(jax.jit, static_argnums=0)
        def count(self, n, x):
            return x + n + 1, n + 1
    ```

    ## Fix safety
    No fix: state must be passed in and returned.
    """

    CODE = "JX105"
    NAME = "self-mutation-in-traced-method"
    MESSAGE = ("mutating `self.{attr}` in a traced method happens once at trace time; pass the state in and "
               "return the new state")
    VALID = [
        "import jax\nfrom functools import partial\nclass C:\n    @partial(jax.jit, static_argnums=0)\n"
        "    def f(self, state, g):\n        path = self.tracker.update(state, g)\n        return path",
        "import jax\nclass C:\n    def __init__(self):\n        self.n = 0\n    def host(self):\n"
        "        self.n += 1",
        "import jax\nfrom functools import partial\nclass C:\n    @partial(jax.jit, static_argnums=0)\n"
        "    def f(self, n, x):\n        return x + n, n + 1",
    ]
    INVALID = [
        "import jax\nfrom functools import partial\nclass C:\n    @partial(jax.jit, static_argnums=0)\n"
        "    def count(self, x):\n        self.n += 1\n        return x + self.n",
        "import jax\nclass C:\n    def step(self, x):\n        self.last = x\n        return x\n"
        "    def run(self, x):\n        return jax.jit(self.step)(x)",
    ]

    def visit_Assign(self, node: ast.Assign, ctx: TracedContext) -> None:
        for target in node.targets:
            self._check(target, ctx)

    def visit_AugAssign(self, node: ast.AugAssign, ctx: TracedContext) -> None:
        self._check(node.target, ctx)

    def visit_Expr(self, node: ast.Expr, ctx: TracedContext) -> None:
        # A statement call with a container's arity: `self.items.append(x)`, not `y = self.opt.update(s, g)`.
        call = node.value
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
            if len(call.args) <= STORING.get(call.func.attr, -1):
                self._check(call.func.value, ctx)

    def _check(self, target: ast.expr, ctx: TracedContext) -> None:
        if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                and target.value.id == "self"):
            return
        cls = ctx.fn.cls
        if cls is None or ctx.fn.name in ("__init__", "__post_init__", "setup"):
            return
        if ctx.analysis.framework(cls) is not None or ctx.flavors & {"nnx", "haiku", "linen"}:
            return
        ctx.report(target, self.MESSAGE.format(attr=target.attr))
