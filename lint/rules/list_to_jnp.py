"""JX210: a Python list or tuple passed to a ``jax.numpy`` function that needs an array."""

from __future__ import annotations

import ast

from flaxify.lint.rule import Invalid, Rule, TracedContext

NEEDS_ARRAY = frozenset(
    {"sum", "mean", "max", "min", "prod", "std", "var", "exp", "log", "sin", "cos", "tanh", "abs", "sqrt",
     "square", "argmax", "argmin", "cumsum", "cumprod", "dot", "matmul", "maximum", "minimum", "clip", "round",
     "any", "all", "median", "linalg.norm"}
)


class ListToJnpFunction(Rule):
    """
    ## What it does
    Flags ``jnp.sum([a, b])``, ``jnp.mean((x, y))``... with a list or tuple display as the
    array argument, in traced code.

    ## Why is this bad?
    Unlike NumPy, JAX does not convert lists implicitly (it would hide a slow per-element
    conversion): ``TypeError: sum requires ndarray or scalar arguments, got <class 'list'>``.

    ## Example
    ```python
    @jax.jit
    def f(a, b):
        return jnp.sum([a, b])
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(a, b):
        return jnp.sum(jnp.array([a, b]))
    ```

    ## Fix safety
    Safe: wraps the display in ``jnp.array(...)``, which is what NumPy did implicitly.
    """

    CODE = "JX210"
    NAME = "list-to-jnp-function"
    MESSAGE = "`{name}` does not accept a Python {kind} (TypeError); wrap it: `jnp.array(...)` / `jnp.stack(...)`"
    VALID = [
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(a, b):\n    return jnp.sum(jnp.array([a, b]))",
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(a, b):\n    return jnp.stack([a, b]).sum()",
    ]
    INVALID = [
        Invalid("import jax, jax.numpy as jnp\n@jax.jit\ndef f(a, b):\n    return jnp.sum([a, b])",
                "import jax, jax.numpy as jnp\n@jax.jit\ndef f(a, b):\n    return jnp.sum(jnp.array([a, b]))"),
        "import jax, jax.numpy as jnp\n@jax.jit\ndef f(x):\n    return jnp.max((x, 0.0))",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        if not node.args or not isinstance(node.args[0], (ast.List, ast.Tuple)):
            return
        name = ctx.qualname(node.func) or ""
        if not name.startswith("jax.numpy.") or name[len("jax.numpy."):] not in NEEDS_ARRAY:
            return
        arg = node.args[0]
        fix = None
        if ctx.module.imports.bound.get("jnp") == "jax.numpy":
            fix = ctx.replace(arg, f"jnp.array({ctx.segment(arg)})", "Wrap in `jnp.array`")
        shown = "jnp." + name[len("jax.numpy."):]
        ctx.report(node, self.MESSAGE.format(name=shown, kind=type(arg).__name__.lower()), fix)
