"""JX202: ``and``/``or``/``not`` and ``min``/``max``/``any``/``all`` on traced values."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind, Taint
from flaxify.lint.rule import Rule, TracedContext

BOOL_BUILTINS = {"min": "jnp.minimum", "max": "jnp.maximum", "any": "jnp.any", "all": "jnp.all"}


class BoolOpOnTracedValue(Rule):
    """
    ## What it does
    Flags Python's ``and``/``or``/``not`` applied to traced arrays, and the builtins
    ``min``/``max``/``any``/``all`` given traced arrays, under ``jit``/``vmap``/``lax`` bodies.

    ## Why is this bad?
    They call ``bool()`` on the tracer: ``TracerBoolConversionError``.

    ## Example
    ```python
    @jax.jit
    def f(x):
        return min(x, 0.0)
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        return jnp.minimum(x, 0.0)  # jnp.logical_and, &, |, ~ for booleans
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX202"
    NAME = "bool-op-on-traced-value"
    MESSAGE = "`{op}` on a traced value converts it to a Python bool (TracerBoolConversionError); use `{use}`"
    MIN_KIND = Kind.BATCH
    VALID = [
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return jnp.minimum(x, 0.0)",
        "import jax\n@jax.jit\ndef f(x, scale=None):\n    scale = scale or 1.0\n    return x * scale",
        "import jax\n@jax.jit\ndef f(x):\n    return max(x.shape[0], 2) * x",
        # `jax.tree.leaves` returns a Python list: whether it is empty is known at trace time.
        "import jax\n@jax.jit\ndef f(state):\n    leaves = jax.tree.leaves(state)\n    if not leaves:\n        return 0.0\n    return leaves[0]",
    ]
    INVALID = [
        "import jax\n@jax.jit\ndef f(x):\n    return min(x, 0.0)",
        "import jax\n@jax.jit\ndef f(x, y):\n    ok = (x > 0) and (y > 0)\n    return ok",
        "import jax\n@jax.jit\ndef f(x):\n    return not (x > 0)",
    ]

    def visit_BoolOp(self, node: ast.BoolOp, ctx: TracedContext) -> None:
        op = "and" if isinstance(node.op, ast.And) else "or"
        use = "jnp.logical_and` or `&" if op == "and" else "jnp.logical_or` or `|"
        for value in node.values[:-1]:  # the last operand is returned, never converted
            if ctx.taint(value) == Taint.ARRAY:
                ctx.report(value, self.MESSAGE.format(op=op, use=use))
                return

    def visit_UnaryOp(self, node: ast.UnaryOp, ctx: TracedContext) -> None:
        if isinstance(node.op, ast.Not) and ctx.taint(node.operand) == Taint.ARRAY:
            ctx.report(node, self.MESSAGE.format(op="not", use="jnp.logical_not` or `~"))

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        name = ctx.builtin(node.func)
        if name not in BOOL_BUILTINS or node.keywords:
            return
        args = node.args
        # Unlike `if params:`, these compare or truth-test every element, so any traced value breaks.
        if name in ("any", "all") and len(args) == 1 and ctx.taint(args[0]) or name in ("min", "max") and len(args) >= 2 and any(ctx.taint(a) for a in args):
            ctx.report(node, self.MESSAGE.format(op=name, use=BOOL_BUILTINS[name]))
