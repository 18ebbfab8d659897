"""JX201: Python ``if``/``while``/conditional expression on a traced value."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind, Taint
from flaxify.lint.rule import Rule, TracedContext


class ControlFlowOnTracedValue(Rule):
    """
    ## What it does
    Flags ``if``, ``while`` and ``a if cond else b`` whose condition is a traced array,
    under ``jit``, ``vmap``, ``pmap`` and ``lax`` bodies (not under ``grad`` alone, where
    Python control flow works).

    ## Why is this bad?
    JAX cannot turn an abstract tracer into a Python ``bool``:
    ``TracerBoolConversionError: Attempted boolean conversion of traced array``.

    ## Example
    ```python
    @jax.jit
    def f(x):
        if x > 0:
            return x
        return -x
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        return jnp.where(x > 0, x, -x)  # or lax.cond for expensive branches
    ```
    Static conditions are fine: ``if x.ndim == 2``, ``if bias is not None``, static arguments.

    ## Fix safety
    No fix: ``jnp.where`` evaluates both sides, ``lax.cond`` needs functions.
    """

    CODE = "JX201"
    NAME = "control-flow-on-traced-value"
    MESSAGE = ("Python `{stmt}` on a traced value raises TracerBoolConversionError; use `jnp.where`, "
               "`lax.cond` or `lax.while_loop`, or make the value static")
    MIN_KIND = Kind.BATCH
    VALID = [
        "import jax\n@jax.jit\ndef f(x, bias=None):\n    if x.ndim == 1 and x.shape[0] > 2:\n"
        "        x = x + 1\n    if bias is not None:\n        x = x + bias\n    return x",
        "import jax\nfrom functools import partial\n@partial(jax.jit, static_argnames='normalize')\n"
        "def f(x, normalize):\n    if normalize:\n        x = x / 2\n    return x",
        "import jax\ndef g(x):\n    return 3 * x ** 2 if x < 3 else -4 * x\ndf = jax.grad(g)",
        "import jax\n@jax.jit\ndef f(params, x):\n    if params:\n        return x\n    return x",
    ]
    INVALID = [
        "import jax\n@jax.jit\ndef f(x):\n    if x > 0:\n        return x\n    return -x",
        "import jax\n@jax.jit\ndef f(x):\n    while x < 10:\n        x = x * 2\n    return x",
        "import jax\n@jax.vmap\ndef f(x):\n    return x if x.sum() > 0 else -x",
        "import jax\n@jax.jit\ndef f(x, mask=None):\n    if mask is not None and mask.any():\n        x = x * 2\n"
        "    return x",
    ]

    def visit_If(self, node: ast.If, ctx: TracedContext) -> None:
        self._check(node.test, "if", ctx)

    def visit_While(self, node: ast.While, ctx: TracedContext) -> None:
        self._check(node.test, "while", ctx)

    def visit_IfExp(self, node: ast.IfExp, ctx: TracedContext) -> None:
        self._check(node.test, "if ... else", ctx)

    def _check(self, test: ast.expr, stmt: str, ctx: TracedContext) -> None:
        if isinstance(test, ast.BoolOp):
            # JX202 reports the operands `and`/`or` convert; the last one is converted by the `if`.
            self._check(test.values[-1], stmt, ctx)
            return
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return
        if ctx.taint(test) == Taint.ARRAY:
            ctx.report(test, self.MESSAGE.format(stmt=stmt))
