"""JX203: ``assert`` on a traced value."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind, Taint
from flaxify.lint.rule import Rule, TracedContext


class AssertOnTracedValue(Rule):
    """
    ## What it does
    Flags ``assert cond`` where ``cond`` is a traced array, under ``jit``/``vmap``/``lax``.

    ## Why is this bad?
    ``assert`` converts the condition to ``bool``: ``TracerBoolConversionError``. Shape
    checks (``assert x.shape == (3,)``) are static and fine.

    ## Example
    ```python
    @jax.jit
    def f(x):
        assert x > 0, "must be positive"
        return jnp.log(x)
    ```

    ## Use instead
    ```python
    from jax.experimental import checkify

    def f(x):
        checkify.check(x > 0, "must be positive")
        return jnp.log(x)
    f = jax.jit(checkify.checkify(f))
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX203"
    NAME = "assert-on-traced-value"
    MESSAGE = "`assert` on a traced value raises TracerBoolConversionError; use `checkify.check` or assert on shapes"
    MIN_KIND = Kind.BATCH
    VALID = [
        "import jax\n@jax.jit\ndef f(x):\n    assert x.shape == (3,)\n    return x",
        "import jax\n@jax.jit\ndef f(x, y):\n    assert x.ndim == y.ndim, 'rank mismatch'\n    return x + y",
    ]
    INVALID = [
        "import jax\n@jax.jit\ndef f(x):\n    assert x > 0, 'must be positive'\n    return x",
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    assert jnp.all(jnp.isfinite(x))\n    return x",
    ]

    def visit_Assert(self, node: ast.Assert, ctx: TracedContext) -> None:
        if ctx.taint(node.test) == Taint.ARRAY:
            ctx.report(node.test)
