"""JX301: in-place item assignment on a JAX array."""

from __future__ import annotations

import ast

from flaxify.lint.model import Applicability, Taint
from flaxify.lint.rule import Invalid, Rule, TracedContext

AUG_METHODS = {ast.Add: "add", ast.Mult: "multiply", ast.Div: "divide", ast.Pow: "power", ast.Sub: None}


class InplaceUpdateOfArray(Rule):
    """
    ## What it does
    Flags ``x[i] = v`` and ``x[i] += v`` where ``x`` is a traced JAX array.

    ## Why is this bad?
    JAX arrays are immutable: ``TypeError: JAX arrays are immutable and do not support
    in-place item assignment. Instead of x[idx] = y, use x = x.at[idx].set(y)``.

    ## Example
    ```python
    @jax.jit
    def f(x):
        x[0] = 1.0
        return x
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        x = x.at[0].set(1.0)
        return x
    ```

    ## Fix safety
    Unsafe: the fix rebinds ``x`` to a new array, so other names that alias the old array
    no longer see the change (they would have in NumPy).
    """

    CODE = "JX301"
    NAME = "inplace-update-of-array"
    MESSAGE = "JAX arrays are immutable; `{target}` raises TypeError; use `{fix}`"
    VALID = [
        "import jax\n@jax.jit\ndef f(x):\n    x = x.at[0].set(1.0)\n    return x",
        "import jax\n@jax.jit\ndef f(x):\n    d = {}\n    d['a'] = x\n    out = [0, 0]\n    out[0] = x\n    return d, out",
        "import jax\n@jax.jit\ndef f(params, x):\n    params['w'] = x\n    return params",
    ]
    INVALID = [
        Invalid("import jax\n@jax.jit\ndef f(x):\n    x[0] = 1.0\n    return x",
                "import jax\n@jax.jit\ndef f(x):\n    x = x.at[0].set(1.0)\n    return x"),
        Invalid("import jax, jax.numpy as jnp\n@jax.jit\ndef f(v):\n    x = jnp.zeros(3) + v\n    x[1:] += v\n    return x",
                "import jax, jax.numpy as jnp\n@jax.jit\ndef f(v):\n    x = jnp.zeros(3) + v\n    x = x.at[1:].add(v)\n    return x"),
    ]

    def visit_Assign(self, node: ast.Assign, ctx: TracedContext) -> None:
        if len(node.targets) != 1:
            return
        target = node.targets[0]
        if self._is_array_item(target, ctx):
            assert isinstance(target, ast.Subscript)
            self._report(node, target, "set", ctx.segment(node.value), ctx)

    def visit_AugAssign(self, node: ast.AugAssign, ctx: TracedContext) -> None:
        if self._is_array_item(node.target, ctx):
            assert isinstance(node.target, ast.Subscript)
            method = AUG_METHODS.get(type(node.op))
            value = ctx.segment(node.value)
            if method is None and isinstance(node.op, ast.Sub):
                method, value = "add", f"-({value})"
            self._report(node, node.target, method, value, ctx)

    @staticmethod
    def _is_array_item(target: ast.expr, ctx: TracedContext) -> bool:
        """An array for sure, or a traced argument indexed like an array (not ``params["w"]``)."""
        if not (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)):
            return False
        taint = ctx.taint(target.value)
        if taint == Taint.ARRAY:
            return True
        index = target.slice
        array_like = isinstance(index, (ast.Slice, ast.Tuple)) or (
            isinstance(index, ast.Constant) and (index.value is Ellipsis or isinstance(index.value, int))
        )
        return taint == Taint.TREE and target.value.id in ctx.context.params and array_like

    def _report(self, stmt: ast.stmt, target: ast.Subscript, method: str | None, value: str,
                ctx: TracedContext) -> None:
        name = ctx.segment(target.value)
        index = ctx.segment(target.slice)
        replacement = f"{name} = {name}.at[{index}].{method}({value})" if method else None
        fix = None
        if replacement and stmt.lineno == stmt.end_lineno:
            fix = ctx.replace(stmt, replacement, "Use the `.at[]` update", Applicability.UNSAFE)
        shown = replacement or f"{name} = {name}.at[{index}].<op>(...)"
        ctx.report(target, self.MESSAGE.format(target=ctx.segment(target) + " = ...", fix=shown), fix)
