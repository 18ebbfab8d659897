"""JX208: value-dependent output shapes (boolean masks, ``jnp.nonzero`` without ``size=``)."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind, Taint
from flaxify.lint.rule import Rule, TracedContext

SIZED = frozenset({"jax.numpy.nonzero", "jax.numpy.argwhere", "jax.numpy.flatnonzero", "jax.numpy.unique"})


class BooleanMaskOnTracedValue(Rule):
    """
    ## What it does
    Flags ``x[x > 0]`` (a traced boolean mask as an index), one-argument ``jnp.where(c)``,
    and ``jnp.nonzero``/``argwhere``/``flatnonzero``/``unique`` without ``size=`` in traced code.

    ## Why is this bad?
    The result's shape depends on the values, which jit cannot know:
    ``NonConcreteBooleanIndexError: Array boolean indices must be concrete``.

    ## Example
    ```python
    @jax.jit
    def f(x):
        return x[x > 0].sum()
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        return jnp.where(x > 0, x, 0).sum()  # or jnp.nonzero(x, size=k, fill_value=-1)
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX208"
    NAME = "boolean-mask-on-traced-value"
    MESSAGE = ("{what} gives a value-dependent shape that jit cannot trace (NonConcreteBooleanIndexError); "
               "use `jnp.where(mask, x, 0)` or pass `size=`")
    MIN_KIND = Kind.BATCH
    VALID = [
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return jnp.where(x > 0, x, 0).sum()",
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return jnp.nonzero(x, size=2, fill_value=-1)",
        "import jax\n@jax.jit\ndef f(x, i):\n    return x[i + 1]",
    ]
    INVALID = [
        "import jax\n@jax.jit\ndef f(x):\n    return x[x > 0].sum()",
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return jnp.nonzero(x)",
        "import jax\n@jax.jit\ndef f(x):\n    mask = x > 0\n    return x[mask]",
    ]

    def visit_Subscript(self, node: ast.Subscript, ctx: TracedContext) -> None:
        index = node.slice
        if isinstance(node.ctx, ast.Load) and ctx.taint(node.value) and self._is_mask(index, ctx):
            ctx.report(node, self.MESSAGE.format(what="a boolean mask index"))

    @staticmethod
    def _is_mask(index: ast.expr, ctx: TracedContext) -> bool:
        if isinstance(index, ast.Name):
            values = [v for t, v, _ in ctx.fn.facts if isinstance(t, ast.Name) and t.id == index.id]
            return bool(values) and all(BooleanMaskOnTracedValue._is_mask(v, ctx) for v in values)
        if isinstance(index, ast.Compare):
            ops_ok = not any(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)) for op in index.ops)
            return ops_ok and ctx.taint(index) == Taint.ARRAY
        if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.Invert):
            return BooleanMaskOnTracedValue._is_mask(index.operand, ctx)
        if isinstance(index, ast.BinOp) and isinstance(index.op, (ast.BitAnd, ast.BitOr)):
            return BooleanMaskOnTracedValue._is_mask(index.left, ctx)
        return False

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        name = ctx.qualname(node.func)
        if name == "jax.numpy.where" and len(node.args) == 1 and not node.keywords:
            if ctx.taint(node.args[0]):
                ctx.report(node, self.MESSAGE.format(what="one-argument `jnp.where`"))
        elif name in SIZED and not any(k.arg == "size" for k in node.keywords):
            if node.args and ctx.taint(node.args[0]):
                ctx.report(node, self.MESSAGE.format(what=f"`jnp.{name.rpartition('.')[2]}` without `size=`"))
