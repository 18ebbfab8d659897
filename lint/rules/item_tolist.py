"""JX205: ``.item()`` / ``.tolist()`` on a traced array."""

from __future__ import annotations

import ast

from flaxify.lint.model import Kind
from flaxify.lint.rule import Rule, TracedContext

METHODS = frozenset({"item", "tolist"})


class ItemOnTracedValue(Rule):
    """
    ## What it does
    Flags ``x.item()`` and ``x.tolist()`` on traced arrays.

    ## Why is this bad?
    Both need the concrete value: ``ConcretizationTypeError`` ("The tolist() method was
    called on traced array...").

    ## Example
    ```python
    @jax.jit
    def f(x):
        return x.sum().item()
    ```

    ## Use instead
    ```python
    @jax.jit
    def f(x):
        return x.sum()
    f(x).item()  # on the host, after the call
    ```

    ## Fix safety
    No fix.
    """

    CODE = "JX205"
    NAME = "item-on-traced-value"
    MESSAGE = "`.{method}()` on a traced array needs a concrete value (ConcretizationTypeError); return the array and convert on the host"
    MIN_KIND = Kind.BATCH
    VALID = [
        "import jax\ndef host(f, x):\n    return f(x).item()",
        "import jax\n@jax.jit\ndef f(x):\n    sizes = [3, 4]\n    return x.reshape(sizes)",
    ]
    INVALID = [
        "import jax\n@jax.jit\ndef f(x):\n    return x.sum().item()",
        "import jax\n@jax.jit\ndef f(x):\n    return x.tolist()",
    ]

    def visit_Call(self, node: ast.Call, ctx: TracedContext) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in METHODS and not node.args and ctx.taint(func.value):
            ctx.report(node, self.MESSAGE.format(method=func.attr))
